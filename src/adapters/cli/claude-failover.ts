/**
 * `claude-failover`: the daemon (no subcommand) and the subcommands people and hooks use.
 * Easy to get wrong: `config` must show the resolved values without ever printing a secret.
 */
import { Console, Data, Effect } from "effect"
import { Command } from "effect/cli"
import { Config, describeConfig } from "../../config.ts"

export class NotYetAvailable extends Data.TaggedError("NotYetAvailable")<{ readonly message: string }> {}

const printConfig = Effect.gen(function*() {
  yield* Console.log(JSON.stringify(describeConfig(yield* Config), null, 2))
})

export const configCommand = Command.make("config", {}, () => printConfig).pipe(
  Command.withDescription("Print the resolved configuration (env over file over defaults), secrets redacted")
)

export const claudeFailover = Command.make("claude-failover", {}, () =>
  Effect.gen(function*() {
    yield* printConfig
    return yield* new NotYetAvailable({
      message: "the dispatcher is not built yet: this version only resolves and prints its configuration"
    })
  })).pipe(
    Command.withDescription("Route a queue of agent tasks to Claude Code sessions in tmux or to secutools"),
    Command.withSubcommands([configCommand]),
    Command.provide(Config.layer)
  )
