/**
 * With a shared queue, a host's `pending/` directory is an intake: each file dropped there becomes a pending task of
 * the shared queue, then the file is removed.
 * Easy to get wrong: a crash may fall between the two. A pending task of that name with the same text is this file,
 * already taken in, so only the file is removed; one with other text is another task, and this one is taken in under
 * a free name. A file changed less than SETTLE_AFTER ago may still be being written, and waits. A file that can never
 * be a task goes to the host's own failed/ with its reason.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import { stillSettling, type TaskName } from "../domain/task.ts"
import { TaskStore } from "../ports/task-store.ts"
import { freeName, quarantine, quarantineStrays } from "./task-moves.ts"

export interface ImportedDrop {
  readonly file: TaskName
  /** The name the task has in the shared queue (another one when the file's was taken). */
  readonly task: TaskName
  /** The task was in the shared queue already: a crash came between taking it in and removing its file. */
  readonly already: boolean
}

type Store = TaskStore["Service"]

export interface DropRound {
  readonly imported: ReadonlyArray<ImportedDrop>
  /** Files that can never be tasks (too large, not text, a name no task can have): moved to this host's failed/. */
  readonly quarantined: number
  /** When the first file still being written will have settled (epoch ms), if one is. */
  readonly nextSettle: number | undefined
}

/**
 * Takes every settled, readable file of `files`' pending/ into `queue`'s. A file that can never be a task goes to the
 * host's own failed/ with a `.error`, as the file queue's intake does: the shared queue never holds what no host can
 * read.
 */
export const importDrops = (
  files: Store,
  queue: Store,
  settleAfterMs: number,
  report: (key: string, message: string) => Effect.Effect<void> = Effect.logWarning
) =>
  Effect.gen(function*() {
    const imported: Array<ImportedDrop> = []
    let nextSettle: number | undefined
    let quarantined = yield* quarantineStrays(report).pipe(Effect.provideService(TaskStore, files))
    /** To this host's failed/, with the reason in its `.error`. */
    const toFailed = (file: TaskName, problem: string) =>
      Effect.andThen(
        quarantine("pending", file, `${file}: ${problem}`).pipe(Effect.provideService(TaskStore, files)),
        Effect.sync(() => void quarantined++)
      )
    for (const file of yield* files.list("pending")) {
      const read = yield* Effect.result(files.read("pending", file))
      if (Result.isFailure(read)) {
        const error = read.failure
        if (error._tag === "Unreadable" && error.quarantine) yield* toFailed(file, error.problem)
        continue
      }
      const now = yield* Clock.currentTimeMillis
      if (stillSettling(read.success.mtimeMs, now, settleAfterMs)) {
        nextSettle = Math.min(nextSettle ?? Infinity, read.success.mtimeMs + settleAfterMs)
        continue
      }
      const text = read.success.text
      const created = yield* Effect.result(queue.create("pending", file, text))
      if (Result.isSuccess(created)) {
        yield* files.remove("pending", file)
        imported.push({ file, task: file, already: false })
        continue
      }
      // Text the shared queue refuses as it stands (a NUL byte: valid UTF-8, but not PostgreSQL text) would be refused
      // on every try.
      if (created.failure._tag === "StoreError" && created.failure.code === "EINVAL") {
        yield* toFailed(file, created.failure.problem)
        continue
      }
      if (created.failure._tag !== "NameTaken") return yield* created.failure
      const there = yield* Effect.result(queue.read("pending", file))
      if (Result.isSuccess(there) && there.success.text === text) {
        yield* files.remove("pending", file)
        imported.push({ file, task: file, already: true })
        continue
      }
      const other = yield* freeName(file).pipe(Effect.provideService(TaskStore, queue))
      yield* queue.create("pending", other, text)
      yield* files.remove("pending", file)
      imported.push({ file, task: other, already: false })
    }
    return { imported, quarantined, nextSettle } satisfies DropRound
  })

/**
 * Takes the drop box in forever: at once when `wake` is offered (the directory watch saw a change), when a file still
 * being written has settled, and every `scanInterval` for what the watch missed. Each task taken in is logged.
 */
export const runDropBox = (
  files: Store,
  queue: Store,
  settings: { readonly settleAfterMs: number; readonly scanIntervalMs: number },
  wakeUps: Queue.Dequeue<void>
): Effect.Effect<never> =>
  Effect.gen(function*() {
    const reported = new Set<string>()
    const reportOnce = (key: string, message: string) =>
      reported.has(key) ? Effect.void : Effect.andThen(Effect.sync(() => reported.add(key)), Effect.logWarning(message))
    return yield* Effect.forever(Effect.gen(function*() {
      const round = yield* importDrops(files, queue, settings.settleAfterMs, reportOnce).pipe(
        Effect.catch((error) =>
          Effect.as(
            reportOnce(`drop:${error.message}`, `taking pending/ into the shared queue: ${error.message}; tried again`),
            { imported: [], quarantined: 0, nextSettle: undefined } satisfies DropRound
          )
        )
      )
      for (const { already, file, task } of round.imported) {
        if (already) continue
        yield* Effect.logInfo(
          task === file
            ? `${task} taken into the shared queue`
            : `${file} taken into the shared queue as ${task} (${file} was taken)`
        ).pipe(Effect.annotateLogs({ task }))
      }
      const now = yield* Clock.currentTimeMillis
      const wait = Math.min(
        settings.scanIntervalMs,
        round.nextSettle === undefined ? Infinity : Math.max(0, round.nextSettle - now) + 1
      )
      yield* Queue.take(wakeUps).pipe(Effect.timeout(Duration.millis(wait)), Effect.ignore)
    }))
  })
