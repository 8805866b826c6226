import { describe, expect, it } from "@effect/vitest"
import { DateTime, Option } from "effect"
import fc from "fast-check"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { classifyPane, inputBoxText, type PaneState, parseResetTime } from "../../src/domain/pane.ts"
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
  "1762952400": "2025-11-12T13:00:00.000Z"
}

const screen = (file: string) => readFileSync(join(SCREENS, file), "utf8")

describe("classifyPane on recorded screens", () => {
  it("has a recorded screen for every state", () => {
    const states = new Set(cases.map((c) => c.expect))
    expect([...states].sort()).toStrictEqual(
      ["busy", "exited", "idle", "permission_prompt", "setup_dialog", "unknown", "usage_limited"]
    )
  })

  it.each(cases)("$file → $expect", ({ expect: state, file, reset }) => {
    const result = classifyPane(screen(file), clock)
    expect(result._tag).toBe(state)
    if (result._tag === "usage_limited") {
      const expected = reset === undefined ? undefined : expectedReset[reset]
      expect(Option.map(result.resetAt, (ms) => new Date(ms).toISOString())).toStrictEqual(
        Option.fromNullishOr(expected)
      )
    }
  })

  it("names the permission question and the setup dialog", () => {
    expect(classifyPane(screen("permission_prompt--bash-command.txt"), clock)).toMatchObject({
      _tag: "permission_prompt",
      question: "Do you want to proceed?"
    })
    expect(classifyPane(screen("setup_dialog--trust-folder-boxed.txt"), clock)).toMatchObject({
      _tag: "setup_dialog",
      dialog: "Do you trust the files in this folder?"
    })
  })
})

const idleScreen = screen("idle--boxed-prompt-after-work.txt")
const banners = [
  "Claude usage limit reached. Your limit will reset at 9am (America/Chicago).",
  "5-hour limit reached ∙ resets 3pm",
  "You've hit your limit · resets 10pm (America/New_York)",
  "You've hit your session limit · resets 8:30pm (Asia/Tokyo)",
  "You've hit your 5-hour limit · resets 1:11pm (America/New_York)",
  "You've hit your weekly limit · resets Oct 9, 10am",
  "You've reached your Opus limit · resets Nov 28, 8:41am",
  "You're out of extra usage · resets 3pm",
  "Your org is out of usage · contact your admin",
  "Usage limit reached · set to continue automatically at 1:11pm",
  "Claude AI usage limit reached|1762952400"
]

/** The line glyph: `⏺` on macOS, `●` on Linux. */
const glyph = fc.constantFrom("⏺", "●")
/** The two input boxes: 1.x draws a box, 2.x a prompt between two rules; each with the footer under it. */
const inputBox = fc.constantFrom(
  ["╭────────────────────╮", "│ >                  │", "╰────────────────────╯", "  ? for shortcuts"],
  ["─".repeat(40), "❯", "─".repeat(40), "  ⏵⏵ auto mode on (shift+tab to cycle)"]
)
/** A limit banner as Claude Code prints it: behind `⎿` under the prompt (1.x), or as a line of its own (2.x). */
const bannerLines = fc.tuple(fc.constantFrom(...banners), glyph, fc.boolean()).map(([banner, g, underPrompt]) =>
  underPrompt ? [`  ⎿  ${banner}`] : [`${g} ${banner}`, "  /upgrade to increase your usage limit."]
)
/** Work that starts after a banner: an assistant line, a tool call with its output, or a submitted prompt. */
const newWork = fc.tuple(glyph, fc.constantFrom("answer", "tool", "prompt")).map(([g, kind]) =>
  kind === "answer"
    ? [`${g} Working on it now.`]
    : kind === "tool"
    ? [`${g} Bash(npm test)`, "  ⎿  PASS src/cart.test.ts"]
    : [`${g === "●" ? "❯" : ">"} Fix the flaky login test`]
)

