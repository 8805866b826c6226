/**
 * Claude Code's headless mode as data: the lines `claude -p … --output-format stream-json --verbose` prints (one
 * JSON object each), folded into what the daemon needs of a run — its Claude Code session, a usage limit with its
 * exact reset, its result and cost — and the outcome of the run once the process has ended.
 * Easy to get wrong: a result says `subtype: "success"` even when `is_error` is true (a limit, a login error); the
 * reset of a limit is `resetsAt` in unix seconds, not the text; Claude Code adds event types and fields between
 * versions, so unknown types decode (as Other), every field is optional, and a line that is not a JSON object is
 * skipped, never fatal.
 */
import * as Data from "effect/Data"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { lenient, parseJson, Rest } from "./claude-json.ts"
import { type ClassifyOptions, parseResetTime } from "./pane.ts"
import type { Sighting } from "./session-book.ts"
import type { TaskName } from "./task.ts"

const line = <const Fields extends Schema.Struct.Fields>(fields: Fields) =>
  Schema.StructWithRest(Schema.Struct({ session_id: lenient(Schema.String), ...fields }), Rest)

export const InitLine = line({
  type: Schema.Literal("system"),
  subtype: Schema.Literal("init"),
  model: lenient(Schema.String)
})
/** Claude Code retrying a failed API request (529s, plain 429s): it keeps going for minutes. */
export const RetryLine = line({
  type: Schema.Literal("system"),
  subtype: Schema.Literal("api_retry"),
  attempt: lenient(Schema.Number),
  error_status: lenient(Schema.Number),
  error: lenient(Schema.String)
})
export const RateLimitLine = line({
  type: Schema.Literal("rate_limit_event"),
  rate_limit_info: lenient(Schema.StructWithRest(
    Schema.Struct({
      status: lenient(Schema.String),
      /** Unix seconds. */
      resetsAt: lenient(Schema.Finite),
      rateLimitType: lenient(Schema.String)
    }),
    Rest
  ))
})
/** An answer; with `error` (rate_limit, authentication_failed, overloaded, …) the API error that ended the turn. */
export const AssistantLine = line({
  type: Schema.Literal("assistant"),
  error: lenient(Schema.String),
  api_error_status: lenient(Schema.Number),
  message: lenient(Schema.StructWithRest(Schema.Struct({ content: lenient(Schema.Array(Schema.Unknown)) }), Rest))
})
export const ResultLine = line({
  type: Schema.Literal("result"),
  subtype: lenient(Schema.String),
  is_error: lenient(Schema.Boolean),
  result: lenient(Schema.String),
  api_error: lenient(Schema.String),
  api_error_status: lenient(Schema.Number),
  total_cost_usd: lenient(Schema.Finite),
  num_turns: lenient(Schema.Finite),
  duration_ms: lenient(Schema.Finite)
})
/** Any other object with a `type`: kept in the transcript, otherwise ignored. */
const OtherLine = Schema.StructWithRest(
  Schema.Struct({ type: lenient(Schema.String), session_id: lenient(Schema.String) }),
  Rest
)

export type HeadlessLine = Data.TaggedEnum<{
  Init: { readonly sessionId: Option.Option<string> }
  Retry: { readonly sessionId: Option.Option<string>; readonly status: Option.Option<number>; readonly error: string }
  RateLimit: {
    readonly sessionId: Option.Option<string>
    readonly status: string
    /** Epoch milliseconds. */
    readonly resetAt: Option.Option<number>
    readonly kind: string
  }
  Assistant: {
    readonly sessionId: Option.Option<string>
    readonly text: string
    readonly error: Option.Option<string>
    readonly status: Option.Option<number>
  }
  Result: {
    readonly sessionId: Option.Option<string>
    readonly isError: boolean
    /** `success`, or how Claude Code stopped otherwise (`error_max_turns`, `error_during_execution`, …). */
    readonly subtype: string
    readonly text: string
    readonly apiError: Option.Option<string>
    readonly status: Option.Option<number>
    readonly costUsd: Option.Option<number>
    readonly turns: Option.Option<number>
    readonly durationMs: Option.Option<number>
  }
  Other: { readonly sessionId: Option.Option<string>; readonly type: string }
  Malformed: { readonly problem: string }
}>
export const HeadlessLine = Data.taggedEnum<HeadlessLine>()

const opt = <A>(value: A | undefined): Option.Option<A> => Option.fromUndefinedOr(value)

