/**
 * Pane classification: the text of a Claude Code pane → idle | busy | permission_prompt | usage_limited | setup_dialog |
 * turn_error | exited | unknown, tested on screens of the real program (test/fixtures/real-screens/).
 * Easy to get wrong: old banners stay in scrollback, and tool output, Claude's own answers and typed prompts can quote
 * anything, so quoted text is masked, a banner counts only when it starts a line, and only when nothing happened after
 * it; a dialog replaces the input box, so the daemon never types while one is up.
 */
import * as Data from "effect/Data"
import * as DateTime from "effect/DateTime"
import * as Option from "effect/Option"

export type PaneState = Data.TaggedEnum<{
  idle: {}
  busy: {}
  permission_prompt: { readonly question: string }
  /** `autoContinue`: Claude Code (2.1.332+) will continue the interrupted turn by itself at the reset. */
  usage_limited: { readonly resetAt: Option.Option<number>; readonly banner: string; readonly autoContinue: boolean }
  /** A trust, API-key or onboarding dialog (any "Enter to confirm" menu but the limit menu): never typed into. */
  setup_dialog: { readonly dialog: string }
  /** The last turn ended in an API error and the screen looks idle: the task in it did not finish. */
  turn_error: { readonly error: string }
  exited: {}
  unknown: {}
}>
export const PaneState = Data.taggedEnum<PaneState>()

export interface ClassifyOptions {
  /** The clock, for reset times that name no date. */
  readonly now: number
  /** The zone Claude Code prints in when the banner names none: the host's. */
  readonly timeZone: string
}

/**
 * Every screen pattern, in one place. Each is tested against recorded screens in test/fixtures/screens/.
 * The line glyph is `⏺` on macOS and `●` (U+25CF) on Linux: every pattern takes both.
 */
