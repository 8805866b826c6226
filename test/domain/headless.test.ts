/**
 * Claude Code's headless stream-json as data: the lines the real Claude Code printed decode to what the daemon acts on,
 * any text decodes without throwing, and the result line decides a run's outcome — a limit's reset exactly from its
 * event, never from the clock time in its text.
 */
import { describe, expect, it } from "@effect/vitest"
import { Option } from "effect"
import fc from "fast-check"
import {
  decodeLine,
  emptyReport,
  foldLine,
  HeadlessLine,
  outcomeOf,
  type ProcessEnd,
  type RunOutcome,
  RunOutcome as Outcome,
  type RunReport,
  sightingOfSlot,
  slotNames,
  SlotState
} from "../../src/domain/headless.ts"
import { type BookSettings, emptyBook, isFree } from "../../src/domain/session-book.ts"
import { TaskName } from "../../src/domain/task.ts"
import { RUNS } from "./arbitraries.ts"

const OK_SESSION = "43878ddd-e32b-40a7-af7b-a6d59153e47f"
const LIMIT_SESSION = "34d988f3-398b-4d0a-8584-43d1fe974323"
const AUTH_SESSION = "76f3b99f-3c47-4efa-b3a1-f1d25661a509"
const BUSY_SESSION = "5b0e7a52-6a8c-4d3e-9f0e-2c1d6b7a9e10"
const FIVE_HOUR_TEXT = "You've hit your 5-hour limit · resets 10:59pm (UTC)"
const WEEKLY_TEXT = "You've hit your weekly limit · resets Nov 28, 8:59pm (UTC)"
const OVERLOADED_TEXT =
  "API Error: 529 Overloaded. This is a server-side issue, usually temporary — try again in a moment."
/** The `resetsAt` of the recorded limits, unix seconds: 2026-11-25 22:59 UTC and 2026-11-28 20:59 UTC. */
const FIVE_HOUR_RESET_S = 1795647540
const WEEKLY_RESET_S = 1795899540

/** Lines as Claude Code 2.1.332 printed them (`claude -p --output-format stream-json --verbose`). */
const Recorded = {
  init:
    `{"type":"system","subtype":"init","cwd":"/tmp/hl/work","session_id":"${OK_SESSION}","tools":["Task","Bash"],"model":"claude-sonnet-5-5","permissionMode":"default","claude_code_version":"2.1.332","uuid":"u1"}`,
  answer:
    `{"type":"assistant","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-5-5","content":[{"type":"text","text":"Done. Nothing else to do here."}],"stop_reason":null},"parent_tool_use_id":null,"session_id":"${OK_SESSION}","uuid":"u2"}`,
  allowed:
    `{"type":"rate_limit_event","rate_limit_info":{"status":"allowed","isUsingOverage":false},"uuid":"u3","session_id":"${OK_SESSION}"}`,
  /** Exit 0. */
  success:
    `{"type":"result","subtype":"success","is_error":false,"duration_ms":111,"duration_api_ms":20,"num_turns":1,"result":"Done. Nothing else to do here.","stop_reason":"end_turn","session_id":"${OK_SESSION}","total_cost_usd":0.00031999999999999997,"terminal_reason":"completed","api_error_status":null,"permission_denials":[],"uuid":"u4"}`,
  fiveHourEvent:
    `{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":${FIVE_HOUR_RESET_S},"rateLimitType":"five_hour","isUsingOverage":false},"uuid":"u5","session_id":"${LIMIT_SESSION}"}`,
  fiveHourAnswer:
    `{"type":"assistant","message":{"content":[{"type":"text","text":"${FIVE_HOUR_TEXT}"}]},"session_id":"${LIMIT_SESSION}","error":"rate_limit","is_api_error_message":true,"api_error_status":429,"api_error":"usage_limit_reached","api_error_params":{"rate_limit_info":{"status":"rejected","resetsAt":${FIVE_HOUR_RESET_S},"rateLimitType":"five_hour","isUsingOverage":false}},"api_error_type":"rate_limit_error"}`,
  /** Exit 1. */
  fiveHourResult:
    `{"type":"result","subtype":"success","is_error":true,"result":"${FIVE_HOUR_TEXT}","api_error":"usage_limit_reached","api_error_status":429,"terminal_reason":"api_error","session_id":"${LIMIT_SESSION}","total_cost_usd":0,"num_turns":1,"duration_ms":113,"stop_reason":"stop_sequence"}`,
  weeklyEvent:
    `{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":${WEEKLY_RESET_S},"rateLimitType":"seven_day","isUsingOverage":false},"uuid":"u6","session_id":"${LIMIT_SESSION}"}`,
  weeklyAnswer:
    `{"type":"assistant","message":{"content":[{"type":"text","text":"${WEEKLY_TEXT}"}]},"session_id":"${LIMIT_SESSION}","error":"rate_limit","is_api_error_message":true,"api_error_status":429,"api_error":"usage_limit_reached","api_error_params":{"rate_limit_info":{"status":"rejected","resetsAt":${WEEKLY_RESET_S},"rateLimitType":"seven_day","isUsingOverage":false}},"api_error_type":"rate_limit_error"}`,
  weeklyResult:
    `{"type":"result","subtype":"success","is_error":true,"result":"${WEEKLY_TEXT}","api_error":"usage_limit_reached","api_error_status":429,"terminal_reason":"api_error","session_id":"${LIMIT_SESSION}","total_cost_usd":0,"num_turns":1,"duration_ms":113,"stop_reason":"stop_sequence"}`,
  authAnswer:
    `{"type":"assistant","message":{"content":[{"type":"text","text":"Not logged in · Please run /login"}]},"session_id":"${AUTH_SESSION}","error":"authentication_failed","is_api_error_message":true,"api_error_status":401,"api_error_type":"authentication_error"}`,
  /** Exit 1. */
  authResult:
    `{"type":"result","subtype":"success","is_error":true,"result":"Not logged in · Please run /login","api_error":null,"api_error_status":401,"terminal_reason":"api_error","session_id":"${AUTH_SESSION}","total_cost_usd":0,"num_turns":1,"duration_ms":1789}`,
  retry: (attempt: number) =>
    `{"type":"system","subtype":"api_retry","attempt":${attempt},"max_retries":10,"retry_delay_ms":1023,"error_status":529,"error":"overloaded","session_id":"${BUSY_SESSION}","uuid":"r${attempt}"}`,
  overloadedAnswer:
    `{"type":"assistant","message":{"content":[{"type":"text","text":"${OVERLOADED_TEXT}"}]},"session_id":"${BUSY_SESSION}","error":"server_error","is_api_error_message":true,"api_error_status":529}`,
  /** Exit 1. */
  overloadedResult:
    `{"type":"result","subtype":"success","is_error":true,"result":"${OVERLOADED_TEXT}","api_error_status":529,"terminal_reason":"api_error","session_id":"${BUSY_SESSION}","total_cost_usd":0,"num_turns":1,"duration_ms":250000}`
} as const

