/**
 * A task file: YAML frontmatter (known fields typed, unknown ones kept in order) and a Markdown body.
 * Easy to get wrong: the body is kept byte-for-byte and a field of the wrong type is an error, never "absent".
 */
import { DateTime, Option, Order, Result, Schema } from "effect"
import { isMap, isNode, isScalar, LineCounter, parseDocument, stringify } from "yaml"

/** A queue file name such as `fix-login.md`: no directories, not hidden, ends in `.md`. */
export const TaskName = Schema.String.pipe(
  Schema.check(Schema.isPattern(/^(?!\.)[^/\\\0]+\.md$/)),
  Schema.brand("TaskName")
)
export type TaskName = typeof TaskName.Type

/** `fix-login` and `fix-login.md` name the same task; anything else that is not a plain file name is refused. */
export const taskNameFrom = (input: string): Option.Option<TaskName> => {
  const withExtension = input.endsWith(".md") ? input : `${input}.md`
  return Schema.decodeUnknownOption(TaskName)(withExtension)
}

export const TaskId = Schema.NonEmptyString.pipe(Schema.brand("TaskId"))
export type TaskId = typeof TaskId.Type

export const TaskStates = ["pending", "assigned", "delegated_to_secutools", "done", "failed"] as const
export const TaskState = Schema.Literals(TaskStates)
export type TaskState = typeof TaskState.Type

/** An instant as an ISO-8601 string; kept as written so a rewrite does not reformat it. */
const Timestamp = Schema.String.pipe(
  Schema.check(Schema.makeFilter((s: string) => Option.isSome(DateTime.make(s)) || "Expected an ISO-8601 date-time"))
)
const NonNegativeInt = Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(0)))
const NonNegativeFinite = Schema.Finite.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(0)))

/** The frontmatter fields the daemon understands, in the order it writes new ones. */
export const TaskFields = Schema.Struct({
  id: Schema.optionalKey(TaskId),
  title: Schema.optionalKey(Schema.String),
  priority: Schema.optionalKey(Schema.Int),
  preferred_ai: Schema.optionalKey(Schema.String),
  allow_delegation: Schema.optionalKey(Schema.Boolean),
  complexity_hint: Schema.optionalKey(Schema.String),
  needs_claude_code: Schema.optionalKey(Schema.Boolean),
  created: Schema.optionalKey(Timestamp),
  state: Schema.optionalKey(TaskState),
  session: Schema.optionalKey(Schema.String),
  assigned_at: Schema.optionalKey(Timestamp),
  /** Set once the session accepted the typed prompt; without it, an assignment was never typed. */
  started_at: Schema.optionalKey(Timestamp),
  job_id: Schema.optionalKey(Schema.String),
  provider: Schema.optionalKey(Schema.String),
  cost_usd: Schema.optionalKey(NonNegativeFinite),
  attempts: Schema.optionalKey(NonNegativeInt),
  finished_at: Schema.optionalKey(Timestamp),
  last_failover: Schema.optionalKey(Schema.String)
})
export type TaskFields = typeof TaskFields.Type
export type TaskField = keyof TaskFields

const knownFields = Object.keys(TaskFields.fields) as ReadonlyArray<TaskField>
const isKnownField = (key: string): key is TaskField => Object.hasOwn(TaskFields.fields, key)

export interface Task {
  readonly name: TaskName
  readonly fields: TaskFields
  /** Frontmatter fields the daemon does not know, with their values, in `order`. */
  readonly extra: ReadonlyArray<readonly [string, unknown]>
  /** Every frontmatter key in the order it is written. */
  readonly order: ReadonlyArray<string>
  readonly body: string
}

export const DEFAULT_PRIORITY = 100

export class TaskParseError extends Schema.TaggedError<TaskParseError>()("TaskParseError", {
  file: Schema.String,
  field: Schema.optionalKey(Schema.String),
  line: Schema.optionalKey(Schema.Number),
  column: Schema.optionalKey(Schema.Number),
  problem: Schema.String
}) {
  override get message(): string {
    const where = this.line === undefined
      ? ""
      : this.column === undefined
      ? `:${this.line}`
      : `:${this.line}:${this.column}`
    const field = this.field === undefined ? "" : ` field '${this.field}':`
    return `${this.file}${where}:${field} ${this.problem}`
  }
}

