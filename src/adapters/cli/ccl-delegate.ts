/**
 * `ccl-delegate`: the delegation contract for shell scripts. JSON on stdout, human errors on stderr.
 * Easy to get wrong: delegation counts as enabled only when SECUTOOLS_API_KEY is set, exactly as in the daemon.
 */
import { Console, Data, Effect, FileSystem, Option, Path } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { Config, routingSettings } from "../../config.ts"
import { decide } from "../../domain/routing.ts"
import { makeTask, parseTask, type Task, TaskName, withFieldPairs } from "../../domain/task.ts"

const FIELDS_SOURCE = "--field"

/** Input the command cannot use: an unreadable file, or nothing to decide on. */
export class InputError extends Data.TaggedError("InputError")<{ readonly message: string }> {}

/** The task to decide for: the file if one is given, then each `--field` on top. */
const loadTask = Effect.fn("ccl-delegate.loadTask")(function*(
  file: Option.Option<string>,
  fields: Option.Option<Record<string, string>>
) {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const base: Task = yield* Option.match(file, {
    onNone: () => Effect.succeed(makeTask({ name: TaskName.make("fields.md") })),
    onSome: (filePath) =>
      fs.readFileString(filePath).pipe(
        Effect.mapError((error) => new InputError({ message: `${filePath}: cannot read: ${error.message}` })),
        Effect.flatMap((text) => Effect.fromResult(parseTask(path.basename(filePath), text)))
      )
  })
  return yield* Option.match(fields, {
    onNone: () => Effect.succeed(base),
    onSome: (pairs) => Effect.fromResult(withFieldPairs(base, pairs, FIELDS_SOURCE))
  })
})

export const decideCommand = Command.make("decide", {
  file: Argument.String("file").pipe(
    Argument.withDescription("A task file (Markdown with YAML frontmatter)"),
    Argument.optional
  ),
  fields: Flag.KeyValuePair("field").pipe(
    Flag.withDescription("A frontmatter field as key=value (repeatable); overrides the file's"),
    Flag.optional
  ),
  localUnavailable: Flag.Boolean("local-unavailable").pipe(
    Flag.withDescription("Decide as if every local session were usage-limited or dead (routing rule 7)"),
    Flag.withDefault(false)
  )
}, Effect.fn("ccl-delegate.decide")(function*({ fields, file, localUnavailable }) {
  if (Option.isNone(file) && Option.isNone(fields)) {
    return yield* new InputError({ message: "give a task file, --field key=value pairs, or both" })
  }
  const task = yield* loadTask(file, fields)
  const config = yield* Config
  const decision = decide(task.fields, { ...routingSettings(config), localAvailable: !localUnavailable })
  yield* Console.log(JSON.stringify(decision))
})).pipe(
  Command.withDescription("Print where a task would run: {\"route\",\"provider\"?,\"reason\"}"),
  Command.provide(Config.layer)
)

export const cclDelegate = Command.make("ccl-delegate").pipe(
  Command.withDescription("Delegate agent tasks to secutools from shell scripts"),
  Command.withSubcommands([decideCommand])
)
