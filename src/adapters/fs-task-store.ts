/**
 * The queue directory on disk, maildir style: every write goes to a temporary file, is fsynced and renamed.
 * Easy to get wrong: symlinks are never followed (O_NOFOLLOW), and a directory is fsynced after a rename so
 * the rename itself survives a power cut.
 */
import { constants } from "node:fs"
import * as fs from "node:fs/promises"
import { join } from "node:path"
import { Effect, Layer, Option, Schema } from "effect"
import { MARKER_SUFFIX, MarkerJson } from "../domain/marker.ts"
import { TaskName } from "../domain/task.ts"
import { type Stage, Stages, StoreError, TaskNotFound, TaskStore } from "../ports/task-store.ts"

const TEMP_SUFFIX = ".tmp"

/** Temporary files are hidden and end in `.tmp`, so every reader skips them. */
const tempName = (target: string) => `.${target}.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2, 8)}${TEMP_SUFFIX}`

const isErrno = (error: unknown, code: string) =>
  typeof error === "object" && error !== null && "code" in error && error.code === code

const attempt = <A>(operation: string, path: string, run: () => Promise<A>) =>
  Effect.tryPromise({
    try: run,
    catch: (error) => new StoreError({ operation, path, problem: error instanceof Error ? error.message : String(error) })
  })

const fsyncDirectory = async (dir: string) => {
  const handle = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY)
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Writes `content` to `dir/name` atomically: temp file in the same directory, fsync, rename, fsync the directory. */
export const writeAtomic = async (dir: string, name: string, content: string): Promise<void> => {
  const temp = join(dir, tempName(name))
  const handle = await fs.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644)
  try {
    await handle.writeFile(content, "utf8")
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    await fs.rename(temp, join(dir, name))
  } catch (error) {
    await fs.rm(temp, { force: true })
    throw error
  }
  await fsyncDirectory(dir)
}

/** A regular file read without following a symlink. */
const readRegular = async (path: string): Promise<{ text: string; mtimeMs: number }> => {
  const handle = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW)
  try {
    const stat = await handle.stat()
    if (!stat.isFile()) throw new Error("not a regular file")
    return { text: await handle.readFile("utf8"), mtimeMs: stat.mtimeMs }
  } finally {
    await handle.close()
  }
}

export interface FsQueueOptions {
  readonly root: string
  /** Temporary files older than this are debris from a crash and are removed on start. */
  readonly staleTempMs?: number
}

/** Creates the stage directories, refuses a split across filesystems, and clears old temporary files. */
export const prepareQueue = Effect.fn("prepareQueue")(function*({ root, staleTempMs = 3_600_000 }: FsQueueOptions) {
  const devices = new Set<number>()
  for (const stage of Stages) {
    const dir = join(root, stage)
    yield* attempt("create", dir, () => fs.mkdir(dir, { recursive: true }))
    const stat = yield* attempt("stat", dir, () => fs.stat(dir))
    devices.add(stat.dev)
    const entries = yield* attempt("list", dir, () => fs.readdir(dir, { withFileTypes: true }))
    for (const entry of entries) {
      if (!entry.isFile() || !entry.name.startsWith(".") || !entry.name.endsWith(TEMP_SUFFIX)) continue
      const path = join(dir, entry.name)
      const age = yield* attempt("stat", path, () => fs.stat(path)).pipe(
        Effect.map((s) => Date.now() - s.mtimeMs),
        Effect.orElseSucceed(() => 0)
      )
      if (age > staleTempMs) yield* attempt("remove", path, () => fs.rm(path, { force: true }))
    }
  }
  if (devices.size > 1) {
    return yield* new StoreError({
      operation: "check",
      path: root,
      problem: "the stage directories are on different filesystems, so moving a task between them would not be atomic"
    })
  }
})

/** Is this directory entry a task file the queue should see? */
export const isTaskEntry = (entry: { readonly name: string; isFile(): boolean }): boolean =>
  entry.isFile() && entry.name.endsWith(".md") && Schema.is(TaskName)(entry.name)

