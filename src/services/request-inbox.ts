/**
 * The daemon's side of task operations asked from outside: each request a command left in `requests/` is taken,
 * applied under the task's lock, logged and answered; the status page's actions go through the same `apply`.
 * Easy to get wrong: a refused completion (another run's) is logged here, because the agent that sent it may never
 * look at its exit code; a requeue stops the session's turn (while the lock is held, so no completion slips in
 * between); and the dispatcher is woken after a change, since a session is free.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import { taskNameFrom } from "../domain/task.ts"
import { pendingRequests, removeStaleReplies, takeRequest, writeReply } from "../adapters/request-files.ts"
import type { TaskStore } from "../ports/task-store.ts"
import { TaskLocks } from "./task-locks.ts"
import { type OperationResult, performOperation, type StopTurn, type TaskOperation } from "./task-operations.ts"
import type { TaskName } from "../domain/task.ts"

export class RequestInbox extends Context.Service<RequestInbox, {
  /** Applies every waiting request now. */
  readonly drain: Effect.Effect<void>
  /** Wakes the loop early (a request file appeared). */
  readonly wake: Effect.Effect<void>
  /** Drains on every wake and at least every `interval`, forever. */
  readonly run: Effect.Effect<never>
  /** Applies one operation as the daemon does, logging `from` (who asked) with the result. */
  readonly apply: (name: TaskName, operation: TaskOperation, from: string) => Effect.Effect<OperationResult>
}>()("claude-failover/services/RequestInbox") {}

export interface RequestInboxSettings {
  readonly root: string
  /** A safety net for missed watch events. */
  readonly interval: Duration.Duration
  /** Called after a request changed the queue. */
  readonly onChange: Effect.Effect<void>
  /** How a requeue stops the session's turn first (the dispatcher's); without it, the file alone changes. */
  readonly stopTurn?: StopTurn
}

export const makeRequestInbox = (settings: RequestInboxSettings) =>
  Effect.gen(function*() {
    const locks = yield* TaskLocks
    const ports = yield* Effect.context<TaskStore>()
    const wakeups = yield* Queue.sliding<void>(1)

    const apply = Effect.fn("RequestInbox.apply")(function*(name: TaskName, operation: TaskOperation, from: string) {
      const result = yield* locks.withTask(name, performOperation(name, operation, settings.stopTurn))
      const annotations = {
        task: name,
        ...("run" in operation && operation.run !== undefined ? { run: operation.run } : {})
      }
      if (result.code === 0) {
        // The result first: "x.md done (session claude-1, took 3m 4s), asked by pid 4242".
        yield* Effect.logInfo(`${result.message}, asked by ${from}`).pipe(Effect.annotateLogs(annotations))
        yield* settings.onChange
      } else {
        yield* Effect.logWarning(`${operation.op} ${name} from ${from}: ${result.message}`).pipe(
          Effect.annotateLogs(annotations)
        )
      }
      return result
    }, Effect.provideContext(ports))

    const handle = Effect.fn("RequestInbox.handle")(function*(id: string) {
      const taken = yield* takeRequest(settings.root, id)
      if (Option.isNone(taken)) return
      const request = taken.value
      if (request === "invalid") {
        yield* writeReply(settings.root, { id, code: 1, message: "not a valid request file; nothing changed" })
        return yield* Effect.logWarning(`requests/${id}.json is not a valid request; ignored`)
      }
      const { operation } = request
      const name = taskNameFrom(operation.task)
      if (Option.isNone(name)) {
        return yield* writeReply(settings.root, { id, code: 1, message: `'${operation.task}' is not a task file name` })
      }
      const result = yield* apply(name.value, operation, `pid ${request.pid}`)
      yield* writeReply(settings.root, { id, code: result.code, message: result.message })
    })

    const drain = Effect.gen(function*() {
      for (const id of yield* pendingRequests(settings.root)) {
        // Taken, applied and answered as one: a stop (SIGTERM) waits for it, so no request is half done and no
        // temporary reply file is left behind.
        yield* handle(id).pipe(
          Effect.catchCause((cause) => Effect.logError(`request ${id} failed`, cause)),
          Effect.uninterruptible
        )
      }
      yield* removeStaleReplies(settings.root, yield* Clock.currentTimeMillis)
    }).pipe(Effect.provideContext(ports))

    const wake = Queue.offer(wakeups, undefined).pipe(Effect.asVoid)
    const run = Effect.forever(
      Effect.andThen(drain, Queue.take(wakeups).pipe(Effect.timeout(settings.interval), Effect.ignore))
    )
    return RequestInbox.of({ drain, wake, run, apply })
  })

export const RequestInboxLayer = (settings: RequestInboxSettings) =>
  Layer.effect(RequestInbox, makeRequestInbox(settings))
