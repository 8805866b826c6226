/**
 * What the files in done/ and failed/ say for `GET /api/tasks`: why and when each task finished (`reason`,
 * `finished_at`) and when its file was written (`order=recent`). Easy to get wrong: the status page and scrapers ask
 * many times a second, so each file is read once and remembered while its name is listed; a remembered file is
 * checked again (identity, size, mtime) at most every RECHECK_AFTER, off the request path (a retried task that
 * finishes again is a new file, read again), so a changed reason shows up to that much later; and only the entries
 * of the page being answered are ever read, never the whole archive.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import { readFooter } from "../../domain/footer.ts"
import { parseTask, type TaskName, taskNameFrom } from "../../domain/task.ts"
import { stampOf, TaskStore } from "../../ports/task-store.ts"

export interface Finished {
  readonly reason?: string
  readonly finished_at?: string
}

export type FinishedStage = "done" | "failed"

/** What one finished file says: see `TaskBody.reason` in contract.ts. */
export const finishedOf = (stage: FinishedStage, name: string, text: string): Finished => {
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

/** How long what a file said is trusted before its identity, size and mtime are looked at again. */
export const RECHECK_AFTER = Duration.seconds(1)

/** Files looked at together, to and from the disk. */
const CONCURRENCY = 16

export interface FinishedTasks {
  /**
   * Forgets the names `listed` (a stage's whole listing, as a snapshot holds it) no longer has, so a name that comes
   * back is a new file. Cheap when called again with the same listing.
   */
  readonly forgetUnlisted: (
    stage: FinishedStage,
    listed: ReadonlyArray<{ readonly name: string }>
  ) => Effect.Effect<void>
  /** What each file of `names` says; a name whose file is gone or unreadable has nothing. */
  readonly read: (stage: FinishedStage, names: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, Finished>>
  /** The `limit` latest written of `names`, latest first (see `latestFirst`), by the file's mtime. */
  readonly recentFirst: (
    stage: FinishedStage,
    names: ReadonlyArray<string>,
    limit: number
  ) => Effect.Effect<ReadonlyArray<string>>
}

interface Known {
  /** Identity, size and mtime when last looked at ("" when unknown: the next look reads the file). */
  readonly stamp: string
  readonly mtimeMs: number
  /** Undefined when only the file's time is known. */
  readonly finished: Finished | undefined
  readonly checkedAt: number
}

interface Timed {
  readonly name: string
  readonly time: number
}

/** Whether `a` comes before `b` latest first: the later time, then the name first in name order. */
const before = (a: Timed, b: Timed): boolean => a.time > b.time || (a.time === b.time && a.name < b.name)

/**
 * The `limit` first of `names` latest first (`timeOf` larger first, name order between equal times), in that order.
 * Easy to get wrong: the archive can be far longer than a page, so this keeps a heap of `limit` names rather than
 * sorting them all (O(n log limit)).
 */
export const latestFirst = (
  names: ReadonlyArray<string>,
  timeOf: (name: string) => number,
  limit: number
): ReadonlyArray<string> => {
  // A heap of the names kept so far: each comes after its children, so the root is the first to give up its place.
  const heap: Array<Timed> = []
  /** Of the kept names at `i` and `j`, the index of the one that comes after the other (`i` between equals). */
  const later = (i: number, j: number): number => {
    const a = heap[i]
    const b = heap[j]
    return a !== undefined && b !== undefined && before(a, b) ? j : i
  }
  const swap = (i: number, j: number) => {
    const a = heap[i]
    const b = heap[j]
    if (a === undefined || b === undefined) return
    heap[i] = b
    heap[j] = a
  }
  for (const name of names) {
    const timed = { name, time: timeOf(name) }
    if (heap.length < limit) {
      heap.push(timed)
      for (let i = heap.length - 1, up = (i - 1) >> 1; i > 0 && later(up, i) === i; i = up, up = (i - 1) >> 1) {
        swap(up, i)
      }
      continue
    }
    const root = heap[0]
    if (root === undefined || !before(timed, root)) continue
    heap[0] = timed
    for (let i = 0;;) {
      const left = 2 * i + 1
      const right = left + 1
      let last = i
      if (left < heap.length) last = later(last, left)
      if (right < heap.length) last = later(last, right)
      if (last === i) break
      swap(i, last)
      i = last
    }
  }
  return heap.sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0)).map((timed) => timed.name)
}