/** Whole runs, line by line, as Claude Code printed them. */
const Runs = {
  ok: [Recorded.init, Recorded.answer, Recorded.allowed, Recorded.success],
  fiveHour: [Recorded.fiveHourEvent, Recorded.fiveHourAnswer, Recorded.fiveHourResult],
  weekly: [Recorded.weeklyEvent, Recorded.weeklyAnswer, Recorded.weeklyResult],
  auth: [Recorded.authAnswer, Recorded.authResult],
  overloaded: [
    Recorded.retry(1),
    Recorded.retry(2),
    Recorded.retry(3),
    Recorded.overloadedAnswer,
    Recorded.overloadedResult
  ]
} as const

const ALL_RECORDED: ReadonlyArray<string> = Object.values(Runs).flat()

const fold = (lines: ReadonlyArray<string>): RunReport => lines.map(decodeLine).reduce(foldLine, emptyReport)
const exited = (code: number): ProcessEnd => ({ _tag: "Exited", code })
/** The evening the limits were recorded: three hours before the 5-hour reset. */
const clock = { now: Date.UTC(2026, 10, 25, 19, 59), timeZone: "UTC" }
const object = (line: string): Record<string, unknown> => JSON.parse(line)
const line = (fields: Record<string, unknown>): string => JSON.stringify(fields)

/** Restates decodeLine's first rule independently: only text that parses to a JSON object is a line. */
const isJsonObject = (text: string): boolean => {
  try {
    const json: unknown = JSON.parse(text)
    return typeof json === "object" && json !== null && !Array.isArray(json)
  } catch {
    return false
  }
}

// --- arbitraries ---------------------------------------------------------------------------------------------------

const KNOWN_FIELDS = [
  "type",
  "subtype",
  "session_id",
  "model",
  "attempt",
  "error_status",
  "error",
  "rate_limit_info",
  "message",
  "api_error_status",
  "is_error",
  "result",
  "api_error",
  "total_cost_usd",
  "num_turns",
  "duration_ms"
]
/** Fields Claude Code might add in a later version: any name but the ones decoded. */
const extraFields = fc.dictionary(
  fc.string().filter((key) => !KNOWN_FIELDS.includes(key)),
  fc.jsonValue()
)
const sessionId = fc.oneof(fc.uuid(), fc.jsonValue())

/** Objects that look like lines: a known or random type, known fields of any JSON type, random extras. */
const lineLike = fc.record({
  type: fc.oneof(
    fc.constantFrom("system", "assistant", "user", "rate_limit_event", "result", "stream_event"),
    fc.string(),
    fc.jsonValue()
  ),
  subtype: fc.oneof(fc.constantFrom("init", "api_retry", "success", "error_max_turns"), fc.jsonValue()),
  session_id: sessionId,
  error: fc.oneof(
    fc.constantFrom("rate_limit", "authentication_failed", "billing_error", "server_error"),
    fc.jsonValue()
  ),
  api_error_status: fc.oneof(fc.constantFrom(401, 403, 429, 529), fc.jsonValue()),
  is_error: fc.oneof(fc.boolean(), fc.jsonValue()),
  result: fc.oneof(fc.string(), fc.jsonValue()),
  rate_limit_info: fc.oneof(
    fc.record({ status: fc.constantFrom("allowed", "rejected"), resetsAt: fc.jsonValue() }, { requiredKeys: [] }),
    fc.jsonValue()
  ),
  message: fc.oneof(fc.record({ content: fc.array(fc.jsonValue()) }), fc.jsonValue())
}, { requiredKeys: [] }).chain((known) => extraFields.map((extra) => ({ ...extra, ...known })))

/** Text that is no JSON object: noise on stdout, a line cut short, a JSON value of another kind. */
const garbage = fc.oneof(
  fc.string().filter((text) => !isJsonObject(text)),
  fc.tuple(fc.constantFrom(...ALL_RECORDED), fc.nat()).map(([text, cut]) => text.slice(0, cut % text.length)),
  fc.jsonValue().filter((json) => typeof json !== "object" || json === null || Array.isArray(json)).map((json) =>
    JSON.stringify(json)
  )
)

/** Any text a process could print on a line. */
const anyText = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme" }),
  fc.string({ unit: "binary" }),
  fc.json(),
  garbage,
  lineLike.map(line)
)

/** Lines that are no result: whatever they say, a run made of them has not ended its turn. */
const notResult = fc.oneof(
  garbage,
  lineLike.filter((fields) => fields.type !== "result").map(line),
  fc.constantFrom(...ALL_RECORDED.filter((text) => decodeLine(text)._tag !== "Result"))
)

/** Lines a usage limit leaves as it is: allowed rate-limit events, answers (even with an error), retries, others. */
const noise = fc.oneof(
  garbage,
  fc.constantFrom(
    Recorded.init,
    Recorded.answer,
    Recorded.allowed,
    Recorded.retry(1),
    Recorded.overloadedAnswer,
    Recorded.authAnswer
  ),
  lineLike.filter((fields) => fields.type !== "result" && fields.type !== "rate_limit_event").map(line),
  fc.record({ status: fc.constantFrom("allowed", "allowed_warning"), resetsAt: fc.integer({ min: 0, max: 2e9 }) }).map((
    info
  ) => line({ type: "rate_limit_event", rate_limit_info: info }))
)

const processEnd: fc.Arbitrary<ProcessEnd> = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map((code) => ({ _tag: "Exited" as const, code })),
  fc.constantFrom("SIGKILL", "SIGTERM", "SIGSEGV", "SIGINT").map((signal) => ({ _tag: "Signalled" as const, signal })),
  fc.string({ minLength: 1 }).map((reason) => ({ _tag: "Stopped" as const, reason })),
  fc.string({ minLength: 1 }).map((reason) => ({ _tag: "NotStarted" as const, reason }))
)
/** How a process that ran to its end ended: an exit code or a signal, never the daemon's doing. */
const ranToEnd = processEnd.filter((end) => end._tag === "Exited" || end._tag === "Signalled")

const instant = fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2035, 0, 1) })
const timeZone = fc.constantFrom("UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Pacific/Auckland")

/** The session id a run's lines name last, read straight from the JSON: a string `session_id` of an object line. */
const lastSessionId = (lines: ReadonlyArray<string>): Option.Option<string> =>
  lines.reduce<Option.Option<string>>((last, text) => {
    if (!isJsonObject(text)) return last
    const id = object(text).session_id
    return typeof id === "string" ? Option.some(id) : last
  }, Option.none())

/** Inserts `into` between `lines`, keeping the order of both. */
const interleave = (lines: ReadonlyArray<string>, into: ReadonlyArray<string>, at: ReadonlyArray<number>) => {
  const out = [...lines]
  into.forEach((text, i) => out.splice((at[i] ?? 0) % (out.length + 1), 0, text))
  return out
}