/** Builds a task with `order` holding exactly the keys that are set: known fields first where new. */
export const makeTask = (input: {
  readonly name: TaskName
  readonly fields?: TaskFields
  readonly extra?: ReadonlyArray<readonly [string, unknown]>
  readonly order?: ReadonlyArray<string>
  readonly body?: string
}): Task => {
  const fields = input.fields ?? {}
  const extra = input.extra ?? []
  const present = new Set<string>([...knownFields.filter((key) => fields[key] !== undefined), ...extra.map(([k]) => k)])
  const kept = (input.order ?? []).filter((key) => present.has(key))
  const order = [...kept, ...[...present].filter((key) => !kept.includes(key))]
  const position = (key: string) => order.indexOf(key)
  const sortedExtra = [...extra].sort(([a], [b]) => position(a) - position(b))
  return { name: input.name, fields, extra: sortedExtra, order, body: input.body ?? "" }
}

/** Sets (or, with `undefined`, removes) known fields; unknown fields and the body are untouched. */
export const updateFields = (task: Task, patch: { readonly [K in TaskField]?: TaskFields[K] | undefined }): Task => {
  const fields: Record<string, unknown> = { ...task.fields }
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) delete fields[key]
    else fields[key] = value
  }
  return makeTask({ ...task, fields: fields as TaskFields })
}

export const appendToBody = (task: Task, text: string): Task => ({ ...task, body: task.body + text })

const OPENING = /^\uFEFF?---[ \t]*\r?\n/
const CLOSING = /^(?:---|\.\.\.)[ \t]*\r?$/m

const describe = (value: unknown): string =>
  value === null ? "an empty value" : `${typeof value} ${JSON.stringify(value)}`

/** Parses a task file. Errors name the file, the field and, where YAML gives them, line and column. */
export const parseTask = (name: string, text: string): Result.Result<Task, TaskParseError> => {
  const fail = (problem: string, at: { field?: string; line?: number; column?: number } = {}) =>
    Result.fail(new TaskParseError({ file: name, problem, ...at }))

  const taskName = Schema.decodeUnknownOption(TaskName)(name)
  if (Option.isNone(taskName)) return fail("not a task file name (expected NAME.md, not hidden, no directories)")

  const opening = OPENING.exec(text)
  if (opening === null) return Result.succeed(makeTask({ name: taskName.value, body: text }))

  const rest = text.slice(opening[0].length)
  const closing = CLOSING.exec(rest)
  if (closing === null) return fail("frontmatter opened on line 1 is never closed by a '---' line", { line: 1 })

  const source = rest.slice(0, closing.index)
  const afterClosing = closing.index + closing[0].length
  const body = rest.slice(rest[afterClosing] === "\n" ? afterClosing + 1 : afterClosing)

  // Line numbers are reported in the file, which has the opening '---' above the YAML.
  const lineCounter = new LineCounter()
  const document = parseDocument(source, { lineCounter, uniqueKeys: true, prettyErrors: false })
  const lineOf = (offset: number | undefined) =>
    offset === undefined ? {} : (({ line, col }) => ({ line: line + 1, column: col }))(lineCounter.linePos(offset))

  const yamlError = document.errors[0]
  if (yamlError !== undefined) {
    return fail(`invalid YAML: ${yamlError.message.split("\n")[0]}`, lineOf(yamlError.pos[0]))
  }
  const contents = document.contents
  if (contents === null || (isScalar(contents) && contents.value === null)) {
    return Result.succeed(makeTask({ name: taskName.value, body }))
  }
  if (!isMap(contents)) return fail("frontmatter must be a mapping of 'field: value' lines", lineOf(contents.range?.[0]))

  const fields: Record<string, unknown> = {}
  const extra: Array<readonly [string, unknown]> = []
  const order: Array<string> = []
  for (const pair of contents.items) {
    const keyNode = pair.key
    const key = isScalar(keyNode) ? String(keyNode.value) : undefined
    const at = lineOf(isScalar(keyNode) ? keyNode.range?.[0] : undefined)
    if (key === undefined) return fail("frontmatter keys must be plain names", at)
    const value: unknown = isNode(pair.value) ? pair.value.toJS(document) : null
    order.push(key)
    if (!isKnownField(key)) {
      extra.push([key, value])
      continue
    }
    const decoded = decodeField(name, key, value, at)
    if (Result.isFailure(decoded)) return Result.fail(decoded.failure)
    fields[key] = decoded.success
  }
  return Result.succeed(makeTask({ name: taskName.value, fields: fields as TaskFields, extra, order, body }))
}

