/**
 * The queue directory on disk, maildir style: a write goes to a temporary file that is fsynced, then linked or
 * renamed into place, and the directory is fsynced. Easy to get wrong: nothing is ever overwritten by a move or a
 * create (a hard link fails when the name exists), symlinks are never followed (O_NOFOLLOW), and a file is opened
 * with O_NONBLOCK so a FIFO swapped in under a task's name cannot hang the daemon.
 */
import {
  closeSync,
  constants,
  copyFileSync,
  type Dirent,
  fstatSync,
  fsync,
  link,
  lstatSync,
  open,
  openSync,
  readFileSync,
  readSync,
  rename,
  rmSync,
  unlink,
  writeFileSync
} from "node:fs"
import * as fs from "node:fs/promises"
import { isUtf8 } from "node:buffer"
import { join } from "node:path"
import { promisify } from "node:util"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { MARKER_SUFFIX, MarkerJson } from "../domain/marker.ts"
import { decodeTaskBytes, TaskName, taskNameProblem } from "../domain/task.ts"
import {
  NameTaken,
  type Stage,
  Stages,
  StoreError,
  type Stray,
  TaskNotFound,
  TaskStore,
  Unreadable
} from "../ports/task-store.ts"

/** Every temporary file this program writes starts with this: only the lock holder removes them. */
export const TEMP_PREFIX = ".cf-"
const TEMP_SUFFIX = ".tmp"
/** Directories beside the stages: CLI requests to the running daemon. */
export const REQUESTS_DIR = "requests"

let tempCounter = 0
/** Short and independent of the target's name, so a 200-byte task name still gives a legal temporary name. */
const tempName = () =>
  `${TEMP_PREFIX}${process.pid}-${++tempCounter}-${Math.random().toString(36).slice(2, 8)}${TEMP_SUFFIX}`

export const isTempName = (name: string): boolean => name.startsWith(TEMP_PREFIX) && name.endsWith(TEMP_SUFFIX)

const errnoOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined

const describe = (error: unknown) => error instanceof Error ? error.message : String(error)

const storeError = (operation: string, path: string, error: unknown) => {
  const code = errnoOf(error)
  return new StoreError({ operation, path, problem: describe(error), ...(code === undefined ? {} : { code }) })
}

const attempt = <A>(operation: string, path: string, run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: (error) => storeError(operation, path, error) })

/**
 * Calls that can wait on the disk's journal (creating, linking, renaming, removing, flushing) go through the thread
 * pool on plain descriptors; writing a small file's bytes and closing it are done at once. A FileHandle per file
 * (fs/promises) cost more than the work itself; doing the waiting calls synchronously blocked the event loop instead.
 */
const flush = promisify(fsync)
const openFile = promisify(open)
const linkFile = promisify(link)
const renameFile = promisify(rename)
const unlinkFile = promisify(unlink)

/** Removes a temporary file after a failure; a failure to remove it must not hide the first one. */
const discard = (temp: string) => {
  try {
    rmSync(temp, { force: true })
  } catch {
    // left for the start-up sweep of temporary files
  }
}

const syncDirectoryNow = async (dir: string) => {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY)
  try {
    await flush(fd)
  } finally {
    closeSync(fd)
  }
}

interface DirectorySync {
  /** The sync in progress: it may have started before a caller's change, so it covers only earlier callers. */
  readonly running: Promise<void>
  /** The sync that starts once `running` ends, shared by everyone who asked meanwhile. */
  next: Promise<void> | undefined
}
const directorySyncs = new Map<string, DirectorySync>()

const beginDirectorySync = (dir: string): Promise<void> => {
  const sync: DirectorySync = { running: syncDirectoryNow(dir), next: undefined }
  directorySyncs.set(dir, sync)
  sync.running.then(
    () => undefined,
    () => undefined
  ).finally(() => {
    if (directorySyncs.get(dir) === sync && sync.next === undefined) directorySyncs.delete(dir)
  })
  return sync.running
}

/**
 * Makes the directory's entries (names created, renamed, removed before the call) durable. Calls made while a sync
 * of the same directory runs share the one after it: as strong as a sync each — every caller's change precedes the
 * sync it waits for — at one sync per burst instead of one per file, which is what a drain of many tasks needs.
 */
