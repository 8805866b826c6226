import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { watchdogFingerprint } from "../../src/domain/pane.ts"
import { RUNS } from "./arbitraries.ts"

const screen = (file: string) => readFileSync(join(import.meta.dirname, "../fixtures/screens", file), "utf8")

const FRAMES = ["·", "✢", "✳", "✶", "✻", "✽", "*"]
const elapsed = fc.tuple(fc.nat({ max: 3 }), fc.nat({ max: 59 }), fc.nat({ max: 59 })).map(([h, m, s]) =>
  `${h > 0 ? `${h}h ` : ""}${h > 0 || m > 0 ? `${m}m ` : ""}${s}s`
)
/** What follows the elapsed time inside the spinner's parentheses: token counts and hints, which stay. */
const after = fc.constantFrom("", " · ↑ 1.2k tokens · esc to interrupt", " · ↓ 2 tokens", " · esc to interrupt")
/** Any line that is not a spinner: no `…`, which every spinner verb ends with. */
const otherLine = fc.string({ maxLength: 40 }).filter((line) => !/[\n\r…]/.test(line))

const spinner = (frame: string, verb: string, time: string, rest: string) => `${frame} ${verb}… (${time}${rest})`

describe("watchdogFingerprint", () => {
  it("ignores the spinner's frame and elapsed time, keeps its token count", () => {
    const busy = screen("busy--spinner-cogitating.txt")
    const later = busy.replace("✻ Cogitating… (12s ·", "✽ Cogitating… (1m 3s ·")
    expect(later).not.toBe(busy)
    expect(watchdogFingerprint(later)).toBe(watchdogFingerprint(busy))
    expect(watchdogFingerprint(busy.replace("1.2k tokens", "1.3k tokens"))).not.toBe(watchdogFingerprint(busy))
    expect(watchdogFingerprint("✻ Mulling… (2s · ↓ 2 tokens)")).toBe(
      watchdogFingerprint("· Mulling… (9s · ↓ 2 tokens)")
    )
    expect(watchdogFingerprint("✻ Mulling… (2s · ↓ 2 tokens)")).not.toBe(
      watchdogFingerprint("✻ Mulling… (2s · ↓ 3 tokens)")
    )
  })

  it("screens that differ only in the spinner's seconds and frame have one fingerprint", () => {
    fc.assert(
      fc.property(
        fc.array(otherLine, { maxLength: 12 }),
        fc.nat(),
        fc.constantFrom("Cogitating", "Mulling", "Thinking hard", "Sautéing"),
        fc.tuple(fc.constantFrom(...FRAMES), elapsed),
        fc.tuple(fc.constantFrom(...FRAMES), elapsed),
        after,
        (lines, at, verb, [frameA, timeA], [frameB, timeB], rest) => {
          const i = at % (lines.length + 1)
          const draw = (frame: string, time: string) =>
            [...lines.slice(0, i), spinner(frame, verb, time, rest), ...lines.slice(i)].join("\n")
          expect(watchdogFingerprint(draw(frameA, timeA))).toBe(watchdogFingerprint(draw(frameB, timeB)))
        }
      ),
      RUNS
    )
  })

  it("screens that differ in any other line have different fingerprints", () => {
    fc.assert(
      fc.property(
        fc.array(otherLine, { minLength: 1, maxLength: 12 }),
        fc.nat(),
        otherLine,
        fc.tuple(fc.constantFrom(...FRAMES), elapsed, after),
        fc.tuple(fc.constantFrom(...FRAMES), elapsed),
        (lines, at, replacement, [frame, time, rest], [frameB, timeB]) => {
          const i = at % lines.length
          fc.pre(lines[i] !== replacement)
          const changed = lines.map((line, j) => (j === i ? replacement : line))
          const withSpinner = (ls: ReadonlyArray<string>, f: string, t: string) =>
            [...ls, spinner(f, "Cogitating", t, rest)].join("\n")
          expect(watchdogFingerprint(withSpinner(changed, frameB, timeB))).not.toBe(
            watchdogFingerprint(withSpinner(lines, frame, time))
          )
        }
      ),
      RUNS
    )
  })
})
