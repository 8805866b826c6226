/**
 * Which files in pending/ this daemon wrote itself (a requeue, a retry, a rejected delegation): complete by
 * construction, so intake takes them at once instead of waiting SETTLE_AFTER as for files others drop in.
 * Easy to get wrong: it must wrap the one TaskStore everybody uses, and a later change by someone else (a newer
 * mtime) makes the file foreign again.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { TaskName } from "../domain/task.ts"
import { type Stage, TaskStore } from "../ports/task-store.ts"

export class OwnWrites extends Context.Service<OwnWrites, {
  /** When this process last wrote pending/NAME (ms), if it did. */
  wroteAt(name: TaskName): number | undefined
}>()("claude-failover/services/OwnWrites") {
  /** Wraps the TaskStore below it: the TaskStore it provides records every write into pending/. */
  static readonly tracking: Layer.Layer<TaskStore | OwnWrites, never, TaskStore> = Layer.effectContext(
    Effect.gen(function*() {
      const inner = yield* TaskStore
      const written = new Map<TaskName, number>()
      const note = (stage: Stage, name: TaskName): Effect.Effect<void> =>
        stage === "pending"
          ? Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => void written.set(name, now)))
          : Effect.sync(() => void written.delete(name))
      const store = TaskStore.of({
        ...inner,
        create: (stage, name, text) => Effect.tap(inner.create(stage, name, text), () => note(stage, name)),
        replace: (stage, name, text) => Effect.tap(inner.replace(stage, name, text), () => note(stage, name)),
        move: (from, to, name, toName) =>
          Effect.tap(inner.move(from, to, name, toName), () =>
            Effect.andThen(
              note(to, toName ?? name),
              from === "pending"
                ? Effect.sync(() => void written.delete(name))
                : Effect.void
            )),
        remove: (stage, name) =>
          Effect.tap(inner.remove(stage, name), () => Effect.sync(() => void written.delete(name)))
      })
      return Context.make(TaskStore, store).pipe(
        Context.add(OwnWrites, OwnWrites.of({ wroteAt: (name) => written.get(name) }))
      )
    })
  )
}
