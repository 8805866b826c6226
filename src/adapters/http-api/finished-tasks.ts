/**
 * Why and when a task in done/ or failed/ finished, for `GET /api/tasks` (`reason`, `finished_at`), read from the file.
 * Easy to get wrong: the status page asks every second or two, so each file is read once and remembered by its
 * identity, size and mtime (a retried task that finishes again is a new file, read again); and only the entries of
 * the page being answered are looked at, never the whole archive.
 */
import { Effect, Option, Result } from "effect"
import { readFooter } from "../../domain/footer.ts"
import { parseTask, type TaskName } from "../../domain/task.ts"
import { TaskStore } from "../../ports/task-store.ts"

export interface Finished {
  readonly reason?: string
  readonly finished_at?: string
}

/** How a route learns of a finished task; none when the file is gone or unreadable. */
export type FinishedReader = (stage: "done" | "failed", name: TaskName) => Effect.Effect<Option.Option<Finished>>

/** What one finished file says: see `TaskBody.reason` in contract.ts. */
export const finishedOf = (stage: "done" | "failed", name: string, text: string): Finished => {
  const parsed = parseTask(name, text)
  if (Result.isFailure(parsed)) return {}
  const { body, fields } = parsed.success
  const footer = readFooter(body)
  const history = fields.history?.at(-1)?.reason
  const reason = stage === "failed" ? footer?.reason ?? history : footer?.facts
  return {
    ...(reason === undefined ? {} : { reason }),
    ...(fields.finished_at === undefined ? {} : { finished_at: fields.finished_at })
  }
}

/** Orders a finished stage's names latest first, by the file's modification time (written when the task finished). */
export type RecentFirst = (
  stage: "done" | "failed",
  names: ReadonlyArray<TaskName>
) => Effect.Effect<ReadonlyArray<TaskName>>

/**
 * A finished file's time is stat-ed once and remembered while its name is listed: the page asks every second or two,
 * and the archive changes by a few names between two asks. A retried and finished-again task keeps its first time
 * until its name leaves the listing once (good enough for "recent"; the file's own `finished_at` is in the entry).
 */
export const makeRecentFirst = Effect.gen(function*() {
  const store = yield* TaskStore
  const known: Record<"done" | "failed", Map<TaskName, number>> = { done: new Map(), failed: new Map() }
  const order: RecentFirst = (stage, names) =>
    Effect.gen(function*() {
      const times = known[stage]
      const listed = new Set(names)
      for (const name of times.keys()) if (!listed.has(name)) times.delete(name)
      const unknown = names.filter((name) => !times.has(name))
      yield* Effect.forEach(unknown, (name) =>
        store.stat(stage, name).pipe(
          Effect.map((stat) => void times.set(name, stat.mtimeMs)),
          Effect.orElseSucceed(() => void times.set(name, 0))
        ), { concurrency: 16, discard: true })
      return [...names].sort((a, b) => (times.get(b) ?? 0) - (times.get(a) ?? 0) || (a < b ? -1 : a > b ? 1 : 0))
    })
  return order
})

/** Entries remembered at most; past it the memory starts again (the archive only grows). */
const REMEMBERED = 4096

/** A reader over the queue's TaskStore that reads each finished file once. */
export const makeFinishedReader = Effect.gen(function*() {
  const store = yield* TaskStore
  const remembered = new Map<string, { readonly key: string; readonly finished: Finished }>()
  const read: FinishedReader = (stage, name) =>
    Effect.gen(function*() {
      const stat = yield* store.stat(stage, name)
      const key = `${stat.identity}:${stat.size}:${stat.mtimeMs}`
      const known = remembered.get(`${stage}/${name}`)
      if (known?.key === key) return Option.some(known.finished)
      const stored = yield* store.read(stage, name)
      const finished = finishedOf(stage, name, stored.text)
      if (remembered.size >= REMEMBERED) remembered.clear()
      remembered.set(`${stage}/${name}`, { key, finished })
      return Option.some(finished)
    }).pipe(Effect.orElseSucceed(() => Option.none<Finished>()))
  return read
})