const decodeField = (
  file: string,
  field: TaskField,
  value: unknown,
  at: { line?: number; column?: number }
): Result.Result<unknown, TaskParseError> =>
  Result.mapError(
    Schema.decodeUnknownResult(TaskFields.fields[field])(value),
    (error) =>
      new TaskParseError({
        file,
        field,
        problem: `${error.message.split("\n")[0] ?? "invalid value"}, got ${describe(value)}`,
        ...at
      })
  )

/**
 * Overrides known fields with `key=value` pairs, each value read as a YAML scalar (`true`, `3`, `gemini`).
 * An unknown key is an error, so a typo cannot silently change nothing.
 */
export const withFieldPairs = (
  task: Task,
  pairs: Readonly<Record<string, string>>,
  source: string
): Result.Result<Task, TaskParseError> => {
  const patch: Record<string, unknown> = {}
  for (const [key, raw] of Object.entries(pairs)) {
    if (!isKnownField(key)) {
      return Result.fail(new TaskParseError({ file: source, field: key, problem: `unknown field (known: ${knownFields.join(", ")})` }))
    }
    const decoded = decodeField(source, key, parseScalar(raw), {})
    if (Result.isFailure(decoded)) return Result.fail(decoded.failure)
    patch[key] = decoded.success
  }
  return Result.succeed(updateFields(task, patch as Partial<TaskFields>))
}

const parseScalar = (raw: string): unknown => {
  const document = parseDocument(raw)
  return document.errors.length > 0 ? raw : document.toJS()
}


/** Writes the task back: keys in `order`, unknown fields as they were, the body byte-for-byte. */
export const renderTask = (task: Task): string => {
  const extra = new Map(task.extra)
  // A Map, not an object: objects put integer-like keys ("0") first and treat "__proto__" specially.
  const frontmatter = new Map<string, unknown>(
    task.order.map((key) => [key, isKnownField(key) ? task.fields[key] : extra.get(key)])
  )
  // A file that had no frontmatter stays without one, unless its body would then read as frontmatter.
  if (task.order.length === 0 && !OPENING.test(task.body)) return task.body
  const yaml = task.order.length === 0 ? "" : stringify(frontmatter, { lineWidth: 0 })
  return `---\n${yaml}---\n${task.body}`
}

export const priorityOf = (task: Task): number => task.fields.priority ?? DEFAULT_PRIORITY

/** What orders the queue: priority, then created (the caller supplies the file's mtime as fallback), then name. */
export interface QueueKey {
  readonly priority: number
  readonly createdMs: number
  readonly name: TaskName
}

export const queueKey = (task: Task, mtimeMs: number): QueueKey => {
  const created = task.fields.created === undefined ? Option.none() : DateTime.make(task.fields.created)
  return {
    priority: priorityOf(task),
    createdMs: Option.match(created, { onNone: () => mtimeMs, onSome: DateTime.toEpochMillis }),
    name: task.name
  }
}

export const QueueOrder: Order.Order<QueueKey> = Order.combineAll([
  Order.mapInput(Order.Number, (key: QueueKey) => key.priority),
  Order.mapInput(Order.Number, (key: QueueKey) => key.createdMs),
  Order.mapInput(Order.String, (key: QueueKey) => key.name)
])