export const makeFsTaskStore = (root: string) => {
  const dirOf = (stage: Stage) => join(root, stage)
  const pathOf = (stage: Stage, name: string) => join(root, stage, name)

  // Writes are uninterruptible: a stop (SIGTERM) waits for them, so no temporary file or half-done move is left.
  const write = (stage: Stage, name: string, text: string) =>
    Effect.uninterruptible(attempt("write", pathOf(stage, name), () => writeAtomic(dirOf(stage), name, text)))
  const remove = (stage: Stage, name: string) =>
    Effect.uninterruptible(attempt("remove", pathOf(stage, name), async () => {
      await fs.rm(pathOf(stage, name), { force: true })
      await fsyncDirectory(dirOf(stage))
    }))

  return TaskStore.of({
    list: (stage) =>
      attempt("list", dirOf(stage), () => fs.readdir(dirOf(stage), { withFileTypes: true })).pipe(
        Effect.map((entries) => entries.filter(isTaskEntry).map((entry) => TaskName.make(entry.name)).sort())
      ),
    read: (stage, name) =>
      Effect.tryPromise({
        try: () => readRegular(pathOf(stage, name)),
        catch: (error) =>
          isErrno(error, "ENOENT")
            ? new TaskNotFound({ stage, name })
            : new StoreError({
              operation: "read",
              path: pathOf(stage, name),
              problem: isErrno(error, "ELOOP") ? "is a symlink; symlinks are never followed" : String(error)
            })
      }).pipe(Effect.map(({ mtimeMs, text }) => ({ stage, name, text, mtimeMs }))),
    write,
    move: (from, to, name) =>
      Effect.uninterruptible(Effect.tryPromise({
        try: async () => {
          await fs.rename(pathOf(from, name), pathOf(to, name))
          await fsyncDirectory(dirOf(to))
          await fsyncDirectory(dirOf(from))
        },
        catch: (error) =>
          isErrno(error, "ENOENT")
            ? new TaskNotFound({ stage: from, name })
            : new StoreError({ operation: "move", path: pathOf(from, name), problem: String(error) })
      })),
    transfer: (from, to, name, text) => Effect.uninterruptible(Effect.andThen(write(to, name, text), remove(from, name))),
    remove,
    writeError: (name, reason) => write("failed", `${name}.error`, reason.endsWith("\n") ? reason : `${reason}\n`),
    readMarker: (name) =>
      Effect.tryPromise({
        try: () => readRegular(pathOf("pending", `${name}${MARKER_SUFFIX}`)),
        catch: (error) => error
      }).pipe(
        Effect.map(({ text }) => Option.some(text)),
        Effect.catch((error) =>
          isErrno(error, "ENOENT")
            ? Effect.succeed(Option.none<string>())
            : Effect.fail(new StoreError({ operation: "read", path: pathOf("pending", `${name}${MARKER_SUFFIX}`), problem: String(error) }))
        ),
        Effect.flatMap(Option.match({
          onNone: () => Effect.succeedNone,
          onSome: (text) =>
            Schema.decodeUnknownEffect(MarkerJson)(text).pipe(
              Effect.map(Option.some),
              Effect.mapError((error) =>
                new StoreError({ operation: "decode", path: pathOf("pending", `${name}${MARKER_SUFFIX}`), problem: error.message })
              )
            )
        }))
      ),
    writeMarker: (name, marker) => write("pending", `${name}${MARKER_SUFFIX}`, `${JSON.stringify(marker, null, 2)}\n`),
    removeMarker: (name) => remove("pending", `${name}${MARKER_SUFFIX}`),
    listMarkers: () =>
      attempt("list", dirOf("pending"), () => fs.readdir(dirOf("pending"), { withFileTypes: true })).pipe(
        Effect.map((entries) =>
          entries
            .filter((entry) => entry.isFile() && entry.name.endsWith(`.md${MARKER_SUFFIX}`) && !entry.name.startsWith("."))
            .map((entry) => entry.name.slice(0, -MARKER_SUFFIX.length))
            .filter((name) => Schema.is(TaskName)(name))
            .map((name) => TaskName.make(name))
            .sort()
        )
      )
  })
}

/** The live store: prepares the directory layout first, so a bad queue root stops start-up with a clear error. */
export const FsTaskStoreLayer = (options: FsQueueOptions) =>
  Layer.effect(TaskStore, Effect.as(prepareQueue(options), makeFsTaskStore(options.root)))
