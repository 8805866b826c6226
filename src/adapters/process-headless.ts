/**
 * Headless slots as child processes: each run is `CLAUDE_COMMAND -p --output-format stream-json --verbose …` with the
 * prompt on stdin, its stdout read line by line (every byte kept in a transcript file), the run folded into a report
 * and ended by its own exit, a stop, a line too long, closed output or STALE_AFTER without output.
 * Easy to get wrong: the process is started in a process group of its own and the whole group is stopped (Claude
 * Code's tool commands run as its children); every child carries an environment tag naming the queue, so a daemon
 * that starts after a kill -9 can find and stop the runs its predecessor left behind.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberMap from "effect/FiberMap"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import * as ChildProcess from "effect/process/ChildProcess"
import * as ChildProcessSpawner from "effect/process/ChildProcessSpawner"
import { closeSync, mkdirSync, openSync, statSync, writeSync } from "node:fs"
import { join } from "node:path"
import {
  decodeLine,
  emptyReport,
  foldLine,
  outcomeOf,
  type ProcessEnd,
  RunOutcome,
  type RunReport,
  type SlotSpec,
  SlotState
} from "../domain/headless.ts"
import type { TaskName } from "../domain/task.ts"
import { canonicalRoot, RUN_TAG_ENV } from "./headless-orphans.ts"
import { HeadlessSlots, type HeadlessStart, SlotBusy } from "../ports/headless.ts"

export interface HeadlessSettings {
  readonly slots: ReadonlyArray<SlotSpec>
  /** CLAUDE_COMMAND, split: the program and its own arguments. */
  readonly command: ReadonlyArray<string>
  /** By account: its CLAUDE_CONFIG_DIR. */
  readonly configDirs: ReadonlyMap<string, string>
  readonly permissionMode: string
  /** Permission rules every run gets (`--allowedTools`): the task's completion lines. */
  readonly allowedTools: ReadonlyArray<string>
  readonly extraArgs: ReadonlyArray<string>
  /** The environment of every run (the daemon's, secrets withheld). */
  readonly env: Readonly<Record<string, string>>
  readonly defaultCwd: string
  /** The queue root (absolute): transcripts live under it, and it names the daemon's runs. */
  readonly queueRoot: string
  readonly staleAfter: Duration.Duration
  readonly maxLineBytes: number
  /** How long a slot rests after a run that needs a person (not logged in) before it is tried again. */
  readonly needsPersonRest: Duration.Duration
  /** After an API error another try may fix (529s Claude Code gave up on): a rest doubling per error in a row, capped. */
  readonly apiErrorRest: { readonly first: Duration.Duration; readonly max: Duration.Duration }
  readonly timeZone: string
}

/** How long a process that closed its output may take to exit before it is stopped (less with a short STALE_AFTER). */
const EXIT_AFTER_EOF_MS = 10_000
/** SIGTERM first; SIGKILL when the group is still there after this. */
const FORCE_KILL_AFTER = Duration.seconds(5)
/** The tail of stderr kept for the reason of a failed run. */
const STDERR_TAIL = 2_000

export const transcriptOf = (task: TaskName, run: string): string => `transcripts/${task}.${run}.jsonl`

/** The arguments after CLAUDE_COMMAND's own. */
export const runArguments = (settings: HeadlessSettings, start: HeadlessStart): ReadonlyArray<string> => [
  ...settings.command.slice(1),
  "-p",
  "--output-format",
  "stream-json",
  "--verbose",
  "--permission-mode",
  settings.permissionMode,
  ...Option.match(start.resume, { onNone: () => [], onSome: (session) => ["--resume", session] }),
  ...settings.extraArgs,
  // Variadic in Claude Code: last, so it takes nothing that is not a rule.
  ...(settings.allowedTools.length === 0 ? [] : ["--allowedTools", ...settings.allowedTools])
]

const noFacts = { sessionId: Option.none(), costUsd: Option.none(), turns: Option.none(), durationMs: Option.none() }

/** Lines Claude Code prints that the daemon has no use for (tool results, other system notices): not worth a log line. */
const ROUTINE_TYPES: ReadonlySet<string> = new Set(["system", "user", "stream_event", "tool_progress"])

/** Malformed lines logged per run; the transcript keeps them all. */
const MALFORMED_LOGGED = 5

