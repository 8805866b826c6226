/**
 * Hook events as data: what the real Claude Code sends decodes to the fact the daemon acts on, any JSON decodes without
 * throwing, and every event gives exactly one fact.
 */
import { describe, expect, it } from "@effect/vitest"
import { Option, Result } from "effect"
import fc from "fast-check"
import {
  decodeHookEvent,
  describeFact,
  factOf,
  failureKind,
  HookFact,
  limitResetAt,
  parseHookEvent,
  promptRun
} from "../../src/domain/hooks.ts"
import { promptHeader } from "../../src/domain/prompt.ts"
import { RUNS, taskName } from "./arbitraries.ts"

const common = {
  session_id: "08823608-1909-4208-a62a-94642d4154d7",
  transcript_path: "/home/op/.claude/projects/-work/08823608-1909-4208-a62a-94642d4154d7.jsonl",
  cwd: "/work"
}

/** Bodies as the real Claude Code sent them (2.1.332 unless said), trimmed of paths only. */
const Observed = {
  sessionStart: {
    ...common,
    scratchpad_dir: "/tmp/claude-0/x/scratchpad",
    hook_event_name: "SessionStart",
    source: "startup",
    model: "claude-sonnet-5-5"
  },
  userPromptSubmit: {
    ...common,
    scratchpad_dir: "/tmp/claude-0/x/scratchpad",
    prompt_id: "81d6f31c-5e59-475f-ae04-e82b39851fa6",
    permission_mode: "auto",
    hook_event_name: "UserPromptSubmit",
    prompt: "Task demo.md from the claude-failover queue (run r3f9a0c1b2d4e):\n\nSay hello."
  },
  stop: {
    ...common,
    prompt_id: "81d6f31c-5e59-475f-ae04-e82b39851fa6",
    permission_mode: "auto",
    effort: { level: "medium" },
    hook_event_name: "Stop",
    stop_hook_active: false,
    last_assistant_message: "Done. Nothing else to do here.",
    background_tasks: [],
    session_crons: []
  },
  /** No permission_mode: StopFailure does not carry it. */
  stopFailure: {
    ...common,
    prompt_id: "59bff894-f041-4ccd-a5c8-6b46f2dcc442",
    effort: { level: "medium" },
    hook_event_name: "StopFailure",
    error: "rate_limit",
    last_assistant_message: "You've hit your 5-hour limit · resets 8:56pm (UTC)"
  },
  /** 2.1.197 names the 5-hour limit "session limit". */
  stopFailure197: {
    ...common,
    hook_event_name: "StopFailure",
    error: "rate_limit",
    last_assistant_message: "You've hit your session limit · resets 8:57pm (UTC)"
  },
  /** 2.1.197, a Write waiting for permission. */
  notification: {
    ...common,
    prompt_id: "78b20f86-db15-4155-b442-2fcdaf090c83",
    hook_event_name: "Notification",
    message: "Claude needs your permission",
    notification_type: "permission_prompt"
  },
  sessionEnd: { ...common, hook_event_name: "SessionEnd", reason: "prompt_input_exit" }
} as const

const fact = (input: unknown) => factOf(Result.getOrThrow(decodeHookEvent(input)))

