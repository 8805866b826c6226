/**
 * The starter's decision, as properties over random timelines of observations: one step per session per call, no
 * restart before its wait is over, waits that never shrink while a session keeps dying, and the advice line.
 */
import { describe, expect, it } from "@effect/vitest"
import { Option } from "effect"
import fc from "fast-check"
import {
  decideStarts,
  defaultStartPolicy,
  isFailing,
  type Liveness,
  sessionAdvice,
  type SessionFacts,
  type StartBook,
  type StartDecision,
  type StartPolicy
} from "../../src/services/session-starter.ts"
import { RUNS } from "../domain/arbitraries.ts"

const policy: StartPolicy = { firstDelayMs: 5_000, maxDelayMs: 300_000, stableAfterMs: 300_000, reportAfter: 3 }
const names = ["claude-1", "claude-2", "claude-3"] as const
const liveness = fc.constantFrom<Liveness>("up", "exited", "missing")
/** Mostly down, so that sessions get to die again and again, with the odd short or long run up. */
const mostlyDown = fc.oneof(
  { arbitrary: fc.constant<Liveness>("up"), weight: 1 },
  { arbitrary: fc.constantFrom<Liveness>("exited", "missing"), weight: 4 }
)

/** A call: how long after the previous one, and what it saw (names may repeat: only the first counts). */
const call = fc.record({
  gapMs: fc.oneof(fc.integer({ min: 0, max: 3_000 }), fc.integer({ min: 0, max: 400_000 })),
  observed: fc.array(fc.record({ session: fc.constantFrom(...names), liveness: fc.oneof(liveness, mostlyDown) }), {
    maxLength: 5
  })
})
const timeline = fc.array(call, { minLength: 10, maxLength: 150, size: "max" })

interface Step {
  readonly now: number
  readonly before: StartBook
  readonly observed: ReadonlyArray<{ readonly session: string; readonly liveness: Liveness }>
  readonly decisions: ReadonlyArray<StartDecision>
}

type Call = {
  readonly gapMs: number
  readonly observed: ReadonlyArray<{ readonly session: string; readonly liveness: Liveness }>
}

const run = (calls: ReadonlyArray<Call>) => {
  let book: StartBook = new Map()
  let now = 1_700_000_000_000
  const steps: Array<Step> = []
  for (const { gapMs, observed } of calls) {
    now += gapMs
    const result = decideStarts(book, observed, now, policy)
    steps.push({ now, before: book, observed, decisions: result.decisions })
    book = result.book
  }
  return steps
}

describe("decideStarts", () => {
  it("never two actions for one session in a call: exactly one per session observed", () => {
    fc.assert(
      fc.property(timeline, (calls) => {
        for (const step of run(calls)) {
          const sessions = step.decisions.map((d) => d.session)
          expect(new Set(sessions).size).toBe(sessions.length)
          expect(new Set(sessions)).toStrictEqual(new Set(step.observed.map((o) => o.session)))
        }
      }),
      RUNS
    )
  })

  it("never a restart before its time: only after the session was seen down for its whole wait", () => {
    fc.assert(
      fc.property(timeline, (calls) => {
        /** Per session: when it was first seen down since its last start or last time up, and the wait then due. */
        const down = new Map<string, { since: number; delayMs: number }>()
        for (const step of run(calls)) {
          for (const decision of step.decisions) {
            const before = step.before.get(decision.session)
            if (decision.step === "create") {
              // Only a session never seen before, and seen missing, is created without a wait.
              expect(before).toBeUndefined()
              expect(decision.liveness).toBe("missing")
            }
            if (decision.step === "restart") {
              const wait = down.get(decision.session)
              expect(wait).toBeDefined()
              expect(step.now - (wait?.since ?? Infinity)).toBeGreaterThanOrEqual(wait?.delayMs ?? Infinity)
              expect(wait?.delayMs).toBeGreaterThanOrEqual(policy.firstDelayMs)
            }
            if (decision.liveness === "up" || decision.step === "restart" || decision.step === "create") {
              down.delete(decision.session)
            } else if (!down.has(decision.session)) {
              down.set(decision.session, { since: step.now, delayMs: before?.delayMs ?? policy.firstDelayMs })
            }
          }
        }
      }),
      RUNS
    )
  })

  it("backoff never shorter than the last while a session keeps dying, never above the cap", () => {
    fc.assert(
      fc.property(timeline, (calls) => {
        const lastDelay = new Map<string, number>()
        const upSince = new Map<string, number>()
        for (const step of run(calls)) {
          for (const decision of step.decisions) {
            const delay = decision.record.delayMs
            expect(delay).toBeLessThanOrEqual(policy.maxDelayMs)
            expect(delay).toBeGreaterThanOrEqual(policy.firstDelayMs)
            if (decision.liveness === "up") {
              const since = upSince.get(decision.session) ?? step.now
              upSince.set(decision.session, since)
              // Only a healthy run (up for stableAfterMs since it was first seen up) brings the wait back down.
              if (step.now - since >= policy.stableAfterMs) {
                expect(delay).toBe(policy.firstDelayMs)
                lastDelay.set(decision.session, delay)
                continue
              }
            } else {
              upSince.delete(decision.session)
            }
            expect(delay).toBeGreaterThanOrEqual(lastDelay.get(decision.session) ?? policy.firstDelayMs)
            lastDelay.set(decision.session, delay)
          }
        }
      }),
      RUNS
    )
  })

  it("a session that dies at once is restarted at 5s, 10s, 20s … 5m apart, and reported from the third restart on", () => {
    let book: StartBook = new Map()
    let now = 0
    const restarts: Array<number> = []
    const failing: Array<boolean> = []
    for (let tick = 0; tick < 2000; tick++) {
      now += 2_000
      const result = decideStarts(book, [{ session: "claude-1", liveness: "missing" }], now, policy)
      book = result.book
      const decision = result.decisions[0]
      if (decision?.step === "restart" || decision?.step === "create") {
        restarts.push(now)
        failing.push(isFailing(decision.record, policy))
      }
    }
    const gaps = restarts.slice(1).map((at, i) => at - (restarts[i] ?? 0))
    // Each gap is the wait plus the 2 s until the next look at the session (it is first seen down one tick later).
    expect(gaps.slice(0, 8)).toStrictEqual([8_000, 12_000, 22_000, 42_000, 82_000, 162_000, 302_000, 302_000])
    expect(failing.slice(0, 5)).toStrictEqual([false, false, false, true, true])
  })

  it("a healthy run starts the wait over", () => {
    const seen = (book: StartBook, now: number, l: Liveness) =>
      decideStarts(book, [{ session: "s", liveness: l }], now, policy)
    let state = seen(new Map(), 0, "missing") // created
    for (const [at, l] of [[1_000, "missing"], [7_000, "missing"], [8_000, "missing"], [20_000, "missing"]] as const) {
      state = seen(state.book, at, l)
    }
    expect(state.book.get("s")?.delayMs).toBe(20_000)
    state = seen(state.book, 30_000, "up")
    state = seen(state.book, 30_000 + policy.stableAfterMs, "up")
    expect(state.book.get("s")).toMatchObject({ delayMs: policy.firstDelayMs, failures: 0 })
  })

  it("a session first seen at a shell waits its delay, then is restarted (respawned)", () => {
    const first = decideStarts(new Map(), [{ session: "s", liveness: "exited" }], 0, policy)
    expect(first.decisions[0]).toMatchObject({ step: "wait", waitBegan: true })
    const again = decideStarts(first.book, [{ session: "s", liveness: "exited" }], 4_999, policy)
    expect(again.decisions[0]).toMatchObject({ step: "wait", waitBegan: false })
    const due = decideStarts(again.book, [{ session: "s", liveness: "exited" }], 5_000, policy)
    expect(due.decisions[0]).toMatchObject({ step: "restart", liveness: "exited" })
  })
})