export const fsyncDirectory = (dir: string): Promise<void> => {
  const sync = directorySyncs.get(dir)
  if (sync === undefined) return beginDirectorySync(dir)
  sync.next ??= sync.running.then(() => undefined, () => undefined).then(() => beginDirectorySync(dir))
  return sync.next
}

/** Writes and flushes a temporary file in `dir`; removes it again if anything fails (a full disk leaves no debris). */
const writeTemp = async (dir: string, content: string): Promise<string> => {
  const temp = join(dir, tempName())
  try {
    const fd = await openFile(
      temp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o644
    )
    try {
      writeFileSync(fd, content, "utf8")
      await flush(fd)
    } finally {
      closeSync(fd)
    }
  } catch (error) {
    discard(temp)
    throw error
  }
  return temp
}

/** Filesystems without hard links (some FUSE and network ones): check, then rename. */
const NO_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"])

/** `link(from, to)` that never overwrites; the fallback for filesystems without links checks first, then renames. */
const linkNoReplace = async (from: string | Buffer, to: string, removeSource: boolean): Promise<void> => {
  try {
    await linkFile(from, to)
  } catch (error) {
    const code = errnoOf(error)
    if (code === undefined || !NO_LINKS.has(code)) throw error
    const taken = lstatSync(to, { throwIfNoEntry: false }) !== undefined
    if (taken) throw Object.assign(new Error(`${to} exists`), { code: "EEXIST" })
    if (removeSource) return renameFile(from, to)
    copyFileSync(from, to, constants.COPYFILE_EXCL)
    return
  }
  if (removeSource) await unlinkFile(from)
}

/** Writes `content` to `dir/name` atomically, replacing what is there: temp file, fsync, rename, fsync the directory. */
export const writeAtomic = async (dir: string, name: string, content: string): Promise<void> => {
  const temp = await writeTemp(dir, content)
  try {
    await renameFile(temp, join(dir, name))
  } catch (error) {
    discard(temp)
    throw error
  }
  await fsyncDirectory(dir)
}

/** Creates `dir/name` atomically; fails with EEXIST rather than replace an existing file. */
const createAtomic = async (dir: string, name: string, content: string): Promise<void> => {
  const temp = await writeTemp(dir, content)
  try {
    await linkNoReplace(temp, join(dir, name), true)
  } catch (error) {
    discard(temp)
    throw error
  }
  await fsyncDirectory(dir)
}

const isValidUtf8Name = (raw: Buffer): boolean => isUtf8(raw)

interface Entry {
  readonly raw: Buffer
  readonly name: string
  readonly dirent: Dirent<Buffer>
}

export interface FsQueueOptions {
  readonly root: string
  /** A task file larger than this is not read (it is quarantined by the caller). */
  readonly maxTaskBytes?: number
}

const DEFAULT_MAX_TASK_BYTES = 1024 * 1024

/** Creates the stage directories and refuses a split across filesystems (a move between them would not be atomic). */
export const prepareQueue = Effect.fn("prepareQueue")(function*({ root }: FsQueueOptions) {
  const devices = new Set<number>()
  for (const stage of [...Stages, REQUESTS_DIR]) {
    const dir = join(root, stage)
    yield* attempt("create", dir, () => fs.mkdir(dir, { recursive: true }))
    const stat = yield* attempt("stat", dir, () => fs.stat(dir))
    devices.add(stat.dev)
  }
  if (devices.size > 1) {
    return yield* new StoreError({
      operation: "check",
      path: root,
      problem: "the queue's directories are on different filesystems, so moving a task between them would not be atomic"
    })
  }
  // One device is not enough: a directory bind-mounted onto itself (a container volume, say) has the same device
  // but refuses links across the mount (EXDEV). A move is a link, so try one from pending/ into every other stage.
  const probe = join(root, "pending", tempName())
  yield* attempt("check", probe, () => fs.writeFile(probe, "", { flag: "wx" }))
  yield* Effect.ensuring(
    Effect.forEach([...Stages.filter((stage) => stage !== "pending"), REQUESTS_DIR], (stage) => {
      const linked = join(root, stage, tempName())
      return Effect.tryPromise({
        try: async () => {
          await fs.link(probe, linked)
          await fs.unlink(linked)
        },
        catch: (error) =>
          new StoreError({
            operation: "check",
            path: join(root, stage),
            problem:
              `a file in pending/ cannot be linked into ${stage}/ (${describe(error)}); the queue's directories must ` +
              "be one directory tree on one filesystem, not separate mounts",
            ...(errnoOf(error) === undefined ? {} : { code: errnoOf(error) ?? "" })
          })
      }).pipe(Effect.catchIf((error) => NO_LINKS.has(error.code ?? ""), () => Effect.void))
    }, { discard: true }),
    Effect.promise(() => fs.rm(probe, { force: true }))
  )
})

