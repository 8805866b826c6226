/**
 * One writer per queue: an exclusive lock on `QUEUE_DIR/.lock`, held by the daemon for its whole life (or by a
 * command for the moment it changes the queue while no daemon runs), and `QUEUE_DIR/.lock.json` saying who holds it.
 * Easy to get wrong: the lock must go when its holder dies however it dies, with nothing to clean by hand, so it is
 * a POSIX record lock (fcntl, taken through SQLite's exclusive locking mode) that the kernel drops with the process;
 * `.lock.json` is only a label and may be stale — the lock itself is the truth.
 */
import { hostname } from "node:os"
import { isRunning } from "./processes.ts"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { readFileSync } from "node:fs"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { StoreError } from "../ports/task-store.ts"
import { writeAtomic } from "./fs-task-store.ts"

export const LOCK_FILE = ".lock"
export const HOLDER_FILE = ".lock.json"

export const LockHolder = Schema.Struct({
  pid: Schema.Int,
  host: Schema.String,
  /** `daemon` for the long-running process; `command` for a CLI changing the queue while no daemon runs. */
  kind: Schema.Literals(["daemon", "command"]),
  command: Schema.String,
  started_at: Schema.String,
  /** The daemon's status API, once it listens. */
  api: Schema.optionalKey(Schema.NullOr(Schema.String))
})
export type LockHolder = typeof LockHolder.Type

export class QueueLocked extends Schema.TaggedError<QueueLocked>()("QueueLocked", {
  root: Schema.String,
  holder: Schema.optionalKey(LockHolder)
}) {
  /** A second daemon on a queue is a usage error: exit 2, nothing started. */
  get exitCode(): number {
    return 2
  }

  override get message(): string {
    const who = this.holder === undefined
      ? "another process (it left no .lock.json)"
      : `${
        this.holder.kind === "daemon" ? "a daemon" : `'${this.holder.command}'`
      } (pid ${this.holder.pid} on ${this.holder.host}, since ${this.holder.started_at})`
    return `the queue ${this.root} is locked by ${who}; one daemon per queue`
  }
}

/** What `.lock.json` says, if anything readable. */
export const readHolder = (root: string): Option.Option<LockHolder> => {
  try {
    return Schema.decodeUnknownOption(Schema.fromJsonString(LockHolder))(readFileSync(join(root, HOLDER_FILE), "utf8"))
  } catch {
    return Option.none()
  }
}

const SQLITE_BUSY = 5

const isBusy = (error: unknown) =>
  typeof error === "object" && error !== null && "errcode" in error &&
  (error.errcode === SQLITE_BUSY || error.errcode === 6)

/** Takes the lock or says who has it; never waits. */
const tryLock = (root: string): Effect.Effect<Option.Option<DatabaseSync>, StoreError> =>
  Effect.try({
    try: () => {
      const db = new DatabaseSync(join(root, LOCK_FILE))
      try {
        // Every statement here needs the lock, so a held lock fails on the first one with SQLITE_BUSY.
        db.exec("PRAGMA journal_mode=MEMORY")
        db.exec("PRAGMA locking_mode=EXCLUSIVE")
        db.exec("BEGIN EXCLUSIVE")
        db.exec("COMMIT")
        return Option.some(db)
      } catch (error) {
        db.close()
        if (isBusy(error)) return Option.none<DatabaseSync>()
        throw error
      }
    },
    catch: (error) =>
      new StoreError({
        operation: "lock",
        path: join(root, LOCK_FILE),
        problem: error instanceof Error ? error.message : String(error)
      })
  })

export interface HeldLock {
  /** Rewrites `.lock.json`, e.g. once the status API listens. */
  readonly label: (update: Partial<LockHolder>) => Effect.Effect<void, StoreError>
}

/**
 * Holds the queue's lock for as long as the scope lives; fails at once with QueueLocked when another process has it.
 * `kind`/`command` label the holder for whoever finds the queue locked.
 */
export const acquireQueueLock = (
  root: string,
  who: { readonly kind: LockHolder["kind"]; readonly command: string }
): Effect.Effect<HeldLock, QueueLocked | StoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const db = yield* Effect.acquireRelease(
      Effect.flatMap(
        tryLock(root),
        Option.match({
          onNone: () =>
            Effect.fail(
              new QueueLocked({
                root,
                ...Option.match(readHolder(root), { onNone: () => ({}), onSome: (holder) => ({ holder }) })
              })
            ),
          onSome: Effect.succeed
        })
      ),
      (held) => Effect.sync(() => held.close())
    )
    let holder: LockHolder = {
      pid: process.pid,
      host: hostname(),
      kind: who.kind,
      command: who.command,
      started_at: new Date().toISOString(),
      api: null
    }
    const label = (update: Partial<LockHolder>) =>
      Effect.uninterruptible(Effect.tryPromise({
        try: () => writeAtomic(root, HOLDER_FILE, `${JSON.stringify(holder = { ...holder, ...update }, null, 2)}\n`),
        catch: (error) =>
          new StoreError({
            operation: "write",
            path: join(root, HOLDER_FILE),
            problem: error instanceof Error ? error.message : String(error)
          })
      }))
    yield* label({})
    // Runs before the lock is released (finalizers run in reverse), so it can only remove our own label.
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => import("node:fs/promises").then((fs) => fs.rm(join(root, HOLDER_FILE), { force: true })))
    )
    void db
    return { label }
  })

/**
 * Waits while the holder is one `waitWhile` accepts (a command: they are brief), up to `waitMs`; otherwise fails at
 * once with QueueLocked. A daemon waits for commands and for a holder that has not labelled the lock yet; a command
 * waits for other commands only (a daemon's lock means: ask the daemon).
 */
export const acquireQueueLockPatiently = (
  root: string,
  who: { readonly kind: LockHolder["kind"]; readonly command: string },
  waitMs: number
): Effect.Effect<HeldLock, QueueLocked | StoreError, Scope.Scope> => {
  const deadline = Date.now() + waitMs
  // A daemon killed with SIGKILL leaves its label behind: a command that took the lock since may not have relabelled
  // it yet. A label naming a daemon process that is gone is a stale one, so this host waits on.
  const liveDaemon = (holder: LockHolder | undefined) =>
    holder?.kind === "daemon" && (holder.host !== hostname() || isRunning(holder.pid))
  const waitWhile = (holder: LockHolder | undefined) =>
    who.kind === "daemon" ? !liveDaemon(holder) : holder?.kind === "command"
  const attempt: Effect.Effect<HeldLock, QueueLocked | StoreError, Scope.Scope> = acquireQueueLock(root, who).pipe(
    Effect.catchTag("QueueLocked", (locked) =>
      waitWhile(locked.holder) && Date.now() < deadline
        ? Effect.andThen(Effect.sleep("50 millis"), Effect.suspend(() => attempt))
        : Effect.fail(locked))
  )
  return attempt
}
