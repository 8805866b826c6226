/**
 * The pending index: which tasks in pending/ are ready to route. New or changed files are read once they have
 * settled; bad names, unreadable and unparsable files are quarantined once; a name already used by another task
 * is given a free one; a file put back by hand in a state pending/ does not hold is settled once. Easy to get
 * wrong: a file still being written must not be taken (or quarantined) half-written, so a file modified within
 * SETTLE_AFTER waits; and nothing here may fail every tick — each problem is acted on or logged once.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Order from "effect/Order"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { parseTask, type QueueKey, queueKey, QueueOrder, stillSettling, type Task, TaskName } from "../domain/task.ts"
import { insertSorted, removeSorted } from "../domain/sorted-list.ts"
import { TaskStore } from "../ports/task-store.ts"
import { settleFile } from "./recovery.ts"
import { OwnWrites } from "./own-writes.ts"
import { TaskLocks } from "./task-locks.ts"
import { freeName, quarantine, quarantineStrays } from "./task-moves.ts"

export interface PendingEntry {
  readonly mtimeMs: number
  readonly size: number
  readonly task: Task
  /** Its place in the queue, worked out once when the file is read. */
  readonly key: QueueKey
}

export interface IntakeSettings {
  readonly settleAfter: Duration.Duration
  readonly scanInterval: Duration.Duration
  /** A task with a delegation marker: not the intake's (its marker says where it is). */
  readonly isDelegated: (name: TaskName) => boolean
  /**
   * A delegated task whose marker (of its run) is on disk but not yet known to the daemon — copied in while it runs:
   * handed to the delegation service, which takes the marker on (and resumes its job when delegation is on).
   */
  readonly adopt: (name: TaskName) => Effect.Effect<void>
}

