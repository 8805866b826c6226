/**
 * Moving a task between stages through its state machine: read, apply the event, write the destination,
 * remove the source. Easy to get wrong: the destination is written first, so a crash leaves a duplicate that
 * recovery resolves, never a lost task.
 */
import { DateTime, Effect } from "effect"
import { Outcome, renderFooter } from "../domain/footer.ts"
import { type IllegalTransition, TaskEvent, transition } from "../domain/lifecycle.ts"
import {
  appendToBody,
  parseTask,
  renderTask,
  type Task,
  type TaskName,
  type TaskParseError,
  updateFields
} from "../domain/task.ts"
import { type Stage, type StoreError, type TaskNotFound, TaskStore } from "../ports/task-store.ts"

/** What moving a task can fail with: the store, a file that no longer parses, or a state that forbids the move. */
export type TaskMoveError = StoreError | TaskNotFound | TaskParseError | IllegalTransition

export const nowIso = Effect.map(DateTime.now, DateTime.formatIso)

export const readTask = Effect.fn("readTask")(function*(stage: Stage, name: TaskName) {
  const store = yield* TaskStore
  const stored = yield* store.read(stage, name)
  const task = yield* Effect.fromResult(parseTask(name, stored.text))
  return { stored, task }
})

/** Applies `event` to the task in `from` and writes it to `to`, with a footer (made from the task) appended. */
export const moveTask = Effect.fn("moveTask")(function*(
  from: Stage,
  to: Stage,
  name: TaskName,
  event: TaskEvent,
  footer: (task: Task) => string = () => ""
) {
  const store = yield* TaskStore
  const { task } = yield* readTask(from, name)
  const fields = yield* Effect.fromResult(transition(task.fields, event))
  const next: Task = appendToBody(updateFields(task, fields), footer(task))
  yield* from === to ? store.write(to, name, renderTask(next)) : store.transfer(from, to, name, renderTask(next))
  return next
})

/** Milliseconds from `since` to `at` (ISO instants); undefined when `since` is missing or the span is not sensible. */
export const millisBetween = (since: string | null | undefined, at: string): number | undefined => {
  if (since === undefined || since === null) return undefined
  const elapsed = Date.parse(at) - Date.parse(since)
  return Number.isFinite(elapsed) && elapsed >= 0 ? elapsed : undefined
}

export type LocalResult =
  | { readonly _tag: "Done"; readonly summary?: string }
  | { readonly _tag: "Failed"; readonly reason: string }

/** `task done` / `task fail`: active → done|failed with finished_at and a footer naming session and duration. */
export const finishLocalTask = Effect.fn("finishLocalTask")(function*(name: TaskName, result: LocalResult) {
  const at = yield* nowIso
  const footer = (task: Task) => {
    const durationMs = millisBetween(task.fields.assigned_at, at)
    const common = {
      at,
      runner: { _tag: "Session", session: task.fields.session ?? "unknown" } as const,
      ...(durationMs === undefined ? {} : { durationMs })
    }
    return renderFooter(
      result._tag === "Done"
        ? Outcome.Done({ ...common, ...(result.summary === undefined ? {} : { summary: result.summary }) })
        : Outcome.Failed({ ...common, reason: result.reason })
    )
  }
  return result._tag === "Done"
    ? yield* moveTask("active", "done", name, TaskEvent.Complete({ at }), footer)
    : yield* moveTask("active", "failed", name, TaskEvent.Fail({ at }), footer)
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
