/** Hooks and screen together: which says what, and when a hook's word gives way to the screen. */
import { describe, expect, it } from "@effect/vitest"
import { Option } from "effect"
import fc from "fast-check"
import { HookFact } from "../../src/domain/hooks.ts"
import type { SessionState, Sighting } from "../../src/domain/session-book.ts"
import { HOOK_TRUST_MS, mergeSignals } from "../../src/domain/signals.ts"
import { RUNS } from "./arbitraries.ts"
import { aSighting } from "./sightings.ts"

const NOW = Date.parse("2026-11-25T12:00:00Z")
const options = { now: NOW, timeZone: "America/New_York" }
const pane = (state: SessionState): Sighting => aSighting({ state })
const STATES: ReadonlyArray<SessionState> = [
  "idle",
  "busy",
  "permission_prompt",
  "usage_limited",
  "setup_dialog",
  "turn_error",
  "exited",
  "unknown",
  "missing"
]
const facts: ReadonlyArray<HookFact> = [
  HookFact.PromptSubmitted({ run: Option.some("r1"), task: Option.some("t.md") }),
  HookFact.TurnEnded(),
  HookFact.TurnFailed({
    kind: "limit",
    error: "rate_limit",
    text: "You've hit your 5-hour limit · resets 1:11pm (America/New_York)"
  }),
  HookFact.TurnFailed({ kind: "overloaded", error: "overloaded", text: "API Error: Repeated 529 Overloaded errors" }),
  HookFact.TurnFailed({ kind: "auth", error: "authentication_failed", text: "Not logged in" }),
  HookFact.NeedsPerson({ reason: "Claude needs your permission" }),
  HookFact.AutoResume({ kind: "fired" }),
  HookFact.Started({ source: "startup" }),
  HookFact.Ended({ reason: "prompt_input_exit" }),
  HookFact.Other({ event: "PreCompact", detail: "" })
]

describe("hooks and screen together", () => {
  it("liveness is the screen's: gone or exited stays so whatever the hooks said", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<SessionState>("missing", "exited"),
        fc.array(fc.constantFrom(...facts)),
        fc.nat({ max: 600_000 }),
        (state, said, age) => {
          const merged = mergeSignals(pane(state), said.map((fact) => ({ fact, at: NOW - age })), options)
          expect(merged.state).toBe(state)
          expect(merged.signal).toBe("pane")
        }
      ),
      RUNS
    )
  })

  it("with no hooks, the screen alone decides", () => {
    for (const state of STATES) expect(mergeSignals(pane(state), [], options)).toStrictEqual(pane(state))
  })

  it("a dialog on screen is never hidden by a hook", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<SessionState>("permission_prompt", "setup_dialog"),
        fc.array(fc.constantFrom(...facts)),
        (state, said) => {
          expect(mergeSignals(pane(state), said.map((fact) => ({ fact, at: NOW - 1_000 })), options).state).toBe(state)
        }
      ),
      RUNS
    )
  })

  it("a fresh limit from a hook rests the session with the reset time from its text, though the screen looks idle", () => {
    const merged = mergeSignals(pane("idle"), [{ fact: facts[2] ?? HookFact.TurnEnded(), at: NOW - 2_000 }], options)
    expect(merged).toMatchObject({ state: "usage_limited", signal: "hook" })
    // 1:11pm in New York on 2026-11-25 is 18:11Z.
    expect(Option.getOrUndefined(merged.resetAt)).toBe(Date.parse("2026-11-25T18:11:00Z"))
  })

  it("an error that ended the turn reads as a turn error; the screen's new work after it wins", () => {
    const error = facts[3] ?? HookFact.TurnEnded()
    expect(mergeSignals(pane("idle"), [{ fact: error, at: NOW - 2_000 }], options)).toMatchObject({
      state: "turn_error",
      signal: "hook"
    })
    expect(mergeSignals(pane("busy"), [{ fact: error, at: NOW - 2_000 }], options).state).toBe("busy")
  })

  it("a submitted prompt is busy even on an idle-looking screen — until the screen has disagreed longer than a hook is trusted", () => {
    const submitted = facts[0] ?? HookFact.TurnEnded()
    expect(mergeSignals(pane("idle"), [{ fact: submitted, at: NOW - 1_000 }], options)).toMatchObject({
      state: "busy",
      signal: "hook"
    })
    expect(mergeSignals(pane("idle"), [{ fact: submitted, at: NOW - HOOK_TRUST_MS - 1 }], options)).toMatchObject({
      state: "idle",
      signal: "pane"
    })
  })

  it("the newest fact about the turn counts; Other and Started say nothing about it", () => {
    const ended = { fact: HookFact.TurnEnded(), at: NOW - 3_000 }
    const other = { fact: HookFact.Other({ event: "PreCompact", detail: "" }), at: NOW - 1_000 }
    expect(mergeSignals(pane("idle"), [ended, other], options)).toMatchObject({ state: "idle", signal: "hook" })
    const submitted = { fact: facts[0] ?? HookFact.TurnEnded(), at: NOW - 2_000 }
    expect(mergeSignals(pane("idle"), [submitted, ended].sort((a, b) => a.at - b.at), options).state).toBe("busy")
  })
})
