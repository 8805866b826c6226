/**
 * Moving a task between stages through its state machine: read, apply the event, write the destination,
 * remove the source. Easy to get wrong: the destination is written first, so a crash leaves a duplicate that
 * recovery resolves, never a lost task.
 */
import { DateTime, Effect } from "effect"
import { Outcome, renderFooter } from "../domain/footer.ts"
import { TaskEvent, transition } from "../domain/lifecycle.ts"
import { appendToBody, parseTask, renderTask, type Task, type TaskName, updateFields } from "../domain/task.ts"
import { type Stage, TaskStore } from "../ports/task-store.ts"

export const nowIso = Effect.map(DateTime.now, DateTime.formatIso)

export const readTask = Effect.fn("readTask")(function*(stage: Stage, name: TaskName) {
  const store = yield* TaskStore
  const stored = yield* store.read(stage, name)
  const task = yield* Effect.fromResult(parseTask(name, stored.text))
  return { stored, task }
})

/** Applies `event` to the task in `from` and writes it to `to`, with `footer` appended to its body. */
export const moveTask = Effect.fn("moveTask")(function*(
  from: Stage,
  to: Stage,
  name: TaskName,
  event: TaskEvent,
  footer = ""
) {
  const store = yield* TaskStore
  const { task } = yield* readTask(from, name)
  const fields = yield* Effect.fromResult(transition(task.fields, event))
  const next: Task = appendToBody(updateFields(task, fields), footer)
  yield* from === to ? store.write(to, name, renderTask(next)) : store.transfer(from, to, name, renderTask(next))
  return next
})

const durationSince = (assignedAt: string | undefined, at: string): number | undefined => {
  if (assignedAt === undefined) return undefined
  const elapsed = Date.parse(at) - Date.parse(assignedAt)
  return Number.isFinite(elapsed) && elapsed >= 0 ? elapsed : undefined
}

/** `task done`: active → done with finished_at and a footer naming the session and how long it took. */
export const completeLocalTask = Effect.fn("completeLocalTask")(function*(name: TaskName, summary?: string) {
  const at = yield* nowIso
  const { task } = yield* readTask("active", name)
  const durationMs = durationSince(task.fields.assigned_at, at)
  const footer = renderFooter(Outcome.Done({
    at,
    runner: { _tag: "Session", session: task.fields.session ?? "unknown" },
    ...(durationMs === undefined ? {} : { durationMs }),
    ...(summary === undefined ? {} : { summary })
  }))
  return yield* moveTask("active", "done", name, TaskEvent.Complete({ at }), footer)
})

/** `task fail`: active → failed with the reason in the footer. */
export const failLocalTask = Effect.fn("failLocalTask")(function*(name: TaskName, reason: string) {
  const at = yield* nowIso
  const { task } = yield* readTask("active", name)
  const durationMs = durationSince(task.fields.assigned_at, at)
  const footer = renderFooter(Outcome.Failed({
    at,
    reason,
    runner: { _tag: "Session", session: task.fields.session ?? "unknown" },
    ...(durationMs === undefined ? {} : { durationMs })
  }))
  return yield* moveTask("active", "failed", name, TaskEvent.Fail({ at }), footer)
})

/** Back to pending with a note saying why; attempts are kept. */
export const requeueTask = Effect.fn("requeueTask")(function*(name: TaskName, note: string) {
  const at = yield* nowIso
  return yield* moveTask("active", "pending", name, TaskEvent.Requeue({ at, note }))
})

/** A file that does not parse: moved to failed/ byte-for-byte, with NAME.md.error saying why. */
export const quarantine = Effect.fn("quarantine")(function*(stage: Stage, name: TaskName, reason: string) {
  const store = yield* TaskStore
  yield* store.writeError(name, reason)
  yield* store.move(stage, "failed", name)
  yield* Effect.logWarning(`${stage}/${name} cannot be parsed; moved to failed/ with ${name}.error`).pipe(
    Effect.annotateLogs({ task: name, reason })
  )
})