describe("sessionAdvice", () => {
  const base: SessionFacts = {
    tmux: { _tag: "ok" },
    sessions: [],
    selection: { names: Option.none(), prefix: "claude-" },
    sessionsStart: false,
    failing: [],
    command: ["claude"],
    socket: Option.none()
  }
  const advice = (facts: Partial<SessionFacts>) => Option.getOrUndefined(sessionAdvice({ ...base, ...facts }))

  it("says nothing while some session runs", () => {
    expect(advice({ sessions: [{ session: "claude-1", liveness: "up" }, { session: "claude-2", liveness: "exited" }] }))
      .toBeUndefined()
  })

  it("names the command to start a session, or SESSIONS_START", () => {
    expect(advice({})).toBe(
      "no Claude Code session found (no tmux session named claude-…): start one with " +
        "tmux new-session -d -s claude-1 claude, or set SESSIONS_START=true"
    )
    expect(advice({
      selection: { names: Option.some(["work 1", "claude-2"]), prefix: "claude-" },
      sessions: [{ session: "work 1", liveness: "missing" }, { session: "claude-2", liveness: "missing" }],
      command: ["claude", "--model", "opus"],
      socket: Option.some("cf")
    })).toBe(
      "no Claude Code session found (none of TMUX_SESSIONS (work 1, claude-2) exists): start one with " +
        "tmux -L cf new-session -d -s 'work 1' claude --model opus, or set SESSIONS_START=true"
    )
  })

  it("tells sessions back at a shell from missing ones", () => {
    expect(advice({ sessions: [{ session: "claude-1", liveness: "exited" }] })).toBe(
      "no Claude Code session running: claude-1 is back at a shell (Claude Code exited): start it again with " +
        "tmux send-keys -t claude-1 claude Enter, or set SESSIONS_START=true"
    )
  })

  it("says when tmux is missing, and nothing while the starter is still at work", () => {
    expect(advice({ tmux: { _tag: "missing" } })).toBe(
      "tmux is not installed: install it (apt-get install -y tmux), then start Claude Code sessions in it"
    )
    expect(advice({ sessionsStart: true })).toBeUndefined()
    expect(advice({ sessionsStart: true, failing: ["claude-1"] })).toContain(
      "claude-1 exit(s) right after SESSIONS_START starts them"
    )
  })

  it("is always one line", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ session: fc.string({ minLength: 1, maxLength: 12 }), liveness }), { maxLength: 4 }),
        fc.boolean(),
        fc.constantFrom<SessionFacts["tmux"]>({ _tag: "ok" }, { _tag: "missing" }, {
          _tag: "failing",
          problem: "boom"
        }),
        (sessions, sessionsStart, tmux) => {
          const line = sessionAdvice({ ...base, sessions, sessionsStart, tmux, failing: sessionsStart ? ["x"] : [] })
          if (Option.isSome(line))
            expect(line.value.includes("\n") && !sessions.some((s) => s.session.includes("\n"))).toBe(false)
        }
      ),
      RUNS
    )
  })
})

describe("the default policy", () => {
  it("is 5 s doubling to 5 min, 5 min up counting as healthy", () => {
    expect(defaultStartPolicy).toStrictEqual({
      firstDelayMs: 5_000,
      maxDelayMs: 300_000,
      stableAfterMs: 300_000,
      reportAfter: 3
    })
  })
})