// --- decoding ------------------------------------------------------------------------------------------------------

describe("lines from the real Claude Code", () => {
  it("init → Init with its session", () => {
    expect(decodeLine(Recorded.init)).toStrictEqual(HeadlessLine.Init({ sessionId: Option.some(OK_SESSION) }))
  })

  it("an answer → Assistant with its text and no error", () => {
    expect(decodeLine(Recorded.answer)).toStrictEqual(
      HeadlessLine.Assistant({
        sessionId: Option.some(OK_SESSION),
        text: "Done. Nothing else to do here.",
        error: Option.none(),
        status: Option.none()
      })
    )
  })

  it("an allowed rate-limit event → RateLimit allowed, no reset", () => {
    expect(decodeLine(Recorded.allowed)).toStrictEqual(
      HeadlessLine.RateLimit({
        sessionId: Option.some(OK_SESSION),
        status: "allowed",
        resetAt: Option.none(),
        kind: ""
      })
    )
  })

  it("a success result → Result with its text, cost, turns and duration (api_error_status null reads as absent)", () => {
    expect(decodeLine(Recorded.success)).toStrictEqual(
      HeadlessLine.Result({
        sessionId: Option.some(OK_SESSION),
        isError: false,
        subtype: "success",
        text: "Done. Nothing else to do here.",
        apiError: Option.none(),
        status: Option.none(),
        costUsd: Option.some(0.00031999999999999997),
        turns: Option.some(1),
        durationMs: Option.some(111)
      })
    )
  })

  it("a rejected rate-limit event → RateLimit rejected, its reset in milliseconds, its kind", () => {
    expect(decodeLine(Recorded.fiveHourEvent)).toStrictEqual(
      HeadlessLine.RateLimit({
        sessionId: Option.some(LIMIT_SESSION),
        status: "rejected",
        resetAt: Option.some(FIVE_HOUR_RESET_S * 1000),
        kind: "five_hour"
      })
    )
    expect(decodeLine(Recorded.weeklyEvent)).toMatchObject({
      resetAt: Option.some(WEEKLY_RESET_S * 1000),
      kind: "seven_day"
    })
  })

  it("the limit's answer → Assistant with error rate_limit, status 429 and the limit text", () => {
    expect(decodeLine(Recorded.fiveHourAnswer)).toStrictEqual(
      HeadlessLine.Assistant({
        sessionId: Option.some(LIMIT_SESSION),
        text: FIVE_HOUR_TEXT,
        error: Option.some("rate_limit"),
        status: Option.some(429)
      })
    )
  })

  it("the limit's result says subtype success, yet is an error: is_error decides", () => {
    expect(decodeLine(Recorded.fiveHourResult)).toStrictEqual(
      HeadlessLine.Result({
        sessionId: Option.some(LIMIT_SESSION),
        isError: true,
        subtype: "success",
        text: FIVE_HOUR_TEXT,
        apiError: Option.some("usage_limit_reached"),
        status: Option.some(429),
        costUsd: Option.some(0),
        turns: Option.some(1),
        durationMs: Option.some(113)
      })
    )
  })

  it("not logged in: the answer carries authentication_failed and 401, the result api_error null reads as absent", () => {
    expect(decodeLine(Recorded.authAnswer)).toStrictEqual(
      HeadlessLine.Assistant({
        sessionId: Option.some(AUTH_SESSION),
        text: "Not logged in · Please run /login",
        error: Option.some("authentication_failed"),
        status: Option.some(401)
      })
    )
    expect(decodeLine(Recorded.authResult)).toMatchObject({
      _tag: "Result",
      isError: true,
      apiError: Option.none(),
      status: Option.some(401),
      durationMs: Option.some(1789)
    })
  })

  it("an api_retry → Retry with the status and error it retries", () => {
    expect(decodeLine(Recorded.retry(1))).toStrictEqual(
      HeadlessLine.Retry({ sessionId: Option.some(BUSY_SESSION), status: Option.some(529), error: "overloaded" })
    )
  })

  it("a result whose subtype is not success is an error even when is_error says false", () => {
    expect(decodeLine(line({ type: "result", subtype: "error_max_turns", is_error: false }))).toMatchObject({
      isError: true
    })
    expect(decodeLine(line({ type: "result" }))).toMatchObject({ isError: false, text: "" })
  })

  it("only the text blocks of an answer count, joined by newlines", () => {
    const answer = line({
      type: "assistant",
      message: {
        content: [{ type: "text", text: "one" }, { type: "tool_use", name: "Bash" }, "two", {
          type: "text",
          text: "three"
        }]
      }
    })
    expect(decodeLine(answer)).toMatchObject({ _tag: "Assistant", text: "one\nthree" })
  })
})

