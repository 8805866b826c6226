/**
 * `claude-failover task done|fail|retry|cancel|requeue NAME`: for agents (the completion line in every prompt),
 * hooks and people (who also have `task list|show`, in task-inspect.ts). Easy to get wrong: exactly one process
 * writes the queue. With no daemon running the command takes the queue's lock and changes the files itself; while
 * a daemon holds the lock it asks the daemon (requests/) and waits for the answer, taking over only if the daemon
 * dies meanwhile.
 */
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Argument from "effect/cli/Argument"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import { type TaskName, taskNameFrom } from "../../domain/task.ts"
import { type OperationResult, performOperation, type TaskOperation } from "../../services/task-operations.ts"
import { Config } from "../../config.ts"
import { queueLabel, queueStoreLayer } from "../queue-store.ts"
import { acquireQueueLock, acquireQueueLockPatiently, readHolder } from "../queue-lock.ts"
import { readReply, submitRequest, withdrawRequest } from "../request-files.ts"
import { queueDirFlag, queueRootOf } from "./queue-dir.ts"
import { addCommand } from "./task-add.ts"
import { listCommand, showCommand } from "./task-inspect.ts"

/** A task command that did not do what was asked; `exitCode` 1 (could not) or 3 (another run's completion). */
export class TaskCommandError extends Data.TaggedError("TaskCommandError")<{
  readonly message: string
  readonly exitCode: number
}> {}

/** How long a command waits for the daemon's answer before withdrawing its request. */
const ANSWER_WAIT_MS = 60_000
/** How long a command waits for another command holding the lock. */
const LOCK_WAIT_MS = 10_000

const sleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

/**
 * Applies the operation with the queue's lock held: no daemon is running. The queue is the one the configuration
 * names (the command's, else the environment's): the directory's files, or the shared queue's rows.
 */
const directly = (root: string, name: TaskName, operation: TaskOperation) =>
  Effect.gen(function*() {
    // (The quick completion path runs without the command line's configuration: the environment's then.)
    const config = yield* Effect.serviceOption(Config).pipe(
      Effect.flatMap(Option.match({
        onSome: Effect.succeed,
        onNone: () => Config.use(Effect.succeed).pipe(Effect.provide(Config.layer))
      }))
    )
    return yield* performOperation(name, operation).pipe(
      Effect.provide(queueStoreLayer(root, config)),
      Effect.catch((error) =>
        Effect.succeed<OperationResult>({
          code: 1,
          message: `${queueLabel(root, config)}: ${error.message}; nothing changed`
        })
      )
    )
  }).pipe(
    Effect.catchTag("ConfigInvalid", (error) => Effect.succeed<OperationResult>({ code: 1, message: error.message }))
  )

/** The daemon holds the lock: ask it, and wait; if it dies while we wait, the lock is ours and we do it ourselves. */
const throughDaemon = (root: string, name: TaskName, operation: TaskOperation) =>
  Effect.gen(function*() {
    const id = yield* Effect.promise(() => submitRequest(root, operation))
    const deadline = Date.now() + ANSWER_WAIT_MS
    let nextLockTry = Date.now() + 500
    for (;;) {
      const reply = yield* Effect.promise(() => readReply(root, id))
      if (Option.isSome(reply))
        return { code: reply.value.code, message: reply.value.message } satisfies OperationResult
      if (Date.now() >= nextLockTry) {
        nextLockTry = Date.now() + 500
        const lock = yield* Effect.result(acquireQueueLock(root, { kind: "command", command: `task ${operation.op}` }))
        if (lock._tag === "Success") {
          // The daemon is gone. Whether or not it applied the request, applying it now is safe: a completion of
          // the same run that already happened answers "already done".
          yield* Effect.promise(() => withdrawRequest(root, id))
          return yield* directly(root, name, operation)
        }
      }
      if (Date.now() >= deadline) {
        if (yield* Effect.promise(() => withdrawRequest(root, id))) {
          const holder = Option.match(readHolder(root), {
            onNone: () => "the daemon",
            onSome: (h) => `the daemon (pid ${h.pid})`
          })
          return {
            code: 1,
            message: `${holder} did not take the request within ${ANSWER_WAIT_MS / 1000}s; nothing changed`
          } as const
        }
        if (Date.now() >= deadline + ANSWER_WAIT_MS) {
          return {
            code: 1,
            message: "the daemon took the request but did not answer; see `claude-failover status`"
          } as const
        }
      }
      yield* sleep(20)
    }
  })

/**
 * Applies an operation for a caller that already holds the queue's lock (the quick completion path, taking over
 * from a daemon that died while it waited); undefined when the task name is not one.
 */
export const applyWithLockHeld = async (
  root: string,
  operation: TaskOperation
): Promise<OperationResult | undefined> =>
  Option.match(taskNameFrom(operation.task), {
    onNone: () => Promise.resolve(undefined),
    onSome: (name) => Effect.runPromise(directly(root, name, operation))
  })

