/**
 * Claude Code's hook events as data: the JSON it sends (to an `http` hook's URL, or on a `command` hook's stdin) and
 * the one fact about a session each event gives the daemon.
 * Easy to get wrong: Claude Code adds events and fields between versions and leaves some out (StopFailure and
 * SessionStart carry no `permission_mode`), so every field is optional, a field of an unexpected type reads as absent,
 * unknown fields are kept and unknown events decode too: only input that is not a JSON object is refused.
 */
import * as Data from "effect/Data"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { lenient, parseJson, Rest } from "./claude-json.ts"
import { type ClassifyOptions, parseResetTime } from "./pane.ts"

/** What every hook input carries (as far as Claude Code sends it). */
const common = {
  session_id: lenient(Schema.String),
  transcript_path: lenient(Schema.String),
  cwd: lenient(Schema.String),
  permission_mode: lenient(Schema.String)
}

const event = <const Name extends string, const Fields extends Schema.Struct.Fields>(name: Name, fields: Fields) =>
  Schema.StructWithRest(Schema.Struct({ hook_event_name: Schema.Literal(name), ...common, ...fields }), Rest)

/** `source`: startup, resume, clear, compact, fork. Claude Code runs only `command` hooks for it, never `http` ones. */
export const SessionStartEvent = event("SessionStart", {
  source: lenient(Schema.String),
  model: lenient(Schema.String)
})
export const UserPromptSubmitEvent = event("UserPromptSubmit", { prompt: lenient(Schema.String) })
export const StopEvent = event("Stop", {
  stop_hook_active: lenient(Schema.Boolean),
  last_assistant_message: lenient(Schema.String)
})
/** Sent instead of Stop when an API error ended the turn; `last_assistant_message` holds e.g. the limit text. */
export const StopFailureEvent = event("StopFailure", {
  error: lenient(Schema.String),
  last_assistant_message: lenient(Schema.String)
})
export const NotificationEvent = event("Notification", {
  message: lenient(Schema.String),
  notification_type: lenient(Schema.String)
})
export const PermissionRequestEvent = event("PermissionRequest", {
  tool_name: lenient(Schema.String),
  tool_input: lenient(Schema.Unknown)
})
/** `reason`: clear, resume, logout, prompt_input_exit, other. */
export const SessionEndEvent = event("SessionEnd", { reason: lenient(Schema.String) })

/** The events the daemon reads, told apart by `hook_event_name`. */
export const KnownHookEvent = Schema.Union([
  SessionStartEvent,
  UserPromptSubmitEvent,
  StopEvent,
  StopFailureEvent,
  NotificationEvent,
  PermissionRequestEvent,
  SessionEndEvent
]).pipe(Schema.toTaggedUnion("hook_event_name"))
export type KnownHookEvent = typeof KnownHookEvent.Type

/** Any other JSON object: a newer event (PreToolUse, SubagentStop, …), or one with no name at all. */
export const OtherHookEvent = Schema.StructWithRest(
  Schema.Struct({ hook_event_name: lenient(Schema.String), ...common }),
  Rest
)
export type OtherHookEvent = typeof OtherHookEvent.Type

export const HookEvent = Schema.Union([KnownHookEvent, OtherHookEvent])
export type HookEvent = typeof HookEvent.Type

/** The input was not a JSON object (or not JSON): the only input the decoder refuses. */
export class HookInputInvalid extends Data.TaggedError("HookInputInvalid")<{ readonly problem: string }> {
  override get message(): string {
    return `not a Claude Code hook event: ${this.problem}`
  }
}

const decodeEvent = Schema.decodeUnknownResult(HookEvent)

/** Any JSON value → an event; fails (never throws) only when it is not an object. */
export const decodeHookEvent = (input: unknown): Result.Result<HookEvent, HookInputInvalid> =>
  Result.mapError(decodeEvent(input), () =>
    new HookInputInvalid({
      problem: `expected a JSON object, got ${
        input === null ? "null" : Array.isArray(input) ? "an array" : typeof input
      }`
    }))

/** The body of a hook request → an event; text that is not JSON fails like a non-object. */
export const parseHookEvent = (text: string): Result.Result<HookEvent, HookInputInvalid> =>
  Result.match(parseJson(text), {
    onFailure: (problem) => Result.fail(new HookInputInvalid({ problem: `not JSON (${problem})` })),
    onSuccess: decodeHookEvent
  })

/** The event's name as sent ("" when it had none). */
export const eventName = (event: HookEvent): string => event.hook_event_name ?? ""

// ---------------------------------------------------------------------------------------------------------------------
// Facts

/** Why a turn ended in an API error, as the daemon acts on it. */
export type FailureKind = "limit" | "auth" | "billing" | "overloaded" | "other"
export type AutoResumeKind = "fired" | "stale" | "disabled"

/**
 * What one hook event tells the daemon about its session:
 * - `PromptSubmitted`: the typed prompt was accepted; `run`/`task` when its first line is the queue's header.
 * - `TurnEnded`: the turn is over (Stop).
 * - `TurnFailed`: an API error ended the turn (StopFailure); `text` is Claude Code's message (the limit text).
 * - `NeedsPerson`: a dialog waits for a person (a permission prompt, an MCP input dialog).
 * - `AutoResume`: Claude Code's own continue-after-the-limit (2.1.332) fired, went stale or was turned off.
 * - `Started` / `Ended`: the Claude Code process began or ended a session.
 * - `Other`: anything else (the event name, and the notification type when there is one).
 */
