/**
 * Start-up recovery: make the queue consistent again after a crash, before any new work is taken.
 * Easy to get wrong: an active task whose prompt was typed (`started_at`) is never requeued just because its
 * session is idle now; that could run it twice. Only a session that is gone, exited or limited gives it back.
 */
import { Clock, Effect } from "effect"
import { TaskEvent } from "../domain/lifecycle.ts"
import type { TaskName } from "../domain/task.ts"
import { type Stage, stageRank, Stages, TaskStore } from "../ports/task-store.ts"
import { observeSession } from "./sessions.ts"
import { moveTask, nowIso, quarantine, readTask, requeueTask } from "./task-moves.ts"

/** The same NAME in two stages: keep the most advanced copy (done over failed when both finished). */
export const resolveDuplicates = Effect.fn("resolveDuplicates")(function*() {
  const store = yield* TaskStore
  const where = new Map<TaskName, Array<Stage>>()
  for (const stage of Stages) {
    for (const name of yield* store.list(stage)) where.set(name, [...(where.get(name) ?? []), stage])
  }
  const removed: Array<string> = []
  for (const [name, stages] of where) {
    if (stages.length < 2) continue
    const keep = [...stages].sort((a, b) => stageRank(b) - stageRank(a) || (a === "done" ? -1 : 1))[0]
    for (const stage of stages) {
      if (stage === keep) continue
      yield* store.remove(stage, name)
      removed.push(`${stage}/${name}`)
    }
    yield* Effect.logWarning(`${name} was in ${stages.join(" and ")}; kept ${keep}/`).pipe(Effect.annotateLogs({ task: name }))
  }
  return removed
})

/** Active tasks whose session cannot be working on them go back to pending, attempts kept. */
export const recoverActive = Effect.fn("recoverActive")(function*(timeZone: string) {
  const store = yield* TaskStore
  const requeued: Array<TaskName> = []
  for (const name of yield* store.list("active")) {
    const read = yield* Effect.result(readTask("active", name))
    if (read._tag === "Failure") {
      if (read.failure._tag === "TaskParseError") yield* quarantine("active", name, read.failure.message)
      continue
    }
    const { task } = read.success
    const session = task.fields.session
    const now = yield* Clock.currentTimeMillis
    const seen = session === undefined ? undefined : yield* observeSession(session, { now, timeZone })
    const reason = seen === undefined
      ? "its assignment names no session"
      : seen.state === "missing"
      ? `session ${session} is gone`
      : seen.state === "exited"
      ? `session ${session} exited`
      : seen.state === "usage_limited"
      ? `session ${session} hit its usage limit`
      : seen.state === "idle" && task.fields.started_at === undefined
      ? `the daemon stopped before typing it into ${session}`
      : undefined
    if (reason === undefined) continue
    yield* requeueTask(name, `${reason} (recovered at start-up)`)
    requeued.push(name)
    yield* Effect.logWarning(`${name} back to pending: ${reason}`).pipe(
      Effect.annotateLogs({ task: name, session: session ?? "" })
    )
  }
  return requeued
})

/**
 * Pending tasks marked `delegated_to_secutools` whose marker is gone (removed by hand: the daemon removes a marker
 * only after the task has left that state) cannot be polled; they go back to routing.
 */
export const recoverDelegated = Effect.fn("recoverDelegated")(function*() {
  const store = yield* TaskStore
  const marked = new Set(yield* store.listMarkers())
  const requeued: Array<TaskName> = []
  for (const name of yield* store.list("pending")) {
    if (marked.has(name)) continue
    const read = yield* Effect.result(readTask("pending", name))
    if (read._tag === "Failure" || read.success.task.fields.state !== "delegated_to_secutools") continue
    yield* moveTask("pending", "pending", name, TaskEvent.Requeue({ at: yield* nowIso, note: "its delegation marker is missing (recovered at start-up)" }))
    requeued.push(name)
    yield* Effect.logWarning(`${name} back to routing: delegated, but its marker is missing`).pipe(Effect.annotateLogs({ task: name }))
  }
  return requeued
})

export const recover = Effect.fn("recover")(function*(timeZone: string) {
  const duplicates = yield* resolveDuplicates()
  const requeued = [...yield* recoverActive(timeZone), ...yield* recoverDelegated()]
  return { duplicates, requeued }
})