/** The finished files of the queue's TaskStore; rechecks run on fibers of the current scope. */
export const makeFinishedTasks: Effect.Effect<FinishedTasks, never, TaskStore | Scope.Scope> = Effect.gen(function*() {
  const store = yield* TaskStore
  const scope = yield* Effect.scope
  const known: Record<FinishedStage, Map<string, Known>> = { done: new Map(), failed: new Map() }
  const lastListed: Record<FinishedStage, ReadonlyArray<{ readonly name: string }> | undefined> = {
    done: undefined,
    failed: undefined
  }
  const due: Record<FinishedStage, Set<string>> = { done: new Set(), failed: new Set() }
  let rechecking = false

  const readFile = (stage: FinishedStage, name: string, now: number) =>
    Option.match(taskNameFrom(name), {
      onNone: () => Effect.void,
      onSome: (task: TaskName) =>
        store.read(stage, task).pipe(
          Effect.map((stored) => {
            known[stage].set(name, {
              stamp: stampOf(stored),
              mtimeMs: stored.mtimeMs,
              finished: finishedOf(stage, name, stored.text),
              checkedAt: now
            })
          }),
          // Gone or unreadable: nothing to say, until a later look finds a file there.
          Effect.orElseSucceed(() => {
            known[stage].set(name, { stamp: "", mtimeMs: 0, finished: {}, checkedAt: now })
          })
        )
    })

  /** Looks at one remembered file again; reads it when it changed, forgets it when it is gone. */
  const recheck = (stage: FinishedStage, name: string) =>
    Effect.gen(function*() {
      const before = known[stage].get(name)
      const task = taskNameFrom(name)
      if (before === undefined || Option.isNone(task)) return
      const now = yield* Clock.currentTimeMillis
      const stat = yield* Effect.result(store.stat(stage, task.value))
      // Forgotten meanwhile (its name left the listing): what this look found is not for it.
      if (known[stage].get(name) !== before) return
      if (Result.isFailure(stat)) {
        known[stage].delete(name)
        return
      }
      if (stampOf(stat.success) === before.stamp && before.finished !== undefined) {
        known[stage].set(name, { ...before, checkedAt: now })
        return
      }
      yield* readFile(stage, name, now)
    })

  /** Drains `due` on one fiber at a time; requests never wait for it. */
  const recheckDue: Effect.Effect<void> = Effect.suspend(() => {
    const batch = (["done", "failed"] as const).flatMap((stage) => {
      const names = [...due[stage]].map((name) => [stage, name] as const)
      due[stage].clear()
      return names
    })
    if (batch.length === 0) {
      rechecking = false
      return Effect.void
    }
    return Effect.andThen(
      Effect.forEach(batch, ([stage, name]) => recheck(stage, name), { concurrency: CONCURRENCY, discard: true }),
      recheckDue
    )
  })

  const forgetUnlisted: FinishedTasks["forgetUnlisted"] = (stage, listed) =>
    Effect.sync(() => {
      if (lastListed[stage] === listed) return
      lastListed[stage] = listed
      const names = new Set(listed.map((view) => view.name))
      for (const name of known[stage].keys()) if (!names.has(name)) known[stage].delete(name)
    })

  const read: FinishedTasks["read"] = (stage, names) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const recheckMs = Duration.toMillis(RECHECK_AFTER)
      const unread = names.filter((name) => known[stage].get(name)?.finished === undefined)
      yield* Effect.forEach(unread, (name) => readFile(stage, name, now), { concurrency: CONCURRENCY, discard: true })
      const said = new Map<string, Finished>()
      for (const name of names) {
        const entry = known[stage].get(name)
        if (entry?.finished === undefined) continue
        said.set(name, entry.finished)
        if (now - entry.checkedAt >= recheckMs) due[stage].add(name)
      }
      if (!rechecking && (due.done.size > 0 || due.failed.size > 0)) {
        rechecking = true
        yield* Effect.forkIn(recheckDue, scope)
      }
      return said
    })

  const recentFirst: FinishedTasks["recentFirst"] = (stage, names, limit) =>
    Effect.gen(function*() {
      const times = known[stage]
      const now = yield* Clock.currentTimeMillis
      const unknown = names.filter((name) => !times.has(name))
      yield* Effect.forEach(unknown, (name) =>
        Option.match(taskNameFrom(name), {
          onNone: () => Effect.void,
          onSome: (task: TaskName) =>
            store.stat(stage, task).pipe(
              Effect.map((stat) => {
                if (!times.has(name)) {
                  times.set(name, { stamp: stampOf(stat), mtimeMs: stat.mtimeMs, finished: undefined, checkedAt: now })
                }
              }),
              Effect.ignore
            )
        }), { concurrency: CONCURRENCY, discard: true })
      return latestFirst(names, (name) => times.get(name)?.mtimeMs ?? 0, limit)
    })

  return { forgetUnlisted, read, recentFirst } satisfies FinishedTasks
})
