/**
 * `claude-failover pane classify FILE... [--now ISO] [--time-zone ZONE] [--json]`: the pane classifier on saved
 * screens (`tmux capture-pane -p > FILE`), to see what the daemon would make of a session.
 * Easy to get wrong: a reset time without a date or zone is read against `--now` in `--time-zone` (default: now, the
 * host's zone), exactly as the daemon reads it; and one unreadable file must not stop the others (exit 1 at the end).
 */
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Option from "effect/Option"
import type * as PlatformError from "effect/PlatformError"
import * as Argument from "effect/cli/Argument"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import { classifyPane, inputBoxText, type PaneState } from "../../domain/pane.ts"
import { hostTimeZone } from "../host-time-zone.ts"

/** Some file could not be read (each one was named on stderr already). */
export class PaneClassifyError extends Data.TaggedError("PaneClassifyError")<{
  readonly message: string
  readonly exitCode: number
}> {}

/** `--now`: an instant (with `Z` or an offset), or a wall-clock time read in `--time-zone`. */
type NowSpec =
  | { readonly _tag: "instant"; readonly ms: number }
  | {
    readonly _tag: "wall"
    readonly parts: {
      year: number
      month: number
      day: number
      hours: number
      minutes: number
      seconds: number
      millis: number
    }
  }

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3})\d*)?)?)?(Z|[+-]\d{2}:?\d{2})?$/i

/** ISO-8601 dates and date-times; none for anything else (`Date.parse` would take "Tuesday" too). */
export const parseNow = (raw: string): Option.Option<NowSpec> => {
  const match = ISO.exec(raw.trim())
  if (match === null) return Option.none()
  const [, y, mo, d, h = "00", mi = "00", s = "00", frac = "0", offset] = match
  const parts = {
    year: Number(y),
    month: Number(mo),
    day: Number(d),
    hours: Number(h),
    minutes: Number(mi),
    seconds: Number(s),
    millis: Number(frac.padEnd(3, "0"))
  }
  // Out-of-range fields (month 13, 25:00) are refused rather than rolled over.
  const check = new Date(Date.UTC(parts.year, parts.month - 1, parts.day, parts.hours, parts.minutes, parts.seconds))
  if (
    check.getUTCMonth() !== parts.month - 1 || check.getUTCDate() !== parts.day ||
    check.getUTCHours() !== parts.hours ||
    parts.minutes > 59 || parts.seconds > 59
  ) return Option.none()
  if (offset === undefined) return Option.some({ _tag: "wall", parts })
  const ms = Date.parse(
    `${y}-${mo}-${d}T${h}:${mi}:${s}.${frac.padEnd(3, "0").slice(0, 3)}${
      offset.toUpperCase().replace(/^([+-]\d{2})(\d{2})$/, "$1:$2")
    }`
  )
  return Number.isNaN(ms) ? Option.none() : Option.some({ _tag: "instant", ms })
}

const resolveNow = (spec: NowSpec, timeZone: string): number => {
  if (spec._tag === "instant") return spec.ms
  const { parts } = spec
  return Option.match(
    DateTime.makeZoned({
      year: parts.year,
      month: parts.month,
      day: parts.day,
      hour: parts.hours,
      minute: parts.minutes,
      second: parts.seconds,
      millisecond: parts.millis
    }, { timeZone, adjustForTimeZone: true }),
    {
      onNone: () =>
        Date.UTC(parts.year, parts.month - 1, parts.day, parts.hours, parts.minutes, parts.seconds, parts.millis),
      onSome: DateTime.toEpochMillis
    }
  )
}

/** One file's verdict, as `--json` prints it. */
export interface PaneVerdict {
  readonly file: string
  readonly state: PaneState["_tag"]
  readonly resetAt: string | null
  readonly inputBox: string | null
  readonly banner?: string
  /** usage_limited only: Claude Code will continue the turn by itself at the reset (2.1.332's 5-hour limit). */
  readonly autoContinue?: boolean
  readonly question?: string
  /** setup_dialog: the dialog's first line (trust, API key, onboarding). */
  readonly dialog?: string
  /** turn_error: the error the turn ended in. */
  readonly error?: string
}

