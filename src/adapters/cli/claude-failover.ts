/**
 * `claude-failover`: the daemon (no subcommand) and the subcommands people and hooks use.
 * Easy to get wrong: `task done|fail` runs from an agent's shell, in any directory and without the daemon's
 * environment, so it takes the queue directory as a flag (see task-commands.ts).
 */
import { Console, Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { Config, describeConfig } from "../../config.ts"
import { daemon } from "../../daemon.ts"
import { hooksCommand } from "./hooks-commands.ts"
import { paneCommand } from "./pane-classify.ts"
import { statusCommand } from "./status.ts"
import { taskCommand } from "./task-commands.ts"

const printConfig = Effect.gen(function*() {
  yield* Console.log(JSON.stringify(describeConfig(yield* Config), null, 2))
})

export const configCommand = Command.make("config", {}, () => printConfig).pipe(
  Command.withDescription("Print the resolved configuration (env over defaults), secrets redacted")
)

export const claudeFailover = Command.make("claude-failover", {}, () => daemon).pipe(
  Command.withDescription("Route a queue of agent tasks to Claude Code sessions in tmux or to secutools"),
  Command.withSharedFlags({
    config: Flag.String("config").pipe(
      Flag.withDescription("A YAML file of settings (env names in lower case, e.g. queue_dir); the env wins"),
      Flag.optional
    )
  }),
  Command.withSubcommands([configCommand, taskCommand, statusCommand, paneCommand, hooksCommand]),
  Command.provide(({ config }) => Config.layerWithFile(config))
)