/** Words of an answer, some of them the words banners are made of. */
const word = fc.constantFrom(
  "the",
  "log",
  "says",
  "run",
  "stopped",
  "at",
  "3pm",
  "limit",
  "reached",
  "reset",
  "usage",
  "your",
  "hit",
  "You've",
  "session",
  "·",
  "resets",
  "Claude",
  "—",
  "yesterday.",
  "(America/Chicago)."
)
const words = fc.array(word, { minLength: 1, maxLength: 8 }).map((ws) => ws.join(" "))
/** How an answer may go on after its first line: indented, as Claude Code wraps and indents it. */
const answerLine = fc.tuple(fc.constantFrom("  ", "    "), words).map(([indent, text]) => `${indent}${text}`)

/** An assistant message with a banner somewhere inside it, never at the start of its first line. */
const answerQuotingBanner = fc
  .record({
    g: glyph,
    opening: fc.constantFrom("The", "I", "Here", "Yes:", "Note:", "It"),
    first: words,
    before: fc.array(answerLine, { maxLength: 3 }),
    after: fc.array(answerLine, { maxLength: 3 }),
    banner: fc.constantFrom(...banners),
    quote: fc.constantFrom("", "\"", "  "),
    where: fc.constantFrom("first line", "continuation start", "continuation middle", "later paragraph")
  })
  .map(({ after, banner, before, first, g, opening, quote, where }) => {
    const head = `${g} ${opening} ${first}`
    switch (where) {
      case "first line":
        return [`${head} ${quote}${banner}${quote} ${first}`, ...before, ...after]
      case "continuation start":
        return [head, ...before, `  ${quote}${banner}`, ...after]
      case "continuation middle":
        return [head, ...before, `  ${first} ${quote}${banner}${quote} ${first}`, ...after]
      case "later paragraph":
        return [head, ...before, "", `  ${banner}`, "", ...after]
    }
  })

/** A permission dialog as 1.x boxes it, or as 2.x draws it under a rule. */
const permissionDialog = fc
  .tuple(
    fc.constantFrom(
      "Do you want to proceed?",
      "Do you want to create notes.md?",
      "Do you want to make this edit to cart.ts?"
    ),
    fc.boolean()
  )
  .map(([question, boxed]) => {
    const body = [
      "Bash command",
      "",
      "  rm -rf node_modules && npm ci",
      "",
      question,
      "❯ 1. Yes",
      "  2. Yes, and don't ask again for rm commands in /home/dev/shop-api",
      "  3. No"
    ]
    return boxed
      ? [`╭${"─".repeat(60)}╮`, ...body.map((line) => `│ ${line.padEnd(58)} │`), `╰${"─".repeat(60)}╯`]
      : ["─".repeat(60), ...body.map((line) => ` ${line}`), "", " Esc to cancel · Tab to amend"]
  })

/** History items in any order: prompts, answers, tool calls, banners, answers quoting banners. */
const historyItem = fc.oneof(
  newWork.map((lines) => ({ lines, banner: false })),
  bannerLines.map((lines) => ({ lines, banner: true })),
  answerQuotingBanner.map((lines) => ({ lines, banner: false })),
  fc.constant({ lines: ["> Fix the failing test", "  ⎿  Interrupted by user"], banner: false })
)

/** The dialogs before any work, as 2.1.197 and 2.1.332 draw them (texts from the recorded screens). */
const setupDialog = fc.constantFrom(
  [
    "Accessing workspace:",
    "",
    " /home/dev/shop-api",
    "",
    " Quick safety check: Is this a project you created or one you trust?",
    " Claude Code'll be able to read, edit, and execute files here.",
    "",
    " ❯ No, exit",
    "   Yes, I trust this folder",
    "",
    " Enter to confirm · Esc to cancel"
  ],
  [
    "Accessing workspace:",
    "",
    " /home/dev/shop-api",
    "",
    " ❯ 1. Yes, I trust this folder",
    "   2. No, exit",
    "",
    " Enter to confirm · Esc to cancel"
  ],
  [
    " Detected a custom API key in your environment",
    "",
    " ANTHROPIC_API_KEY: sk-ant-...00000000000000000000",
    "",
    " Do you want to use this API key?",
    "",
    "   1. Yes",
    " ❯ 2. No (recommended)",
    "",
    " Enter to confirm · Esc to cancel"
  ],
  [
    " Let's get started.",
    "",
    " Choose the text style that looks best with your terminal",
    " To change this later, run /theme",
    "",
    " ❯ ✔ Auto (match terminal)",
    "   Dark mode",
    "   Light mode"
  ],
  [" Security notes:", "", " 1. Claude can make mistakes", "", " Press Enter to continue…"]
)

