/**
 * A task file: YAML frontmatter (known fields typed, unknown ones kept in order) and a Markdown body.
 * Easy to get wrong: the body is kept byte-for-byte, a field of the wrong type is an error (never "absent"), and
 * anyone can drop a file in the queue, so parsing is bounded and returns an error for any input instead of throwing.
 */
import * as DateTime from "effect/DateTime"
import * as Option from "effect/Option"
import * as Order from "effect/Order"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { IdlePolicies, LimitPolicies } from "./limit-policy.ts"
import {
  type Document,
  isCollection,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  stringify,
  visit
} from "yaml"

/** A task name's limit in UTF-8 bytes, so `NAME.md.delegated`, `NAME.md.error` and temporary names fit in 255. */
export const MAX_TASK_NAME_BYTES = 200

/** UTF-8 length without allocating; a lone surrogate counts as the 3 bytes of the U+FFFD it would be written as. */
const utf8Length = (text: string): number => {
  let bytes = 0
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4
  }
  return bytes
}

const isLoneSurrogate = (code: number) => code >= 0xd800 && code <= 0xdfff
/** Path separators, C0 controls (NUL, newline, …), DEL, C1 controls and lone surrogates. */
const isForbiddenInName = (code: number) =>
  code === 0x2f || code === 0x5c || code <= 0x1f || (code >= 0x7f && code <= 0x9f) || isLoneSurrogate(code)

const codePointLabel = (code: number) => `U+${code.toString(16).toUpperCase().padStart(4, "0")}`

/**
 * Why `name` cannot be a task name, or undefined when it can. A task name is a plain file name: NAME.md, at most
 * 200 bytes, not hidden, not an option, no path separators, no control characters, valid Unicode.
 */
export const taskNameProblem = (name: string): string | undefined => {
  if (!name.endsWith(".md")) return "must end in .md"
  if (name.length === ".md".length) return "must have a name before .md"
  if (name.startsWith(".")) return "must not start with '.' (hidden files are not tasks)"
  if (name.startsWith("-")) return "must not start with '-' (it would read as a command-line option)"
  let position = 0
  for (const char of name) {
    position += 1
    const code = char.codePointAt(0) ?? 0
    // Made only for a bad name: every directory listing checks every name.
    const at = () => `${codePointLabel(code)} at character ${position}`
    if (code === 0x2f || code === 0x5c) return `must not contain '${char}' (a task name is a file name, not a path)`
    if (isLoneSurrogate(code)) return `must be valid Unicode (lone surrogate ${at()})`
    if (isForbiddenInName(code)) return `must not contain control characters (${at()})`
  }
  const bytes = utf8Length(name)
  if (bytes <= MAX_TASK_NAME_BYTES) return undefined
  return `must be at most ${MAX_TASK_NAME_BYTES} bytes in UTF-8, so NAME.md.delegated and temporary names fit in 255 ` +
    `(it is ${bytes})`
}

/** A queue file name such as `fix-login.md`; see `taskNameProblem` for the rules. */
export const TaskName = Schema.String.pipe(
  Schema.check(Schema.makeFilter((name: string) => taskNameProblem(name))),
  Schema.brand("TaskName")
)
export type TaskName = typeof TaskName.Type

/** `fix-login` and `fix-login.md` name the same task; anything else that is not a plain file name is refused. */
export const taskNameFrom = (input: string): Option.Option<TaskName> => {
  const withExtension = input.endsWith(".md") ? input : `${input}.md`
  return Schema.decodeUnknownOption(TaskName)(withExtension)
}

/** cyrb53: a 53-bit string hash, enough to tell apart the few names a queue ever quarantines. */
const shortHash = (text: string): string => {
  let h1 = 0xdeadbeef
  let h2 = 0x41c6ce57
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    h1 = Math.imul(h1 ^ code, 2654435761)
    h2 = Math.imul(h2 ^ code, 1597334677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909)
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36).padStart(11, "0")
}

