import { describe, expect, it } from "@effect/vitest"
import { Option } from "effect"
import fc from "fast-check"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { inputBoxText } from "../../src/domain/pane.ts"
import { RUNS } from "./arbitraries.ts"

const SCREENS = join(import.meta.dirname, "../fixtures/screens")
const cases = JSON.parse(readFileSync(join(SCREENS, "cases.json"), "utf8")) as ReadonlyArray<{
  readonly file: string
  readonly expect: string
}>
const screen = (file: string) => readFileSync(join(SCREENS, file), "utf8")

/** Draws an input box the way Claude Code does, independently of the parser: 1.x boxed, 2.x between rules. */
const drawBox = (style: "boxed" | "ruled", lines: ReadonlyArray<string>, width = 100): ReadonlyArray<string> =>
  style === "boxed"
    ? [
      `╭${"─".repeat(width - 2)}╮`,
      ...lines.map((line, i) => `│ ${`${i === 0 ? ">" : " "} ${line}`.padEnd(width - 4)} │`),
      `╰${"─".repeat(width - 2)}╯`,
      "  ? for shortcuts"
    ]
    : [
      "─".repeat(width),
      ...lines.map((line, i) => `${i === 0 ? "❯" : " "} ${line}`),
      "─".repeat(width),
      "  ? for shortcuts"
    ]

const history = ["> Fix the failing test", "", "● The test passes now.", ""]

describe("inputBoxText", () => {
  it.each(cases)("$file: an empty box reads as \"\", a dialog or a shell as none", ({ expect: state, file }) => {
    const noBox = ["permission_prompt", "setup_dialog", "exited", "unknown"].includes(state)
    expect(inputBoxText(screen(file))).toStrictEqual(noBox ? Option.none() : Option.some(""))
  })

  it("reads single-line and multi-line input in both box styles", () => {
    for (const style of ["boxed", "ruled"] as const) {
      expect(inputBoxText([...history, ...drawBox(style, ["hello world"])].join("\n"))).toStrictEqual(
        Option.some("hello world")
      )
      expect(inputBoxText([...history, ...drawBox(style, ["first line", "  second line", "third"])].join("\n")))
        .toStrictEqual(Option.some("first line\nsecond line\nthird"))
    }
  })

  it("the grey placeholder of an empty box is not input", () => {
    expect(inputBoxText(drawBox("boxed", ["Try \"refactor payments.ts\""]).join("\n"))).toStrictEqual(Option.some(""))
    expect(inputBoxText(drawBox("ruled", ["Resend your message to try again"]).join("\n"))).toStrictEqual(
      Option.some("")
    )
  })

  it("the last frame of a session that ended is no input box", () => {
    const frame = [...history, ...drawBox("ruled", ["unsent"])]
    expect(inputBoxText([...frame, "", "Resume this session with:", "claude --resume 0d1e…"].join("\n"))).toStrictEqual(
      Option.none()
    )
    expect(inputBoxText([...frame, "dev@build-01:~/shop-api$ "].join("\n"))).toStrictEqual(Option.none())
  })

  it("a welcome box or a dialog box above the input box is not it", () => {
    const welcome = ["╭────────────────────╮", "│ ✻ Welcome to Claude │", "╰────────────────────╯", ""]
    expect(inputBoxText([...welcome, ...drawBox("boxed", ["typed"])].join("\n"))).toStrictEqual(Option.some("typed"))
    expect(inputBoxText(welcome.join("\n"))).toStrictEqual(Option.none())
  })

  it("returns any single line drawn into a box, trimmed", () => {
    // Printable text without line breaks; what a terminal shows in one box line.
    const typed = fc.string({ unit: "grapheme", maxLength: 80 }).filter((text) =>
      // eslint-disable-next-line no-control-regex
      !/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(text) &&
      !/^(?:Try "[^"]*"|Resend your message to try again)$/.test(text.trim())
    )
    fc.assert(
      fc.property(
        typed,
        fc.constantFrom("boxed" as const, "ruled" as const),
        fc.boolean(),
        (text, style, withHistory) => {
          const lines = [...(withHistory ? history : []), ...drawBox(style, [text], Math.max(100, text.length + 6))]
          expect(inputBoxText(lines.join("\n"))).toStrictEqual(Option.some(text.trim()))
        }
      ),
      RUNS
    )
  })
})
