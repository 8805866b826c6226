import { describe, expect, it } from "@effect/vitest"
import { DateTime, Option } from "effect"
import fc from "fast-check"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { classifyPane, type PaneState, parseResetTime } from "../../src/domain/pane.ts"
import { RUNS } from "./arbitraries.ts"

const SCREENS = join(import.meta.dirname, "../fixtures/screens")
const cases = JSON.parse(readFileSync(join(SCREENS, "cases.json"), "utf8")) as ReadonlyArray<{
  readonly file: string
  readonly expect: PaneState["_tag"]
  readonly reset?: string
}>

/** Tuesday 2026-11-24 18:00 UTC; banners without a zone are read in Europe/Berlin (UTC+1 in November). */
const clock = { now: Date.parse("2026-11-24T18:00:00Z"), timeZone: "Europe/Berlin" }

/** Worked out by hand: the occurrence nearest to `clock.now`. */
const expectedReset: Readonly<Record<string, string>> = {
  "9am (America/Chicago)": "2026-11-24T15:00:00.000Z",
  "3pm": "2026-11-24T14:00:00.000Z",
  "10pm (America/New_York)": "2026-11-25T03:00:00.000Z",
  "8:30pm (Asia/Tokyo)": "2026-11-24T11:30:00.000Z",
  "Oct 9, 10am": "2026-10-09T08:00:00.000Z",
  "1762952400": "2025-11-12T13:00:00.000Z"
}

const screen = (file: string) => readFileSync(join(SCREENS, file), "utf8")

describe("classifyPane on recorded screens", () => {
  it("has a recorded screen for every state", () => {
    const states = new Set(cases.map((c) => c.expect))
    expect([...states].sort()).toStrictEqual(["busy", "exited", "idle", "permission_prompt", "unknown", "usage_limited"])
  })

  it.each(cases)("$file → $expect", ({ expect: state, file, reset }) => {
    const result = classifyPane(screen(file), clock)
    expect(result._tag).toBe(state)
    if (result._tag === "usage_limited") {
      const expected = reset === undefined ? undefined : expectedReset[reset]
      expect(Option.map(result.resetAt, (ms) => new Date(ms).toISOString())).toStrictEqual(Option.fromNullishOr(expected))
    }
  })

  it("names the permission question", () => {
    const result = classifyPane(screen("permission_prompt--trust-folder.txt"), clock)
    expect(result).toMatchObject({ _tag: "permission_prompt", question: "Do you trust the files in this folder?" })
  })
})

const idleScreen = screen("idle--boxed-prompt-after-work.txt")
const banners = [
  "Claude usage limit reached. Your limit will reset at 9am (America/Chicago).",
  "5-hour limit reached ∙ resets 3pm",
  "You've hit your limit · resets 10pm (America/New_York)",
  "You've hit your session limit · resets 8:30pm (Asia/Tokyo)",
  "You've hit your weekly limit · resets Oct 9, 10am",
  "You're out of extra usage · resets 3pm",
  "You've hit your org's monthly usage limit",
  "Claude AI usage limit reached|1762952400"
]

