import { describe, expect, it } from "@effect/vitest"
import { Option } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { classifyPane, inputBoxText, type PaneState } from "../../src/domain/pane.ts"

/** Screens of the real Claude Code, recorded by scripts/record-screens.ts (see the README beside them). */
const SCREENS = join(import.meta.dirname, "../fixtures/real-screens")
const cases = JSON.parse(readFileSync(join(SCREENS, "cases.json"), "utf8")) as ReadonlyArray<{
  readonly file: string
  readonly version: string
  readonly width: number
  readonly scenario: string
  readonly expect: PaneState["_tag"]
  readonly resetAt?: string | null
  readonly inputBox: string | null
  readonly recordedAt: string
  readonly timeZone: string
}>
const screen = (file: string) => readFileSync(join(SCREENS, file), "utf8")

describe("classifyPane on screens of the real Claude Code", () => {
  it("the corpus covers both versions, both widths and every dialog the daemon must not type into", () => {
    expect(cases.length).toBeGreaterThanOrEqual(40)
    expect(new Set(cases.map((c) => c.version))).toStrictEqual(new Set(["2.1.197", "2.1.332"]))
    expect(new Set(cases.map((c) => c.width))).toStrictEqual(new Set([80, 200]))
    for (const version of ["2.1.197", "2.1.332"]) {
      const dialogs = new Set(
        cases.filter((c) => c.version === version && c.expect === "setup_dialog").map((c) => c.scenario)
      )
      expect([...dialogs].sort()).toEqual(expect.arrayContaining(["api-key", "onboarding", "trust"]))
    }
  })

  it.each(cases)("$file → $expect", ({ expect: state, file, inputBox, recordedAt, resetAt, timeZone }) => {
    const text = screen(file)
    const result = classifyPane(text, { now: Date.parse(recordedAt), timeZone })
    expect(result._tag).toBe(state)
    if (result._tag === "usage_limited" && resetAt !== undefined && resetAt !== null) {
      expect(Option.map(result.resetAt, (ms) => new Date(ms).toISOString())).toStrictEqual(
        Option.some(new Date(resetAt).toISOString())
      )
    }
    expect(inputBoxText(text)).toStrictEqual(Option.fromNullishOr(inputBox))
  })

  it("a limit whose banner names its zone resets at the same instant whatever the daemon's own zone", () => {
    const named = cases.filter((c) =>
      c.expect === "usage_limited" && typeof c.resetAt === "string" && /\(America\/New_York\)/.test(screen(c.file))
    )
    expect(named.length).toBeGreaterThan(20)
    for (const c of named) {
      for (const timeZone of ["UTC", "Asia/Tokyo", "America/Los_Angeles"]) {
        const result = classifyPane(screen(c.file), { now: Date.parse(c.recordedAt), timeZone })
        expect(
          result._tag === "usage_limited"
            ? Option.map(result.resetAt, (ms) => new Date(ms).toISOString())
            : result._tag,
          `${c.file} in ${timeZone}`
        )
          .toStrictEqual(Option.some(new Date(c.resetAt ?? "").toISOString()))
      }
    }
  })

  it("2.1.332's automatic continue is seen, and so is its cancelling", () => {
    const limited = cases.filter((c) => c.version === "2.1.332" && c.expect === "usage_limited")
    const auto = (c: (typeof cases)[number]) => {
      const result = classifyPane(screen(c.file), { now: Date.parse(c.recordedAt), timeZone: c.timeZone })
      return result._tag === "usage_limited" && result.autoContinue
    }
    // The menu's "Wait here, then continue automatically at …" is an offer, not a continue under way.
    const continuing = limited.filter((c) =>
      /set to continue automatically at|Continuing (?:automatically at|shortly)/.test(screen(c.file))
    )
      .filter((c) => !/Automatic continue cancelled/.test(screen(c.file)))
    const cancelled = limited.filter((c) => /Automatic continue cancelled/.test(screen(c.file)))
    expect(continuing.length).toBeGreaterThan(0)
    expect(cancelled.length).toBeGreaterThan(0)
    for (const c of continuing) expect(auto(c), c.file).toBe(true)
    for (const c of cancelled) expect(auto(c), c.file).toBe(false)
    // 2.1.197 has no automatic continue: it opens the menu.
    for (const c of cases.filter((c) => c.version === "2.1.197" && c.expect === "usage_limited")) {
      expect(auto(c), c.file).toBe(false)
    }
  })
})