/**
 * A valid task name for any raw file name, so a file with an unusable name can still be moved aside and read.
 * A valid name is kept; otherwise forbidden characters become `_`, leading dots and dashes go, the rest is cut to fit,
 * and a hash of the raw name is appended, so raw names that clean up or cut to the same text still differ.
 */
export const quarantineNameFor = (raw: string): TaskName => {
  if (taskNameProblem(raw) === undefined) return TaskName.make(raw)
  const hash = shortHash(raw)
  let cleaned = ""
  for (const char of raw) cleaned += isForbiddenInName(char.codePointAt(0) ?? 0) ? "_" : char
  cleaned = cleaned.replace(/^[.-]+/, "")
  if (cleaned.endsWith(".md")) cleaned = cleaned.slice(0, -".md".length)
  const suffix = cleaned === "" ? `${hash}.md` : `-${hash}.md`
  const budget = MAX_TASK_NAME_BYTES - suffix.length
  let stem = ""
  let stemBytes = 0
  for (const char of cleaned) {
    const bytes = utf8Length(char)
    if (stemBytes + bytes > budget) break
    stem += char
    stemBytes += bytes
  }
  return TaskName.make(`${stem}${suffix}`)
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
/**
 * One line of a task's history: a run that ended without finishing, a retry, a file put right. Users read it to
 * learn why a task ran more than once; `cause` is what the attempt limit counts.
 */
export const HistoryEntry = Schema.Struct({
  at: Timestamp,
  /** requeued | retried | normalised | cancelled */
  event: Schema.String,
  /** usage_limit | session_exited | session_gone | not_accepted | stale | delegation_rejected | operator | … */
  cause: Schema.optionalKey(Schema.String),
  run: Schema.optionalKey(Schema.String),
  session: Schema.optionalKey(Schema.String),
  /** On a queue shared by several hosts: the host whose session it was. */
  host: Schema.optionalKey(Schema.String),
  provider: Schema.optionalKey(Schema.String),
  job_id: Schema.optionalKey(Schema.String),
  reason: Schema.String
})
export type HistoryEntry = typeof HistoryEntry.Type

const NonNegativeInt = Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(0)))
const AbsolutePath = Schema.String.pipe(
  Schema.check(
    Schema.makeFilter((s: string) => (s.startsWith("/") && !s.includes("\0")) || "Expected an absolute path")
  )
)
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
  /** What happens when its session hits a usage limit mid-task: requeue | wait | delegate (default LIMIT_POLICY). */
  on_limit: Schema.optionalKey(Schema.Literals(LimitPolicies)),
  /** What happens when its session's turn ends without `task done|fail`: attention | requeue (default IDLE_POLICY). */
  on_idle: Schema.optionalKey(Schema.Literals(IdlePolicies)),
  /** Where a headless run of the task works (an absolute path); default SESSIONS_CWD or the daemon's own. */
  cwd: Schema.optionalKey(AbsolutePath),
  created: Schema.optionalKey(Timestamp),
  state: Schema.optionalKey(TaskState),
  /** The current run's token: put in the completion line, so a completion from an older run is refused. */
  run: Schema.optionalKey(Schema.String),
  session: Schema.optionalKey(Schema.String),
  /** On a queue shared by several hosts: the host whose session runs it (session names repeat across hosts). */
  host: Schema.optionalKey(Schema.String),
  assigned_at: Schema.optionalKey(Timestamp),
  /** Set once the session accepted the typed prompt; without it, an assignment was never typed. */
  started_at: Schema.optionalKey(Timestamp),
  job_id: Schema.optionalKey(Schema.String),
  provider: Schema.optionalKey(Schema.String),
  cost_usd: Schema.optionalKey(NonNegativeFinite),
  /** A headless run's Claude Code session (`claude --resume` continues it), turns and transcript (under QUEUE_DIR). */
  claude_session: Schema.optionalKey(Schema.String),
  turns: Schema.optionalKey(NonNegativeInt),
  transcript: Schema.optionalKey(Schema.String),
  attempts: Schema.optionalKey(NonNegativeInt),
  finished_at: Schema.optionalKey(Timestamp),
  history: Schema.optionalKey(Schema.Array(HistoryEntry))
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
  const kept = new Set((input.order ?? []).filter((key) => present.has(key)))
  const order = [...kept, ...[...present].filter((key) => !kept.has(key))]
  // Linear in the number of keys: a file with thousands of keys must not stall the daemon.
  const position = new Map(order.map((key, index) => [key, index]))
  const sortedExtra = [...extra].sort(([a], [b]) => (position.get(a) ?? 0) - (position.get(b) ?? 0))
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

