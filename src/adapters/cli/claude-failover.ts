/**
 * `claude-failover`: the daemon (no subcommand) and the subcommands people and hooks use.
 * Easy to get wrong: `task done|fail` runs from an agent's shell, in any directory and without the daemon's
 * environment, so it takes the queue directory as a flag and fails loudly when the task is not active.
 */
import { resolve } from "node:path"
import { Console, Data, Effect, Layer, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { FsTaskStoreLayer } from "../fs-task-store.ts"
import { Config, describeConfig } from "../../config.ts"
import { daemon } from "../../daemon.ts"
import { type TaskName, taskNameFrom } from "../../domain/task.ts"
import { Stages, TaskStore } from "../../ports/task-store.ts"
import { finishLocalTask } from "../../services/task-moves.ts"
import { statusCommand } from "./status.ts"

export class TaskCommandError extends Data.TaggedError("TaskCommandError")<{ readonly message: string }> {}

const printConfig = Effect.gen(function*() {
  yield* Console.log(JSON.stringify(describeConfig(yield* Config), null, 2))
})

export const configCommand = Command.make("config", {}, () => printConfig).pipe(
  Command.withDescription("Print the resolved configuration (env over defaults), secrets redacted")
)

const queueDirFlag = Flag.String("queue-dir").pipe(
  Flag.withDescription("The queue directory (default: QUEUE_DIR, then ./queue)"),
  Flag.optional
)
const nameArgument = Argument.String("name").pipe(Argument.withDescription("The task file name, with or without .md"))

/** The store for a one-shot command: the flag's directory, else the configured one. */
const storeFor = (queueDir: Option.Option<string>) =>
  Layer.unwrap(Effect.gen(function*() {
    const root = Option.isSome(queueDir) ? queueDir.value : (yield* Config).queueDir
    return FsTaskStoreLayer({ root: resolve(root) })
  }))

/** Runs `finish` on an active task; a name that is not active gets an error saying where it is instead. */
const finishActive = <A, E, R>(name: string, finish: (name: TaskName) => Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const taskName = yield* Option.match(taskNameFrom(name), {
      onNone: () => Effect.fail(new TaskCommandError({ message: `'${name}' is not a task file name` })),
      onSome: Effect.succeed
    })
    const store = yield* TaskStore
    const active = yield* store.list("active")
    if (!active.includes(taskName)) {
      const elsewhere: Array<string> = []
      for (const stage of Stages) if ((yield* store.list(stage)).includes(taskName)) elsewhere.push(`${stage}/`)
      return yield* new TaskCommandError({
        message: `no active task '${taskName}'${elsewhere.length > 0 ? ` (it is in ${elsewhere.join(", ")})` : ""}; nothing changed`
      })
    }
    return yield* finish(taskName)
  })

const doneCommand = Command.make("done", {
  name: nameArgument,
  queueDir: queueDirFlag,
  summary: Flag.String("summary").pipe(Flag.withDescription("A line for the footer"), Flag.optional)
}, ({ name, queueDir, summary }) =>
  finishActive(name, (taskName) =>
    finishLocalTask(taskName, { _tag: "Done", ...Option.match(summary, { onNone: () => ({}), onSome: (s) => ({ summary: s }) }) })
  ).pipe(
    Effect.andThen((task) => Console.log(`${task.name} done`)),
    Effect.provide(storeFor(queueDir))
  )).pipe(Command.withDescription("Mark an active task done: it moves to done/ with a footer"))

const failCommand = Command.make("fail", {
  name: nameArgument,
  queueDir: queueDirFlag,
  reason: Flag.String("reason").pipe(Flag.withDescription("Why the task failed (goes into the footer)"))
}, ({ name, queueDir, reason }) =>
  finishActive(name, (taskName) => finishLocalTask(taskName, { _tag: "Failed", reason })).pipe(
    Effect.andThen((task) => Console.log(`${task.name} failed`)),
    Effect.provide(storeFor(queueDir))
  )).pipe(Command.withDescription("Mark an active task failed: it moves to failed/ with the reason"))

export const taskCommand = Command.make("task").pipe(
  Command.withDescription("Finish a task (for agents and Claude Code hooks)"),
  Command.withSubcommands([doneCommand, failCommand])
)

export const claudeFailover = Command.make("claude-failover", {}, () => daemon).pipe(
  Command.withDescription("Route a queue of agent tasks to Claude Code sessions in tmux or to secutools"),
  Command.withSharedFlags({
    config: Flag.String("config").pipe(
      Flag.withDescription("A YAML file of settings (env names in lower case, e.g. queue_dir); the env wins"),
      Flag.optional
    )
  }),
  Command.withSubcommands([configCommand, taskCommand, statusCommand]),
  Command.provide(({ config }) => Config.layerWithFile(config))
)
