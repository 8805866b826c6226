/**
 * Start-up recovery: finish or undo whatever a crash interrupted, before any new work is taken (docs/crash-states.md
 * is the table this implements). Easy to get wrong: never guess that a typed prompt was not run. An active task
 * whose run the session accepted (`started_at`, or its prompt seen submitted on screen) stays; only a session that
 * is gone or exited, or a prompt provably never submitted, gives it back (a run that hit a limit is left to the
 * dispatcher's limit policy).
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import { TaskEvent } from "../domain/lifecycle.ts"
import { inputBoxText } from "../domain/pane.ts"
import { promptHeader } from "../domain/prompt.ts"
import type { DelegationMarker } from "../domain/marker.ts"
import { parseTask, stillSettling, type Task, type TaskName } from "../domain/task.ts"
import { type Stage, stageRank, Stages, type StoredTask, TaskStore } from "../ports/task-store.ts"
import { Tmux } from "../ports/tmux.ts"
import { observeSession } from "./sessions.ts"
import {
  applyEvent,
  endUnfinishedRun,
  freeName,
  homeOf,
  moveKeepingBoth,
  nowIso,
  quarantine,
  readTask,
  retryTask
} from "./task-moves.ts"

export interface Recovered {
  /** Human-readable lines, one per thing recovery changed. */
  readonly actions: ReadonlyArray<string>
}

/**
 * The same NAME in two stages. One file under two names (same identity) is a move a crash interrupted: the copy in
 * the stage its state belongs in stays, the other link goes. Two different files are a name used twice (a new task
 * dropped while an old one with that name exists): both are kept, the less advanced one under a free name.
 */
/**
 * One file under several names (a move or rename cut between its link and its unlink): exactly one name stays — one
 * in the stage the file's state belongs in, and among those one that no other task uses in another stage.
 */
export const resolveLinks = Effect.fn("resolveLinks")(function*() {
  const store = yield* TaskStore
  const linked = new Set<string>()
  for (const stage of ["pending", "active"] as const) {
    for (const identity of (yield* store.linked(stage)).values()) linked.add(identity)
  }
  if (linked.size === 0) return []
  // Rare: only then is every stage looked through for the other names.
  const names = new Map<string, Array<{ stage: Stage; name: TaskName }>>()
  const byName = new Map<TaskName, Array<string>>()
  for (const stage of Stages) {
    for (const name of yield* store.list(stage)) {
      const stat = yield* Effect.result(store.stat(stage, name))
      if (Result.isFailure(stat)) continue
      byName.set(name, [...(byName.get(name) ?? []), stat.success.identity])
      if (linked.has(stat.success.identity))
        names.set(stat.success.identity, [...(names.get(stat.success.identity) ?? []), { stage, name }])
    }
  }
  const actions: Array<string> = []
  for (const [identity, places] of names) {
    const first = places[0]
    if (first === undefined || places.length < 2) continue
    const read = yield* Effect.result(readTask(first.stage, first.name))
    const home = Result.isSuccess(read) ? homeOf(read.success.task.fields.state ?? "pending") : undefined
    const clashes = (place: { name: TaskName }) => (byName.get(place.name) ?? []).some((other) => other !== identity)
    const inHome = places.filter((place) => place.stage === home)
    const candidates = inHome.length > 0 ? inHome : places
    const keep = candidates.find((place) => !clashes(place)) ?? candidates[0]
    if (keep === undefined) continue
    for (const place of places) {
      if (place === keep) continue
      yield* store.remove(place.stage, place.name)
      actions.push(
        `${place.stage}/${place.name} was another name of ${keep.stage}/${keep.name} (a move cut short); removed`
      )
    }
  }
  return actions
})