/**
 * Sets the known fields to exactly `fields`: a known key absent from `fields` is removed from the file. Transitions
 * use this, so a state's file carries exactly that state's fields; unknown fields and the body are untouched.
 */
export const withFields = (task: Task, fields: TaskFields): Task => makeTask({ ...task, fields })

export const appendToBody = (task: Task, text: string): Task => ({ ...task, body: task.body + text })

const OPENING = /^\uFEFF?---[ \t]*\r?\n/
const CLOSING = /^(?:---|\.\.\.)[ \t]*\r?$/m

/** Frontmatter (the YAML between the `---` lines) larger than this many UTF-8 bytes is refused before parsing. */
export const MAX_FRONTMATTER_BYTES = 64 * 1024
/**
 * More top-level frontmatter keys of the operator's own than this are refused. The fields the daemon knows are not
 * counted (there are only ever a few), so a task at the limit still takes `state`, `run`, `session`, … when it runs.
 */
export const MAX_FRONTMATTER_KEYS = 256
/** How deep a field's value may nest lists and maps (`history` needs 2). */
export const MAX_VALUE_DEPTH = 16
/** The only explicit YAML tags a task may carry; anything else (`!!binary`, `!custom`) is refused. */
export const ALLOWED_YAML_TAGS = ["!!str", "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq"] as const

const CORE_TAG_PREFIX = "tag:yaml.org,2002:"
const allowedTags = new Set<string>(ALLOWED_YAML_TAGS.map((tag) => `${CORE_TAG_PREFIX}${tag.slice(2)}`))
/** A tag as it would be written: `!!binary`, `!custom`, `!<tag:example.com,2000:x>`. */
const tagLabel = (tag: string) =>
  tag.startsWith(CORE_TAG_PREFIX)
    ? `!!${tag.slice(CORE_TAG_PREFIX.length)}`
    : tag.startsWith("!")
    ? tag
    : `!<${tag}>`

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/** The text of a file read from disk: strict UTF-8, a leading BOM kept (the parser accepts `\uFEFF---`). */
export const decodeTaskBytes = (bytes: Uint8Array): Result.Result<string, string> => {
  try {
    return Result.succeed(strictUtf8.decode(bytes))
  } catch {
    return Result.fail(`not UTF-8 text (invalid byte at offset ${firstInvalidUtf8Offset(bytes)})`)
  }
}

/** Where the first malformed sequence starts, by the WHATWG decoder's rules: everything before it decodes. */
const firstInvalidUtf8Offset = (bytes: Uint8Array): number => {
  let i = 0
  while (i < bytes.length) {
    const lead = bytes[i] ?? 0
    if (lead < 0x80) {
      i += 1
      continue
    }
    // Overlong forms, surrogates (ED A0–BF) and code points above U+10FFFF narrow the second byte's range.
    const [needed, low, high] = lead >= 0xc2 && lead <= 0xdf
      ? [1, 0x80, 0xbf]
      : lead >= 0xe0 && lead <= 0xef
      ? [2, lead === 0xe0 ? 0xa0 : 0x80, lead === 0xed ? 0x9f : 0xbf]
      : lead >= 0xf0 && lead <= 0xf4
      ? [3, lead === 0xf0 ? 0x90 : 0x80, lead === 0xf4 ? 0x8f : 0xbf]
      : [0, 0, 0]
    if (needed === 0) return i
    for (let k = 1; k <= needed; k++) {
      const next = bytes[i + k]
      if (next === undefined || next < (k === 1 ? low : 0x80) || next > (k === 1 ? high : 0xbf)) return i
    }
    i += needed + 1
  }
  return bytes.length
}