describe("decoding never throws and never loses a JSON object", () => {
  it("any text decodes, and is Malformed exactly when it is not a JSON object", () => {
    fc.assert(
      fc.property(anyText, (text) => {
        expect(decodeLine(text)._tag === "Malformed").toBe(!isJsonObject(text))
      }),
      RUNS
    )
  })

  it("a real line cut short is Malformed, naming JSON as the problem", () => {
    fc.assert(
      fc.property(fc.constantFrom(...ALL_RECORDED), fc.nat(), (text, cut) => {
        const decoded = decodeLine(text.slice(0, cut % text.length))
        expect(decoded._tag).toBe("Malformed")
        expect(decoded._tag === "Malformed" && decoded.problem).toMatch(/^not JSON: /)
      }),
      RUNS
    )
  })

  it("a real line with a character changed still decodes, Malformed exactly when it no longer is a JSON object", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...ALL_RECORDED),
        fc.nat(),
        fc.string({ unit: "binary", maxLength: 3 }),
        (text, at, by) => {
          const i = at % text.length
          const mutated = `${text.slice(0, i)}${by}${text.slice(i + 1)}`
          expect(decodeLine(mutated)._tag === "Malformed").toBe(!isJsonObject(mutated))
        }
      ),
      RUNS
    )
  })

  it("any JSON value that is not an object is Malformed: not a JSON object", () => {
    fc.assert(
      fc.property(
        fc.jsonValue().filter((json) => typeof json !== "object" || json === null || Array.isArray(json)),
        (json) => {
          expect(decodeLine(JSON.stringify(json))).toStrictEqual(
            HeadlessLine.Malformed({ problem: "not a JSON object" })
          )
        }
      ),
      RUNS
    )
  })

  it("any JSON object decodes to a line, never Malformed, whatever its fields hold", () => {
    fc.assert(
      fc.property(fc.oneof(lineLike, fc.dictionary(fc.string(), fc.jsonValue())), (fields) => {
        expect(decodeLine(line(fields))._tag).not.toBe("Malformed")
      }),
      RUNS
    )
  })

  it("a type it does not know is Other keeping that type; no type (or not a string) is Other (no type)", () => {
    fc.assert(
      fc.property(
        fc.string().filter((type) => !["system", "assistant", "rate_limit_event", "result"].includes(type)),
        fc.option(fc.uuid(), { nil: undefined }),
        extraFields,
        (type, id, extra) => {
          const fields = id === undefined ? { ...extra, type } : { ...extra, type, session_id: id }
          expect(decodeLine(line(fields))).toStrictEqual(
            HeadlessLine.Other({ sessionId: Option.fromUndefinedOr(id), type })
          )
        }
      ),
      RUNS
    )
    expect(decodeLine("{}")).toStrictEqual(HeadlessLine.Other({ sessionId: Option.none(), type: "(no type)" }))
    expect(decodeLine(line({ type: 5, session_id: "s" }))).toStrictEqual(
      HeadlessLine.Other({ sessionId: Option.some("s"), type: "(no type)" })
    )
    // A system line of a subtype it does not know is no Init and no Retry.
    expect(decodeLine(line({ type: "system", subtype: "compact_boundary" }))).toMatchObject({
      _tag: "Other",
      type: "system"
    })
  })

  it("fields it does not know never change what a real line decodes to", () => {
    fc.assert(
      fc.property(fc.constantFrom(...ALL_RECORDED), extraFields, (text, extra) => {
        expect(decodeLine(line({ ...extra, ...object(text) }))).toStrictEqual(decodeLine(text))
      }),
      RUNS
    )
  })

  it("a __proto__ field is a field like any other: it lends the line no values", () => {
    expect(decodeLine(`{"type":"result","__proto__":{"is_error":true,"result":"x","total_cost_usd":5}}`)).toStrictEqual(
      decodeLine(`{"type":"result"}`)
    )
    expect(decodeLine(`{"__proto__":{"type":"result"}}`)).toMatchObject({ _tag: "Other", type: "(no type)" })
  })
})

/** Each decoded field of a real line, with a JSON value of another type it could be sent as. */
const notA = (kind: "string" | "number" | "boolean" | "object" | "array") =>
  fc.jsonValue().filter((json) => {
    switch (kind) {
      case "object":
        return typeof json !== "object" || json === null || Array.isArray(json)
      case "array":
        return !Array.isArray(json)
      default:
        return typeof json !== kind
    }
  })

const LENIENT: Array<[field: string, kind: "string" | "number" | "boolean" | "object", line: string]> = [
  ["session_id", "string", Recorded.init],
  ["model", "string", Recorded.init],
  ["attempt", "number", Recorded.retry(2)],
  ["error_status", "number", Recorded.retry(2)],
  ["error", "string", Recorded.retry(2)],
  ["rate_limit_info", "object", Recorded.fiveHourEvent],
  ["error", "string", Recorded.fiveHourAnswer],
  ["api_error_status", "number", Recorded.fiveHourAnswer],
  ["message", "object", Recorded.fiveHourAnswer],
  ["subtype", "string", Recorded.fiveHourResult],
  ["is_error", "boolean", Recorded.fiveHourResult],
  ["result", "string", Recorded.fiveHourResult],
  ["api_error", "string", Recorded.fiveHourResult],
  ["api_error_status", "number", Recorded.fiveHourResult],
  ["total_cost_usd", "number", Recorded.success],
  ["num_turns", "number", Recorded.success],
  ["duration_ms", "number", Recorded.success]
]

const without = (fields: Record<string, unknown>, key: string) =>
  Object.fromEntries(Object.entries(fields).filter(([k]) => k !== key))

describe("every field is lenient: the wrong type, or null, reads as absent", () => {
  it.each(LENIENT)("%s sent as another type than %s reads exactly as if it were left out", (field, kind, text) => {
    const fields = object(text)
    fc.assert(
      fc.property(notA(kind), (value) => {
        expect(decodeLine(line({ ...fields, [field]: value }))).toStrictEqual(decodeLine(line(without(fields, field))))
      }),
      { numRuns: 50 }
    )
  })

  it("the fields inside rate_limit_info and message are lenient too", () => {
    const event = object(Recorded.fiveHourEvent)
    fc.assert(
      fc.property(notA("string"), notA("number"), notA("string"), notA("array"), (status, resetsAt, kind, content) => {
        expect(decodeLine(line({ ...event, rate_limit_info: { status, resetsAt, rateLimitType: kind } })))
          .toStrictEqual(
            HeadlessLine.RateLimit({
              sessionId: Option.some(LIMIT_SESSION),
              status: "",
              resetAt: Option.none(),
              kind: ""
            })
          )
        expect(decodeLine(line({ type: "assistant", message: { content } }))).toMatchObject({
          _tag: "Assistant",
          text: ""
        })
      }),
      RUNS
    )
  })

  it("examples: a cost that is text, turns below zero, a null reset, a numeric session id", () => {
    expect(decodeLine(line({ ...object(Recorded.success), total_cost_usd: "x", num_turns: -1 }))).toMatchObject({
      _tag: "Result",
      costUsd: Option.none(),
      turns: Option.none(),
      durationMs: Option.some(111)
    })
    expect(decodeLine(line({ type: "result", num_turns: 1.5, duration_ms: -3, total_cost_usd: -0.1 }))).toMatchObject({
      turns: Option.none(),
      durationMs: Option.none(),
      costUsd: Option.none()
    })
    expect(decodeLine(line({ type: "rate_limit_event", rate_limit_info: { status: "rejected", resetsAt: null } })))
      .toMatchObject({
        status: "rejected",
        resetAt: Option.none()
      })
    expect(decodeLine(line({ ...object(Recorded.init), session_id: 5 }))).toStrictEqual(
      HeadlessLine.Init({ sessionId: Option.none() })
    )
    // JSON numbers too large for a double parse to Infinity: no finite reset, so none.
    expect(decodeLine(`{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1e999}}`))
      .toMatchObject({
        resetAt: Option.none()
      })
  })
})

// --- the report ----------------------------------------------------------------------------------------------------

