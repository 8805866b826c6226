/**
 * One change at a time per task inside the daemon: typing, requeueing, a completion request and the reaper's finish
 * of the same task never interleave their read-modify-write. Easy to get wrong: a lock per name must not outlive its
 * users (the map would grow with every task ever seen), so entries are counted and dropped when the last user leaves.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Semaphore from "effect/Semaphore"

interface Entry {
  readonly semaphore: Semaphore.Semaphore
  users: number
}

export class TaskLocks extends Context.Service<TaskLocks, {
  /** Runs `effect` holding the lock of `name`; other changes to the same task wait. */
  readonly withTask: <A, E, R>(name: string, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}>()("claude-failover/services/TaskLocks") {
  static readonly layer = Layer.sync(TaskLocks, () => {
    const entries = new Map<string, Entry>()
    const enter = (name: string) =>
      Effect.sync(() => {
        const entry = entries.get(name) ?? { semaphore: Semaphore.makeUnsafe(1), users: 0 }
        entry.users++
        entries.set(name, entry)
        return entry
      })
    const leave = (name: string, entry: Entry) =>
      Effect.sync(() => {
        entry.users--
        if (entry.users === 0) entries.delete(name)
      })
    return TaskLocks.of({
      withTask: (name, effect) =>
        Effect.acquireUseRelease(
          enter(name),
          (entry) => entry.semaphore.withPermit(effect),
          (entry) => leave(name, entry)
        )
    })
  })
}