describe("hook events from the real Claude Code", () => {
  it("SessionStart → Started with its source", () => {
    expect(fact(Observed.sessionStart)).toStrictEqual(HookFact.Started({ source: "startup" }))
  })

  it("UserPromptSubmit with the queue's header → PromptSubmitted with the task and run", () => {
    expect(fact(Observed.userPromptSubmit)).toStrictEqual(
      HookFact.PromptSubmitted({ run: Option.some("r3f9a0c1b2d4e"), task: Option.some("demo.md") })
    )
  })

  it("UserPromptSubmit typed by a person → PromptSubmitted with no run", () => {
    expect(fact({ ...Observed.userPromptSubmit, prompt: "What does this repo do?" })).toStrictEqual(
      HookFact.PromptSubmitted({ run: Option.none(), task: Option.none() })
    )
  })

  it("Stop → TurnEnded", () => {
    expect(fact(Observed.stop)).toStrictEqual(HookFact.TurnEnded())
  })

  it("StopFailure rate_limit → TurnFailed limit with the limit text, whose reset time reads back (2.1.332 and 2.1.197)", () => {
    const failed = fact(Observed.stopFailure)
    expect(failed).toStrictEqual(
      HookFact.TurnFailed({
        kind: "limit",
        error: "rate_limit",
        text: "You've hit your 5-hour limit · resets 8:56pm (UTC)"
      })
    )
    const now = Date.UTC(2026, 10, 25, 18, 56, 30)
    expect(limitResetAt(failed, { now, timeZone: "America/New_York" })).toStrictEqual(
      Option.some(Date.UTC(2026, 10, 25, 20, 56))
    )
    expect(fact(Observed.stopFailure197)).toMatchObject({ _tag: "TurnFailed", kind: "limit" })
  })

  it("Notification permission_prompt → NeedsPerson with Claude Code's message", () => {
    expect(fact(Observed.notification)).toStrictEqual(HookFact.NeedsPerson({ reason: "Claude needs your permission" }))
  })

  it("SessionEnd → Ended with its reason", () => {
    expect(fact(Observed.sessionEnd)).toStrictEqual(HookFact.Ended({ reason: "prompt_input_exit" }))
  })

  it("keeps fields it does not know (effort, background_tasks, scratchpad_dir)", () => {
    const event = Result.getOrThrow(decodeHookEvent(Observed.stop))
    expect(event).toMatchObject({ effort: { level: "medium" }, background_tasks: [], session_crons: [] })
  })
})

describe("StopFailure errors and notifications as facts", () => {
  const failure = (error: string, text = "API Error") =>
    fact({ hook_event_name: "StopFailure", error, last_assistant_message: text })

  it.each(
    [
      ["rate_limit", "limit"],
      ["authentication_failed", "auth"],
      ["oauth_org_not_allowed", "auth"],
      ["billing_error", "billing"],
      ["account_on_hold", "billing"],
      ["overloaded", "overloaded"],
      ["server_error", "other"],
      ["invalid_request", "other"],
      ["max_output_tokens", "other"],
      ["model_not_found", "other"]
    ] as const
  )("error %s → TurnFailed %s", (error, kind) => {
    expect(failure(error)).toMatchObject({ _tag: "TurnFailed", kind, error })
  })

  it("an error it does not know counts as a limit when its text is one of Claude Code's limit messages", () => {
    expect(failure("some_new_error", "You're out of extra usage · resets Nov 28")).toMatchObject({ kind: "limit" })
    expect(failure("some_new_error", "Something else broke")).toMatchObject({ kind: "other" })
    expect(failureKind("", "Your org is out of usage · add funds to continue")).toBe("limit")
  })

  it.each(
    [
      ["quota_auto_resume_fired", "fired"],
      ["quota_auto_resume_stale", "stale"],
      ["quota_auto_resume_disabled", "disabled"]
    ] as const
  )("Notification %s → AutoResume %s", (type, kind) => {
    expect(fact({ hook_event_name: "Notification", notification_type: type, message: "…" })).toStrictEqual(
      HookFact.AutoResume({ kind })
    )
  })

  it("idle_prompt and auth_success are Other (the daemon does not act on them)", () => {
    expect(fact({ hook_event_name: "Notification", notification_type: "idle_prompt" })).toStrictEqual(
      HookFact.Other({ event: "Notification", detail: "idle_prompt" })
    )
    expect(fact({ hook_event_name: "Notification", notification_type: "auth_success" })).toMatchObject({
      _tag: "Other"
    })
  })

  it("PermissionRequest and an MCP input dialog need a person", () => {
    expect(fact({ hook_event_name: "PermissionRequest", tool_name: "Bash", tool_input: { command: "rm -rf x" } }))
      .toStrictEqual(
        HookFact.NeedsPerson({ reason: "permission to use Bash" })
      )
    expect(
      fact({
        hook_event_name: "Notification",
        notification_type: "elicitation_dialog",
        message: "An MCP server needs your input"
      })
    )
      .toStrictEqual(HookFact.NeedsPerson({ reason: "An MCP server needs your input" }))
  })

  it("an unknown event is Other, named", () => {
    expect(fact({ hook_event_name: "PreToolUse", tool_name: "Bash" })).toStrictEqual(
      HookFact.Other({ event: "PreToolUse", detail: "" })
    )
    expect(fact({})).toStrictEqual(HookFact.Other({ event: "", detail: "" }))
  })

  it("a known event with a field of another type reads the field as absent, not as an error", () => {
    expect(fact({ hook_event_name: "StopFailure", error: 429, last_assistant_message: ["x"] })).toStrictEqual(
      HookFact.TurnFailed({ kind: "other", error: "", text: "" })
    )
    expect(fact({ hook_event_name: "UserPromptSubmit", prompt: { text: "hi" } })).toStrictEqual(
      HookFact.PromptSubmitted({ run: Option.none(), task: Option.none() })
    )
  })

  it("text that is not JSON, or JSON that is not an object, is refused with the reason", () => {
    expect(Result.isFailure(parseHookEvent("{not json"))).toBe(true)
    const refused = parseHookEvent("[1,2]")
    expect(Result.isFailure(refused) && refused.failure.message).toBe(
      "not a Claude Code hook event: expected a JSON object, got an array"
    )
  })
})

