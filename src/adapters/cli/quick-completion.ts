/**
 * The completion line every prompt ends with (`task done|fail NAME --run RUN --queue-dir DIR`), asked of the running
 * daemon without loading the rest of the CLI. Easy to get wrong: it must do exactly what the full command does, so it
 * acts only on a line of exactly that shape while a daemon holds the queue's lock, and hands every other case to the
 * full CLI — including a daemon that dies while it waits (the request withdrawn first, as the full command does).
 *
 * It imports node: built-ins only. The modules that own these formats (request-files.ts, queue-lock.ts,
 * fs-task-store.ts, domain/task.ts) load Effect and yaml, which is most of a command's start-up time and memory; so
 * the little it needs from them is repeated here, and must stay byte-compatible with them: the request file
 * (`RequestFile`), the reply file (`ReplyFile`), the temporary-file name and atomic write, the lock probe, and the
 * task-name rules.
 */
import {
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  watch,
  writeFileSync
} from "node:fs"
import { join, resolve } from "node:path"
import { DatabaseSync } from "node:sqlite"

/** What `claude-failover task done|fail` asks of the daemon: `TaskOperation`, its keys in the full command's order. */
export type CompletionOperation =
  | { readonly op: "done"; readonly task: string; readonly run: string; readonly summary?: string }
  | { readonly op: "fail"; readonly task: string; readonly reason: string; readonly run: string }

export interface CompletionLine {
  readonly queueDir: string
  readonly operation: CompletionOperation
}

/** The same waits as task-commands.ts's `throughDaemon`. */
const ANSWER_WAIT_MS = 60_000
const LOCK_TRY_MS = 500
/** A safety net under the watch on requests/ (which may miss an event, or not be available at all). */
const POLL_MS = 50

const PROGRAM = "claude-failover"
const MAX_TASK_NAME_BYTES = 200

/** domain/task.ts's `taskNameProblem` as a yes/no. */
export const isTaskName = (name: string): boolean => {
  if (!name.endsWith(".md") || name.length === ".md".length || name.startsWith(".") || name.startsWith("-"))
    return false
  for (const char of name) {
    const code = char.codePointAt(0) ?? 0
    const forbidden = code === 0x2f || code === 0x5c || code <= 0x1f || (code >= 0x7f && code <= 0x9f) ||
      (code >= 0xd800 && code <= 0xdfff)
    if (forbidden) return false
  }
  return Buffer.byteLength(name, "utf8") <= MAX_TASK_NAME_BYTES
}

const FLAGS = { done: ["run", "queue-dir", "summary"], fail: ["run", "queue-dir", "reason"] } as const

/**
 * The completion line, when `argv` is one the full CLI reads the same way: `task done|fail`, one task name, `--run`
 * and `--queue-dir` (non-empty), `--summary` (done) or `--reason` (fail, required), each once, in any order, as
 * `--flag value` or `--flag=value`. Anything else (help, `--`, a value that looks like a flag, another flag) is
 * undefined: the full CLI answers it.
 */
export const parseCompletionLine = (argv: ReadonlyArray<string>): CompletionLine | undefined => {
  const [group, verb, ...rest] = argv
  if (group !== "task" || (verb !== "done" && verb !== "fail")) return undefined
  const allowed: ReadonlyArray<string> = FLAGS[verb]
  const values = new Map<string, string>()
  const names: Array<string> = []
  for (let i = 0; i < rest.length; i++) {
    const token = rest[i] ?? ""
    if (!token.startsWith("-")) {
      names.push(token)
      continue
    }
    const equals = token.indexOf("=")
    const flag = token.slice(2, equals < 0 ? undefined : equals)
    if (!token.startsWith("--") || !allowed.includes(flag) || values.has(flag)) return undefined
    const value = equals < 0 ? rest[++i] : token.slice(equals + 1)
    // The full CLI reads `--summary -x` as two flags.
    if (value === undefined || (equals < 0 && value.startsWith("-"))) return undefined
    values.set(flag, value)
  }
  const [name, ...others] = names
  const run = values.get("run")
  const queueDir = values.get("queue-dir")
  if (name === undefined || others.length > 0 || !run || !queueDir) return undefined
  const task = name.endsWith(".md") ? name : `${name}.md`
  if (!isTaskName(task)) return undefined
  if (verb === "done") {
    const summary = values.get("summary")
    return { queueDir, operation: { op: "done", task, run, ...(summary === undefined ? {} : { summary }) } }
  }
  const reason = values.get("reason")
  return reason === undefined ? undefined : { queueDir, operation: { op: "fail", task, reason, run } }
}

