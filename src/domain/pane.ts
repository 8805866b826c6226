/**
 * Pane classification: the text of a Claude Code pane → idle | busy | permission_prompt | usage_limited | exited | unknown.
 * Easy to get wrong: old banners stay in scrollback and tool output can quote anything, so only the newest,
 * unmasked lines count, and a limit banner only counts when nothing happened after it.
 */
import { Data, DateTime, Option } from "effect"

export type PaneState = Data.TaggedEnum<{
  idle: {}
  busy: {}
  permission_prompt: { readonly question: string }
  usage_limited: { readonly resetAt: Option.Option<number>; readonly banner: string }
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

/** Every screen pattern, in one place. Each is tested against recorded screens in test/fixtures/screens/. */
export const Patterns = {
  /** A tool call echo `⏺ Bash(ls)` / `⏺ Update(src/a.ts)`: its `⎿` lines are the tool's output, not Claude Code's. */
  toolCall: /^\s*⏺\s+[A-Za-z][\w.:-]*\(.*$/,
  toolOutput: /^\s*⎿/,
  /** Assistant text, a tool call or a submitted prompt: activity that makes an older limit banner stale. */
  activity: /^\s*⏺\s/,
  /** The forms that stop a session. "Approaching usage limit" is a warning and deliberately absent. */
  limitBanner: [
    /usage limit reached/i,
    /\blimit reached\b.*\breset/i,
    /\bhit your (?:[\w']+ )*?(?:usage )?limit\b/i,
    /\bout of (?:extra )?usage\b/i,
    /Claude AI usage limit reached\|\d{9,}/
  ],
  /** Claude Code retrying by itself, or a server-side throttle that is explicitly not the usage limit. */
  notALimit: [/not your usage limit/i, /Retrying in \d+/i],
  busy: [/esc to interrupt/i, /·\s*Retrying in \d+s?\b/i],
  /** The input prompt: `│ > …` inside a box, or a bare `>` line between rules in newer versions. */
  inputPrompt: /^\s*(?:│\s*)?(?:>|❯)(?:\s|$)/,
  rule: /^\s*[─━]{10,}\s*$/,
  hint: /\? for shortcuts|shift\+tab to cycle|auto-accept edits|plan mode on/i,
  permissionQuestion: /^\s*(?:│\s*)?(Do you want to .+\?|Do you trust the files in this folder\?)/,
  menuChoice: /^\s*(?:│\s*)?(?:❯\s*)?\d+\.\s+\S/,
  limitMenu: /Stop and wait for limit to reset|What do you want to do\?/i,
  shellPrompt: /(?:^|\s)[\w.-]*(?:@[\w.-]+)?(?::[^\s]*)?[$#%]\s*$/
} as const

/** How far up the classifier looks: a screen's worth of lines. */
const TAIL_LINES = 60

const matchesAny = (patterns: ReadonlyArray<RegExp>, line: string) => patterns.some((p) => p.test(line))

/** Blanks each tool call's output block, keeping line positions. */
export const maskToolOutput = (lines: ReadonlyArray<string>): ReadonlyArray<string> => {
  const masked: Array<string> = []
  let inToolOutput = false
  for (const line of lines) {
    if (Patterns.toolCall.test(line)) {
      inToolOutput = true
      masked.push(line)
      continue
    }
    // The output is the `⎿` line right under the call and the lines indented past its column; a `⎿` after a
    // blank line is the result of another item (a limit banner under a prompt, say), and a margin line ends it.
    const previousBlank = masked.length > 0 && lines[masked.length - 1]?.trim() === ""
    const continues = (Patterns.toolOutput.test(line) && !previousBlank) ||
      (line.startsWith("     ") && line.trim() !== "" && !Patterns.toolOutput.test(line))
    if (inToolOutput && (continues || line.trim() === "")) {
      masked.push("")
      continue
    }
    inToolOutput = false
    masked.push(line)
  }
  return masked
}

const lastIndex = (lines: ReadonlyArray<string>, test: (line: string) => boolean): number => {
  for (let i = lines.length - 1; i >= 0; i--) if (test(lines[i] ?? "")) return i
  return -1
}

const isLimitBanner = (line: string) => matchesAny(Patterns.limitBanner, line) && !matchesAny(Patterns.notALimit, line)

/** Joins a banner wrapped over two lines (1.0.x wraps "…reset at\n9am (America/Chicago)."). */
const bannerText = (lines: ReadonlyArray<string>, at: number): string => {
  const clean = (line: string | undefined) => (line ?? "").replace(/^[\s⎿│⏺·•]+|[\s│]+$/g, "")
  const here = clean(lines[at])
  const next = clean(lines[at + 1])
  return /\breset/i.test(here) && /\d/.test(here.split(/reset/i).pop() ?? "") ? here : `${here} ${next}`.trim()
}

export const classifyPane = (text: string, options: ClassifyOptions): PaneState => {
  const all = text.replace(/\r/g, "").split("\n").map((line) => line.trimEnd())
  while (all.length > 0 && all[all.length - 1] === "") all.pop()
  if (all.length === 0) return PaneState.unknown()
  const lines = maskToolOutput(all.slice(-TAIL_LINES))

  const banner = lastIndex(lines, isLimitBanner)
  const activity = lastIndex(
    lines,
    (line) => !isLimitBanner(line) && (Patterns.activity.test(line) || matchesAny(Patterns.busy, line))
  )
  if (banner >= 0 && banner > activity) {
    const shown = bannerText(lines, banner)
    return PaneState.usage_limited({ resetAt: parseResetTime(shown, options), banner: shown })
  }

  const question = lastIndex(lines, (line) => Patterns.permissionQuestion.test(line))
  if (question >= 0 && lines.slice(question + 1).some((line) => Patterns.menuChoice.test(line))) {
    const asked = Patterns.permissionQuestion.exec(lines[question] ?? "")?.[1] ?? ""
    return PaneState.permission_prompt({ question: asked })
  }

  // The spinner sits just above the input box, so it is busy even though a prompt is visible.
  const bottom = lines.slice(-15)
  if (bottom.some((line) => matchesAny(Patterns.busy, line))) return PaneState.busy()

  const prompt = lastIndex(bottom, (line) => Patterns.inputPrompt.test(line))
  const hasFrame = bottom.some((line) => Patterns.rule.test(line) || /^\s*╰─/.test(line) || Patterns.hint.test(line))
  if (prompt >= 0 && hasFrame) return PaneState.idle()

  const last = lines[lines.length - 1] ?? ""
  if (Patterns.shellPrompt.test(last) && !Patterns.inputPrompt.test(last)) return PaneState.exited()
  return PaneState.unknown()
}

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

/**
 * `resets 3pm`, `reset at 9am (America/Chicago)`, `resets 8:30pm (Asia/Tokyo)`, `resets Oct 9, 10am`,
 * `…|1762952400`. A wall-clock time means its occurrence nearest to `now`, so a time just past reads as
 * "already reset" and `2am` seen at 11pm reads as tomorrow.
 */
export const parseResetTime = (banner: string, options: ClassifyOptions): Option.Option<number> => {
  const unix = /\|(\d{9,})\b/.exec(banner)
  if (unix !== null) return Option.some(Number(unix[1]) * 1000)

  const match =
    /\breset(?:s)?(?:\s+at)?\s+(?:(?<month>[A-Za-z]{3})[a-z]*\.?\s+(?<day>\d{1,2}),?\s+(?:at\s+)?)?(?<hour>\d{1,2})(?::(?<minute>\d{2}))?\s*(?<meridiem>am|pm)\b(?:\s*\((?<zone>[^)]+)\))?/i
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
    : [-1, 0, 1].map((offset) => at(today.year + offset, month, Number(groups.day)))
  const times = candidates.flatMap((candidate) => Option.isSome(candidate) ? [candidate.value] : [])
  const nearest = times.reduce<number | undefined>(
    (best, time) => best === undefined || Math.abs(time - options.now) < Math.abs(best - options.now) ? time : best,
    undefined
  )
  return Option.fromNullishOr(nearest)
}