export const verdictOf = (
  file: string,
  screen: string,
  options: { readonly now: number; readonly timeZone: string }
): PaneVerdict => {
  const pane = classifyPane(screen, options)
  const inputBox = Option.getOrNull(inputBoxText(screen))
  switch (pane._tag) {
    case "usage_limited":
      return {
        file,
        state: pane._tag,
        resetAt: Option.match(pane.resetAt, { onNone: () => null, onSome: (ms) => new Date(ms).toISOString() }),
        inputBox,
        banner: pane.banner,
        autoContinue: pane.autoContinue
      }
    case "permission_prompt":
      return { file, state: pane._tag, resetAt: null, inputBox, question: pane.question }
    case "setup_dialog":
      return { file, state: pane._tag, resetAt: null, inputBox, dialog: pane.dialog }
    case "turn_error":
      return { file, state: pane._tag, resetAt: null, inputBox, error: pane.error }
    default:
      return { file, state: pane._tag, resetAt: null, inputBox }
  }
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0")

/** `2026-11-24 16:00 Europe/Berlin`: the reset as an operator in that zone reads a clock. */
const wallClock = (iso: string, timeZone: string): string =>
  Option.match(DateTime.zoneMakeNamed(timeZone), {
    onNone: () => iso,
    onSome: (zone) => {
      const p = DateTime.toParts(DateTime.makeZonedUnsafe(Date.parse(iso), { timeZone: zone }))
      return `${p.year}-${pad(p.month)}-${pad(p.day)} ${pad(p.hour)}:${pad(p.minute)} ${timeZone}`
    }
  })

/** File names come from the command line: a control character would drive the terminal, so it prints as `?`. */
const printable = (text: string): string => text.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?")

/** `FILE: state (reset at …), banner: "…", input box: "…"`; quoted texts are JSON strings, so they stay on one line. */
export const renderVerdict = (verdict: PaneVerdict, timeZone: string): string => {
  const parts = [`${printable(verdict.file)}: ${verdict.state}`]
  if (verdict.state === "usage_limited") {
    parts[0] += verdict.resetAt === null
      ? " (no reset time on screen)"
      : ` (reset at ${wallClock(verdict.resetAt, timeZone)})`
  }
  if (verdict.autoContinue === true) parts[0] += ", continues by itself at the reset"
  if (verdict.question !== undefined) parts.push(`question: ${JSON.stringify(verdict.question)}`)
  if (verdict.dialog !== undefined) parts.push(`dialog: ${JSON.stringify(verdict.dialog)}`)
  if (verdict.error !== undefined) parts.push(`error: ${JSON.stringify(verdict.error)}`)
  if (verdict.banner !== undefined) parts.push(`banner: ${JSON.stringify(verdict.banner)}`)
  if (verdict.inputBox !== null && verdict.inputBox !== "") parts.push(`input box: ${JSON.stringify(verdict.inputBox)}`)
  return parts.join(", ")
}

const whyUnreadable = (error: PlatformError.PlatformError): string => {
  const reason = error.reason
  switch (reason._tag) {
    case "NotFound":
      return "no such file"
    case "PermissionDenied":
      return "permission denied"
    case "BadResource":
      return "not a regular file"
    default:
      return reason.message
  }
}

const nowFlag = Flag.String("now").pipe(
  Flag.filterMap(
    parseNow,
    (raw) => `--now ${JSON.stringify(raw)}: expected an ISO-8601 time, e.g. 2026-11-24T18:00:00Z`
  ),
  Flag.withDescription(
    "The clock reset times without a date are read against (ISO-8601; without Z or an offset: in --time-zone); default now"
  ),
  Flag.optional
)

const timeZoneFlag = Flag.String("time-zone").pipe(
  Flag.filter(
    (zone) => Option.isSome(DateTime.zoneMakeNamed(zone)),
    (zone) => `--time-zone ${JSON.stringify(zone)}: expected an IANA time zone, e.g. Europe/Berlin`
  ),
  Flag.withDescription(
    "The zone of reset times whose banner names none (Claude Code prints the host's); default the host's"
  ),
  Flag.optional
)

export const classifyCommand = Command.make("classify", {
  files: Argument.String("file").pipe(
    Argument.variadic({ min: 1 }),
    Argument.withDescription("Saved screens, e.g. from `tmux capture-pane -p -t NAME > FILE`")
  ),
  now: nowFlag,
  timeZone: timeZoneFlag,
  json: Flag.Boolean("json").pipe(
    Flag.withDefault(false),
    Flag.withDescription(
      "One JSON object a line: file, state, resetAt (ISO or null), inputBox (null: none on screen), then banner and autoContinue, question, dialog or error as the state has them"
    )
  )
}, ({ files, json, now, timeZone }) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const zone = Option.getOrElse(timeZone, hostTimeZone)
    const clock = Option.isSome(now) ? resolveNow(now.value, zone) : yield* Clock.currentTimeMillis
    let unreadable = 0
    for (const file of files) {
      const screen = yield* Effect.result(fs.readFileString(file))
      if (screen._tag === "Failure") {
        unreadable++
        yield* Console.error(
          `claude-failover pane classify: ${printable(file)}: cannot read it (${whyUnreadable(screen.failure)})`
        )
        continue
      }
      const verdict = verdictOf(file, screen.success, { now: clock, timeZone: zone })
      yield* Console.log(json ? JSON.stringify(verdict) : renderVerdict(verdict, zone))
    }
    if (unreadable > 0) {
      return yield* new PaneClassifyError({
        message: `${unreadable} of ${files.length} file(s) could not be read`,
        exitCode: 1
      })
    }
  })).pipe(
    Command.withDescription("Classify saved Claude Code screens as the daemon would: idle, busy, usage_limited, …")
  )

export const paneCommand = Command.make("pane").pipe(
  Command.withDescription("Look at Claude Code screens the way the daemon does"),
  Command.withSubcommands([classifyCommand])
)