// --- The queue's lock (queue-lock.ts) ---

const isBusy = (error: unknown) =>
  typeof error === "object" && error !== null && "errcode" in error && (error.errcode === 5 || error.errcode === 6)

/** queue-lock.ts's `tryLock`: the lock, held until `close()`, or undefined when another process has it. */
const tryLock = (root: string): DatabaseSync | undefined => {
  const db = new DatabaseSync(join(root, ".lock"))
  try {
    db.exec("PRAGMA journal_mode=MEMORY")
    db.exec("PRAGMA locking_mode=EXCLUSIVE")
    db.exec("BEGIN EXCLUSIVE")
    db.exec("COMMIT")
    return db
  } catch (error) {
    db.close()
    if (isBusy(error)) return undefined
    throw error
  }
}

/** `.lock.json` as queue-lock.ts's `LockHolder`, when it reads as one. */
const readHolder = (root: string): { readonly pid: number; readonly kind: string } | undefined => {
  try {
    const holder: unknown = JSON.parse(readFileSync(join(root, ".lock.json"), "utf8"))
    if (typeof holder !== "object" || holder === null) return undefined
    const { api, command, host, kind, pid, started_at } = holder as Record<string, unknown>
    const valid = Number.isSafeInteger(pid) && typeof host === "string" && typeof command === "string" &&
      typeof started_at === "string" && (kind === "daemon" || kind === "command") &&
      (api === undefined || api === null || typeof api === "string")
    return valid ? { pid: Number(pid), kind: String(kind) } : undefined
  } catch {
    return undefined
  }
}

/** Whether a daemon holds the lock now: it is taken, and its label says a daemon (the full command asks it then). */
const daemonHoldsLock = (root: string): boolean => {
  const lock = tryLock(root)
  if (lock !== undefined) {
    lock.close()
    return false
  }
  return readHolder(root)?.kind === "daemon"
}

// --- Request and reply files (request-files.ts, fs-task-store.ts's writeAtomic) ---

const requestsDir = (root: string) => join(root, "requests")

let tempCounter = 0

/** fs-task-store.ts's `writeAtomic`: a `.cf-*.tmp` file written and fsynced, renamed into place, directory fsynced. */
const writeAtomic = (dir: string, name: string, content: string): void => {
  const temp = join(dir, `.cf-${process.pid}-${++tempCounter}-${Math.random().toString(36).slice(2, 8)}.tmp`)
  try {
    const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644)
    try {
      writeFileSync(fd, content, "utf8")
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(temp, join(dir, name))
  } catch (error) {
    rmSync(temp, { force: true })
    throw error
  }
  const directory = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY)
  try {
    fsyncSync(directory)
  } finally {
    closeSync(directory)
  }
}

const submitRequest = (root: string, operation: CompletionOperation): string => {
  // Eight hex digits, as request-files.ts takes from a UUID; node:crypto alone would add a sixth to the start-up time.
  const id = `${process.pid}-${Math.floor(Math.random() * 0x1_0000_0000).toString(16).padStart(8, "0")}`
  writeAtomic(
    requestsDir(root),
    `${id}.json`,
    JSON.stringify({ id, pid: process.pid, at: new Date().toISOString(), operation })
  )
  return id
}

const errnoOf = (error: unknown): unknown =>
  typeof error === "object" && error !== null && "code" in error ? error.code : undefined

/** Removes a request the daemon has not taken; false when it is already gone (taken). */
const withdrawRequest = (root: string, id: string): boolean => {
  try {
    unlinkSync(join(requestsDir(root), `${id}.json`))
    return true
  } catch (error) {
    if (errnoOf(error) === "ENOENT") return false
    throw error
  }
}

interface Reply {
  readonly code: 0 | 1 | 3
  readonly message: string
}