export const applyTaskOperation = (root: string, name: TaskName, operation: TaskOperation) =>
  Effect.scoped(
    acquireQueueLockPatiently(root, { kind: "command", command: `task ${operation.op} ${name}` }, LOCK_WAIT_MS).pipe(
      Effect.andThen(directly(root, name, operation)),
      Effect.catchTag("QueueLocked", (locked) =>
        locked.holder?.kind === "command"
          ? Effect.succeed<OperationResult>({ code: 1, message: `${locked.message}; try again` })
          : throughDaemon(root, name, operation))
    )
  )

const nameArgument = Argument.String("name").pipe(Argument.withDescription("The task file name, with or without .md"))
const runFlag = Flag.String("run").pipe(
  Flag.withDescription(
    "The run the completion is for (the prompt's completion line gives it); another run's is refused"
  ),
  Flag.optional
)

/** Runs an operation from the command line: the result's message on stdout, or on stderr with its exit code. */
const runOperation = (queueDir: Option.Option<string>, name: string, operation: (name: TaskName) => TaskOperation) =>
  Effect.gen(function*() {
    const root = yield* queueRootOf(queueDir).pipe(
      Effect.mapError((error) => new TaskCommandError({ message: `${error.message}; nothing changed`, exitCode: 1 }))
    )
    const taskName = yield* Option.match(taskNameFrom(name), {
      onNone: () => Effect.fail(new TaskCommandError({ message: `'${name}' is not a task file name`, exitCode: 1 })),
      onSome: Effect.succeed
    })
    const result = yield* applyTaskOperation(root, taskName, operation(taskName))
    if (result.code !== 0) return yield* new TaskCommandError({ message: result.message, exitCode: result.code })
    yield* Console.log(result.message)
  })

const optionalField = <K extends string>(key: K, value: Option.Option<string>): { [P in K]?: string } =>
  Option.match(value, { onNone: () => ({}), onSome: (v) => ({ [key]: v }) as { [P in K]?: string } })

const doneCommand = Command.make(
  "done",
  {
    name: nameArgument,
    run: runFlag,
    queueDir: queueDirFlag,
    summary: Flag.String("summary").pipe(Flag.withDescription("A line for the footer"), Flag.optional)
  },
  ({ name, queueDir, run, summary }) =>
    runOperation(
      queueDir,
      name,
      (task) => ({ op: "done", task, ...optionalField("run", run), ...optionalField("summary", summary) })
    )
)
  .pipe(Command.withDescription("Mark an active task done: it moves to done/ with a footer (exit 3: another run's)"))

const failCommand = Command.make(
  "fail",
  {
    name: nameArgument,
    run: runFlag,
    queueDir: queueDirFlag,
    reason: Flag.String("reason").pipe(Flag.withDescription("Why the task failed (goes into the footer)"))
  },
  ({ name, queueDir, reason, run }) =>
    runOperation(queueDir, name, (task) => ({ op: "fail", task, reason, ...optionalField("run", run) }))
)
  .pipe(
    Command.withDescription("Mark an active task failed: it moves to failed/ with the reason (exit 3: another run's)")
  )

const retryCommand = Command.make(
  "retry",
  { name: nameArgument, queueDir: queueDirFlag },
  ({ name, queueDir }) => runOperation(queueDir, name, (task) => ({ op: "retry", task }))
)
  .pipe(
    Command.withDescription("Run a task in failed/ or done/ again: back to pending/, history kept, old footer dropped")
  )

const cancelCommand = Command.make(
  "cancel",
  { name: nameArgument, queueDir: queueDirFlag },
  ({ name, queueDir }) => runOperation(queueDir, name, (task) => ({ op: "cancel", task }))
)
  .pipe(Command.withDescription("Take a pending task out of the queue: to failed/ as \"cancelled by operator\""))

const requeueCommand = Command.make(
  "requeue",
  {
    name: nameArgument,
    run: Flag.String("run").pipe(
      Flag.withDescription(
        "Take back only this run (as `task show` gives it); if the task has moved on, nothing changes (exit 3)"
      ),
      Flag.optional
    ),
    queueDir: queueDirFlag
  },
  ({ name, queueDir, run }) =>
    runOperation(queueDir, name, (task) => ({ op: "requeue", task, ...optionalField("run", run) }))
)
  .pipe(Command.withDescription(
    "Take an active task back to pending/ (not counted as an attempt); a running daemon stops its session's turn first"
  ))

export const taskCommand = Command.make("task").pipe(
  Command.withDescription(
    "Add, list and show tasks; finish, retry, cancel or requeue one (for agents, hooks and people)"
  ),
  Command.withSubcommands([
    addCommand,
    listCommand,
    showCommand,
    doneCommand,
    failCommand,
    retryCommand,
    cancelCommand,
    requeueCommand
  ])
)