describe("the prompt header names the run", () => {
  it("promptRun reads back what promptHeader writes, whatever the task's name", () => {
    fc.assert(
      fc.property(taskName, fc.stringMatching(/^r[0-9a-f]{12}$/), fc.string(), (name, run, body) => {
        expect(promptRun(`${promptHeader(name, run)}\n\n${body}`)).toStrictEqual(Option.some({ task: name, run }))
      }),
      RUNS
    )
  })

  it("only the first line counts: a header quoted further down names no run", () => {
    expect(promptRun("Please look at this:\nTask a.md from the claude-failover queue (run r1):")).toStrictEqual(
      Option.none()
    )
  })
})

const TAGS = ["PromptSubmitted", "TurnEnded", "TurnFailed", "NeedsPerson", "AutoResume", "Started", "Ended", "Other"]

/** Objects that look like hook inputs: a known or random event name, known fields of any JSON type, random extras. */
const hookLike = fc.record({
  hook_event_name: fc.oneof(
    fc.constantFrom(
      "SessionStart",
      "UserPromptSubmit",
      "Stop",
      "StopFailure",
      "Notification",
      "PermissionRequest",
      "SessionEnd"
    ),
    fc.string(),
    fc.jsonValue()
  ),
  session_id: fc.jsonValue(),
  prompt: fc.oneof(fc.string(), fc.jsonValue()),
  error: fc.oneof(fc.constantFrom("rate_limit", "billing_error", "overloaded"), fc.jsonValue()),
  notification_type: fc.oneof(
    fc.constantFrom("permission_prompt", "quota_auto_resume_fired", "idle_prompt"),
    fc.jsonValue()
  ),
  last_assistant_message: fc.oneof(fc.string(), fc.jsonValue()),
  reason: fc.jsonValue()
}, { requiredKeys: [] }).chain((known) =>
  fc.dictionary(fc.string(), fc.jsonValue()).map((extra) => ({ ...extra, ...known }))
)

describe("decoding never fails on an object and never throws on any JSON", () => {
  it("any JSON value: an event (objects) or a HookInputInvalid (the rest), never a throw", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (json) => {
        const decoded = decodeHookEvent(json)
        const isObject = typeof json === "object" && json !== null && !Array.isArray(json)
        expect(Result.isSuccess(decoded)).toBe(isObject)
      }),
      RUNS
    )
  })

  it("any text: parseHookEvent answers without throwing", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
        expect(["Success", "Failure"]).toContain(parseHookEvent(text)._tag)
      }),
      RUNS
    )
  })

  it("every event maps to exactly one fact, and its description names that fact", () => {
    fc.assert(
      fc.property(hookLike, (input) => {
        const decoded = decodeHookEvent(input)
        expect(Result.isSuccess(decoded)).toBe(true)
        const one = factOf(Result.getOrThrow(decoded))
        expect(TAGS).toContain(one._tag)
        expect(describeFact(one).startsWith(one._tag)).toBe(true)
        expect(factOf(Result.getOrThrow(decodeHookEvent(input)))).toStrictEqual(one)
      }),
      RUNS
    )
  })

  it("fields it does not know are kept with their values", () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string().map((key) => `x_${key}`), fc.jsonValue()),
        fc.constantFrom("Stop", "Weird"),
        (extra, name) => {
          const event = Result.getOrThrow(decodeHookEvent({ ...extra, hook_event_name: name }))
          for (const [key, value] of Object.entries(extra))
            expect((event as Record<string, unknown>)[key])
              .toStrictEqual(value)
        }
      ),
      RUNS
    )
  })
})