describe("a run's report: its lines folded", () => {
  it("the recorded runs", () => {
    expect(fold(Runs.ok)).toStrictEqual({
      sessionId: Option.some(OK_SESSION),
      lines: 4,
      malformed: 0,
      retries: 0,
      limit: Option.none(),
      error: Option.none(),
      result: Option.some(decodeLine(Recorded.success))
    })
    expect(fold(Runs.fiveHour)).toMatchObject({
      limit: Option.some({ resetAt: Option.some(FIVE_HOUR_RESET_S * 1000), kind: "five_hour" }),
      error: Option.some({ kind: "rate_limit", status: Option.some(429), text: FIVE_HOUR_TEXT })
    })
    expect(fold(Runs.overloaded)).toMatchObject({ retries: 3, lines: 5, sessionId: Option.some(BUSY_SESSION) })
  })

  it("lines counts every line, malformed those that are no JSON object, retries the api_retry lines", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(anyText, fc.constantFrom(...ALL_RECORDED))), (lines) => {
        const report = fold(lines)
        expect(report.lines).toBe(lines.length)
        expect(report.malformed).toBe(lines.filter((text) => !isJsonObject(text)).length)
        expect(report.retries).toBe(
          lines.filter((text) => {
            if (!isJsonObject(text)) return false
            const fields = object(text)
            return fields.type === "system" && fields.subtype === "api_retry"
          }).length
        )
      }),
      RUNS
    )
  })

  it("the session is the last one a line named; lines without one (or garbage) leave it", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(anyText, fc.constantFrom(...ALL_RECORDED))), (lines) => {
        expect(fold(lines).sessionId).toStrictEqual(lastSessionId(lines))
      }),
      RUNS
    )
  })

  it("the result kept is the last result line", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(notResult, fc.constantFrom(Recorded.success, Recorded.fiveHourResult, Recorded.authResult))),
        (lines) => {
          const last = lines.filter((text) => decodeLine(text)._tag === "Result").at(-1)
          expect(fold(lines).result).toStrictEqual(Option.map(Option.fromUndefinedOr(last), decodeLine))
        }
      ),
      RUNS
    )
  })
})

// --- outcomes ------------------------------------------------------------------------------------------------------

describe("a run's outcome from the recorded runs", () => {
  it("a success, exit 0 → Finished with the answer, its session, cost, turns and duration", () => {
    expect(outcomeOf(fold(Runs.ok), exited(0), clock)).toStrictEqual(
      Outcome.Finished({
        text: "Done. Nothing else to do here.",
        facts: {
          sessionId: Option.some(OK_SESSION),
          costUsd: Option.some(0.00031999999999999997),
          turns: Option.some(1),
          durationMs: Option.some(111)
        }
      })
    )
  })

  it("the 5-hour limit, exit 1 → Limited until resetsAt exactly, five_hour, with the limit text", () => {
    expect(outcomeOf(fold(Runs.fiveHour), exited(1), clock)).toStrictEqual(
      Outcome.Limited({
        text: FIVE_HOUR_TEXT,
        resetAt: Option.some(Date.UTC(2026, 10, 25, 22, 59)),
        kind: "five_hour",
        facts: {
          sessionId: Option.some(LIMIT_SESSION),
          costUsd: Option.some(0),
          turns: Option.some(1),
          durationMs: Option.some(113)
        }
      })
    )
  })

  it("the weekly limit → Limited until its resetsAt, seven_day", () => {
    expect(outcomeOf(fold(Runs.weekly), exited(1), clock)).toMatchObject({
      _tag: "Limited",
      text: WEEKLY_TEXT,
      resetAt: Option.some(Date.UTC(2026, 10, 28, 20, 59)),
      kind: "seven_day"
    })
  })

  it("not logged in → NeedsPerson with Claude Code's text", () => {
    expect(outcomeOf(fold(Runs.auth), exited(1), clock)).toStrictEqual(
      Outcome.NeedsPerson({
        text: "Not logged in · Please run /login",
        facts: {
          sessionId: Option.some(AUTH_SESSION),
          costUsd: Option.some(0),
          turns: Option.some(1),
          durationMs: Option.some(1789)
        }
      })
    )
  })

  it("a 529 that outlasted the retries → ApiError with Claude Code's text (another try may do better)", () => {
    expect(outcomeOf(fold(Runs.overloaded), exited(1), clock)).toMatchObject({
      _tag: "ApiError",
      text: OVERLOADED_TEXT
    })
  })

  it("the process died before its result → Fault naming how it ended", () => {
    const lines = [Recorded.init, Recorded.answer]
    expect(outcomeOf(fold(lines), exited(3), clock)).toStrictEqual(
      Outcome.Fault({
        reason: "exited: its process ended with code 3 and no result",
        facts: {
          sessionId: Option.some(OK_SESSION),
          costUsd: Option.none(),
          turns: Option.none(),
          durationMs: Option.none()
        }
      })
    )
    expect(outcomeOf(fold(lines), { _tag: "Signalled", signal: "SIGKILL" }, clock)).toMatchObject({
      _tag: "Fault",
      reason: "exited: its process was killed by SIGKILL"
    })
    expect(outcomeOf(emptyReport, exited(0), clock)).toMatchObject({
      _tag: "Fault",
      reason: "exited: its process ended with code 0 and no result"
    })
  })
})

describe("the result decides; without one the process failed", () => {
  it("no result line ⇒ Fault, whatever the exit code, with a reason naming the code, the signal or the daemon's reason", () => {
    fc.assert(
      fc.property(fc.array(notResult), processEnd.filter((end) => end._tag !== "NotStarted"), (lines, end) => {
        const outcome = outcomeOf(fold(lines), end, clock)
        expect(outcome._tag).toBe("Fault")
        const reason = outcome._tag === "Fault" ? outcome.reason : ""
        const named = end._tag === "Exited" ? `code ${end.code}` : end._tag === "Signalled" ? end.signal : end.reason
        expect(end._tag === "Stopped" ? reason === named : reason.includes(named)).toBe(true)
      }),
      RUNS
    )
  })

  it("a command that could not be started ⇒ NeedsPerson with the reason: no task can run in that slot until it is fixed", () => {
    fc.assert(
      fc.property(fc.array(notResult), fc.string({ minLength: 1 }), (lines, reason) => {
        expect(outcomeOf(fold(lines), { _tag: "NotStarted", reason }, clock)).toMatchObject({
          _tag: "NeedsPerson",
          text: reason
        })
      }),
      RUNS
    )
  })

  it("stopped by the daemon ⇒ Fault with the daemon's reason, even after a result", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(notResult, fc.constantFrom(Recorded.success, Recorded.fiveHourResult, Recorded.authResult))),
        processEnd.filter((end) => end._tag === "Stopped"),
        (lines, end) => {
          const report = fold(lines)
          expect(outcomeOf(report, end, clock)).toStrictEqual(
            Outcome.Fault({
              reason: end._tag === "Stopped" || end._tag === "NotStarted" ? end.reason : "",
              facts: {
                sessionId: report.sessionId,
                costUsd: Option.flatMap(report.result, (r) => r.costUsd),
                turns: Option.flatMap(report.result, (r) => r.turns),
                durationMs: Option.flatMap(report.result, (r) => r.durationMs)
              }
            })
          )
        }
      ),
      RUNS
    )
  })

  it("a success result ⇒ Finished with its text and facts, whatever the exit code or signal and whatever came before", () => {
    fc.assert(
      fc.property(
        fc.array(notResult),
        ranToEnd,
        fc.string(),
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.nat({ max: 500 }),
        (before, end, text, cost, turns) => {
          const result = line({
            type: "result",
            subtype: "success",
            is_error: false,
            result: text,
            total_cost_usd: cost,
            num_turns: turns
          })
          const lines = [...before, result]
          expect(outcomeOf(fold(lines), end, clock)).toStrictEqual(
            Outcome.Finished({
              text,
              facts: {
                sessionId: lastSessionId(lines),
                costUsd: Option.some(cost),
                turns: Option.some(turns),
                durationMs: Option.none()
              }
            })
          )
        }
      ),
      RUNS
    )
  })

  it("an error result ⇒ Limited, NeedsPerson or ApiError — or, stopped by Claude Code with no API error at all, Fault; never Finished, never a blank text", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(notResult, fc.constantFrom(Recorded.fiveHourEvent, Recorded.weeklyEvent))),
        lineLike.map((fields) => ({ ...fields, type: "result", is_error: true })),
        ranToEnd,
        (before, result, end) => {
          const report = fold([...before, line(result)])
          const outcome = outcomeOf(report, end, clock)
          const decoded = Option.getOrThrow(report.result)
          const ownStop = Option.isNone(decoded.apiError) && Option.isNone(decoded.status) &&
            Option.isNone(report.error) &&
            decoded.subtype !== "" && decoded.subtype !== "success"
          expect(ownStop ? ["Fault"] : ["Limited", "NeedsPerson", "ApiError"]).toContain(outcome._tag)
          expect(outcome._tag === "Fault" ? outcome.reason : outcome.text).not.toBe("")
        }
      ),
      RUNS
    )
  })
})

