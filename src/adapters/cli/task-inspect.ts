/**
 * `claude-failover task list` and `task show NAME`: the queue directory as a person reads it, straight from the files.
 * Easy to get wrong: this only reads (no lock, no daemon), so it may catch a task mid-move and see it in two stages
 * or not at all; and a file that does not parse is still listed, with its parse error, never skipped.
 */
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
import { readFooter, sessionOnHost } from "../../domain/footer.ts"
import {
  type HistoryEntry,
  parseTask,
  type Task,
  TaskFields,
  taskNameFrom,
  type TaskParseError
} from "../../domain/task.ts"
import { type Stage, Stages, type StoredTask, TaskStore } from "../../ports/task-store.ts"
import { queueLabel, queueStoreLayer } from "../queue-store.ts"
import { Config } from "../../config.ts"
import { queueDirFlag, queueRootOf } from "./queue-dir.ts"

/** The queue `list` and `show` read (see `queueStoreLayer`), and how problems name it. */
const queueToInspect = Effect.fn("queueToInspect")(function*(root: string) {
  const config = yield* Config
  const context = yield* Layer.build(queueStoreLayer(root, config)).pipe(
    Effect.mapError((error) => new TaskShowError({ message: `${queueLabel(root, config)}: ${error.message}` }))
  )
  return {
    store: Context.get(context, TaskStore),
    where: config.queueBackend === "postgres" ? "the shared queue's " : `${root}/`,
    label: queueLabel(root, config)
  }
})

/** Why `task show` could not show the task; exit 1. */
export class TaskShowError extends Data.TaggedError("TaskShowError")<{ readonly message: string }> {}

/** A task file as read for listing: parsed, or why it does not parse (or cannot be read). */
type Inspected =
  | { readonly _tag: "Parsed"; readonly stage: Stage; readonly task: Task }
  | { readonly _tag: "Broken"; readonly stage: Stage; readonly name: string; readonly problem: string }

/** `where` names the queue in problems: the full path for `show` (to open the file), "" for `list` (stage/name). */
const readInspected = (store: TaskStore["Service"], where: string, stage: Stage, name: Task["name"]) =>
  store.read(stage, name).pipe(
    Effect.map((stored: StoredTask): Inspected =>
      Result.match(parseTask(name, stored.text), {
        onSuccess: (task) => ({ _tag: "Parsed", stage, task }),
        onFailure: (error) => ({ _tag: "Broken", stage, name, problem: parseProblem(where, stage, error) })
      })
    ),
    Effect.flatMap((item) => withJobOfMarker(store, item)),
    Effect.catchTags({
      Unreadable: (error): Effect.Effect<Inspected> =>
        Effect.succeed({ _tag: "Broken", stage, name, problem: `${where}${error.message}` }),
      // Moved or removed between the directory listing and the read (the daemon is at work): no longer here.
      TaskNotFound: () => Effect.succeed(undefined)
    })
  )

/** A delegated task's job id is in its marker until the job ends (the file learns it then): shown from there. */
const withJobOfMarker = (store: TaskStore["Service"], item: Inspected): Effect.Effect<Inspected> =>
  item._tag !== "Parsed" || item.stage !== "pending" || item.task.fields.state !== "delegated_to_secutools" ||
    item.task.fields.job_id !== undefined
    ? Effect.succeed(item)
    : store.readMarker(item.task.name).pipe(
      Effect.map((marker) =>
        marker._tag === "Some" && marker.value.job_id !== null
          ? { ...item, task: { ...item.task, fields: { ...item.task.fields, job_id: marker.value.job_id } } }
          : item
      ),
      Effect.orElseSucceed(() => item)
    )

/** The parse error with the file's stage in front: `active/x.md:3:1: field …`. */
const parseProblem = (where: string, stage: Stage, error: TaskParseError): string =>
  error.message.startsWith(error.file) ? `${where}${stage}/${error.message}` : error.message

/** Why a finished task ended as it did: its failed footer's reason, else its last history entry's. */
const finishReason = (task: Task): string | undefined =>
  readFooter(task.body)?.reason ?? task.fields.history?.at(-1)?.reason

