/**
 * The pending index: which tasks in pending/ are ready to route. New or changed files are read once they have
 * settled; bad names, unreadable and unparsable files are quarantined once; a name already used by another task
 * is given a free one; a file put back by hand in a state pending/ does not hold is settled once. Easy to get
 * wrong: a file still being written must not be taken (or quarantined) half-written, so a file modified within
 * SETTLE_AFTER waits; and nothing here may fail every tick — each problem is acted on or logged once.
 */
import { Clock, Duration, Effect, Option, Result } from "effect"
import { parseTask, quarantineNameFor, queueKey, QueueOrder, type Task, type TaskName } from "../domain/task.ts"
import { TaskStore } from "../ports/task-store.ts"
import { settleFile } from "./recovery.ts"
import { OwnWrites } from "./own-writes.ts"
import { TaskLocks } from "./task-locks.ts"
import { freeName, quarantine } from "./task-moves.ts"

export interface PendingEntry {
  readonly mtimeMs: number
  readonly size: number
  readonly task: Task
}

export interface IntakeSettings {
  readonly settleAfter: Duration.Duration
  readonly scanInterval: Duration.Duration
}

export interface IntakeCounters {
  malformed: number
  renamed: number
  settled: number
}

export const makeIntake = (settings: IntakeSettings) =>
  Effect.gen(function*() {
    const store = yield* TaskStore
    const locks = yield* TaskLocks
    const ownWrites = yield* OwnWrites
    const index = new Map<TaskName, PendingEntry>()
    /** Problems already logged, so a file that cannot be acted on is reported once, not every tick. */
    const reported = new Set<string>()
    const counters: IntakeCounters = { malformed: 0, renamed: 0, settled: 0 }
    let lastFullScan = Number.NEGATIVE_INFINITY
    let nextSettle: number | undefined
    const settleMs = Duration.toMillis(settings.settleAfter)

    const reportOnce = (key: string, message: string) =>
      reported.has(key) ? Effect.void : Effect.andThen(Effect.sync(() => reported.add(key)), Effect.logWarning(message))

    /** Regular files with names that cannot be tasks go to failed/ under a usable name; other entries are left alone. */
    const strays = Effect.gen(function*() {
      for (const stray of yield* store.strays("pending")) {
        if (stray.kind === "not-a-file") {
          yield* reportOnce(
            `stray:${stray.display}`,
            `pending/${JSON.stringify(stray.display).slice(1, -1)} ${stray.problem}; ignored`
          )
          continue
        }
        const target = quarantineNameFor(stray.display)
        const free = (yield* store.has("failed", target)) ? yield* freeName(target) : target
        yield* store.writeError(
          free,
          `the file name ${
            JSON.stringify(stray.display)
          } cannot be a task name: ${stray.problem}; the file was renamed ${free}`
        )
        yield* store.quarantineStray(stray, free)
        counters.malformed++
        yield* Effect.logWarning(`pending/${JSON.stringify(stray.display)}: ${stray.problem}; moved to failed/${free}`)
      }
    })

    /** One new or changed file: ready, not yet settled, or acted on (quarantined, renamed, settled). */
    const examine = (name: TaskName, now: number, isNew: boolean) =>
      locks.withTask(
        name,
        Effect.gen(function*() {
          // A stat first: most looks find the file unchanged, or still being written, and need not read it.
          const seen = yield* Effect.result(store.stat("pending", name))
          if (Result.isFailure(seen)) {
            if (seen.failure._tag === "TaskNotFound") return
            return yield* reportOnce(`stat:${name}:${seen.failure.message}`, `${seen.failure.message}; skipped`)
          }
          const known = index.get(name)
          if (known !== undefined && known.mtimeMs === seen.success.mtimeMs && known.size === seen.success.size) return
          // Written less than SETTLE_AFTER ago by someone else: it may still be being written. Our own writes are whole.
          // The clock is read now, not at the tick's start (a write may land during the tick); only an mtime clearly
          // ahead of it (clock skew between hosts) counts as settled.
          const ours = seen.success.mtimeMs <= (ownWrites.wroteAt(name) ?? Number.NEGATIVE_INFINITY)
          const clock = Math.max(now, yield* Clock.currentTimeMillis)
          const age = clock - seen.success.mtimeMs
          if (!ours && age < settleMs && age > -settleMs) {
            nextSettle = Math.min(nextSettle ?? Infinity, seen.success.mtimeMs + settleMs)
            return
          }
          const read = yield* Effect.result(store.read("pending", name))
          if (Result.isFailure(read)) {
            const error = read.failure
            if (error._tag === "TaskNotFound") return
            if (error._tag === "Unreadable" && error.quarantine) {
              counters.malformed++
              index.delete(name)
              yield* quarantine("pending", name, `${name}: ${error.problem}`)
              return
            }
            return yield* reportOnce(`read:${name}:${error.message}`, `${error.message}; skipped`)
          }
          const stored = read.success
          const parsed = parseTask(name, stored.text)
          if (Result.isFailure(parsed)) {
            index.delete(name)
            counters.malformed++
            yield* quarantine("pending", name, parsed.failure.message)
            return
          }
          if (isNew) {
            for (const stage of ["active", "done", "failed"] as const) {
              if (!(yield* store.has(stage, name))) continue
              const other = yield* store.stat(stage, name).pipe(
                Effect.map((s) => s.identity),
                Effect.orElseSucceed(() => "")
              )
              if (other === stored.identity) {
                // The same file under two names: no move of ours is in progress (we hold the task's lock), so someone
                // linked it here by hand (`ln done/x.md pending/`). The extra name goes; nothing is lost.
                yield* store.remove("pending", name)
                return yield* Effect.logWarning(
                  `pending/${name} was a second name (a hard link) of ${stage}/${name}; removed it — to run the task again, ` +
                    `use \`task retry ${name}\` or copy the file`
                )
              }
              const renamed = yield* freeName(name)
              yield* store.move("pending", "pending", name, renamed)
              counters.renamed++
              yield* Effect.logWarning(
                `${name}: ${stage}/${name} is another task with this name; the new one runs as ${renamed}`
              )
                .pipe(Effect.annotateLogs({ task: renamed }))
              return
            }
          }
          const state = parsed.success.fields.state ?? "pending"
          if (state !== "pending") {
            const settled = yield* settleFile("pending", name, parsed.success)
            if (Option.isSome(settled)) {
              counters.settled++
              yield* Effect.logWarning(settled.value).pipe(Effect.annotateLogs({ task: name }))
              return
            }
          }
          index.set(name, { mtimeMs: stored.mtimeMs, size: stored.size, task: parsed.success })
        })
      )

    /** Brings the index up to date; a full re-read of every file happens once per scan interval. */
    const refresh = Effect.fn("Intake.refresh")(function*(now: number) {
      const fullScan = now - lastFullScan >= Duration.toMillis(settings.scanInterval)
      if (fullScan) lastFullScan = now
      nextSettle = undefined
      yield* strays
      const names = yield* store.list("pending")
      const delegated = new Set(yield* store.listMarkers())
      const present = new Set(names)
      for (const name of [...index.keys()]) if (!present.has(name) || delegated.has(name)) index.delete(name)
      for (const name of names) {
        if (delegated.has(name) || (index.has(name) && !fullScan)) continue
        yield* examine(name, now, !index.has(name)).pipe(
          Effect.catch((error) => reportOnce(`examine:${name}:${error.message}`, `pending/${name}: ${error.message}`))
        )
      }
    })

    /** Ready tasks in queue order. */
    const ready = Effect.sync(() =>
      [...index.values()].sort((a, b) => QueueOrder(queueKey(a.task, a.mtimeMs), queueKey(b.task, b.mtimeMs)))
    )

    return {
      refresh,
      ready,
      /** Taken out of the index (assigned or delegated). */
      forget: (name: TaskName) => Effect.sync(() => index.delete(name)),
      /** When the next not-yet-settled file will have settled, if any. */
      nextSettle: Effect.sync(() => Option.fromNullishOr(nextSettle)),
      size: Effect.sync(() => index.size),
      tasks: Effect.sync(() => new Map([...index].map(([name, entry]) => [name, entry.task]))),
      counters
    }
  })

export type Intake = Effect.Success<ReturnType<typeof makeIntake>>