/** Collects (reads and removes) the daemon's answer; one not a `ReplyFile` is dropped, as request-files.ts does. */
const readReply = (root: string, id: string): Reply | undefined => {
  const path = join(requestsDir(root), `${id}.reply`)
  let text: string
  try {
    text = readFileSync(path, "utf8")
  } catch (error) {
    if (errnoOf(error) === "ENOENT") return undefined
    throw error
  }
  rmSync(path, { force: true })
  try {
    const reply: unknown = JSON.parse(text)
    if (typeof reply !== "object" || reply === null) return undefined
    const { code, id: replyId, message } = reply as Record<string, unknown>
    return typeof replyId === "string" && (code === 0 || code === 1 || code === 3) && typeof message === "string"
      ? { code, message }
      : undefined
  } catch {
    return undefined
  }
}

// --- Waiting for the answer (task-commands.ts's throughDaemon) ---

/** Wakes the wait when something lands in requests/; undefined when the directory cannot be watched. */
const watchRequests = (root: string, onChange: () => void) => {
  try {
    const watcher = watch(requestsDir(root), { persistent: false }, onChange)
    watcher.on("error", () => watcher.close())
    return watcher
  } catch {
    return undefined
  }
}

/**
 * The operation applied by this process with the lock it holds: the daemon died while we waited. Loading the full
 * code takes a second; letting go of the lock meanwhile would let a restarted daemon take the queue, and the full
 * command would then ask that one — a request a daemon stopping again would leave behind.
 */
const applyHoldingLock = async (root: string, operation: CompletionOperation): Promise<Reply | "hand over"> => {
  const { applyWithLockHeld } = await import("./task-commands.ts")
  return applyWithLockHeld(root, operation).then((result) => result ?? "hand over", () => "hand over" as const)
}

/** The daemon's answer, or `hand over` when the full command must run it (it could not be applied here). */
const awaitReply = async (root: string, id: string, operation: CompletionOperation): Promise<Reply | "hand over"> => {
  let wake = () => {}
  const watcher = watchRequests(root, () => wake())
  try {
    const deadline = Date.now() + ANSWER_WAIT_MS
    let nextLockTry = Date.now() + LOCK_TRY_MS
    for (;;) {
      const reply = readReply(root, id)
      if (reply !== undefined) return reply
      if (Date.now() >= nextLockTry) {
        nextLockTry = Date.now() + LOCK_TRY_MS
        const lock = tryLock(root)
        if (lock !== undefined) {
          // The daemon is gone. An answer it wrote before it died is the answer; otherwise it is applied here, with
          // the lock held throughout (a completion already applied answers "already done").
          try {
            withdrawRequest(root, id)
            return readReply(root, id) ?? await applyHoldingLock(root, operation)
          } finally {
            lock.close()
          }
        }
      }
      if (Date.now() >= deadline) {
        if (withdrawRequest(root, id)) {
          const holder = readHolder(root)
          return {
            code: 1,
            message: `${holder === undefined ? "the daemon" : `the daemon (pid ${holder.pid})`} did not take the ` +
              `request within ${ANSWER_WAIT_MS / 1000}s; nothing changed`
          }
        }
        if (Date.now() >= deadline + ANSWER_WAIT_MS)
          return { code: 1, message: "the daemon took the request but did not answer; see `claude-failover status`" }
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, POLL_MS)
        wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
  } finally {
    watcher?.close()
  }
}

/**
 * Runs the completion line through the daemon: true when it did (the answer printed, the exit code set), false when
 * the full CLI must run the command instead (its request, if it wrote one, withdrawn first).
 */
export const completeThroughDaemon = async (argv: ReadonlyArray<string>): Promise<boolean> => {
  const line = parseCompletionLine(argv)
  if (line === undefined) return false
  const root = resolve(line.queueDir)
  let id: string
  try {
    if (!existsSync(join(root, "pending")) || !daemonHoldsLock(root)) return false
    id = submitRequest(root, line.operation)
  } catch {
    // The full command meets the same problem and reports it in its own words.
    return false
  }
  let reply: Reply | "hand over"
  try {
    reply = await awaitReply(root, id, line.operation)
  } catch {
    try {
      withdrawRequest(root, id)
    } catch {
      // The full command meets the same problem.
    }
    return false
  }
  if (reply === "hand over") return false
  if (reply.code === 0) {
    process.stdout.write(`${reply.message}\n`)
  } else {
    process.stderr.write(`${PROGRAM}: ${reply.message}\n`)
    process.exitCode = reply.code
  }
  return true
}