export const Patterns = {
  /** A tool call echo `● Bash(ls)` / `⏺ Update(src/a.ts)`: its `⎿` lines are the tool's output, not Claude Code's. */
  toolCall: /^\s*[⏺●]\s+[A-Za-z][\w.:-]*\(.*$/,
  toolOutput: /^\s*⎿/,
  /** A line that starts an item of the history: assistant text, a tool call, or a line of Claude Code's own. */
  glyphLine: /^\s*[⏺●](?:\s|$)/,
  /** A prompt echoed into the history. A slash command (`❯ /rate-limit-options`) or a menu choice is no new work. */
  submittedPrompt: /^[>❯] (?!\/|\d+\.\s)\S/,
  /** What may stand before a line's content: the glyph, `⎿`, the footer's `⚠`, and whitespace. */
  contentPrefix: /^[\s⏺●⎿⚠]+/,
  /**
   * The forms that stop a session, each anchored at the start of a line's content so that a sentence quoting one
   * is not one. "Approaching usage limit" and "You've used N% of …" are warnings and deliberately absent.
   */
  limitBanner: [
    /^(?:Claude (?:AI )?)?usage limit reached\b/i,
    /^(?:\d+-hour|session|daily|weekly|monthly|opus|sonnet|haiku|fable|usage credit) limit reached\b.*\breset/i,
    // Claude Code's own list of stop messages (the fast-mode cooldown "You've hit your fast limit" is in notALimit).
    /^You(?:'|’)ve (?:hit|reached) your\b/i,
    /^You(?:'|’)re out of (?:extra )?usage\b/i,
    /^Your org is out of usage\b/i,
    /^Your seat type doesn(?:'|’)t include (?:extra )?usage\b/i,
    /^Your usage allocation has been disabled by your admin\b/i,
    /^Your group(?:'|’)s usage limit is set to \$0\b/i,
    /^\S.{0,60}? requires usage credits\b/i,
    /^This service is disabled for your org\b/i
  ],
  /**
   * Claude Code's own lines after a limit banner: they keep the limit in force (they are no new work) and say whether
   * it will continue the turn by itself at the reset.
   */
  limitFollowUp: [
    /^Usage limit reached\b/i,
    /^Automatic continue (?:cancelled|stopped)\b/i,
    /^Continuing (?:automatically at|shortly)\b/i
  ],
  /** Claude Code will continue by itself: `set to continue automatically at 1:11pm`, `Continuing shortly · Esc to cancel`. */
  autoContinue: /set to continue automatically at|^Continuing automatically at|^Continuing shortly\b/i,
  autoContinueOff: /^Automatic continue (?:cancelled|stopped)\b/i,
  /** `… continue automatically at 1:11pm`: the reset time when no banner names one. */
  continueAt: /continue automatically at\s+(.+?)(?:\s+·|$)/i,
  /** Dialogs shown before any work (trust, API key, onboarding): never typed into, listed for a person. */
  setupDialog: [
    /^Detected a custom API key in your environment\b/,
    /^Accessing workspace:/,
    /^Quick safety check: Is this a project you created or one you trust\?/,
    /^Do you trust the files in this folder\?/,
    /^Choose the text style that looks best with your terminal\b/,
    /^Let(?:'|’)s get started\./,
    /^Security notes:/,
    /^Press Enter to continue\b/
  ],
  /** Any "Enter to confirm" menu; the limit menu (`What do you want to do?`) is the one that is not a setup dialog. */
  confirmFooter: /^Enter to confirm · Esc to (?:cancel|exit)\b/,
  /** An API error that ended the turn (Claude Code gave up retrying): the screen looks idle, the task did not finish. */
  turnError: [
    /^API Error\b/,
    /^Not logged in\b/,
    /^Invalid API key\b/,
    /^Credit balance is too low\b/,
    /^OAuth token (?:has )?(?:expired|revoked)\b/i
  ],
  /** Claude Code retrying by itself, a server-side throttle that is explicitly not the usage limit, a fast-mode cooldown. */
  notALimit: [/not your usage limit/i, /Retrying in \d+/i, /^You(?:'|’)ve hit your fast limit\b/i],
  busy: [/esc to interrupt/i, /·\s*Retrying in \d+s?\b/i],
  /** The input prompt: `│ > …` inside a box, or a bare `>` / `❯` line between rules in newer versions. */
  inputPrompt: /^\s*(?:│\s*)?(?:>|❯)(?:\s|$)/,
  rule: /^\s*[─━]{10,}\s*$/,
  boxTop: /^\s*╭─+╮\s*$/,
  boxBottom: /^\s*╰─+╯\s*$/,
  /** The first line inside an input box: the prompt sign, then what is typed. */
  boxedPrompt: /^\s*│\s?(?:>|❯)(?:\s|$)/,
  rulePrompt: /^\s*(?:>|❯)(?:\s|$)/,
  /** Grey text an empty input box shows; capture-pane drops the colour, so it is recognised by its words. */
  placeholder: /^(?:Try "[^"]*"|Resend your message to try again|Once fixed, resend your message)$/,
  /** What is left of a session that ended: its last frame stays above these lines. */
  sessionEnded: /^Resume this session with:|^[\w.-]*(?:@[\w.-]+)?(?::\S*)?[$#%]\s*$/,
  hint: /\? for shortcuts|shift\+tab to cycle|auto-accept edits|plan mode on/i,
  permissionQuestion: /^\s*(?:│\s*)?(Do you want to (?!use this API key).+\?)/,
  menuChoice: /^\s*(?:│\s*)?(?:❯\s*)?\d+\.\s+\S/,
  limitMenu: /Stop and wait for limit to reset|What do you want to do\?/i,
  shellPrompt: /(?:^|\s)[\w.-]*(?:@[\w.-]+)?(?::[^\s]*)?[$#%]\s*$/,
  /**
   * The spinner: a frame glyph, a verb (any: users pick their own) ending in `…`, and an optional
   * `(elapsed · tokens · …)`. The frame and the elapsed time move while nothing else does.
   */
  spinner: /^(\s*)[·✢✳✶✻✽*] ([^…]*…)(?: \((?:(?:\d+h )?(?:\d+m )?\d+s)?(.*)\))?\s*$/
} as const

/** How far up the classifier looks: a screen's worth of lines. */
const TAIL_LINES = 60

const matchesAny = (patterns: ReadonlyArray<RegExp>, line: string) => patterns.some((p) => p.test(line))

const screenLines = (text: string): Array<string> => {
  const lines = text.replace(/\r/g, "").split("\n").map((line) => line.trimEnd())
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop()
  return lines
}

/** A line's content: what follows the glyph, `⎿` and the indentation. */
const contentOf = (line: string) => line.replace(Patterns.contentPrefix, "")

const isLimitBanner = (line: string) => {
  const content = contentOf(line)
  return matchesAny(Patterns.limitBanner, content) && !matchesAny(Patterns.notALimit, content)
}

/** A banner, or one of Claude Code's own lines after it that keep the limit in force. */
const isLimitLine = (line: string) => isLimitBanner(line) || matchesAny(Patterns.limitFollowUp, contentOf(line))

const isTurnError = (line: string) => matchesAny(Patterns.turnError, contentOf(line))

/** Where a block of quoted text goes on: indented lines and blank lines, up to a `⎿` or glyph line. */
const continuesQuote = (line: string) =>
  line.trim() === "" || (/^\s/.test(line) && !Patterns.toolOutput.test(line) && !Patterns.glyphLine.test(line))

/**
 * Blanks what Claude Code only displays, keeping line positions: each tool call's output, the text of each assistant
 * message (its first line keeps the glyph alone, so it still reads as activity), and the lines of a submitted prompt
 * after its first. An answer goes on through its indented continuation lines and later indented paragraphs, until a
 * line at column 0 (the input box is one), a `⎿` line or another glyph line. A glyph line that starts with a limit
 * banner is Claude Code's own, not an answer.
 */
export const maskQuoted = (lines: ReadonlyArray<string>): ReadonlyArray<string> => {
  const masked: Array<string> = []
  let block: "none" | "tool" | "answer" | "prompt" = "none"
  for (const line of lines) {
    if (Patterns.toolCall.test(line)) {
      block = "tool"
      masked.push(line)
      continue
    }
    if (Patterns.glyphLine.test(line) && !isLimitLine(line) && !isTurnError(line)) {
      block = "answer"
      masked.push(line.replace(/^(\s*[⏺●]).*$/, "$1"))
      continue
    }
    if (Patterns.submittedPrompt.test(line)) {
      block = "prompt"
      masked.push(line)
      continue
    }
    if (block === "tool") {
      // The output is the `⎿` line right under the call and the lines indented past its column; a `⎿` after a
      // blank line is the result of another item (a limit banner under a prompt, say), and a margin line ends it.
      const previousBlank = masked.length > 0 && lines[masked.length - 1]?.trim() === ""
      const continues = (Patterns.toolOutput.test(line) && !previousBlank) ||
        (line.startsWith("     ") && line.trim() !== "" && !Patterns.toolOutput.test(line))
      if (continues || line.trim() === "") {
        masked.push("")
        continue
      }
    } else if (block !== "none" && continuesQuote(line)) {
      masked.push("")
      continue
    }
    block = "none"
    masked.push(line)
  }
  return masked
}

/** The input box: `top` and `bottom` are its frame lines, `text` the lines between them. */
interface InputBox {
  readonly top: number
  readonly bottom: number
  readonly text: ReadonlyArray<string>
}

/**
 * The last input box on screen: `╭─╮ │ > … │ ╰─╯` (1.x), or `❯ …` between two rules (2.x). A box whose first line
 * is no prompt (a dialog, the welcome box) is not one, nor is the last frame of a session that has ended.
 */
const findInputBox = (lines: ReadonlyArray<string>): Option.Option<InputBox> => {
  for (let top = lines.length - 2; top >= 0; top--) {
    const first = lines[top + 1] ?? ""
    const boxed = Patterns.boxTop.test(lines[top] ?? "") && Patterns.boxedPrompt.test(first)
    const ruled = Patterns.rule.test(lines[top] ?? "") && Patterns.rulePrompt.test(first)
    if (!boxed && !ruled) continue
    const closes = boxed ? Patterns.boxBottom : Patterns.rule
    let bottom = top + 1
    while (bottom < lines.length && !closes.test(lines[bottom] ?? "")) bottom++
    if (bottom >= lines.length) continue
    const inside = lines.slice(top + 1, bottom)
    if (boxed && !inside.every((line) => /^\s*│/.test(line))) continue
    if (lines.slice(bottom + 1).some((line) => Patterns.sessionEnded.test(line))) return Option.none()
    const text = boxed ? inside.map((line) => line.replace(/^\s*│|│\s*$/g, "")) : inside
    return Option.some({ top, bottom, text })
  }
  return Option.none()
}

/**
 * The text typed into the input box, trimmed, its lines joined with `\n`; `""` for an empty box (or one showing its
 * grey placeholder), none when no input box is on screen (a dialog, a shell).
 */
export const inputBoxText = (screen: string): Option.Option<string> =>
  Option.map(findInputBox(screenLines(screen)), (box) => {
    const [first = "", ...rest] = box.text.map((line) => line.trim())
    const text = [first.replace(/^(?:>|❯)\s?/, ""), ...rest].join("\n").trim()
    return Patterns.placeholder.test(text) ? "" : text
  })

/**
 * The screen without what moves while nothing happens: the spinner's frame glyph and elapsed time. Token counts and
 * every other line stay, so two fingerprints differ exactly when something happened.
 */
export const watchdogFingerprint = (screen: string): string =>
  screen
    .split("\n")
    .map((line) => {
      const spinner = Patterns.spinner.exec(line)
      if (spinner === null) return line
      const [, indent = "", verb = "", rest] = spinner
      return `${indent}✻ ${verb}${rest === undefined ? "" : ` (…${rest})`}`
    })
    .join("\n")

const lastIndex = (lines: ReadonlyArray<string>, test: (line: string, index: number) => boolean): number => {
  for (let i = lines.length - 1; i >= 0; i--) if (test(lines[i] ?? "", i)) return i
  return -1
}

/** Joins a banner wrapped over two lines (1.0.x wraps "…reset at\n9am (America/Chicago)."). */
const bannerText = (lines: ReadonlyArray<string>, at: number): string => {
  const clean = (line: string | undefined) => (line ?? "").replace(/^[\s⎿│⏺●⚠·•]+|[\s│]+$/g, "")
  const here = clean(lines[at])
  const next = clean(lines[at + 1])
  const timed = /\breset/i.test(here) && /\d/.test(here.split(/reset/i).pop() ?? "")
  // A narrow pane wraps the zone (`(America/New_York)`) onto a line of its own.
  if (timed) return /^\([^()\s]+\)$/.test(next) ? `${here} ${next}` : here
  return `${here} ${next}`.trim()
}

/** `(America/New_York)` in a banner: the zone Claude Code prints its reset times in. */
const namedZone = (text: string): string | undefined => /\(([A-Za-z]+(?:\/[\w+-]+)+|UTC)\)\s*$/.exec(text)?.[1]

/** Lines of the screen's bottom where a dialog, a spinner or the limit footer are looked for. */
const BOTTOM_LINES = 25

export const classifyPane = (text: string, options: ClassifyOptions): PaneState => {
  const all = screenLines(text)
  if (all.length === 0) return PaneState.unknown()
  // Masked from the top of the screen, so an answer that starts above the tail is still known as one.
  const from = Math.max(0, all.length - TAIL_LINES)
  const lines = maskQuoted(all).slice(from)
  // What is typed in the input box has not happened yet.
  const box = findInputBox(all)
  const typed = (index: number) => Option.isSome(box) && index + from > box.value.top && index + from < box.value.bottom
  const bottom = lines.slice(-BOTTOM_LINES)
  const last = lines[lines.length - 1] ?? ""
  if (Patterns.shellPrompt.test(last) && !Patterns.inputPrompt.test(last) && Option.isNone(box))
    return PaneState.exited()

  // A setup dialog replaces the input box; the limit menu ("What do you want to do?") is not one.
  // A dialog is drawn below everything else, so the screen is read unmasked here: an answer above does not hide it.
  if (Option.isNone(box)) {
    // Older versions drew their dialogs in a box: its sides are no content either.
    const shown = all.slice(-BOTTOM_LINES).map((line) => contentOf(line.replace(/^\s*│|│\s*$/g, "")).trimEnd())
    const dialog = lastIndex(shown, (line) => matchesAny(Patterns.setupDialog, line))
    const question = lastIndex(shown, (line) => Patterns.permissionQuestion.test(line))
    const confirm = shown.some((line) => Patterns.confirmFooter.test(line))
    const limitMenu = shown.some((line) => Patterns.limitMenu.test(line))
    if (dialog >= 0 && dialog > question) {
      return PaneState.setup_dialog({ dialog: shown.find((line) => matchesAny(Patterns.setupDialog, line)) ?? "" })
    }
    if (confirm && !limitMenu && question < 0) {
      return PaneState.setup_dialog({
        dialog: shown.find((line) => line !== "" && !Patterns.rule.test(line)) ?? "a dialog"
      })
    }
  }

  // Below the input box is the footer: its `● high · /effort` is no work, its "esc to interrupt" is.
  const history = (index: number) => Option.isNone(box) || index + from < box.value.top
  // The footer's "automatic continue cancelled" stays after new work; its "⚠ Usage limit reached" does not.
  const banner = lastIndex(
    lines,
    (line, i) => !typed(i) && isLimitLine(line) && (history(i) || !Patterns.autoContinueOff.test(contentOf(line)))
  )
  const activity = lastIndex(
    lines,
    (line, i) =>
      !typed(i) && !isLimitLine(line) && !isTurnError(line) &&
      (matchesAny(Patterns.busy, line) ||
        (history(i) && (Patterns.glyphLine.test(line) || Patterns.submittedPrompt.test(line))))
  )
  if (banner >= 0 && banner > activity) {
    // Every limit line since the last work. The one shown is the newest that names a reset time, one that names its
    // zone first: the follow-up lines (`continue automatically at 4:25pm`, the footer's `limit resets 4:25pm`) give
    // the time in the zone Claude Code runs in, which need not be the daemon's.
    const limitTexts = lines.flatMap((line, i) =>
      i > activity && !typed(i) && isLimitLine(line) ? [bannerText(lines, i)] : []
    )
    const timed = limitTexts.filter((text) => Option.isSome(parseResetTime(text, options)))
    const shown = timed.filter((text) => namedZone(text) !== undefined).pop() ?? timed.pop() ??
      bannerText(lines, banner)
    const after = lines.slice(Math.max(activity + 1, 0)).map(contentOf)
    const autoOn = lastIndex(after, (line) => Patterns.autoContinue.test(line))
    const autoOff = lastIndex(after, (line) => Patterns.autoContinueOff.test(line))
    const continueAt = after.map((line) => Patterns.continueAt.exec(line)?.[1]).filter((at) => at !== undefined).pop()
    const resetAt = Option.orElse(
      parseResetTime(shown, options),
      () => continueAt === undefined ? Option.none() : parseResetTime(`resets ${continueAt}`, options)
    )
    return PaneState.usage_limited({ resetAt, banner: shown, autoContinue: autoOn >= 0 && autoOn > autoOff })
  }

  const question = lastIndex(lines, (line) => Patterns.permissionQuestion.test(line))
  if (question >= 0 && lines.slice(question + 1).some((line) => Patterns.menuChoice.test(line))) {
    const asked = Patterns.permissionQuestion.exec(lines[question] ?? "")?.[1] ?? ""
    return PaneState.permission_prompt({ question: asked })
  }

  // The spinner sits just above the input box, so it is busy even though a prompt is visible; the footer's
  // "esc to interrupt" goes while text is typed, the spinner line does not.
  const aboveBox = Option.match(box, { onNone: () => lines.length, onSome: (b) => b.top - from })
  const nearBox = lines.slice(Math.max(0, aboveBox - 6), aboveBox)
  if (bottom.some((line) => matchesAny(Patterns.busy, line)) || nearBox.some((line) => Patterns.spinner.test(line))) {
    return PaneState.busy()
  }

  // An API error after the last work, with nothing running: the turn ended in it.
  const error = lastIndex(lines, (line, i) => history(i) && isTurnError(line))
  if (error >= 0 && error > activity) return PaneState.turn_error({ error: contentOf(lines[error] ?? "") })

  const prompt = lastIndex(bottom, (line) => Patterns.inputPrompt.test(line))
  const hasFrame = bottom.some((line) => Patterns.rule.test(line) || /^\s*╰─/.test(line) || Patterns.hint.test(line))
  if (prompt >= 0 && hasFrame) return PaneState.idle()

  if (Patterns.shellPrompt.test(last) && !Patterns.inputPrompt.test(last)) return PaneState.exited()
  return PaneState.unknown()
}

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

/**
 * `resets 3pm`, `reset at 9am (America/Chicago)`, `resets 8:30pm (Asia/Tokyo)`, `resets Oct 9, 10am`,
 * `resets Jan 4, 2027, 2:25pm` (a year when it is not this one), `…|1762952400`. A wall-clock time means its occurrence nearest to `now`, so a time just past reads as
 * "already reset" and `2am` seen at 11pm reads as tomorrow.
 */
export const parseResetTime = (banner: string, options: ClassifyOptions): Option.Option<number> => {
  const unix = /\|(\d{9,})\b/.exec(banner)
  if (unix !== null) return Option.some(Number(unix[1]) * 1000)

  const match =
    /\breset(?:s)?(?:\s+at)?\s+(?:(?<month>[A-Za-z]{3})[a-z]*\.?\s+(?<day>\d{1,2}),?\s+(?:(?<year>\d{4}),?\s+)?(?:at\s+)?)?(?<hour>\d{1,2})(?::(?<minute>\d{2}))?\s*(?<meridiem>am|pm)\b(?:\s*\((?<zone>[^)]+)\))?/i
      .exec(banner)
  const groups = match?.groups
  if (groups === undefined) return Option.none()

  const hour12 = Number(groups.hour)
  const minute = groups.minute === undefined ? 0 : Number(groups.minute)
  if (hour12 < 1 || hour12 > 12 || minute > 59) return Option.none()
  const hour = (hour12 % 12) + (groups.meridiem?.toLowerCase() === "pm" ? 12 : 0)

  const zone = Option.orElse(
    Option.flatMap(Option.fromNullishOr(groups.zone?.trim()), DateTime.zoneMakeNamed),
    () => DateTime.zoneMakeNamed(options.timeZone)
  )
  if (Option.isNone(zone)) return Option.none()
  const today = DateTime.toParts(DateTime.makeZonedUnsafe(options.now, { timeZone: zone.value }))

  const month = groups.month === undefined ? undefined : MONTHS.indexOf(groups.month.toLowerCase()) + 1
  if (month === 0) return Option.none()
  const at = (year: number, month: number, day: number) =>
    DateTime.makeZoned({ year, month, day, hour, minute, second: 0, millisecond: 0 }, {
      timeZone: zone.value,
      adjustForTimeZone: true
    }).pipe(Option.map(DateTime.toEpochMillis))

  // Candidates around now: the same wall-clock time on neighbouring days (or, with a date, years).
  const candidates = month === undefined
    ? [-1, 0, 1].map((offset) => at(today.year, today.month, today.day + offset))
    : groups.year !== undefined
    ? [at(Number(groups.year), month, Number(groups.day))]
    : [-1, 0, 1].map((offset) => at(today.year + offset, month, Number(groups.day)))
  const times = candidates.flatMap((candidate) => Option.isSome(candidate) ? [candidate.value] : [])
  const nearest = times.reduce<number | undefined>(
    (best, time) => best === undefined || Math.abs(time - options.now) < Math.abs(best - options.now) ? time : best,
    undefined
  )
  return Option.fromNullishOr(nearest)
}