/** An API error that ended a turn, as the two versions print it. */
const turnErrorLines = fc.tuple(
  glyph,
  fc.constantFrom(
    "API Error: 529 Overloaded. This is a server-side issue, usually temporary — try again in a moment.",
    "API Error: Server is temporarily limiting requests (not your usage limit) · Number of request tokens has exceeded your per-minute rate limit",
    "API Error: Request rejected (429) · this may be a temporary capacity issue"
  ),
  fc.boolean()
).map(([g, error, underPrompt]) =>
  underPrompt
    ? ["  ⎿  Not logged in · Please run /login", "", "✻ Brewed for 1s"]
    : [`${g} ${error}`, "", "✻ Baked for 3m 4s"]
)

describe("classifyPane invariants", () => {
  it("is total: any text gets exactly one state", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 2000 }), (text) => {
        expect([
          "idle",
          "busy",
          "permission_prompt",
          "setup_dialog",
          "turn_error",
          "usage_limited",
          "exited",
          "unknown"
        ]).toContain(
          classifyPane(text, clock)._tag
        )
      }),
      RUNS
    )
  })

  it("text inside a tool's output never decides the state", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...banners, "✻ Working… (esc to interrupt)", "Do you want to proceed?\n❯ 1. Yes"),
        fc.array(fc.string({ maxLength: 30 }), { maxLength: 3 }),
        glyph,
        (quoted, noise, g) => {
          const output = [...noise, ...quoted.split("\n")].map((line, i) => `${i === 0 ? "  ⎿  " : "     "}${line}`)
          const lines = idleScreen.trimEnd().split("\n")
          const at = lines.findIndex((line) => line.startsWith("⏺ The test passes"))
          const withTool = [...lines.slice(0, at), `${g} Bash(cat notes.md)`, ...output, "", ...lines.slice(at)]
          expect(classifyPane(withTool.join("\n"), clock)._tag).toBe("idle")
        }
      ),
      RUNS
    )
  })

  it("a limit banner followed by new work (an assistant line, a tool call, a submitted prompt) is not a limit", () => {
    fc.assert(
      fc.property(bannerLines, newWork, fc.boolean(), inputBox, (banner, work, busy, box) => {
        const text = [
          "> first try",
          ...banner,
          "",
          ...work,
          ...(busy ? ["", "✻ Cogitating… (2s · esc to interrupt)"] : []),
          "",
          ...box
        ].join("\n")
        expect(classifyPane(text, clock)._tag).toBe(busy ? "busy" : "idle")
      }),
      RUNS
    )
  })

  it("banner text anywhere inside an assistant message is never a limit", () => {
    fc.assert(
      fc.property(fc.option(bannerLines, { nil: undefined }), answerQuotingBanner, inputBox, (earlier, answer, box) => {
        // An older real banner above the answer is history: the answer is the newer work.
        const text = ["> Why did the night run stop?", ...(earlier ?? []), "", ...answer, "", ...box].join("\n")
        expect(classifyPane(text, clock)._tag).toBe("idle")
      }),
      RUNS
    )
  })

  it("a screen showing a permission dialog is never idle, whatever came before it", () => {
    fc.assert(
      fc.property(fc.array(historyItem, { maxLength: 6 }), permissionDialog, (history, dialog) => {
        const text = [...history.flatMap((item) => [...item.lines, ""]), ...dialog].join("\n")
        const state = classifyPane(text, clock)._tag
        expect(state).not.toBe("idle")
        // Precisely: the dialog, unless a real banner came last (then the limit is what the session is waiting on).
        expect(state).toBe(history.at(-1)?.banner === true ? "usage_limited" : "permission_prompt")
      }),
      RUNS
    )
  })

  it("a setup dialog is never idle, whatever came before it: the daemon never types into one", () => {
    fc.assert(
      fc.property(
        fc.array(historyItem, { maxLength: 6 }),
        setupDialog,
        fc.constantFrom("", "─".repeat(80)),
        (history, dialog, rule) => {
          const text = [
            "╭─── Claude Code ───╮",
            "╰───────────────────╯",
            ...history.flatMap((item) => [...item.lines, ""]),
            rule,
            ...dialog
          ]
          const state = classifyPane(text.join("\n"), clock)
          expect(state._tag).toBe("setup_dialog")
          expect(inputBoxText(text.join("\n"))).toStrictEqual(Option.none())
        }
      ),
      RUNS
    )
  })

  it("an API error after the last work is a turn that ended; new work after it is not", () => {
    fc.assert(
      fc.property(
        fc.array(historyItem, { maxLength: 4 }),
        turnErrorLines,
        fc.option(newWork, { nil: undefined }),
        inputBox,
        (history, error, work, box) => {
          const text = [
            ...history.flatMap((item) => [...item.lines, ""]),
            "❯ Fix the failing test",
            ...error,
            "",
            ...(work ?? []),
            "",
            ...box
          ].join("\n")
          expect(classifyPane(text, clock)._tag).toBe(work === undefined ? "turn_error" : "idle")
        }
      ),
      RUNS
    )
  })

  it("every limit wording, as the newest event, is a limit, on either glyph", () => {
    for (const banner of banners) {
      expect(classifyPane(`> task\n  ⎿  ${banner}\n\n╭───╮\n│ > │\n╰───╯\n  ? for shortcuts`, clock)._tag).toBe(
        "usage_limited"
      )
      for (const g of ["⏺", "●"]) {
        expect(classifyPane(`❯ task\n\n${g} ${banner}\n\n${"─".repeat(40)}\n❯\n${"─".repeat(40)}`, clock)._tag).toBe(
          "usage_limited"
        )
      }
    }
  })

  it("a banner counts only where it starts a line: quoted in a prompt, typed in the box, or mid-sentence it does not", () => {
    const rules = (typed: ReadonlyArray<string>) => ["─".repeat(40), ...typed, "─".repeat(40), "  ? for shortcuts"]
    const quotedInPrompt = [
      "> Why does it say \"You've hit your limit · resets 3pm\"?",
      "",
      "● Because.",
      "",
      ...rules(["❯"])
    ]
    const typedInBox = ["● Done.", "", ...rules(["❯ note:", "  You've hit your limit · resets 3pm"])]
    const midSentence = ["● Done.", "", "  ⎿  The run said Claude usage limit reached at 3pm", "", ...rules(["❯"])]
    for (const text of [quotedInPrompt, typedInBox, midSentence]) {
      expect(classifyPane(text.join("\n"), clock)._tag).toBe("idle")
    }
  })

  it("the footer's limit line is a limit; the fast-mode cooldown is not", () => {
    const box = ["● Done.", "", "─".repeat(40), "❯", "─".repeat(40)]
    const footer = [...box, "  ⚠ Usage limit reached · limit resets 1:11pm"]
    expect(classifyPane(footer.join("\n"), clock)._tag).toBe("usage_limited")
    const fast = ["❯ go", "", "● You've hit your fast limit · resets in 12m", "", ...box.slice(2)]
    expect(classifyPane(fast.join("\n"), clock)._tag).toBe("idle")
  })

  it("the Linux glyph reads like the macOS one: a tool call masks its output, an answer is activity", () => {
    const linux = screen("idle--boxed-prompt-after-work.txt").replaceAll("⏺", "●")
    expect(classifyPane(linux, clock)._tag).toBe("idle")
    // A recorded 2.1.332 limit (80 columns), with an answer after it.
    const real = readFileSync(
      join(SCREENS, "../real-screens/usage_limited--limit-overage-esc--2.1.332--80.txt"),
      "utf8"
    )
    const limitedThenWork = real.replace("─".repeat(80), `● Retrying now.\n\n${"─".repeat(80)}`)
    expect(classifyPane(real, clock)._tag).toBe("usage_limited")
    expect(classifyPane(limitedThenWork, clock)._tag).toBe("idle")
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
          const text = `You've hit your limit · resets ${hour}${
            minute === 0 ? "" : `:${String(minute).padStart(2, "0")}`
          }${meridiem} (${zone})`
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
    expect(parseResetTime("Your org is out of usage · contact your admin", noon)).toStrictEqual(Option.none())
  })
})