/** The text blocks of an answer, joined. */
const textOf = (content: ReadonlyArray<unknown> | undefined): string =>
  (content ?? []).flatMap((block) =>
    typeof block === "object" && block !== null && "type" in block && block.type === "text" && "text" in block &&
      typeof block.text === "string"
      ? [block.text]
      : []
  ).join("\n")

const decodes = <S extends Schema.Top & { readonly DecodingServices: never }>(schema: S) =>
  Schema.decodeUnknownOption(schema)
const asInit = decodes(InitLine)
const asRetry = decodes(RetryLine)
const asRateLimit = decodes(RateLimitLine)
const asAssistant = decodes(AssistantLine)
const asResult = decodes(ResultLine)
const asOther = decodes(OtherLine)

/** One line of output; never throws. */
export const decodeLine = (text: string): HeadlessLine => {
  const parsed = parseJson(text)
  if (Result.isFailure(parsed)) return HeadlessLine.Malformed({ problem: `not JSON: ${parsed.failure}` })
  const json = parsed.success
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return HeadlessLine.Malformed({ problem: "not a JSON object" })
  }
  const init = asInit(json)
  if (Option.isSome(init)) return HeadlessLine.Init({ sessionId: opt(init.value.session_id) })
  const retry = asRetry(json)
  if (Option.isSome(retry)) {
    const r = retry.value
    return HeadlessLine.Retry({ sessionId: opt(r.session_id), status: opt(r.error_status), error: r.error ?? "" })
  }
  const limit = asRateLimit(json)
  if (Option.isSome(limit)) {
    const info = limit.value.rate_limit_info
    return HeadlessLine.RateLimit({
      sessionId: opt(limit.value.session_id),
      status: info?.status ?? "",
      // Unix seconds from 2001 to 5138: anything else is no instant to rest until.
      resetAt: Option.map(
        Option.filter(opt(info?.resetsAt), (seconds) => seconds > 1e9 && seconds < 1e11),
        (seconds) => seconds * 1000
      ),
      kind: info?.rateLimitType ?? ""
    })
  }
  const answer = asAssistant(json)
  if (Option.isSome(answer)) {
    const a = answer.value
    return HeadlessLine.Assistant({
      sessionId: opt(a.session_id),
      text: textOf(a.message?.content),
      error: opt(a.error),
      status: opt(a.api_error_status)
    })
  }
  const result = asResult(json)
  if (Option.isSome(result)) {
    const r = result.value
    return HeadlessLine.Result({
      sessionId: opt(r.session_id),
      isError: r.is_error === true || (r.subtype !== undefined && r.subtype !== "success"),
      subtype: r.subtype ?? "",
      text: r.result ?? "",
      apiError: opt(r.api_error),
      status: opt(r.api_error_status),
      costUsd: Option.filter(opt(r.total_cost_usd), (usd) => usd >= 0),
      turns: Option.filter(opt(r.num_turns), (n) => Number.isInteger(n) && n >= 0),
      durationMs: Option.filter(opt(r.duration_ms), (ms) => ms >= 0)
    })
  }
  const other = asOther(json)
  return HeadlessLine.Other({
    sessionId: Option.flatMap(other, (o) => opt(o.session_id)),
    type: Option.getOrElse(Option.flatMap(other, (o) => opt(o.type)), () => "(no type)")
  })
}

/** What the lines of one run said so far. */
export interface RunReport {
  readonly sessionId: Option.Option<string>
  readonly lines: number
  readonly malformed: number
  readonly retries: number
  /** The newest rejected rate-limit event. */
  readonly limit: Option.Option<{ readonly resetAt: Option.Option<number>; readonly kind: string }>
  /** The newest answer that carried an API error. */
  readonly error: Option.Option<
    { readonly kind: string; readonly status: Option.Option<number>; readonly text: string }
  >
  readonly result: Option.Option<Extract<HeadlessLine, { readonly _tag: "Result" }>>
}

export const emptyReport: RunReport = {
  sessionId: Option.none(),
  lines: 0,
  malformed: 0,
  retries: 0,
  limit: Option.none(),
  error: Option.none(),
  result: Option.none()
}