/**
 * Removes every temporary file this program left in the queue (a crash mid-write). Only the lock holder may call it:
 * another process's temporary file is work in progress.
 */
export const removeTempDebris = Effect.fn("removeTempDebris")(function*(root: string) {
  const removed: Array<string> = []
  for (const stage of [...Stages, REQUESTS_DIR]) {
    const dir = join(root, stage)
    const entries = yield* attempt("list", dir, () => fs.readdir(dir))
    for (const entry of entries) {
      if (!isTempName(entry)) continue
      yield* attempt("remove", join(dir, entry), () => fs.rm(join(dir, entry), { force: true }))
      removed.push(`${stage}/${entry}`)
    }
  }
  return removed
})

/** How task files and markers are opened for reading: never through a symlink; O_NONBLOCK, so a FIFO cannot hang it. */
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK

/** The file's bytes, at most `limit` of them (a file that grew since its stat is read only that far). */
const readUpTo = (fd: number, expected: number, limit: number): Buffer => {
  let buffer = Buffer.allocUnsafe(Math.min(limit, expected + 1))
  let length = 0
  for (;;) {
    if (length === buffer.length) {
      if (buffer.length >= limit) break
      const bigger = Buffer.allocUnsafe(Math.min(limit, buffer.length * 2))
      buffer.copy(bigger, 0, 0, length)
      buffer = bigger
    }
    const n = readSync(fd, buffer, length, buffer.length - length, null)
    if (n === 0) break
    length += n
  }
  return buffer.subarray(0, length)
}