export type HookFact = Data.TaggedEnum<{
  PromptSubmitted: { readonly run: Option.Option<string>; readonly task: Option.Option<string> }
  TurnEnded: {}
  TurnFailed: { readonly kind: FailureKind; readonly error: string; readonly text: string }
  NeedsPerson: { readonly reason: string }
  AutoResume: { readonly kind: AutoResumeKind }
  Started: { readonly source: string }
  Ended: { readonly reason: string }
  Other: { readonly event: string; readonly detail: string }
}>
export const HookFact = Data.taggedEnum<HookFact>()

/** `Task NAME from the claude-failover queue (run RUN):` — the first line of every prompt (see prompt.ts). */
const HEADER = /^Task (.+) from the claude-failover queue \(run ([^\s()]+)\):$/

/** The task and run a prompt's first line names, if it is the queue's header. */
export const promptRun = (prompt: string): Option.Option<{ readonly task: string; readonly run: string }> => {
  const match = HEADER.exec(prompt.split("\n", 1)[0]?.trimEnd() ?? "")
  return match?.[1] === undefined || match[2] === undefined
    ? Option.none()
    : Option.some({ task: match[1], run: match[2] })
}

/** StopFailure's `error` values (2.1.332's list) and what the daemon makes of each; the rest is `other`. */
const FAILURE_KINDS: Readonly<Record<string, FailureKind>> = {
  rate_limit: "limit",
  authentication_failed: "auth",
  oauth_org_not_allowed: "auth",
  verification_required: "auth",
  cloud_credential_error: "auth",
  billing_error: "billing",
  account_on_hold: "billing",
  overloaded: "overloaded"
}

/** Claude Code's own stop-message prefixes (claude-code.md, "Usage limits"). */
const LIMIT_TEXT =
  /^(?:You've hit your|You've reached your|You're out of usage credits|Your org is out of usage|Your seat type doesn't include|Your usage allocation has been disabled|Your group's usage limit is set to \$0|You're out of extra usage|This service is disabled for your org|\S.* requires usage credits\.)/

/** The kind of a failed turn: by `error`; an error this table does not know counts as a limit when its text is one. */
export const failureKind = (error: string, text: string): FailureKind =>
  FAILURE_KINDS[error] ?? (LIMIT_TEXT.test(text.trim()) ? "limit" : "other")

/** Notification types that mean a dialog waits for a person's answer. */
const NEEDS_PERSON: ReadonlySet<string> = new Set([
  "permission_prompt",
  "worker_permission_prompt",
  "elicitation_dialog",
  "elicitation_url_dialog"
])

const AUTO_RESUME: Readonly<Record<string, AutoResumeKind>> = {
  quota_auto_resume_fired: "fired",
  quota_auto_resume_stale: "stale",
  quota_auto_resume_disabled: "disabled"
}

const notificationFact = (type: string, message: string): HookFact => {
  if (NEEDS_PERSON.has(type)) return HookFact.NeedsPerson({ reason: message === "" ? type : message })
  const resume = AUTO_RESUME[type]
  return resume === undefined
    ? HookFact.Other({ event: "Notification", detail: type })
    : HookFact.AutoResume({ kind: resume })
}

/** The fact an event gives: every event, known or not, gives exactly one. */
export const factOf = (event: HookEvent): HookFact => {
  if (!Schema.is(KnownHookEvent)(event)) return HookFact.Other({ event: eventName(event), detail: "" })
  return KnownHookEvent.match(event, {
    SessionStart: (e) => HookFact.Started({ source: e.source ?? "" }),
    UserPromptSubmit: (e) => {
      const header = promptRun(e.prompt ?? "")
      return HookFact.PromptSubmitted({
        run: Option.map(header, (h) => h.run),
        task: Option.map(header, (h) => h.task)
      })
    },
    Stop: () => HookFact.TurnEnded(),
    StopFailure: (e) => {
      const error = e.error ?? ""
      const text = e.last_assistant_message ?? ""
      return HookFact.TurnFailed({ kind: failureKind(error, text), error, text })
    },
    Notification: (e) => notificationFact(e.notification_type ?? "", e.message ?? ""),
    PermissionRequest: (e) =>
      HookFact.NeedsPerson({
        reason: e.tool_name === undefined ? "permission request" : `permission to use ${e.tool_name}`
      }),
    SessionEnd: (e) => HookFact.Ended({ reason: e.reason ?? "" })
  })
}

/** When a usage limit reported by a hook resets, read from its text (`… · resets 1:22pm (America/New_York)`). */
export const limitResetAt = (fact: HookFact, options: ClassifyOptions): Option.Option<number> =>
  fact._tag === "TurnFailed" && fact.kind === "limit" ? parseResetTime(fact.text, options) : Option.none()

/** One line for logs and the status page: `TurnFailed limit: You've hit your 5-hour limit · resets 1:22pm`. */
export const describeFact = (fact: HookFact): string =>
  HookFact.$match(fact, {
    PromptSubmitted: (f) =>
      Option.match(f.run, { onNone: () => "PromptSubmitted", onSome: (run) => `PromptSubmitted run ${run}` }),
    TurnEnded: () => "TurnEnded",
    TurnFailed: (f) => `TurnFailed ${f.kind}${f.text === "" ? "" : `: ${f.text}`}`,
    NeedsPerson: (f) => `NeedsPerson: ${f.reason}`,
    AutoResume: (f) => `AutoResume ${f.kind}`,
    Started: (f) => `Started${f.source === "" ? "" : ` (${f.source})`}`,
    Ended: (f) => `Ended${f.reason === "" ? "" : ` (${f.reason})`}`,
    Other: (f) => `Other ${f.event}${f.detail === "" ? "" : ` ${f.detail}`}`
  })