const isDirectory = (path: string): boolean => {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

/** The signal that killed a process, from the error (or the errors it wraps) the spawner gives for its exit. */
const signalOf = (error: unknown): string | undefined => {
  for (let cause: unknown = error, depth = 0; typeof cause === "object" && cause !== null && depth < 5; depth++) {
    const message = "message" in cause && typeof cause.message === "string" ? cause.message : ""
    const signal = /receipt of signal: '([A-Z0-9]+)'/.exec(message)?.[1]
    if (signal !== undefined) return signal
    cause = "cause" in cause ? cause.cause : "reason" in cause ? cause.reason : undefined
  }
  return undefined
}

export const makeProcessHeadless = (settings: HeadlessSettings) =>
  Effect.gen(function*() {
    const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
    const runs = yield* FiberMap.make<string>()
    const changes = yield* PubSub.unbounded<void>()
    const states = new Map<string, SlotState>(settings.slots.map((slot) => [slot.name, SlotState.Free()]))
    const stops = new Map<string, Deferred.Deferred<string>>()
    /** API errors in a row, by slot. */
    const apiErrors = new Map<string, number>()
    const specs = new Map(settings.slots.map((slot) => [slot.name, slot]))
    mkdirSync(join(settings.queueRoot, "transcripts"), { recursive: true })
    const tagRoot = canonicalRoot(settings.queueRoot)
    const staleMs = Duration.toMillis(settings.staleAfter)

    const stateOf = (slot: string) => states.get(slot) ?? SlotState.Free()

    /** One run, start to end; never fails: whatever happens becomes the slot's Ended outcome. */
    const execute = (slot: string, start: HeadlessStart, stop: Deferred.Deferred<string>) =>
      Effect.gen(function*() {
        const startedAt = yield* Clock.currentTimeMillis
        let report: RunReport = emptyReport
        let bytes = 0
        let lastOutputAt = startedAt
        let partial: Array<string> = []
        let partialBytes = 0
        let stderrTail = ""
        const decoder = new TextDecoder()
        const running = () =>
          states.set(
            slot,
            SlotState.Running({ task: start.task, run: start.run, startedAt, bytes, sessionId: report.sessionId })
          )
        running()
        const note = (message: string) =>
          Effect.logInfo(`headless run ${start.run} of ${start.task}: ${message}`).pipe(
            Effect.annotateLogs({ task: start.task, session: slot, run: start.run })
          )
        const account = Option.flatMap(Option.fromNullishOr(specs.get(slot)), (spec) => spec.account)
        const configDir = Option.flatMap(account, (name) => Option.fromNullishOr(settings.configDirs.get(name)))
        const env = {
          ...settings.env,
          ...Option.match(configDir, { onNone: () => ({}), onSome: (dir) => ({ CLAUDE_CONFIG_DIR: dir }) }),
          [RUN_TAG_ENV]: `${tagRoot}\t${slot}\t${start.run}`
        }
        const program = settings.command[0] ?? "claude"
        const command = ChildProcess.make(program, runArguments(settings, start), {
          cwd: Option.getOrElse(start.cwd, () => settings.defaultCwd),
          env,
          extendEnv: false,
          stdin: { stream: Stream.make(new TextEncoder().encode(start.prompt)) },
          killSignal: "SIGTERM",
          forceKillAfter: FORCE_KILL_AFTER
        })
        // A transcript that cannot be written (a full disk) is said once; the run goes on without it.
        let transcriptProblem: string | undefined
        const transcript = yield* Effect.acquireRelease(
          Effect.sync(() => {
            try {
              return openSync(join(settings.queueRoot, transcriptOf(start.task, start.run)), "a")
            } catch (error) {
              transcriptProblem = String(error)
              return undefined
            }
          }),
          (fd) => Effect.sync(() => fd === undefined || closeSync(fd))
        )
        let transcriptFailed = false
        const keep = (chunk: Uint8Array): string | undefined => {
          if (transcript === undefined || transcriptFailed) return undefined
          try {
            writeSync(transcript, chunk)
            return undefined
          } catch (error) {
            transcriptFailed = true
            return `its transcript cannot be written, the rest of the output is not kept: ${String(error)}`
          }
        }
        if (transcriptProblem !== undefined) yield* note(`its transcript cannot be written: ${transcriptProblem}`)
        const seenTypes = new Set<string>()
        let malformed = 0
        /** Takes a chunk of output: what to log about its lines, and false when a line grew past the limit. */
        const take = (
          chunk: Uint8Array,
          now: number
        ): { readonly fits: boolean; readonly notes: ReadonlyArray<string> } => {
          const lost = keep(chunk)
          bytes += chunk.byteLength
          lastOutputAt = now
          // The unfinished line is kept in pieces and only joined once it ends: a long line costs its length, once.
          const text = decoder.decode(chunk, { stream: true })
          const end = text.lastIndexOf("\n")
          let lines: ReadonlyArray<string> = []
          if (end < 0) {
            partial.push(text)
            partialBytes += chunk.byteLength
          } else {
            lines = (partial.join("") + text.slice(0, end)).split("\n")
            partial = [text.slice(end + 1)]
            partialBytes = Buffer.byteLength(text.slice(end + 1))
          }
          const notes: Array<string> = lost === undefined ? [] : [lost]
          for (const text of lines) {
            if (text.trim() === "") continue
            const line = decodeLine(text)
            report = foldLine(report, line)
            if (line._tag === "Malformed" && ++malformed <= MALFORMED_LOGGED) {
              notes.push(
                `skipped a line that is ${line.problem.startsWith("not JSON") ? "not JSON" : line.problem}: ${
                  text.slice(0, 200)
                }`
              )
            } else if (line._tag === "Other" && !ROUTINE_TYPES.has(line.type) && !seenTypes.has(line.type)) {
              seenTypes.add(line.type)
              notes.push(`an event of a type this version does not know (${line.type}): kept in the transcript`)
            }
          }
          running()
          return { fits: partialBytes <= settings.maxLineBytes, notes }
        }
        const cwd = Option.getOrElse(start.cwd, () => settings.defaultCwd)
        // A task's `cwd` that is not a directory is the task's problem (counted), not the command's.
        const end = !isDirectory(cwd)
          ? { _tag: "Stopped" as const, reason: `did not start: its working directory ${cwd} is not a directory` }
          : yield* Effect.scoped(Effect.gen(function*() {
            const handle = yield* spawner.spawn(command)
            const exit: Effect.Effect<ProcessEnd> = handle.exitCode.pipe(
              Effect.map((code): ProcessEnd => ({ _tag: "Exited", code: Number(code) })),
              Effect.catch((error) => {
                const signal = signalOf(error)
                return Effect.succeed<ProcessEnd>(
                  signal === undefined
                    ? { _tag: "Stopped", reason: `was lost: its process could not be waited for: ${error.message}` }
                    : { _tag: "Signalled", signal }
                )
              })
            )
            const readOutput: Effect.Effect<ProcessEnd> = Effect.gen(function*() {
              const tooLong = yield* handle.stdout.pipe(
                Stream.runForEach((chunk) =>
                  Effect.gen(function*() {
                    const taken = take(chunk, yield* Clock.currentTimeMillis)
                    for (const message of taken.notes) yield* note(message)
                    if (!taken.fits) return yield* Effect.fail("too long" as const)
                  })
                ),
                Effect.as(false),
                Effect.catchIf((error) => error === "too long", () => Effect.succeed(true))
              )
              if (tooLong) {
                const end: ProcessEnd = {
                  _tag: "Stopped",
                  reason: `was stopped: its process printed a line over ${settings.maxLineBytes} bytes`
                }
                return end
              }
              // Output closed: the process exits now, or it closed its output and went on (then it is stopped).
              return yield* exit.pipe(
                Effect.timeoutOrElse({
                  duration: Duration.millis(Math.min(EXIT_AFTER_EOF_MS, staleMs / 3)),
                  orElse: () =>
                    Effect.succeed<ProcessEnd>({
                      _tag: "Stopped",
                      reason: "was stopped: its process closed its output but did not exit"
                    })
                })
              )
            }).pipe(Effect.catch((error) =>
              Effect.succeed<ProcessEnd>({
                _tag: "Stopped",
                reason: `was stopped: reading its output failed: ${error.message}`
              })
            ))
            const readErrors = handle.stderr.pipe(
              Stream.decodeText(),
              Stream.runForEach((text) => Effect.sync(() => (stderrTail = (stderrTail + text).slice(-STDERR_TAIL)))),
              Effect.ignore
            )
            const watchStale: Effect.Effect<ProcessEnd> = Effect.gen(function*() {
              for (;;) {
                const now = yield* Clock.currentTimeMillis
                const quietFor = now - lastOutputAt
                if (quietFor >= staleMs) {
                  const stale: ProcessEnd = {
                    _tag: "Stopped",
                    reason: `was stopped: its process printed nothing for ${Math.round(quietFor / 1000)}s (STALE_AFTER)`
                  }
                  return stale
                }
                yield* Effect.sleep(Duration.millis(Math.min(staleMs - quietFor, 1_000)))
              }
            })
            const stopped = Effect.map(Deferred.await(stop), (reason): ProcessEnd => ({ _tag: "Stopped", reason }))
            yield* Effect.forkScoped(readErrors)
            return yield* Effect.raceAll([readOutput, watchStale, stopped])
          })).pipe(
            Effect.catch((error) =>
              Effect.succeed<ProcessEnd>({
                _tag: "NotStarted",
                // The platform's message repeats the whole command line (the prompt's rules too): its kind says enough.
                reason: `did not start: CLAUDE_COMMAND ${program}: ${error.reason._tag}`
              })
            )
          )
        const tail = stderrTail.trim()
        const withErrors: ProcessEnd = end._tag === "Exited" && end.code !== 0 && tail !== ""
          ? {
            _tag: "Stopped",
            reason: `exited: its process ended with code ${end.code} and no result: ${
              tail.split("\n").slice(-3).join(" / ")
            }`
          }
          : end
        const now = yield* Clock.currentTimeMillis
        const outcome = outcomeOf(report, Option.isSome(report.result) ? end : withErrors, {
          now,
          timeZone: settings.timeZone
        })
        states.set(slot, SlotState.Ended({ task: start.task, run: start.run, at: now, outcome }))
        stops.delete(slot)
        yield* PubSub.publish(changes, undefined)
      }).pipe(
        Effect.scoped,
        // Whatever goes wrong here (a defect), the slot must not stay Running with no process behind it.
        Effect.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause) : Effect.gen(function*() {
            const at = yield* Clock.currentTimeMillis
            const reason = `was lost: the daemon failed running it: ${Cause.pretty(cause).split("\n")[0]}`
            states.set(
              slot,
              SlotState.Ended({
                task: start.task,
                run: start.run,
                at,
                outcome: RunOutcome.Fault({ reason, facts: noFacts })
              })
            )
            stops.delete(slot)
            yield* PubSub.publish(changes, undefined)
          })
        )
      )

    return HeadlessSlots.of({
      slots: settings.slots,
      isSlot: (name) => specs.has(name),
      state: (slot) => Effect.sync(() => stateOf(slot)),
      start: (slot, start) =>
        Effect.gen(function*() {
          const state = stateOf(slot)
          const now = yield* Clock.currentTimeMillis
          const free = state._tag === "Free" || (state._tag === "Resting" && state.until <= now) ||
            // `--resume` after a limit: the run that waited goes on in its slot.
            (state._tag === "Ended" && state.task === start.task && state.run === start.run)
          if (!specs.has(slot) || !free)
            return yield* new SlotBusy({ slot, state: specs.has(slot) ? state._tag : "no such slot" })
          const stop = yield* Deferred.make<string>()
          stops.set(slot, stop)
          states.set(
            slot,
            SlotState.Running({ task: start.task, run: start.run, startedAt: now, bytes: 0, sessionId: start.resume })
          )
          yield* FiberMap.run(runs, slot, execute(slot, start, stop))
        }),
      stop: (slot, reason) =>
        Effect.gen(function*() {
          const stop = stops.get(slot)
          if (stop === undefined) return
          // The run's own fiber stops the process group and records the outcome.
          yield* Deferred.succeed(stop, `was stopped: ${reason}`)
        }),
      release: (slot) =>
        Effect.gen(function*() {
          const state = stateOf(slot)
          if (state._tag !== "Ended") return
          const now = yield* Clock.currentTimeMillis
          const outcome = state.outcome
          const rest = (ms: number, text: string) =>
            SlotState.Resting({
              until: now + ms,
              reason: `${text} (tried again in ${Duration.format(Duration.millis(ms))})`
            })
          if (outcome._tag === "ApiError") {
            const inARow = (apiErrors.get(slot) ?? 0) + 1
            apiErrors.set(slot, inARow)
            const ms = Math.min(
              Duration.toMillis(settings.apiErrorRest.max),
              Duration.toMillis(settings.apiErrorRest.first) * 2 ** (inARow - 1)
            )
            states.set(slot, rest(ms, outcome.text))
            return
          }
          apiErrors.delete(slot)
          states.set(
            slot,
            outcome._tag === "NeedsPerson"
              ? rest(Duration.toMillis(settings.needsPersonRest), outcome.text)
              : SlotState.Free()
          )
        }),
      transcriptOf,
      changes: Stream.fromPubSub(changes)
    })
  })

export const ProcessHeadlessLayer = (settings: HeadlessSettings) =>
  Layer.effect(HeadlessSlots, makeProcessHeadless(settings))