export const resolveDuplicates = Effect.fn("resolveDuplicates")(function*() {
  const store = yield* TaskStore
  const where = new Map<TaskName, Array<Stage>>()
  for (const stage of Stages) {
    for (const name of yield* store.list(stage)) where.set(name, [...(where.get(name) ?? []), stage])
  }
  const actions: Array<string> = []
  for (const [name, stages] of where) {
    if (stages.length < 2) continue
    const copies: Array<{ stage: Stage; identity: string; home: Option.Option<Stage> }> = []
    for (const stage of stages) {
      const read = yield* Effect.result(readTask(stage, name))
      const stored = yield* Effect.result(store.read(stage, name))
      if (Result.isFailure(stored)) continue
      copies.push({
        stage,
        identity: stored.success.identity,
        home: Result.isSuccess(read) ? Option.some(homeOf(read.success.task.fields.state ?? "pending")) : Option.none()
      })
    }
    const byRank = [...copies].sort((a, b) => stageRank(b.stage) - stageRank(a.stage) || (a.stage === "done" ? -1 : 1))
    const advanced = byRank[0]
    if (advanced === undefined) continue
    // Among the links of the most advanced file, the one in the stage its state belongs in.
    const keep = copies.find((copy) =>
      copy.identity === advanced.identity && Option.getOrUndefined(copy.home) === copy.stage
    ) ??
      advanced
    for (const copy of copies) {
      if (copy === keep) continue
      if (copy.identity === keep.identity) {
        yield* store.remove(copy.stage, name)
        actions.push(`${name}: an interrupted move left it in ${copy.stage}/ and ${keep.stage}/; kept ${keep.stage}/`)
      } else {
        const other = yield* freeName(name)
        yield* store.move(copy.stage, copy.stage, name, other)
        actions.push(
          `${name}: a different file with this name is in ${keep.stage}/; ${copy.stage}/${name} renamed to ${other}`
        )
      }
    }
  }
  return actions
})

/**
 * A file whose state does not belong in the stage it is in: a transition a crash interrupted between writing the
 * new state and moving the file, or a file an operator put there by hand. Finished (moved on) or undone (back to
 * pending); returns what was done, if anything. done/ and failed/ are an archive: only a `pending` state there (an
 * interrupted retry) is acted on.
 */
export const settleFile = Effect.fn("settleFile")(function*(
  stage: Stage,
  name: TaskName,
  task: Task,
  /** The task's marker, when the caller has read it already (a pending task's marker is read otherwise). */
  knownMarker?: Option.Option<DelegationMarker>
) {
  const store = yield* TaskStore
  const state = task.fields.state ?? "pending"
  const home = homeOf(state)
  const at = yield* nowIso
  const markerOf = knownMarker === undefined ? store.readMarker(name) : Effect.succeed(knownMarker)
  if (stage === "pending" && state === "delegated_to_secutools") {
    // Delegated tasks belong in pending/, beside their marker; without one (of their run) nothing will poll them.
    const marker = yield* markerOf
    if (Option.isSome(marker) && (marker.value.run === undefined || marker.value.run === task.fields.run)) {
      return Option.none<string>()
    }
    if (Option.isSome(marker)) yield* store.removeMarker(name)
    yield* applyEvent(
      "pending",
      name,
      TaskEvent.Requeue({
        at,
        cause: "marker_missing",
        reason: "it was marked delegated but its delegation marker is missing; routed again"
      })
    )
    return Option.some(`${name}: delegated without its marker; back to routing`)
  }
  if (home === stage) return Option.none<string>()
  if (stage === "done" || stage === "failed") {
    if (state !== "pending") return Option.none<string>()
    const moved = yield* moveKeepingBoth(stage, "pending", name)
    return Option.some(`${name}: an interrupted retry; moved from ${stage}/ to pending/${moved === name ? "" : moved}`)
  }
  if (stage === "active") {
    // active/ only ever holds `assigned`; another state is a transition that wrote the file but did not move it.
    const moved = yield* moveKeepingBoth("active", home, name)
    return Option.some(`${name}: finished an interrupted move to ${home}/${moved === name ? "" : ` (as ${moved})`}`)
  }
  // pending/ with a state that does not belong there.
  const marker = yield* markerOf
  const ownMarker = Option.isSome(marker) && (marker.value.run === undefined || marker.value.run === task.fields.run)
  if (state === "assigned") {
    yield* applyEvent(
      "pending",
      name,
      TaskEvent.Requeue({
        at,
        cause: "never_typed",
        reason: "found in pending/ with state assigned; it was never typed"
      })
    )
    return Option.some(`${name}: assigned in pending/ (never typed); back to pending`)
  }
  // done or failed in pending/: the reaper's interrupted finish (its marker is still there), a cancel cut short (its
  // history says so), or a finished task put back by hand.
  const cancelled = state === "failed" && task.fields.history?.at(-1)?.event === "cancelled"
  if (ownMarker || cancelled) {
    const moved = yield* moveKeepingBoth("pending", home, name)
    yield* store.removeMarker(name)
    return Option.some(`${name}: finished an interrupted move to ${home}/${moved === name ? "" : ` (as ${moved})`}`)
  }
  if (Option.isSome(marker)) yield* store.removeMarker(name)
  yield* retryTask("pending", name, "put_back", `put back into pending/ with state ${state}; runs again`)
  return Option.some(`${name}: a ${state} task put back into pending/; runs again`)
})

