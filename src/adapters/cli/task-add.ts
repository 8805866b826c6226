/**
 * `claude-failover task add FILE [--name NAME]`: puts a task file into the queue's pending/ — the directory's, or with
 * QUEUE_BACKEND=postgres the shared queue's (a row, on any host, no daemon needed).
 * Easy to get wrong: the file is checked as the daemon would read it (size, UTF-8, frontmatter) before anything is
 * written, so a bad file is refused with its problem and nothing lands in the queue; and a name already used by any
 * task (in any stage) is never overwritten: the task is added under a free one (`fix-2.md`), which is printed.
 */
import { readFileSync, statSync } from "node:fs"
import { basename, resolve } from "node:path"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Argument from "effect/cli/Argument"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import { Config } from "../../config.ts"
import { parseTaskBytes, type TaskName, taskNameFrom } from "../../domain/task.ts"
import { TaskStore } from "../../ports/task-store.ts"
import { freeName, nameInUse } from "../../services/task-moves.ts"
import { queueLabel, queueStoreLayer } from "../queue-store.ts"
import { queueDirFlag, queueRootOf } from "./queue-dir.ts"

/** Why the task was not added (nothing was written); exit 1. */
export class TaskAddError extends Data.TaggedError("TaskAddError")<{ readonly message: string }> {}

/** Tries at a free name before giving up: each try loses only to a task added under that very name meanwhile. */
const NAME_TRIES = 5

/** The file's bytes, refused when it is not a regular file or is larger than the queue takes. */
const readTaskFile = (path: string, maxBytes: number) =>
  Effect.try({
    try: (): Result.Result<Uint8Array, string> => {
      const stat = statSync(path)
      if (!stat.isFile()) return Result.fail("is not a regular file")
      if (stat.size > maxBytes) {
        return Result.fail(`is ${stat.size} bytes; task files may have at most ${maxBytes} (MAX_TASK_SIZE)`)
      }
      return Result.succeed(readFileSync(path))
    },
    catch: (error) =>
      new TaskAddError({ message: `${path}: ${error instanceof Error ? error.message : String(error)}` })
  }).pipe(
    Effect.flatMap((read) =>
      Result.isFailure(read)
        ? Effect.fail(new TaskAddError({ message: `${path} ${read.failure}` }))
        : Effect.succeed(read.success)
    )
  )

/** A name no task uses in any stage (nor a marker): `name` itself, or the next free one. */
const unusedName = Effect.fn("unusedName")(function*(name: TaskName) {
  return (yield* nameInUse(name)) ? yield* freeName(name) : name
})

export const addCommand = Command.make(
  "add",
  {
    file: Argument.String("file").pipe(Argument.withDescription("The task file (Markdown, optional frontmatter)")),
    name: Flag.String("name").pipe(
      Flag.withDescription("The task's name in the queue (default: the file's name), with or without .md"),
      Flag.optional
    ),
    queueDir: queueDirFlag
  },
  Effect.fn("task.add")(function*({ file, name, queueDir }) {
    const root = yield* queueRootOf(queueDir)
    const config = yield* Config
    const path = resolve(file)
    const wanted = Option.getOrElse(name, () => basename(path))
    const taskName = yield* Option.match(taskNameFrom(wanted), {
      onNone: () =>
        Effect.fail(
          new TaskAddError({ message: `'${wanted}' cannot be a task's name (a file name ending in .md); use --name` })
        ),
      onSome: Effect.succeed
    })
    const bytes = yield* readTaskFile(path, config.maxTaskSize)
    // Checked as the daemon reads it: a file it would quarantine is refused here, naming the field and the problem.
    const task = yield* Result.match(parseTaskBytes(taskName, bytes), {
      onFailure: (error) => Effect.fail(new TaskAddError({ message: `${path}: ${error.message}` })),
      onSuccess: Effect.succeed
    })
    const label = queueLabel(root, config)
    const context = yield* Layer.build(queueStoreLayer(root, config)).pipe(
      Effect.mapError((error) => new TaskAddError({ message: `${label}: ${error.message}` }))
    )
    const store = Context.get(context, TaskStore)
    const text = new TextDecoder().decode(bytes)
    let added: TaskName | undefined
    for (let attempt = 0; attempt < NAME_TRIES && added === undefined; attempt++) {
      const candidate = yield* unusedName(task.name).pipe(Effect.provideService(TaskStore, store))
      added = yield* store.create("pending", candidate, text).pipe(
        Effect.as(candidate),
        Effect.catchTag("NameTaken", () => Effect.succeed(undefined))
      )
    }
    if (added === undefined) {
      return yield* new TaskAddError({ message: `${label}: no free name for ${task.name} after ${NAME_TRIES} tries` })
    }
    yield* Console.log(
      added === task.name
        ? `added ${added} to pending/ of ${label}`
        : `added as ${added} to pending/ of ${label} (${task.name} is another task's name)`
    )
  }, (effect) =>
    effect.pipe(
      Effect.catchTag("StoreError", (error) => Effect.fail(new TaskAddError({ message: error.message }))),
      Effect.scoped
    ))
).pipe(Command.withDescription(
  "Add a task file to the queue's pending/ (the shared queue's with QUEUE_BACKEND=postgres); never overwrites: a name in use gets a free one"
))