/** An error result with these fields, after the given lines. */
const errorRun = (before: ReadonlyArray<string>, fields: Record<string, unknown>) =>
  fold([...before, line({ type: "result", subtype: "success", is_error: true, ...fields })])

describe("a usage limit rests its account until the reset of its event", () => {
  it("a rejected event anywhere before the result ⇒ Limited at resetsAt × 1000 exactly, whatever is interleaved", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(
          { run: Runs.fiveHour, reset: FIVE_HOUR_RESET_S, kind: "five_hour", text: FIVE_HOUR_TEXT },
          { run: Runs.weekly, reset: WEEKLY_RESET_S, kind: "seven_day", text: WEEKLY_TEXT }
        ),
        fc.array(noise, { maxLength: 12 }),
        fc.array(fc.nat(), { minLength: 12, maxLength: 12 }),
        ranToEnd,
        instant,
        timeZone,
        (limit, extra, at, end, now, zone) => {
          const [event, answer, result] = limit.run
          // The noise goes anywhere before the result: before the event, between event and answer, after the answer.
          const lines = [...interleave([event, answer], extra, at), result]
          expect(outcomeOf(fold(lines), end, { now, timeZone: zone })).toStrictEqual(
            Outcome.Limited({
              text: limit.text,
              resetAt: Option.some(limit.reset * 1000),
              kind: limit.kind,
              facts: {
                sessionId: lastSessionId(lines),
                costUsd: Option.some(0),
                turns: Option.some(1),
                durationMs: Option.some(113)
              }
            })
          )
        }
      ),
      RUNS
    )
  })

  it("the event's instant wins over the text's clock time, whatever the clock and zone", () => {
    fc.assert(
      fc.property(instant, timeZone, (now, zone) => {
        expect(outcomeOf(fold(Runs.fiveHour), exited(1), { now, timeZone: zone })).toMatchObject({
          resetAt: Option.some(FIVE_HOUR_RESET_S * 1000)
        })
      }),
      RUNS
    )
  })

  it("of several rejected events the newest counts", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1_600_000_000, max: 2_000_000_000 }), { minLength: 1, maxLength: 5 }),
        (resets) => {
          const events = resets.map((resetsAt, i) =>
            line({
              type: "rate_limit_event",
              rate_limit_info: { status: "rejected", resetsAt, rateLimitType: `kind${i}` }
            })
          )
          const outcome = outcomeOf(
            fold([...events, Recorded.fiveHourAnswer, Recorded.fiveHourResult]),
            exited(1),
            clock
          )
          expect(outcome).toMatchObject({
            _tag: "Limited",
            resetAt: Option.some((resets.at(-1) ?? 0) * 1000),
            kind: `kind${resets.length - 1}`
          })
        }
      ),
      RUNS
    )
  })

  it("a rate_limit answer with a rejected event is a limit even when the result names no api_error", () => {
    const result = line(without(object(Recorded.fiveHourResult), "api_error"))
    expect(outcomeOf(fold([Recorded.fiveHourEvent, Recorded.fiveHourAnswer, result]), exited(1), clock)).toMatchObject({
      _tag: "Limited",
      resetAt: Option.some(FIVE_HOUR_RESET_S * 1000)
    })
  })

  it("without a rejected event the reset is read from the text: 10:59pm (UTC) today, Nov 28 8:59pm (UTC)", () => {
    expect(outcomeOf(fold(Runs.fiveHour.slice(1)), exited(1), clock)).toStrictEqual(
      Outcome.Limited({
        text: FIVE_HOUR_TEXT,
        resetAt: Option.some(Date.UTC(2026, 10, 25, 22, 59)),
        kind: "",
        facts: {
          sessionId: Option.some(LIMIT_SESSION),
          costUsd: Option.some(0),
          turns: Option.some(1),
          durationMs: Option.some(113)
        }
      })
    )
    expect(
      outcomeOf(fold(Runs.weekly.slice(1)), exited(1), { now: Date.UTC(2026, 10, 26, 9, 0), timeZone: "Europe/Berlin" })
    )
      .toMatchObject({ _tag: "Limited", resetAt: Option.some(Date.UTC(2026, 10, 28, 20, 59)) })
    // An allowed event is no limit: the text still decides.
    expect(outcomeOf(fold([Recorded.allowed, ...Runs.fiveHour.slice(1)]), exited(1), clock)).toMatchObject({
      resetAt: Option.some(Date.UTC(2026, 10, 25, 22, 59))
    })
  })

  it("a limit whose text names no time has no reset (the configured cool-down applies); no text at all still reads as a limit", () => {
    expect(
      outcomeOf(
        errorRun([], { api_error: "usage_limit_reached", result: "Claude AI usage limit reached" }),
        exited(1),
        clock
      )
    )
      .toStrictEqual(
        Outcome.Limited({
          text: "Claude AI usage limit reached",
          resetAt: Option.none(),
          kind: "",
          facts: { sessionId: Option.none(), costUsd: Option.none(), turns: Option.none(), durationMs: Option.none() }
        })
      )
    expect(outcomeOf(errorRun([], { api_error: "usage_limit_reached" }), exited(1), clock)).toMatchObject({
      _tag: "Limited",
      text: "usage limit reached",
      resetAt: Option.none()
    })
  })

  it("the newest rejected event counts even without a resetsAt: the text then decides, not an older event", () => {
    const undated = line({
      type: "rate_limit_event",
      rate_limit_info: { status: "rejected", rateLimitType: "five_hour" }
    })
    const now = Date.UTC(2026, 10, 25, 12, 0)
    expect(
      outcomeOf(fold([Recorded.weeklyEvent, undated, ...Runs.fiveHour.slice(1)]), exited(1), { now, timeZone: "UTC" })
    )
      .toMatchObject({ _tag: "Limited", resetAt: Option.some(Date.UTC(2026, 10, 25, 22, 59)), kind: "five_hour" })
  })

  it("a plain 429 (rate_limit without a rejected event or usage_limit_reached) is an ApiError: it is no usage limit", () => {
    const answer = line({
      type: "assistant",
      error: "rate_limit",
      api_error_status: 429,
      message: { content: [{ type: "text", text: "API Error: 429" }] }
    })
    expect(outcomeOf(errorRun([answer], { api_error_status: 429, result: "API Error: 429" }), exited(1), clock))
      .toMatchObject({
        _tag: "ApiError",
        text: "API Error: 429"
      })
  })
})