/** Reads a task file's bytes: `decodeTaskBytes`, then `parseTask`; a file that is not text is a TaskParseError. */
export const parseTaskBytes = (name: string, bytes: Uint8Array): Result.Result<Task, TaskParseError> =>
  Result.match(decodeTaskBytes(bytes), {
    onFailure: (problem) => Result.fail(new TaskParseError({ file: name, problem })),
    onSuccess: (text) => parseTask(name, text)
  })

const describe = (value: unknown): string => {
  if (value === null) return "an empty value"
  // JSON would print NaN and Infinity as null; values can be up to 64 KiB, so only their start is shown.
  const json = typeof value === "number" ? String(value) : JSON.stringify(value) ?? String(value)
  return `${typeof value} ${json.length > 80 ? `${json.slice(0, 77)}...` : json}`
}

interface Position {
  readonly line?: number
  readonly column?: number
}
interface Where extends Position {
  readonly field?: string
}

/** Line and column (1-based) of an offset in `text`. */
const positionIn = (text: string, offset: number): Position => {
  const before = text.slice(0, offset)
  const lastNewline = before.lastIndexOf("\n")
  return { line: before.split("\n").length, column: offset - lastNewline }
}

/** The first node of `root` whose lists and maps nest deeper than the limit; iterative, since depth is the threat. */
const tooDeep = (root: unknown): Node | undefined => {
  const stack: Array<readonly [unknown, number]> = [[root, 0]]
  for (let entry = stack.pop(); entry !== undefined; entry = stack.pop()) {
    const [node, depth] = entry
    if (isPair(node)) {
      stack.push([node.key, depth], [node.value, depth])
    } else if (isCollection(node)) {
      if (depth + 1 > MAX_VALUE_DEPTH) return node
      // A `key: value` pair inside a list is read as a one-entry map: one level more.
      for (const item of node.items) stack.push([item, isSeq(node) && isPair(item) ? depth + 2 : depth + 1])
    }
  }
  return undefined
}

/** The first alias or non-core tag in a node, with what is wrong with it. Call only on nodes `tooDeep` accepted. */
const forbiddenYaml = (node: unknown): { readonly node: Node; readonly problem: string } | undefined => {
  if (!isNode(node)) return undefined
  let found: { readonly node: Node; readonly problem: string } | undefined
  visit(node, {
    Alias: (_, alias) => {
      found = { node: alias, problem: `YAML aliases (*${alias.source}) are not allowed in task frontmatter` }
      return visit.BREAK
    },
    Node: (_, tagged) => {
      if (tagged.tag === undefined || allowedTags.has(tagged.tag)) return undefined
      found = {
        node: tagged,
        problem: `YAML tag ${tagLabel(tagged.tag)} is not allowed in task frontmatter (only ${
          ALLOWED_YAML_TAGS.join(" ")
        })`
      }
      return visit.BREAK
    }
  })
  return found
}

/**
 * Parses a task file; never throws, whatever the text. Errors name the file, the field and, where known, line and
 * column. The frontmatter is bounded (size, keys, depth) and may not use aliases or non-core tags.
 */
export const parseTask = (name: string, text: string): Result.Result<Task, TaskParseError> => {
  try {
    return parseTaskText(name, text)
  } catch (error) {
    // A backstop: parseTaskText's checks should leave nothing that throws, and a throw would stop the daemon's loop.
    return Result.fail(new TaskParseError({ file: name, problem: `cannot be read: ${String(error)}` }))
  }
}