/** A full scan's slice: files read at once, files per step, and the time a tick gives it. */
const SCAN_READERS = 16
const SCAN_BATCH = 256
const SCAN_SLICE_MS = 200

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
    /**
     * The index in queue order, kept in step as entries come and go (a binary search each), so a tick with 100,000
     * tasks waiting does not sort them all again because one was added.
     */
    let sorted: Array<PendingEntry> | undefined
    const byKey: Order.Order<PendingEntry> = (a, b) => QueueOrder(a.key, b.key)
    const takeOut = (entry: PendingEntry) => {
      if (sorted !== undefined && !removeSorted(sorted, entry, byKey)) sorted = undefined
    }
    const put = (name: TaskName, entry: PendingEntry) => {
      const old = index.get(name)
      index.set(name, entry)
      if (old !== undefined) takeOut(old)
      if (sorted !== undefined) insertSorted(sorted, entry, byKey)
    }
    const unset = (name: TaskName) => {
      const old = index.get(name)
      if (old === undefined) return
      index.delete(name)
      takeOut(old)
    }
    /** Problems already logged, so a file that cannot be acted on is reported once, not every tick. */
    const reported = new Set<string>()
    const counters: IntakeCounters = { malformed: 0, renamed: 0, settled: 0 }
    let lastFullScan = Number.NEGATIVE_INFINITY
    /** How long the last full scan took: scans are spaced so they take at most a tenth of the time. */
    let lastFullScanMs = 0
    /**
     * Names the directory watch reported since the last refresh. Once a watch reports at all (`watched`), a refresh
     * between full scans examines only these and the files still settling: a tick then costs what changed, not the
     * size of the queue. Without a watch every refresh is a full one.
     */
    const touched = new Set<string>()
    let watched = false
    /** Files written too recently to be read yet: looked at again on every refresh until they settle. */
    const settling = new Set<TaskName>()
    let nextSettle: number | undefined
    const settleMs = Duration.toMillis(settings.settleAfter)

    const reportOnce = (key: string, message: string) =>
      reported.has(key) ? Effect.void : Effect.andThen(Effect.sync(() => reported.add(key)), Effect.logWarning(message))

    const strays = Effect.map(quarantineStrays(reportOnce), (moved) => {
      counters.malformed += moved
    })

    /** One new or changed file: ready, not yet settled, or acted on (quarantined, renamed, settled). */
    const examine = (name: TaskName, now: number, isNew: boolean, elsewhere?: ReadonlySet<string>) =>
      locks.withTask(
        name,
        Effect.gen(function*() {
          // A stat first: most looks find the file unchanged, or still being written, and need not read it.
          settling.delete(name)
          const seen = yield* Effect.result(store.stat("pending", name))
          if (Result.isFailure(seen)) {
            if (seen.failure._tag === "TaskNotFound") {
              unset(name)
              return
            }
            return yield* reportOnce(`stat:${name}:${seen.failure.message}`, `${seen.failure.message}; skipped`)
          }
          const known = index.get(name)
          if (known !== undefined && known.mtimeMs === seen.success.mtimeMs && known.size === seen.success.size) return
          // Written less than SETTLE_AFTER ago by someone else: it may still be being written. Our own writes are whole.
          // The clock is read now, not at the tick's start (a write may land during the tick); only an mtime clearly
          // ahead of it (clock skew between hosts) counts as settled.
          const ours = seen.success.mtimeMs <= (ownWrites.wroteAt(name) ?? Number.NEGATIVE_INFINITY)
          const clock = Math.max(now, yield* Clock.currentTimeMillis)
          if (!ours && stillSettling(seen.success.mtimeMs, clock, settleMs)) {
            nextSettle = Math.min(nextSettle ?? Infinity, seen.success.mtimeMs + settleMs)
            settling.add(name)
            return
          }
          const read = yield* Effect.result(store.read("pending", name))
          if (Result.isFailure(read)) {
            const error = read.failure
            if (error._tag === "TaskNotFound") return
            if (error._tag === "Unreadable" && error.quarantine) {
              counters.malformed++
              unset(name)
              yield* quarantine("pending", name, `${name}: ${error.problem}`)
              return
            }
            return yield* reportOnce(`read:${name}:${error.message}`, `${error.message}; skipped`)
          }
          const stored = read.success
          const parsed = parseTask(name, stored.text)
          if (Result.isFailure(parsed)) {
            unset(name)
            counters.malformed++
            yield* quarantine("pending", name, parsed.failure.message)
            return
          }
          if (isNew && (elsewhere === undefined || elsewhere.has(name))) {
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
            // Left as it is: a delegated task beside its own marker. Never routed again — its job may exist.
            if (state === "delegated_to_secutools") {
              unset(name)
              return yield* settings.adopt(name)
            }
          }
          put(name, {
            mtimeMs: stored.mtimeMs,
            size: stored.size,
            task: parsed.success,
            key: queueKey(parsed.success, stored.mtimeMs)
          })
        })
      )

    /** `elsewhere`: the names in the other stages, when known (a scan lists them once instead of looking per file). */
    const examineReporting = (name: TaskName, now: number, elsewhere?: ReadonlySet<string>) =>
      examine(name, now, !index.has(name), elsewhere).pipe(
        Effect.catch((error) => reportOnce(`examine:${name}:${error.message}`, `pending/${name}: ${error.message}`))
      )

    /**
     * A full scan under way: the names still to look at. A large queue is read over several ticks, a slice at a time,
     * so dispatch starts with the part read so far instead of waiting for all of it (100,000 files take seconds).
     */
    let scan:
      | {
        readonly names: ReadonlyArray<TaskName>
        next: number
        readonly startedAt: number
        /** Names in active/, done/ and failed/, listed once a scan meets a name new to the index. */
        elsewhere?: ReadonlySet<string>
      }
      | undefined

    /** Every name in pending/: new files read, changed ones re-read, vanished and delegated ones dropped. */
    const startFullScan = Effect.fn("Intake.startFullScan")(function*(now: number) {
      lastFullScan = now
      touched.clear()
      yield* strays
      const names = yield* store.list("pending")
      const present = new Set(names)
      for (const name of [...index.keys()]) if (!present.has(name) || settings.isDelegated(name)) unset(name)
      scan = { names, next: 0, startedAt: yield* Clock.currentTimeMillis }
    })

    /** The next slice of the scan: files read SCAN_READERS at a time for at most SCAN_SLICE_MS. */
    const continueFullScan = Effect.fn("Intake.continueFullScan")(function*(now: number) {
      const current = scan
      if (current === undefined) return
      const deadline = (yield* Clock.currentTimeMillis) + SCAN_SLICE_MS
      while (current.next < current.names.length && (yield* Clock.currentTimeMillis) < deadline) {
        const batch = current.names.slice(current.next, current.next + SCAN_BATCH)
        current.next += batch.length
        if (current.elsewhere === undefined && batch.some((name) => !index.has(name))) {
          const names = new Set<string>()
          for (const stage of ["active", "done", "failed"] as const)
            for (const name of yield* store.list(stage)) names.add(name)
          current.elsewhere = names
        }
        const elsewhere = current.elsewhere
        yield* Effect.forEach(
          batch.filter((name) => !settings.isDelegated(name)),
          (name) => examineReporting(name, now, elsewhere),
          { concurrency: SCAN_READERS, discard: true }
        )
      }
      if (current.next < current.names.length) return
      scan = undefined
      lastFullScanMs = (yield* Clock.currentTimeMillis) - current.startedAt
    })

    /** Only what the watch reported and what is still settling. */
    const refreshTouched = Effect.fn("Intake.refreshTouched")(function*(now: number) {
      const names = [...touched]
      touched.clear()
      let strayNamed = false
      for (const raw of names) {
        // Hidden entries (temporary files) and markers are never tasks; other names are, or are strays.
        if (raw.startsWith(".") || !raw.endsWith(".md")) continue
        if (!Schema.is(TaskName)(raw)) {
          strayNamed = true
          continue
        }
        if (settings.isDelegated(raw)) unset(raw)
        else yield* examineReporting(raw, now)
      }
      for (const name of [...settling]) if (!touched.has(name)) yield* examineReporting(name, now)
      if (strayNamed) yield* strays
    })

    /**
     * Brings the index up to date. A full scan (every name, and a re-read of changed files) happens once per scan
     * interval — the safety net for what a watch misses — and never takes more than a tenth of the time.
     */
    const refresh = Effect.fn("Intake.refresh")(function*(now: number) {
      nextSettle = undefined
      const interval = Math.max(Duration.toMillis(settings.scanInterval), 10 * lastFullScanMs)
      if (scan === undefined && (!watched || now - lastFullScan >= interval)) yield* startFullScan(now)
      // Between slices of a scan, what the watch reported is looked at too: a drop is not held up by a long scan.
      if (scan !== undefined) yield* continueFullScan(now)
      if (touched.size > 0 || settling.size > 0) yield* refreshTouched(now)
    })

    /** Ready tasks in queue order. */
    const ready = Effect.sync((): ReadonlyArray<PendingEntry> => {
      sorted ??= [...index.values()].sort(byKey)
      // A copy: the caller takes tasks out of the index while it goes through them.
      return sorted.slice()
    })

    return {
      refresh,
      /** A name in pending/ the directory watch reported; `undefined` when it could not say which (scan them all). */
      touch: (name: string | undefined) =>
        Effect.sync(() => {
          watched = true
          if (name === undefined) lastFullScan = Number.NEGATIVE_INFINITY
          else touched.add(name)
        }),
      ready,
      /** Taken out of the index (assigned or delegated). */
      forget: (name: TaskName) => Effect.sync(() => unset(name)),
      /** Whether a full scan is part-way: the dispatcher ticks again at once to read the next slice. */
      scanning: Effect.sync(() => scan !== undefined),
      /** When the next not-yet-settled file will have settled, if any. */
      nextSettle: Effect.sync(() => Option.fromNullishOr(nextSettle)),
      size: Effect.sync(() => index.size),
      tasks: Effect.sync(() => new Map([...index].map(([name, entry]) => [name, entry.task]))),
      counters
    }
  })

export type Intake = Effect.Success<ReturnType<typeof makeIntake>>