/** One row of `task list`; the JSON array holds these, with null where there is nothing to say. */
export interface TaskRow {
  readonly stage: Stage
  readonly name: string
  readonly state: string | null
  readonly title: string | null
  readonly session: string | null
  readonly provider: string | null
  readonly job_id: string | null
  readonly attempts: number
  readonly finished_at: string | null
  readonly reason: string | null
  /** Set when the file does not parse or cannot be read: the other fields are then unknown. */
  readonly error: string | null
}

const finished = (stage: Stage) => stage === "done" || stage === "failed"

export const rowOf = (item: Inspected): TaskRow => {
  if (item._tag === "Broken") {
    return {
      stage: item.stage,
      name: item.name,
      state: null,
      title: null,
      session: null,
      provider: null,
      job_id: null,
      attempts: 0,
      finished_at: null,
      reason: null,
      error: item.problem
    }
  }
  const { fields } = item.task
  return {
    stage: item.stage,
    name: item.task.name,
    state: fields.state ?? null,
    title: fields.title ?? null,
    session: fields.session === undefined ? null : sessionOnHost(fields.session, fields.host),
    provider: fields.provider ?? null,
    job_id: fields.job_id ?? null,
    attempts: fields.attempts ?? 0,
    finished_at: finished(item.stage) ? fields.finished_at ?? null : null,
    reason: finished(item.stage) ? finishReason(item.task) ?? null : null,
    error: null
  }
}

/** Names come from file names and values from files anyone can write: a control character prints as `?`. */
const printable = (text: string): string => text.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?")

const REASON_WIDTH = 80

export const renderTaskTable = (rows: ReadonlyArray<TaskRow>): string => {
  if (rows.length === 0) return "no tasks"
  const headers = ["STAGE", "NAME", "STATE", "SESSION/PROVIDER", "ATTEMPTS", "FINISHED", "REASON"]
  const cells = rows.map((row) =>
    [
      row.stage,
      row.name,
      row.error === null ? row.state ?? "-" : "unreadable",
      row.session ??
        (row.provider === null ? "-" : row.job_id === null ? row.provider : `${row.provider} ${row.job_id}`),
      String(row.attempts),
      row.finished_at ?? "-",
      (row.error ?? row.reason ?? "-").slice(0, REASON_WIDTH)
    ].map(printable)
  )
  const all = [headers, ...cells]
  const widths = headers.map((_, column) => Math.max(...all.map((row) => (row[column] ?? "").length)))
  return all.map((row) =>
    row.map((cell, column) => column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)).join("  ")
  ).join("\n")
}

const listStage = (store: TaskStore["Service"], stage: Stage) =>
  store.list(stage).pipe(
    Effect.flatMap((names) => Effect.forEach(names, (name) => readInspected(store, "", stage, name))),
    Effect.map((items) => items.filter((item) => item !== undefined))
  )

export const listCommand = Command.make(
  "list",
  {
    stage: Flag.Literals("stage", Stages).pipe(Flag.withDescription("Only this stage's tasks"), Flag.optional),
    json: Flag.Boolean("json").pipe(
      Flag.withDescription(
        "Print a JSON array of {stage,name,state,title,session,provider,job_id,attempts,finished_at,reason,error}"
      ),
      Flag.withDefault(false)
    ),
    queueDir: queueDirFlag
  },
  Effect.fn("task.list")(function*({ json, queueDir, stage }) {
    const { store } = yield* queueToInspect(yield* queueRootOf(queueDir))
    const stages = Option.match(stage, { onNone: () => Stages, onSome: (only) => [only] })
    const rows = (yield* Effect.forEach(stages, (s) => listStage(store, s))).flat().map(rowOf)
    yield* Console.log(json ? JSON.stringify(rows, null, 2) : renderTaskTable(rows))
  }, Effect.scoped)
).pipe(
  Command.withDescription(
    "List the queue's tasks read from its files (no daemon needed): stage, state, session or provider, attempts, " +
      "and for done/failed when and why"
  )
)

const isKnownField = (key: string): key is keyof TaskFields => Object.hasOwn(TaskFields.fields, key)

