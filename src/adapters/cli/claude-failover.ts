/**
 * `claude-failover`: the daemon (no subcommand) and the subcommands people and hooks use.
 * Easy to get wrong: `task done|fail` runs from an agent's shell, in any directory and without the daemon's
 * environment, so it takes the queue directory as a flag (see task-commands.ts).
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Command from "effect/cli/Command"
import { Config, CONFIG_ENV, ConfigSource, defaultConfigFile, describeConfig } from "../../config.ts"
import { configFlag } from "./config-flag.ts"
import { hooksCommand } from "./hooks-commands.ts"
import { paneCommand } from "./pane-classify.ts"
import { statusCommand } from "./status.ts"
import { taskCommand } from "./task-commands.ts"

/** The settings on stdout (JSON); which file they came from on stderr, for people. */
const printConfig = Effect.gen(function*() {
  const file = yield* ConfigSource
  yield* Console.error(Option.match(file, {
    onNone: () =>
      `no configuration file (looked for --config, ${CONFIG_ENV}, ${
        defaultConfigFile(process.env) ?? "~/.config/claude-failover/config.yaml"
      }); env and defaults only`,
    onSome: (path) => `configuration file: ${path} (env values win over it)`
  }))
  yield* Console.log(JSON.stringify(describeConfig(yield* Config), null, 2))
})

export const configCommand = Command.make("config", {}, () => printConfig).pipe(
  Command.withDescription("Print the settings in effect (env over the config file over defaults), secrets redacted")
)

/** Effect prints a description as one paragraph: later lines are indented here to line up under the first. */
const ROOT_DESCRIPTION = [
  "Route a queue of agent tasks to Claude Code sessions in tmux or to secutools.",
  "With no subcommand it runs the daemon in the foreground on QUEUE_DIR (default ./queue) until Ctrl-C or SIGTERM.",
  "Every setting is an env variable (CLAUDE_FAILOVER_<NAME> or <NAME>) or a key of the config file (--config, else",
  "CLAUDE_FAILOVER_CONFIG, else ~/.config/claude-failover/config.yaml); the README's \"Configuration\" lists them",
  "and `claude-failover config` prints the values in effect."
].join("\n  ")

/** Loaded only to run it: the commands an agent runs once per task (`task done`) start faster without it. */
const runDaemon = Effect.flatMap(Effect.promise(() => import("../../daemon.ts")), (module) => module.daemon)

export const claudeFailover = Command.make("claude-failover", {}, () => runDaemon).pipe(
  Command.withDescription(ROOT_DESCRIPTION),
  Command.withSharedFlags({ config: configFlag }),
  Command.withSubcommands([configCommand, taskCommand, statusCommand, paneCommand, hooksCommand]),
  Command.provide(({ config }) => Config.layerWithFile(config))
)