const parseTaskText = (name: string, text: string): Result.Result<Task, TaskParseError> => {
  const fail = (problem: string, at: Where = {}) => Result.fail(new TaskParseError({ file: name, problem, ...at }))

  const taskName = Schema.decodeUnknownResult(TaskName)(name)
  if (Result.isFailure(taskName))
    return fail(`not a task file name: ${taskNameProblem(name) ?? taskName.failure.message}`)

  const nul = text.indexOf("\0")
  if (nul !== -1) return fail("contains NUL bytes; task files are text", positionIn(text, nul))

  const opening = OPENING.exec(text)
  if (opening === null) return Result.succeed(makeTask({ name: taskName.success, body: text }))

  const rest = text.slice(opening[0].length)
  const closing = CLOSING.exec(rest)
  if (closing === null) return fail("frontmatter opened on line 1 is never closed by a '---' line", { line: 1 })

  const source = rest.slice(0, closing.index)
  const afterClosing = closing.index + closing[0].length
  const body = rest.slice(rest[afterClosing] === "\n" ? afterClosing + 1 : afterClosing)

  const size = utf8Length(source)
  if (size > MAX_FRONTMATTER_BYTES) {
    return fail(`frontmatter is ${size} bytes; the limit is ${MAX_FRONTMATTER_BYTES} (64 KiB)`, { line: 1 })
  }

  // Line numbers are reported in the file, which has the opening '---' above the YAML.
  const lineCounter = new LineCounter()
  // `uniqueKeys: true` compares every key with every other (quadratic); duplicates are found below with a Set.
  // `logLevel: "error"`: yaml would otherwise send its warnings about a hostile file to process.emitWarning.
  const document = parseDocument(source, { lineCounter, uniqueKeys: false, prettyErrors: false, logLevel: "error" })
  const lineOf = (offset: number | undefined): Position =>
    offset === undefined ? {} : (({ line, col }) => ({ line: line + 1, column: col }))(lineCounter.linePos(offset))
  const keyText = (key: unknown) => isScalar(key) ? String(key.value) : undefined
  const contents = document.contents

  // Before syntax errors: the YAML parser reports nesting too deep for its stack as a syntax error.
  if (isMap(contents)) {
    for (const pair of contents.items) {
      const deep = tooDeep(pair)
      if (deep === undefined) continue
      const field = keyText(pair.key)
      return fail(`a value nests lists or maps more than ${MAX_VALUE_DEPTH} levels deep`, {
        ...(field === undefined ? {} : { field }),
        ...lineOf(deep.range?.[0])
      })
    }
  }

  const yamlError = document.errors[0]
  if (yamlError !== undefined) {
    return fail(`invalid YAML: ${yamlError.message.split("\n")[0]}`, lineOf(yamlError.pos[0]))
  }
  if (contents === null || (isScalar(contents) && contents.value === null)) {
    return Result.succeed(makeTask({ name: taskName.success, body }))
  }
  if (!isMap(contents))
    return fail("frontmatter must be a mapping of 'field: value' lines", lineOf(contents.range?.[0]))

  const own = contents.items.filter((pair) => !(isScalar(pair.key) && isKnownField(String(pair.key.value))))
  const excess = own[MAX_FRONTMATTER_KEYS]
  if (excess !== undefined) {
    return fail(
      `frontmatter has ${own.length} keys of its own (besides the daemon's fields); the limit is ${MAX_FRONTMATTER_KEYS}`,
      lineOf(isNode(excess.key) ? excess.key.range?.[0] : undefined)
    )
  }

  const fields: Record<string, unknown> = {}
  const extra: Array<readonly [string, unknown]> = []
  const order: Array<string> = []
  const firstLine = new Map<string, number | undefined>()
  for (const pair of contents.items) {
    const keyNode = pair.key
    const at = lineOf(isNode(keyNode) ? keyNode.range?.[0] : undefined)
    const badKey = forbiddenYaml(keyNode)
    if (badKey !== undefined) return fail(badKey.problem, lineOf(badKey.node.range?.[0]))
    const key = keyText(keyNode)
    if (key === undefined) return fail("frontmatter keys must be plain names", at)
    if (firstLine.has(key)) {
      const first = firstLine.get(key)
      const where = first === undefined ? "" : ` (first on line ${first})`
      return fail(`duplicate key${where}; each key may appear once`, { field: key, ...at })
    }
    firstLine.set(key, at.line)

    const badValue = forbiddenYaml(pair.value)
    if (badValue !== undefined) return fail(badValue.problem, { field: key, ...lineOf(badValue.node.range?.[0]) })
    const value = toJS(pair.value, document)
    if (Result.isFailure(value)) return fail(`cannot be read: ${value.failure}`, { field: key, ...at })

    order.push(key)
    if (!isKnownField(key)) {
      extra.push([key, value.success])
      continue
    }
    const decoded = decodeField(name, key, value.success, at)
    if (Result.isFailure(decoded)) return Result.fail(decoded.failure)
    fields[key] = decoded.success
  }
  return Result.succeed(makeTask({ name: taskName.success, fields: fields as TaskFields, extra, order, body }))
}