export const foldLine = (report: RunReport, line: HeadlessLine): RunReport => {
  const counted = { ...report, lines: report.lines + 1 }
  const sessionId = line._tag === "Malformed" ? Option.none<string>() : line.sessionId
  const next = Option.isSome(sessionId) ? { ...counted, sessionId } : counted
  switch (line._tag) {
    case "Malformed":
      return { ...next, malformed: next.malformed + 1 }
    case "Retry":
      return { ...next, retries: next.retries + 1 }
    case "RateLimit":
      return line.status === "rejected"
        ? { ...next, limit: Option.some({ resetAt: line.resetAt, kind: line.kind }) }
        : next
    case "Assistant":
      return Option.isSome(line.error)
        ? { ...next, error: Option.some({ kind: line.error.value, status: line.status, text: line.text }) }
        : next
    case "Result":
      return { ...next, result: Option.some(line) }
    case "Init":
    case "Other":
      return next
  }
}

/** How the process ended: its exit, or the daemon stopping it for a reason. */
export type ProcessEnd =
  | { readonly _tag: "Exited"; readonly code: number }
  | { readonly _tag: "Signalled"; readonly signal: string }
  | { readonly _tag: "Stopped"; readonly reason: string }
  | { readonly _tag: "NotStarted"; readonly reason: string }

/** The run's facts for the done/ file, the metrics and the status API. */
export interface RunFacts {
  readonly sessionId: Option.Option<string>
  readonly costUsd: Option.Option<number>
  readonly turns: Option.Option<number>
  readonly durationMs: Option.Option<number>
}

export type RunOutcome = Data.TaggedEnum<{
  /** The agent's turn ended well; `text` is its final answer. */
  Finished: { readonly text: string; readonly facts: RunFacts }
  /** A usage limit: the account rests until `resetAt` (none: the configured cool-down). */
  Limited: {
    readonly text: string
    readonly resetAt: Option.Option<number>
    readonly kind: string
    readonly facts: RunFacts
  }
  /** Not logged in, no billing, CLAUDE_COMMAND cannot be started: a person must act before this slot runs anything. */
  NeedsPerson: { readonly text: string; readonly facts: RunFacts }
  /** An API error ended the turn (overloaded, server error, …): another try may do better. */
  ApiError: { readonly text: string; readonly facts: RunFacts }
  /** The process failed: crashed, killed, stopped by the daemon, never started. */
  Fault: { readonly reason: string; readonly facts: RunFacts }
}>
export const RunOutcome = Data.taggedEnum<RunOutcome>()

const NEEDS_PERSON_ERRORS: ReadonlySet<string> = new Set([
  "authentication_failed",
  "billing_error",
  "oauth_org_not_allowed"
])

const factsOf = (report: RunReport): RunFacts => {
  const result = Option.getOrUndefined(report.result)
  return {
    sessionId: report.sessionId,
    costUsd: result?.costUsd ?? Option.none(),
    turns: result?.turns ?? Option.none(),
    durationMs: result?.durationMs ?? Option.none()
  }
}

const describeEnd = (end: ProcessEnd): string => {
  switch (end._tag) {
    case "Exited":
      return `exited: its process ended with code ${end.code} and no result`
    case "Signalled":
      return `exited: its process was killed by ${end.signal}`
    case "Stopped":
    case "NotStarted":
      return end.reason
  }
}

/**
 * The outcome of a run from what its lines said and how its process ended. A result decides (a limit, a login error,
 * another API error, or success); without one, the process failed — whatever its exit code.
 */