/** The frontmatter in the file's order, known fields and unknown ones alike; history is shown on its own. */
const frontmatterOf = (task: Task): Record<string, unknown> =>
  Object.fromEntries(
    task.order
      .filter((key) => key !== "history")
      .map((key) => [key, isKnownField(key) ? task.fields[key] : task.extra.find(([k]) => k === key)?.[1]])
  )

const valueText = (value: unknown): string => typeof value === "string" ? value : JSON.stringify(value)

/** `2026-11-24T10:00:00Z requeued (usage_limit) run r1 on claude-1: session claude-1 hit its usage limit` */
const historyLine = (entry: HistoryEntry): string =>
  [
    entry.at,
    entry.event,
    ...(entry.cause === undefined ? [] : [`(${entry.cause})`]),
    ...(entry.run === undefined ? [] : [`run ${entry.run}`]),
    ...(entry.session === undefined ? [] : [`on ${entry.session}`]),
    ...(entry.host === undefined ? [] : [`of ${entry.host}`]),
    ...(entry.provider === undefined ? [] : [`provider ${entry.provider}`]),
    ...(entry.job_id === undefined ? [] : [`job ${entry.job_id}`])
  ].join(" ") + `: ${entry.reason}`

export const renderTask = (stage: Stage, task: Task): string => {
  const fields = Object.entries(frontmatterOf(task))
  const history = task.fields.history ?? []
  return [
    `${task.name} (${stage}/)`,
    "",
    "Fields",
    ...(fields.length === 0 ? ["  none"] : fields.map(([key, value]) => printable(`  ${key}: ${valueText(value)}`))),
    "",
    "History",
    ...(history.length === 0 ? ["  none"] : history.map((entry) => printable(`  ${historyLine(entry)}`))),
    "",
    "Body",
    // The body is shown as written: it is the operator's own text (and the agent's footer), meant to be read.
    task.body.replace(/\n$/, "")
  ].join("\n")
}

export const showCommand = Command.make(
  "show",
  {
    name: Argument.String("name").pipe(Argument.withDescription("The task file name, with or without .md")),
    json: Flag.Boolean("json").pipe(
      Flag.withDescription("Print {name,stage,fields,history,body} as JSON"),
      Flag.withDefault(false)
    ),
    raw: Flag.Boolean("raw").pipe(
      Flag.withDescription("Print the task's Markdown exactly as stored (frontmatter, body and footer)"),
      Flag.withDefault(false)
    ),
    queueDir: queueDirFlag
  },
  Effect.fn("task.show")(function*({ json, name, queueDir, raw }) {
    const root = yield* queueRootOf(queueDir)
    const taskName = yield* Option.match(taskNameFrom(name), {
      onNone: () => Effect.fail(new TaskShowError({ message: `'${name}' is not a task file name` })),
      onSome: Effect.succeed
    })
    const { label, store, where } = yield* queueToInspect(root)
    const found = (yield* Effect.forEach(Stages, (stage) => readInspected(store, where, stage, taskName)))
      .filter((item) => item !== undefined)
    const first = found[0]
    if (first === undefined) {
      return yield* new TaskShowError({
        message: `no task '${taskName}' in ${label} (pending/, active/, done/, failed/)`
      })
    }
    if (found.length > 1) {
      // Only a move cut short leaves one task in two stages; the daemon's recovery settles it at its next start.
      yield* Console.error(
        `note: ${taskName} is in ${found.map((item) => `${item.stage}/`).join(" and ")}; showing ${first.stage}/`
      )
    }
    // As stored, even when it does not parse: on a shared queue there is no file to open instead.
    if (raw) {
      const stored = yield* store.read(first.stage, taskName).pipe(
        Effect.mapError((error) => new TaskShowError({ message: `${where}${error.message}` }))
      )
      return yield* Effect.sync(() => process.stdout.write(stored.text))
    }
    if (first._tag === "Broken") return yield* new TaskShowError({ message: first.problem })
    yield* Console.log(
      json
        ? JSON.stringify(
          {
            name: first.task.name,
            stage: first.stage,
            fields: frontmatterOf(first.task),
            history: first.task.fields.history ?? [],
            body: first.task.body
          },
          null,
          2
        )
        : renderTask(first.stage, first.task)
    )
  }, Effect.scoped)
).pipe(Command.withDescription("Show one task read from its file: stage, frontmatter fields, history and body"))