describe("errors a person must fix, and errors another try may fix", () => {
  it.each([401, 403])("status %i ⇒ NeedsPerson, whatever the answer said", (status) => {
    expect(
      outcomeOf(errorRun([Recorded.overloadedAnswer], { api_error_status: status, result: "nope" }), exited(1), clock)
    )
      .toMatchObject({ _tag: "NeedsPerson", text: "nope" })
  })

  it.each(["authentication_failed", "billing_error", "oauth_org_not_allowed"])(
    "an answer with %s ⇒ NeedsPerson",
    (error) => {
      const answer = line({ type: "assistant", error, message: { content: [{ type: "text", text: `${error} text` }] } })
      expect(outcomeOf(errorRun([answer], {}), exited(1), clock)).toStrictEqual(
        Outcome.NeedsPerson({
          text: `${error} text`,
          facts: { sessionId: Option.none(), costUsd: Option.none(), turns: Option.none(), durationMs: Option.none() }
        })
      )
    }
  )

  it("NeedsPerson with no text at all names the status or the error", () => {
    expect(outcomeOf(errorRun([], { api_error_status: 403 }), exited(1), clock)).toMatchObject({
      text: "authentication failed (403)"
    })
    expect(outcomeOf(errorRun([line({ type: "assistant", error: "billing_error" })], {}), exited(1), clock))
      .toMatchObject({
        _tag: "NeedsPerson",
        text: "authentication failed (billing_error)"
      })
  })

  it("401/403 or a login/billing error ⇒ NeedsPerson, whatever came before, unless it is a usage limit", () => {
    fc.assert(
      fc.property(
        fc.array(notResult),
        fc.oneof(
          fc.constantFrom(401, 403).map((status) => ({
            answer: [] as Array<string>,
            result: { api_error_status: status }
          })),
          fc.constantFrom("authentication_failed", "billing_error", "oauth_org_not_allowed").map((error) => ({
            answer: [line({ type: "assistant", error })],
            result: {}
          }))
        ),
        fc.string(),
        ranToEnd,
        (before, person, text, end) => {
          const report = errorRun([...before, ...person.answer], { ...person.result, result: text })
          // A rate_limit answer earlier in the run, with a rejected event or a limit's words, makes it a limit first.
          const error = Option.getOrUndefined(report.error)
          const said = text !== "" ? text : error?.text ?? ""
          const limited = error?.kind === "rate_limit" &&
            (Option.isSome(report.limit) || /\bhit your .*limit\b|\busage limit\b/i.test(said))
          expect(outcomeOf(report, end, clock)._tag).toBe(limited ? "Limited" : "NeedsPerson")
        }
      ),
      RUNS
    )
  })

  it("any other error ⇒ ApiError with the result's text, else the answer's, else the status and error", () => {
    expect(outcomeOf(errorRun([Recorded.overloadedAnswer], { api_error_status: 529 }), exited(1), clock)).toMatchObject(
      {
        _tag: "ApiError",
        text: OVERLOADED_TEXT
      }
    )
    expect(
      outcomeOf(
        errorRun([line({ type: "assistant", error: "server_error" })], { api_error_status: 529 }),
        exited(1),
        clock
      )
    )
      .toMatchObject({ _tag: "ApiError", text: "API error 529 server_error" })
    expect(outcomeOf(errorRun([], { api_error_status: 500, api_error: "internal" }), exited(1), clock)).toMatchObject({
      text: "API error 500 internal"
    })
    expect(outcomeOf(errorRun([], {}), exited(1), clock)).toMatchObject({ _tag: "ApiError", text: "API error" })
  })
})

// --- slots ---------------------------------------------------------------------------------------------------------

describe("HEADLESS_SLOTS as slot names", () => {
  it("N ⇒ headless-1 … headless-N, on no account", () => {
    fc.assert(
      fc.property(fc.nat({ max: 40 }), (n) => {
        expect(slotNames(n)).toStrictEqual(
          Array.from({ length: n }, (_, i) => ({ name: `headless-${i + 1}`, account: Option.none() }))
        )
      }),
      RUNS
    )
    expect(slotNames(2).map((slot) => slot.name)).toStrictEqual(["headless-1", "headless-2"])
  })

  it("account=N,… ⇒ headless-<account>-1 … -N per account, as many as the counts add up to, every name unique", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(fc.stringMatching(/^[a-z0-9-]{0,6}$/), fc.nat({ max: 12 })), {
          selector: ([account]) => account,
          maxLength: 6
        }),
        (entries) => {
          const slots = slotNames(new Map(entries))
          expect(slots.length).toBe(entries.reduce((sum, [, count]) => sum + count, 0))
          expect(new Set(slots.map((slot) => slot.name)).size).toBe(slots.length)
          expect(slots).toStrictEqual(
            entries.flatMap(([account, count]) =>
              Array.from(
                { length: count },
                (_, i) => ({ name: `headless-${account}-${i + 1}`, account: Option.some(account) })
              )
            )
          )
        }
      ),
      RUNS
    )
    expect(slotNames(new Map([["work", 2], ["home", 1]])).map((slot) => slot.name)).toStrictEqual([
      "headless-work-1",
      "headless-work-2",
      "headless-home-1"
    ])
  })
})

const SLOT = "headless-1"
const TASK = TaskName.make("a.md")
const bookSettings: BookSettings = {
  accountOf: () => "default",
  limitCooldownMs: 5 * 3_600_000,
  staleAfterMs: 30 * 60_000,
  requeueAfterMs: Option.none(),
  graceMs: 15_000,
  idleGraceMs: 120_000
}
const ended = (outcome: RunOutcome) => SlotState.Ended({ task: TASK, run: "r1", at: clock.now, outcome })
const noFacts = { sessionId: Option.none(), costUsd: Option.none(), turns: Option.none(), durationMs: Option.none() }