describe("classifyPane invariants", () => {
  it("is total: any text gets exactly one state", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 2000 }), (text) => {
        expect(["idle", "busy", "permission_prompt", "usage_limited", "exited", "unknown"]).toContain(
          classifyPane(text, clock)._tag
        )
      }),
      RUNS
    )
  })

  it("text inside a tool's output never decides the state", () => {
    fc.assert(
      fc.property(fc.constantFrom(...banners, "✻ Working… (esc to interrupt)", "Do you want to proceed?\n❯ 1. Yes"),
        fc.array(fc.string({ maxLength: 30 }), { maxLength: 3 }), (quoted, noise) => {
          const output = [...noise, ...quoted.split("\n")].map((line, i) => `${i === 0 ? "  ⎿  " : "     "}${line}`)
          const lines = idleScreen.trimEnd().split("\n")
          const at = lines.findIndex((line) => line.startsWith("⏺ The test passes"))
          const withTool = [...lines.slice(0, at), "⏺ Bash(cat notes.md)", ...output, "", ...lines.slice(at)]
          expect(classifyPane(withTool.join("\n"), clock)._tag).toBe("idle")
        }),
      RUNS
    )
  })

  it("a banner followed by newer work is history, not a limit", () => {
    fc.assert(
      fc.property(fc.constantFrom(...banners), fc.boolean(), (banner, busy) => {
        const text = [
          "> first try",
          `  ⎿  ${banner}`,
          "",
          "> second try",
          "⏺ Working on it now.",
          ...(busy ? ["", "✻ Cogitating… (2s · esc to interrupt)"] : []),
          "",
          "╭────────────────────╮",
          "│ >                  │",
          "╰────────────────────╯",
          "  ? for shortcuts"
        ].join("\n")
        expect(classifyPane(text, clock)._tag).toBe(busy ? "busy" : "idle")
      }),
      RUNS
    )
  })

  it("every limit wording, as the newest event, is a limit", () => {
    for (const banner of banners) {
      expect(classifyPane(`> task\n  ⎿  ${banner}\n\n╭───╮\n│ > │\n╰───╯\n  ? for shortcuts`, clock)._tag).toBe(
        "usage_limited"
      )
    }
  })
})

describe("parseResetTime", () => {
  const zones = ["UTC", "Europe/Berlin", "America/Chicago", "Asia/Tokyo", "Australia/Adelaide", "America/St_Johns"]

  it("a wall-clock time lands within 12 hours of now, at that time in its zone", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: Date.parse("2020-01-01T00:00:00Z"), max: Date.parse("2030-01-01T00:00:00Z") }),
        fc.integer({ min: 1, max: 12 }),
        fc.constantFrom(0, 5, 30, 45),
        fc.constantFrom("am", "pm"),
        fc.constantFrom(...zones),
        (now, hour, minute, meridiem, zone) => {
          const text = `You've hit your limit · resets ${hour}${minute === 0 ? "" : `:${String(minute).padStart(2, "0")}`}${meridiem} (${zone})`
          const reset = Option.getOrThrow(parseResetTime(text, { now, timeZone: "UTC" }))
          expect(Math.abs(reset - now)).toBeLessThanOrEqual(12 * 3_600_000 + 3_600_000)
          const wallClock = (at: number) => DateTime.toParts(DateTime.makeZonedUnsafe(at, { timeZone: zone }))
          const parts = wallClock(reset)
          const wanted = (hour % 12) + (meridiem === "pm" ? 12 : 0)
          // A time that the spring-forward gap skips (2:30am in Berlin on the last Sunday of March) does not exist:
          // it lands on the instant the clocks jump to, an hour later on the wall. Two wall hours in one real hour
          // is that gap.
          const inGap = (parts.hour - wallClock(reset - 3_600_000).hour + 24) % 24 === 2
          expect(parts.hour).toBe(inGap ? (wanted + 1) % 24 : wanted)
          expect(parts.minute).toBe(minute)
        }
      ),
      RUNS
    )
  })

  it("uses the host zone when the banner names none, and ignores a zone it cannot resolve", () => {
    const noon = { now: Date.parse("2026-11-24T12:00:00Z"), timeZone: "Asia/Tokyo" }
    expect(Option.map(parseResetTime("resets 10pm", noon), (ms) => new Date(ms).toISOString())).toStrictEqual(
      Option.some("2026-11-24T13:00:00.000Z")
    )
    expect(Option.map(parseResetTime("resets 10pm (Mars/Olympus)", noon), (ms) => new Date(ms).toISOString()))
      .toStrictEqual(Option.some("2026-11-24T13:00:00.000Z"))
    expect(parseResetTime("You've hit your org's monthly usage limit", noon)).toStrictEqual(Option.none())
  })
})