export const outcomeOf = (report: RunReport, end: ProcessEnd, options: ClassifyOptions): RunOutcome => {
  const facts = factsOf(report)
  const result = Option.getOrUndefined(report.result)
  const error = Option.getOrUndefined(report.error)
  // The command could not be started at all (not installed, not executable): no task can run here until a person
  // fixes it, so it is not held against the task.
  if (end._tag === "NotStarted") return RunOutcome.NeedsPerson({ text: end.reason, facts })
  if (end._tag === "Stopped" || result === undefined) {
    return RunOutcome.Fault({ reason: describeEnd(end), facts })
  }
  if (!result.isError) return RunOutcome.Finished({ text: result.text, facts })
  const text = result.text !== "" ? result.text : error?.text ?? ""
  const limitText = text === "" ? "usage limit reached" : text
  const apiError = Option.getOrUndefined(result.apiError)
  const status = Option.getOrUndefined(result.status)
  // 2.1.332 says it twice (the result's api_error, a rejected event); a version that says it once is still a limit.
  const limitWords = /\bhit your .*limit\b|\busage limit\b/i.test(text)
  if (
    apiError === "usage_limit_reached" ||
    ((error?.kind === "rate_limit" || status === 429) && (Option.isSome(report.limit) || limitWords))
  ) {
    const limit = Option.getOrUndefined(report.limit)
    // The event's instant is exact; the text's clock time only a fallback.
    const resetAt = limit !== undefined && Option.isSome(limit.resetAt)
      ? limit.resetAt
      : parseResetTime(limitText, options)
    return RunOutcome.Limited({ text: limitText, resetAt, kind: limit?.kind ?? "", facts })
  }
  if ((error !== undefined && NEEDS_PERSON_ERRORS.has(error.kind)) || status === 401 || status === 403) {
    return RunOutcome.NeedsPerson({
      text: text === "" ? `authentication failed (${status ?? error?.kind})` : text,
      facts
    })
  }
  // Stopped for a reason of the task's own (max turns, an error while it ran), not the API's: counted like a crash.
  if (
    apiError === undefined && status === undefined && error === undefined && result.subtype !== "" &&
    result.subtype !== "success"
  ) {
    return RunOutcome.Fault({
      reason: `ended: Claude Code stopped the run (${result.subtype})${text === "" ? "" : `: ${text}`}`,
      facts
    })
  }
  const detail = text !== ""
    ? text
    : ["API error", status, apiError ?? error?.kind].filter((part) => part !== undefined).join(" ")
  return RunOutcome.ApiError({ text: detail, facts })
}

/** `headless-1`, or `headless-<account>-1` when slots are given per account. */
export interface SlotSpec {
  readonly name: string
  readonly account: Option.Option<string>
}

/** HEADLESS_SLOTS, `N` or `account=N,…`, as slot names. */
export const slotNames = (slots: number | ReadonlyMap<string, number>): ReadonlyArray<SlotSpec> =>
  typeof slots === "number"
    ? Array.from({ length: slots }, (_, i) => ({ name: `headless-${i + 1}`, account: Option.none() }))
    : [...slots].flatMap(([account, count]) =>
      Array.from({ length: count }, (_, i) => ({ name: `headless-${account}-${i + 1}`, account: Option.some(account) }))
    )

/** What one headless slot is doing. */
export type SlotState = Data.TaggedEnum<{
  Free: {}
  Running: {
    readonly task: TaskName
    readonly run: string
    readonly startedAt: number
    /** Bytes of output so far: the watchdog's fingerprint (no output, no progress). */
    readonly bytes: number
    readonly sessionId: Option.Option<string>
  }
  /** The process has ended; the slot holds the outcome until its task has left it. */
  Ended: { readonly task: TaskName; readonly run: string; readonly at: number; readonly outcome: RunOutcome }
  /** Left alone after a run that needs a person (not logged in): tried again after `until`. */
  Resting: { readonly until: number; readonly reason: string }
}>
export const SlotState = Data.taggedEnum<SlotState>()

const blankSighting = (session: string): Sighting => ({
  session,
  state: "idle",
  signal: "process",
  detail: Option.none(),
  banner: Option.none(),
  resetAt: Option.none(),
  autoContinue: false,
  question: Option.none(),
  inputBox: Option.some(""),
  fingerprint: ""
})

/**
 * A slot as the session book sees a session: free is idle with an empty input box; a run is busy, its output count
 * the fingerprint; an ended run shows how it ended until its task leaves the slot (a limit, an API error, an exit).
 */
export const sightingOfSlot = (session: string, state: SlotState, now: number): Sighting => {
  const blank = blankSighting(session)
  switch (state._tag) {
    case "Free":
      return blank
    case "Resting":
      return now < state.until ? { ...blank, state: "turn_error" as const, detail: Option.some(state.reason) } : blank
    case "Running":
      return { ...blank, state: "busy" as const, fingerprint: `${state.bytes}` }
    case "Ended":
      return RunOutcome.$match(state.outcome, {
        Finished: () => blank,
        Limited: (o) => ({
          ...blank,
          state: "usage_limited" as const,
          banner: Option.some(o.text),
          resetAt: o.resetAt
        }),
        NeedsPerson: (o) => ({ ...blank, state: "turn_error" as const, detail: Option.some(o.text) }),
        ApiError: (o) => ({ ...blank, state: "turn_error" as const, detail: Option.some(o.text) }),
        Fault: (o) => ({ ...blank, state: "exited" as const, detail: Option.some(o.reason) })
      })
  }
}