/**
 * A node's plain value. Aliases are refused before this and `maxAliasCount: 0` makes any that slipped through an
 * error rather than an expansion; the catch turns whatever `toJS` still throws into a value.
 */
const toJS = (node: unknown, document: Document.Parsed): Result.Result<unknown, string> => {
  if (!isNode(node)) return Result.succeed(null)
  try {
    return Result.succeed(node.toJS(document, { maxAliasCount: 0 }))
  } catch (error) {
    return Result.fail(error instanceof Error ? error.message : String(error))
  }
}

/** Schema's message is an issue and, on the next line, its path (`at [0]["event"]`): kept on one line. */
const schemaProblem = (message: string): string => {
  const [issue, path] = message.split("\n")
  const at = path?.trim()
  return at !== undefined && at.startsWith("at ") ? `${issue} ${at}` : issue ?? "invalid value"
}

const decodeField = (
  file: string,
  field: TaskField,
  value: unknown,
  at: Position
): Result.Result<unknown, TaskParseError> =>
  Result.mapError(
    Schema.decodeUnknownResult(TaskFields.fields[field])(value),
    (error) =>
      new TaskParseError({ file, field, problem: `${schemaProblem(error.message)}, got ${describe(value)}`, ...at })
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
      return Result.fail(
        new TaskParseError({ file: source, field: key, problem: `unknown field (known: ${knownFields.join(", ")})` })
      )
    }
    const decoded = decodeField(source, key, parseScalar(raw), {})
    if (Result.isFailure(decoded)) return Result.fail(decoded.failure)
    patch[key] = decoded.success
  }
  return Result.succeed(updateFields(task, patch as Partial<TaskFields>))
}

/** A `--field` value as YAML reads it (`true`, `3`); what YAML does not read cleanly, or would expand, stays text. */
const parseScalar = (raw: string): unknown => {
  try {
    const document = parseDocument(raw, { prettyErrors: false, logLevel: "error" })
    const plain = document.errors.length === 0 && tooDeep(document.contents) === undefined &&
      forbiddenYaml(document.contents) === undefined
    return plain ? document.toJS({ maxAliasCount: 0 }) : raw
  } catch {
    return raw
  }
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

/**
 * A file changed within `settleMs` of `now` may still be being written: it is read once unchanged that long. Either
 * way round — a writer's clock a little ahead of this one counts too.
 */
export const stillSettling = (mtimeMs: number, now: number, settleMs: number): boolean => {
  const age = now - mtimeMs
  return age < settleMs && age > -settleMs
}

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