/**
 * Every stage's files checked: unreadable or unparsable ones quarantined, wrong states settled. In pending/ only the
 * tasks with a delegation marker: the others are the intake's, which checks each file the same way as it reads it —
 * reading 100,000 pending files here first would hold the first dispatch up by minutes. A marked task is settled here,
 * before delegation resumes: an interrupted finish (state done beside its marker) must not be polled again. A file in
 * pending/ changed less than `settleAfterMs` ago may still be being written: it is left to the intake, which waits for
 * it to settle (a daemon started while someone writes a task must not quarantine the half of it written so far).
 */
export const settleStages = Effect.fn("settleStages")(function*(settleAfterMs = 0) {
  const store = yield* TaskStore
  const actions: Array<string> = []
  const marked = new Set<string>(yield* store.listMarkers())
  for (const stage of ["active", "pending", "done", "failed"] as const) {
    const names = (yield* store.list(stage)).filter((name) => stage !== "pending" || marked.has(name))
    // Files (and a pending task's marker) are read RECOVERY_READERS at a time, a batch at a time, then acted on one by
    // one, in order: read one after another, 10,000 delegated tasks held a restart up for seconds of disk waits.
    for (let start = 0; start < names.length; start += RECOVERY_BATCH) {
      const batch = names.slice(start, start + RECOVERY_BATCH)
      const reads = yield* Effect.forEach(
        batch,
        (name) =>
          Effect.all({
            name: Effect.succeed(name),
            file: Effect.result(store.read(stage, name)),
            marker: stage === "pending" ? Effect.result(store.readMarker(name)) : Effect.succeed(undefined)
          }),
        { concurrency: RECOVERY_READERS }
      )
      for (const { file, marker, name } of reads) {
        const now = yield* Clock.currentTimeMillis
        if (stage === "pending" && settleAfterMs > 0 && (yield* isSettling(name, file, settleAfterMs, now))) continue
        const read = Result.flatMap(file, (stored) => parseTask(name, stored.text))
        if (Result.isFailure(read)) {
          const error = read.failure
          const quarantinable = error._tag === "TaskParseError" || (error._tag === "Unreadable" && error.quarantine)
          if (quarantinable && (stage === "pending" || stage === "active")) {
            const target = yield* quarantine(stage, name, error.message)
            actions.push(`${stage}/${name}: cannot be run (${error.message}); quarantined as failed/${target}`)
          }
          continue
        }
        const known = marker === undefined || Result.isFailure(marker) ? undefined : marker.success
        const settled = yield* settleFile(stage, name, read.success, known)
        if (Option.isSome(settled)) actions.push(settled.value)
      }
    }
  }
  return actions
})

/** Files (and markers) read at once by start-up recovery, and how many are held in memory between actions. */
const RECOVERY_READERS = 16
const RECOVERY_BATCH = 256

/** Still settling (`stillSettling`), as the intake judges it; the time is the read's own, or a look at the file. */
const isSettling = (
  name: TaskName,
  read: Result.Result<StoredTask, unknown>,
  settleAfterMs: number,
  now: number
) =>
  Effect.gen(function*() {
    const mtimeMs = Result.isSuccess(read)
      ? read.success.mtimeMs
      : Result.getOrUndefined(yield* Effect.result((yield* TaskStore).stat("pending", name)))?.mtimeMs
    return mtimeMs !== undefined && stillSettling(mtimeMs, now, settleAfterMs)
  })

/**
 * Markers whose task is no longer in pending/ (it finished or was removed before its marker was) are removed. A
 * marker that cannot be read (damaged, or not a marker at all) fails its task: a job may exist under a key nobody can
 * read any more, so running the task again could run it twice.
 */
export const settleMarkers = Effect.fn("settleMarkers")(function*() {
  const store = yield* TaskStore
  const pending = new Set(yield* store.list("pending"))
  const actions: Array<string> = []
  const names = yield* store.listMarkers()
  for (const name of names) {
    if (pending.has(name)) continue
    yield* store.removeMarker(name)
    actions.push(`${name}: removed a delegation marker whose task left pending/`)
  }
  const kept = names.filter((name) => pending.has(name))
  const reads = yield* Effect.forEach(
    kept,
    (name) => Effect.map(Effect.result(store.readMarker(name)), (marker) => [name, marker] as const),
    { concurrency: RECOVERY_READERS }
  )
  for (const [name, marker] of reads) {
    if (Result.isSuccess(marker)) continue
    const reason =
      `${name}: its delegation marker pending/${name}.delegated cannot be read (${marker.failure.problem}); ` +
      "a job may exist at secutools under a key that is lost with it, so the task is not run again"
    const target = yield* quarantine("pending", name, reason)
    yield* store.removeMarker(name)
    actions.push(`${name}: quarantined as failed/${target}: ${reason}`)
  }
  return actions
})

