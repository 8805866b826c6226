/**
 * The progress line `ccl-delegate result --wait` keeps rewritten on stderr while it polls: status, time waited, next
 * poll. Easy to get wrong: it is for people only. When stderr is not a terminal (a script, a log file) nothing at all
 * is written, and on a terminal the line is erased before the command's own output, so no fragment is left behind.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { formatDuration } from "../../domain/footer.ts"

/** What the line reports at a given moment. */
export interface WaitProgress {
  readonly jobId: string
  /** The status the last answer gave; undefined before the first answer. */
  readonly status: string | undefined
  readonly startedAtMs: number
  /** When the next poll starts; undefined while a poll is in flight. */
  readonly nextPollAtMs: number | undefined
}

/** Whole seconds: the line is redrawn a few times a second, and changing milliseconds would only flicker. */
const seconds = (ms: number): string => ms < 1000 ? "0s" : formatDuration(Math.floor(ms / 1000) * 1000)

/** `job j_000042: running · waited 12s · next poll in 2s` */
export const formatWaitProgress = (progress: WaitProgress, nowMs: number): string => {
  const next = progress.nextPollAtMs === undefined || progress.nextPollAtMs <= nowMs
    ? "polling"
    : `next poll in ${formatDuration(Math.ceil((progress.nextPollAtMs - nowMs) / 1000) * 1000)}`
  return `job ${progress.jobId}: ${progress.status ?? "asking secutools"} · waited ${
    seconds(nowMs - progress.startedAtMs)
  } · ${next}`
}

/** What the polling loop tells the line. */
export interface WaitObserver {
  readonly polling: Effect.Effect<void>
  readonly answered: (status: string) => Effect.Effect<void>
  readonly nextPollIn: (delay: Duration.Duration) => Effect.Effect<void>
}

const silent: WaitObserver = {
  polling: Effect.void,
  answered: () => Effect.void,
  nextPollIn: () => Effect.void
}

const REDRAW_EVERY = Duration.millis(250)
/** Carriage return and "erase line": the next write starts on a clean line. */
const ERASE_LINE = "\r\u001b[2K"

/** One terminal line rewritten in place; cut to the terminal's width, since a wrapped line cannot be rewritten. */
const terminalLine = (stream: NodeJS.WriteStream, jobId: string) =>
  Effect.gen(function*() {
    let progress: WaitProgress = { jobId, status: undefined, startedAtMs: Date.now(), nextPollAtMs: undefined }
    const draw = Effect.sync(() => {
      const line = formatWaitProgress(progress, Date.now())
      const width = Math.max(20, (stream.columns ?? 80) - 1)
      stream.write(`${ERASE_LINE}${line.length > width ? `${line.slice(0, width - 1)}…` : line}`)
    })
    yield* Effect.acquireRelease(
      draw.pipe(Effect.repeat(Schedule.spaced(REDRAW_EVERY)), Effect.forkScoped),
      () => Effect.sync(() => stream.write(ERASE_LINE))
    )
    const update = (change: Partial<WaitProgress>) =>
      Effect.andThen(Effect.sync(() => (progress = { ...progress, ...change })), draw)
    return {
      polling: update({ nextPollAtMs: undefined }),
      answered: (status) => update({ status }),
      nextPollIn: (delay) => update({ nextPollAtMs: Date.now() + Duration.toMillis(delay) })
    } satisfies WaitObserver
  })

/** The progress line on stderr when it is a terminal; otherwise an observer that writes nothing. */
export const stderrWaitProgress = (jobId: string): Effect.Effect<WaitObserver, never, Scope.Scope> =>
  process.stderr.isTTY ? terminalLine(process.stderr, jobId) : Effect.succeed(silent)
