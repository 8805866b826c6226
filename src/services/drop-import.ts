/**
 * With a shared queue, a host's `pending/` directory is an intake: each file dropped there becomes a pending task of
 * the shared queue, then the file is removed.
 * Easy to get wrong: a crash may fall between the two. A pending task of that name with the same text is this file,
 * already taken in, so only the file is removed; one with other text is another task, and this one is taken in under
 * a free name. A file changed less than SETTLE_AFTER ago may still be being written, and waits. A file that cannot be
 * read stays where it is, for the local intake to quarantine with its reason.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { stillSettling, type TaskName } from "../domain/task.ts"
import { TaskStore } from "../ports/task-store.ts"
import { freeName } from "./task-moves.ts"

export interface ImportedDrop {
  readonly file: TaskName
  /** The name the task has in the shared queue (another one when the file's was taken). */
  readonly task: TaskName
  /** The task was in the shared queue already: a crash came between taking it in and removing its file. */
  readonly already: boolean
}

type Store = TaskStore["Service"]

/** Takes every settled, readable file of `files`' pending/ into `queue`'s; what it took. */
export const importDrops = (files: Store, queue: Store, settleAfterMs: number) =>
  Effect.gen(function*() {
    const imported: Array<ImportedDrop> = []
    for (const file of yield* files.list("pending")) {
      const read = yield* Effect.result(files.read("pending", file))
      if (Result.isFailure(read)) continue
      if (stillSettling(read.success.mtimeMs, yield* Clock.currentTimeMillis, settleAfterMs)) continue
      const text = read.success.text
      const created = yield* Effect.result(queue.create("pending", file, text))
      if (Result.isSuccess(created)) {
        yield* files.remove("pending", file)
        imported.push({ file, task: file, already: false })
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
    return imported
  })