/** Lines of scrollback searched for a run's prompt when the daemon stopped between typing and recording it. */
export const RECOVERY_SCROLLBACK = 2000

/**
 * Active tasks whose session cannot be working on them go back to pending (or to failed/ at the attempt limit).
 * Without `started_at` the daemon stopped somewhere between recording the assignment and seeing the prompt accepted,
 * so the session's screen decides: still in the input box → cleared and requeued; submitted → the run started;
 * nowhere on an idle session → never typed, requeued; a busy session that shows nothing of it → left alone.
 */
export const recoverActive = Effect.fn("recoverActive")(function*(
  timeZone: string,
  maxAttempts: number,
  /** Headless slots: their runs died with the daemon (or were stopped at start-up); their tasks go back. */
  isHeadless: (session: string) => boolean = () => false
) {
  const store = yield* TaskStore
  const tmux = yield* Tmux
  const actions: Array<string> = []
  for (const name of yield* store.list("active")) {
    const read = yield* Effect.result(readTask("active", name))
    if (Result.isFailure(read)) continue
    const { task } = read.success
    const session = task.fields.session
    const run = task.fields.run
    const now = yield* Clock.currentTimeMillis
    const seen = session === undefined || isHeadless(session)
      ? undefined
      : yield* observeSession(session, { now, timeZone })
    const end = (cause: Parameters<typeof endUnfinishedRun>[1], reason: string) =>
      Effect.gen(function*() {
        const ended = yield* endUnfinishedRun(name, cause, `${reason} (recovered at start-up)`, maxAttempts)
        actions.push(`${name}: ${ended.gaveUp ? `failed: ${ended.reason}` : `back to pending: ${reason}`}`)
      })
    if (session !== undefined && isHeadless(session)) {
      yield* end("orphaned", `the daemon stopped during its headless run in ${session}; the run was stopped`)
      continue
    }
    if (seen === undefined || session === undefined) {
      yield* end("session_gone", "its assignment names no session")
      continue
    }
    if (seen.state === "missing") {
      yield* end("session_gone", `session ${session} is gone`)
      continue
    }
    if (seen.state === "exited") {
      yield* end("session_exited", `session ${session} exited`)
      continue
    }
    // A run under way that hit a limit is the dispatcher's: its limit policy decides (and cancels an automatic
    // continue before it takes the task back).
    if (task.fields.started_at !== undefined || run === undefined) continue
    const header = promptHeader(name, run)
    const inBox = Option.getOrElse(inputBoxText(seen.screen), () => "")
    if (inBox.includes(`(run ${run})`) || inBox.includes(header)) {
      yield* tmux.clearInput(session).pipe(Effect.ignore)
      yield* end(
        "never_typed",
        `the daemon stopped before submitting it in ${session}; its text was cleared from the input box`
      )
      continue
    }
    const history = yield* tmux.capturePane(session, { history: RECOVERY_SCROLLBACK }).pipe(
      Effect.orElseSucceed(() => seen.screen)
    )
    if (history.includes(`(run ${run})`)) {
      yield* applyEvent("active", name, TaskEvent.Start({ at: yield* nowIso }))
      actions.push(`${name}: its prompt was submitted in ${session} before the daemon stopped; the run goes on`)
      continue
    }
    if (seen.state === "idle" || seen.state === "usage_limited") {
      yield* end("never_typed", `the daemon stopped before typing it into ${session}`)
      continue
    }
    actions.push(`${name}: ${session} is ${seen.state} and shows nothing of run ${run}; left active for the watchdog`)
  }
  return actions
})

export const recover = Effect.fn("recover")(function*(options: {
  readonly timeZone: string
  readonly maxAttempts: number
  readonly isHeadless?: (session: string) => boolean
  /** SETTLE_AFTER: pending/ files younger than this are left to the intake. */
  readonly settleAfterMs?: number
}) {
  const actions = [
    ...yield* resolveLinks(),
    ...yield* resolveDuplicates(),
    ...yield* settleStages(options.settleAfterMs),
    ...yield* settleMarkers(),
    ...yield* recoverActive(options.timeZone, options.maxAttempts, options.isHeadless)
  ]
  return { actions } satisfies Recovered
})
