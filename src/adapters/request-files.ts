/**
 * How a command asks the running daemon to change a task: it writes `requests/ID.json` (atomically), the daemon
 * applies it under the task's lock and answers in `requests/ID.reply`. Easy to get wrong: only one process may write
 * the queue at a time, so while a daemon holds the lock a command never touches task files itself; and a request the
 * daemon has not taken yet can be withdrawn (removed) by the command, so a timeout never leaves a surprise behind.
 */
import * as fs from "node:fs/promises"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { TaskOperation } from "../services/task-operations.ts"
import { REQUESTS_DIR, writeAtomic } from "./fs-task-store.ts"

export const RequestFile = Schema.Struct({
  id: Schema.String,
  pid: Schema.Int,
  at: Schema.String,
  operation: TaskOperation
})
export type RequestFile = typeof RequestFile.Type

export const ReplyFile = Schema.Struct({
  id: Schema.String,
  code: Schema.Literals([0, 1, 3]),
  message: Schema.String
})
export type ReplyFile = typeof ReplyFile.Type

const REQUEST_SUFFIX = ".json"
const REPLY_SUFFIX = ".reply"
const ID = /^[A-Za-z0-9-]{1,64}$/

export const requestsDir = (root: string) => join(root, REQUESTS_DIR)
const requestPath = (root: string, id: string) => join(requestsDir(root), `${id}${REQUEST_SUFFIX}`)
const replyPath = (root: string, id: string) => join(requestsDir(root), `${id}${REPLY_SUFFIX}`)

const errnoOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined

/** Writes a request (atomically, like every queue write); returns its id. */
export const submitRequest = async (root: string, operation: TaskOperation): Promise<string> => {
  const id = `${process.pid}-${crypto.randomUUID().slice(0, 8)}`
  const request: RequestFile = { id, pid: process.pid, at: new Date().toISOString(), operation }
  await writeAtomic(requestsDir(root), `${id}${REQUEST_SUFFIX}`, JSON.stringify(request))
  return id
}

/** Removes a request the daemon has not taken; false when it is already gone (taken). */
export const withdrawRequest = async (root: string, id: string): Promise<boolean> =>
  fs.unlink(requestPath(root, id)).then(() => true, (error) => {
    if (errnoOf(error) === "ENOENT") return false
    throw error
  })

export const readReply = async (root: string, id: string): Promise<Option.Option<ReplyFile>> => {
  const text = await fs.readFile(replyPath(root, id), "utf8").catch((error) => {
    if (errnoOf(error) === "ENOENT") return undefined
    throw error
  })
  if (text === undefined) return Option.none()
  await fs.rm(replyPath(root, id), { force: true })
  return Schema.decodeUnknownOption(Schema.fromJsonString(ReplyFile))(text)
}

/** The ids of requests waiting, oldest first (ids start with nothing time-ordered, so by file time). */
export const pendingRequests = Effect.fn("pendingRequests")(function*(root: string) {
  const names = yield* Effect.promise(() => fs.readdir(requestsDir(root)).catch(() => [] as Array<string>))
  return names
    .filter((name) => name.endsWith(REQUEST_SUFFIX) && !name.startsWith("."))
    .map((name) => name.slice(0, -REQUEST_SUFFIX.length))
    .filter((id) => ID.test(id))
    .sort()
})

/** Takes a request: reads and removes it. None when another reader took it first or it is not a request. */
export const takeRequest = (root: string, id: string): Effect.Effect<Option.Option<RequestFile | "invalid">> =>
  Effect.promise(async () => {
    const text = await fs.readFile(requestPath(root, id), "utf8").catch(() => undefined)
    if (text === undefined) return Option.none()
    const removed = await withdrawRequest(root, id).catch(() => false)
    if (!removed) return Option.none()
    const decoded = Schema.decodeUnknownOption(Schema.fromJsonString(RequestFile))(text)
    return Option.some(Option.getOrElse(decoded, () => "invalid" as const))
  })

export const writeReply = (root: string, reply: ReplyFile) =>
  Effect.promise(() =>
    writeAtomic(requestsDir(root), `${reply.id}${REPLY_SUFFIX}`, JSON.stringify(reply)).catch(() => undefined)
  )

/** Answers nobody collected (the command gave up or died) are removed after this long. */
export const STALE_REPLY_MS = 10 * 60_000

export const removeStaleReplies = (root: string, now: number) =>
  Effect.promise(async () => {
    const names = await fs.readdir(requestsDir(root)).catch(() => [] as Array<string>)
    for (const name of names.filter((n) => n.endsWith(REPLY_SUFFIX))) {
      const stat = await fs.stat(join(requestsDir(root), name)).catch(() => undefined)
      if (stat !== undefined && now - stat.mtimeMs > STALE_REPLY_MS)
        await fs.rm(join(requestsDir(root), name), { force: true })
    }
  })