export const makeFsTaskStore = ({ maxTaskBytes = DEFAULT_MAX_TASK_BYTES, root }: FsQueueOptions) => {
  const dirOf = (stage: Stage) => join(root, stage)
  const pathOf = (stage: Stage, name: string) => join(root, stage, name)

  const entries = (stage: Stage) =>
    attempt("list", dirOf(stage), () => fs.readdir(dirOf(stage), { withFileTypes: true, encoding: "buffer" })).pipe(
      Effect.map((dirents) =>
        dirents.map((dirent): Entry => ({ raw: dirent.name, name: dirent.name.toString("utf8"), dirent }))
          // Hidden entries are never tasks: temporary files (ours and other writers'), markers' temps, editors' swaps.
          .filter((entry) => entry.name.endsWith(".md") && !entry.name.startsWith("."))
      )
    )

  const isTask = (entry: Entry) =>
    entry.dirent.isFile() && isValidUtf8Name(entry.raw) && taskNameProblem(entry.name) === undefined
  // isTask has checked the name; the brand's own check would run taskNameProblem again for every file.
  const taskNameOf = (entry: Entry) => TaskName.make(entry.name, { disableChecks: true })

  // Writes are uninterruptible: a stop (SIGTERM) waits for them, so no temporary file or half-done move is left.
  const remove = (stage: Stage, name: string) =>
    Effect.uninterruptible(attempt("remove", pathOf(stage, name), async () => {
      // unlink, not rm: rm looks first (one more system call per removal) to handle directories, never ours.
      await unlinkFile(pathOf(stage, name)).catch((error: unknown) => {
        if (errnoOf(error) !== "ENOENT") throw error
      })
      await fsyncDirectory(dirOf(stage))
    }))

  const notFoundOr = (stage: Stage, name: string, operation: string) => (error: unknown) =>
    errnoOf(error) === "ENOENT" ? new TaskNotFound({ stage, name }) : storeError(operation, pathOf(stage, name), error)

  // Synchronous, as are marker reads: a task file is small and local, and open, stat, read and close through the
  // thread pool cost several times the work itself (a restart reads every delegated task, a drain each task 3 times).
  const read = (stage: Stage, name: TaskName) =>
    Effect.try({
      try: () => {
        const fd = openSync(pathOf(stage, name), READ_FLAGS)
        try {
          const stat = fstatSync(fd)
          const identity = `${stat.dev}:${stat.ino}`
          if (!stat.isFile())
            return { _tag: "Unreadable", problem: "is not a regular file", quarantine: false } as const
          if (stat.size > maxTaskBytes) {
            return {
              _tag: "Unreadable",
              problem: `is ${stat.size} bytes; task files may have at most ${maxTaskBytes} (MAX_TASK_SIZE)`,
              quarantine: true
            } as const
          }
          const bytes = readUpTo(fd, stat.size, maxTaskBytes + 1)
          return { _tag: "Read", bytes, mtimeMs: stat.mtimeMs, size: bytes.length, identity } as const
        } finally {
          closeSync(fd)
        }
      },
      catch: (error) =>
        errnoOf(error) === "ELOOP"
          ? new Unreadable({ stage, name, problem: "is a symlink; symlinks are never followed", quarantine: false })
          : notFoundOr(stage, name, "read")(error)
    }).pipe(Effect.flatMap((outcome) => {
      if (outcome._tag === "Unreadable") {
        return Effect.fail(new Unreadable({ stage, name, problem: outcome.problem, quarantine: outcome.quarantine }))
      }
      if (outcome.size > maxTaskBytes) {
        return Effect.fail(
          new Unreadable({ stage, name, problem: `grew past ${maxTaskBytes} bytes (MAX_TASK_SIZE)`, quarantine: true })
        )
      }
      const text = decodeTaskBytes(outcome.bytes)
      return text._tag === "Failure"
        ? Effect.fail(new Unreadable({ stage, name, problem: text.failure, quarantine: true }))
        : Effect.succeed({
          stage,
          name,
          text: text.success,
          mtimeMs: outcome.mtimeMs,
          size: outcome.size,
          identity: outcome.identity
        })
    }))

  const markerPath = (name: TaskName) => pathOf("pending", `${name}${MARKER_SUFFIX}`)

  const store: TaskStore["Service"] = TaskStore.of({
    list: (stage) => Effect.map(entries(stage), (found) => found.filter(isTask).map(taskNameOf).sort()),
    strays: (stage) =>
      Effect.map(entries(stage), (found) =>
        found.filter((entry) => !isTask(entry)).map((entry): Stray => {
          // What an entry is comes before what it is called: only a regular file is ever moved.
          const badName = !entry.dirent.isFile()
            ? undefined
            : !isValidUtf8Name(entry.raw)
            ? "is not valid UTF-8"
            : taskNameProblem(entry.name)
          return badName !== undefined
            ? { stage, raw: entry.raw, display: entry.name, kind: "bad-name", problem: badName }
            : {
              stage,
              raw: entry.raw,
              display: entry.name,
              kind: "not-a-file",
              problem: entry.dirent.isSymbolicLink()
                ? "is a symlink (never followed)"
                : entry.dirent.isDirectory()
                ? "is a directory"
                : "is not a regular file"
            }
        })),
    has: (stage, name) =>
      Effect.tryPromise({
        try: () => fs.lstat(pathOf(stage, name)).then(() => true),
        catch: (error) => error
      }).pipe(
        Effect.catch((error) =>
          errnoOf(error) === "ENOENT"
            ? Effect.succeed(false)
            : Effect.fail(storeError("stat", pathOf(stage, name), error))
        )
      ),
    read,
    // lstat in a loop, not one promise per file: at start-up this runs over every pending file (100,000 of them
    // in a backlog), where a round trip through the thread pool per file costs seconds.
    linked: (stage) =>
      Effect.flatMap(entries(stage), (found) =>
        attempt("stat", dirOf(stage), async () => {
          const linked = new Map<TaskName, string>()
          for (const entry of found) {
            if (!isTask(entry)) continue
            const stat = lstatSync(pathOf(stage, entry.name), { throwIfNoEntry: false })
            if (stat !== undefined && stat.nlink > 1) linked.set(taskNameOf(entry), `${stat.dev}:${stat.ino}`)
          }
          return linked
        })),
    stat: (stage, name) =>
      Effect.tryPromise({
        try: () => fs.lstat(pathOf(stage, name)),
        catch: notFoundOr(stage, name, "stat")
      }).pipe(
        Effect.map((stat) => ({
          identity: `${stat.dev}:${stat.ino}`,
          links: stat.nlink,
          mtimeMs: stat.mtimeMs,
          size: stat.size
        }))
      ),
    create: (stage, name, text) =>
      Effect.uninterruptible(Effect.tryPromise({
        try: () => createAtomic(dirOf(stage), name, text),
        catch: (error) =>
          errnoOf(error) === "EEXIST"
            ? new NameTaken({ stage, name })
            : storeError("create", pathOf(stage, name), error)
      })),
    replace: (stage, name, text) =>
      Effect.uninterruptible(attempt("write", pathOf(stage, name), () => writeAtomic(dirOf(stage), name, text))),
    move: (from, to, name, toName = name) =>
      Effect.uninterruptible(Effect.tryPromise({
        try: async () => {
          await linkNoReplace(pathOf(from, name), pathOf(to, toName), false)
          await fsyncDirectory(dirOf(to))
          await unlinkFile(pathOf(from, name))
          await fsyncDirectory(dirOf(from))
        },
        catch: (error) =>
          errnoOf(error) === "EEXIST"
            ? new NameTaken({ stage: to, name: toName })
            : notFoundOr(from, name, "move")(error)
      })),
    remove,
    quarantineStray: (stray, name) =>
      Effect.uninterruptible(Effect.tryPromise({
        try: async () => {
          // The raw bytes: a name that is not UTF-8 cannot be spelled as a string.
          const source = Buffer.concat([Buffer.from(`${dirOf(stray.stage)}/`), Buffer.from(stray.raw)])
          await linkNoReplace(source, pathOf("failed", name), false)
          await fsyncDirectory(dirOf("failed"))
          await unlinkFile(source)
          await fsyncDirectory(dirOf(stray.stage))
        },
        catch: (error) =>
          errnoOf(error) === "EEXIST"
            ? new NameTaken({ stage: "failed", name })
            : storeError("quarantine", `${stray.stage}/${stray.display}`, error)
      })),
    writeError: (name, reason) =>
      Effect.uninterruptible(
        attempt("write", pathOf("failed", `${name}.error`), () =>
          writeAtomic(dirOf("failed"), `${name}.error`, reason.endsWith("\n") ? reason : `${reason}\n`))
      ),
    readMarker: (name) =>
      Effect.try({
        try: () => readFileSync(markerPath(name), { encoding: "utf8", flag: READ_FLAGS }),
        catch: (error) => error
      }).pipe(
        Effect.map(Option.some),
        Effect.catch((error) =>
          errnoOf(error) === "ENOENT"
            ? Effect.succeed(Option.none<string>())
            : Effect.fail(storeError("read", markerPath(name), error))
        ),
        Effect.flatMap(Option.match({
          onNone: () => Effect.succeedNone,
          onSome: (text) =>
            Schema.decodeUnknownEffect(MarkerJson)(text).pipe(
              Effect.map(Option.some),
              Effect.mapError((error) =>
                new StoreError({ operation: "decode", path: markerPath(name), problem: error.message })
              )
            )
        }))
      ),
    writeMarker: (name, marker) =>
      Effect.uninterruptible(
        attempt(
          "write",
          markerPath(name),
          () => writeAtomic(dirOf("pending"), `${name}${MARKER_SUFFIX}`, `${JSON.stringify(marker, null, 2)}\n`)
        )
      ),
    // One daemon per queue: its markers are all its own to reap.
    claimMarker: (name) => store.readMarker(name),
    removeMarker: (name) => remove("pending", `${name}${MARKER_SUFFIX}`),
    atomically: (effect) => effect,
    listMarkers: () =>
      attempt("list", dirOf("pending"), () => fs.readdir(dirOf("pending"), { withFileTypes: true })).pipe(
        Effect.map((found) =>
          found
            .filter((entry) =>
              entry.isFile() && entry.name.endsWith(`.md${MARKER_SUFFIX}`) && !entry.name.startsWith(".")
            )
            .map((entry) => entry.name.slice(0, -MARKER_SUFFIX.length))
            .filter((name) => Schema.is(TaskName)(name))
            .map((name) => TaskName.make(name))
            .sort()
        )
      )
  })
  return store
}

/** The live store: prepares the directory layout first, so a bad queue root stops start-up with a clear error. */
export const FsTaskStoreLayer = (options: FsQueueOptions) =>
  Layer.effect(TaskStore, Effect.as(prepareQueue(options), makeFsTaskStore(options)))