describe("a slot as the session book sees it", () => {
  it("Free ⇒ idle with an empty input box, seen by its process: free for the book", () => {
    const seen = sightingOfSlot(SLOT, SlotState.Free(), clock.now)
    expect(seen).toStrictEqual({
      session: SLOT,
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
    expect(isFree(emptyBook, bookSettings, seen, clock.now, false)).toBe(true)
  })

  it("Running ⇒ busy, never free, its bytes the fingerprint: the fingerprint changes exactly when the bytes do", () => {
    fc.assert(
      fc.property(fc.nat(), fc.nat(), fc.option(fc.uuid(), { nil: undefined }), instant, (a, b, id, now) => {
        const running = (bytes: number) =>
          SlotState.Running({
            task: TASK,
            run: "r1",
            startedAt: now - 1000,
            bytes,
            sessionId: Option.fromUndefinedOr(id)
          })
        const seenA = sightingOfSlot(SLOT, running(a), now)
        const seenB = sightingOfSlot(SLOT, running(b), now)
        expect(seenA.state).toBe("busy")
        expect(seenA.fingerprint === seenB.fingerprint).toBe(a === b)
        expect(isFree(emptyBook, bookSettings, seenA, now, false)).toBe(false)
      }),
      RUNS
    )
  })

  it("Ended Limited ⇒ usage_limited with the banner and the reset (the recorded 5-hour run)", () => {
    const outcome = outcomeOf(fold(Runs.fiveHour), exited(1), clock)
    expect(sightingOfSlot(SLOT, ended(outcome), clock.now)).toMatchObject({
      state: "usage_limited",
      banner: Option.some(FIVE_HOUR_TEXT),
      resetAt: Option.some(FIVE_HOUR_RESET_S * 1000),
      autoContinue: false,
      detail: Option.none()
    })
  })

  it("Ended NeedsPerson or ApiError ⇒ turn_error with the text as detail (the recorded login and 529 runs)", () => {
    expect(sightingOfSlot(SLOT, ended(outcomeOf(fold(Runs.auth), exited(1), clock)), clock.now)).toMatchObject({
      state: "turn_error",
      detail: Option.some("Not logged in · Please run /login")
    })
    expect(sightingOfSlot(SLOT, ended(outcomeOf(fold(Runs.overloaded), exited(1), clock)), clock.now)).toMatchObject({
      state: "turn_error",
      detail: Option.some(OVERLOADED_TEXT)
    })
  })

  it("Ended Fault ⇒ exited with the reason as detail; Ended Finished ⇒ idle like a free slot", () => {
    expect(
      sightingOfSlot(
        SLOT,
        ended(Outcome.Fault({ reason: "exited: its process was killed by SIGKILL", facts: noFacts })),
        clock.now
      )
    )
      .toMatchObject({ state: "exited", detail: Option.some("exited: its process was killed by SIGKILL") })
    expect(sightingOfSlot(SLOT, ended(outcomeOf(fold(Runs.ok), exited(0), clock)), clock.now)).toStrictEqual(
      sightingOfSlot(SLOT, SlotState.Free(), clock.now)
    )
  })

  it("Resting ⇒ turn_error with its reason before `until`, idle and free from `until` on", () => {
    fc.assert(
      fc.property(instant, fc.integer({ min: -3_600_000, max: 3_600_000 }), fc.string(), (until, offset, reason) => {
        const now = until + offset
        const seen = sightingOfSlot(SLOT, SlotState.Resting({ until, reason }), now)
        if (now < until) {
          expect(seen).toMatchObject({ state: "turn_error", detail: Option.some(reason) })
          expect(isFree(emptyBook, bookSettings, seen, now, false)).toBe(false)
        } else {
          expect(seen).toStrictEqual(sightingOfSlot(SLOT, SlotState.Free(), now))
        }
      }),
      RUNS
    )
  })

  it("every slot state is seen by its process, under the slot's name", () => {
    const states = [
      SlotState.Free(),
      SlotState.Resting({ until: 0, reason: "x" }),
      SlotState.Running({ task: TASK, run: "r1", startedAt: 0, bytes: 0, sessionId: Option.none() }),
      ended(Outcome.ApiError({ text: "x", facts: noFacts }))
    ]
    for (const state of states)
      expect(sightingOfSlot("headless-work-3", state, clock.now)).toMatchObject({
        session: "headless-work-3",
        signal: "process"
      })
  })
})

describe("what a version of Claude Code might say differently", () => {
  it("a resetsAt that is no plausible instant (overflow, negative, milliseconds) is no reset: the text's clock time is used", () => {
    for (const resetsAt of [1e308, -5, 0, 1795647540000]) {
      const event = line({ type: "rate_limit_event", rate_limit_info: { status: "rejected", resetsAt } })
      expect(decodeLine(event), String(resetsAt)).toMatchObject({ _tag: "RateLimit", resetAt: Option.none() })
      const outcome = outcomeOf(
        errorRun([event], { api_error: "usage_limit_reached", result: FIVE_HOUR_TEXT }),
        exited(1),
        clock
      )
      expect(outcome).toMatchObject({ _tag: "Limited", resetAt: Option.some(Date.UTC(2026, 10, 25, 22, 59)) })
    }
  })

  it("a limit said once — a rate_limit answer with the limit's words, no api_error, no event — is still a limit", () => {
    const answer = line({
      type: "assistant",
      error: "rate_limit",
      api_error_status: 429,
      message: { content: [{ type: "text", text: FIVE_HOUR_TEXT }] }
    })
    const outcome = outcomeOf(
      errorRun([answer], { api_error: null, api_error_status: 429, result: FIVE_HOUR_TEXT }),
      exited(1),
      clock
    )
    expect(outcome).toMatchObject({ _tag: "Limited", resetAt: Option.some(Date.UTC(2026, 10, 25, 22, 59)) })
    // A plain 429 with no limit's words stays an API error another try may fix.
    const plain = outcomeOf(
      errorRun([], { api_error_status: 429, result: "API Error: 429 rate_limit_error" }),
      exited(1),
      clock
    )
    expect(plain._tag).toBe("ApiError")
  })

  it("a run Claude Code stopped for a reason of its own (max turns) is a fault of the run, counted; API errors say so without stray blanks", () => {
    expect(outcomeOf(errorRun([], { subtype: "error_max_turns", is_error: false, num_turns: 30 }), exited(1), clock))
      .toMatchObject({ _tag: "Fault", reason: "ended: Claude Code stopped the run (error_max_turns)" })
    expect(outcomeOf(errorRun([], { api_error: "internal" }), exited(1), clock)).toMatchObject({
      _tag: "ApiError",
      text: "API error internal"
    })
  })
})
