/**
 * A stand-in for the Anthropic Messages API that the real Claude Code accepts as `ANTHROPIC_BASE_URL`: streamed
 * answers, tool calls, usage limits and API errors, chosen by a scenario that can change while a session runs.
 * Easy to get wrong: only the main loop's requests (those that carry `tools`) follow the scenario; side requests
 * (titles, summaries) always get a short answer, or a limit would show up where Claude Code never shows one.
 *
 * Run directly: `node stand-ins/anthropic-api.ts [--port 0] [--scenario text] [--text TEXT] [--bash-command CMD]
 * [--slow-seconds N]`
 * prints `listening on http://127.0.0.1:PORT` on stdout and one line per request on stderr.
 * Control routes: `POST /_stand-in/scenario {"scenario":"limit-5h"}` switches the scenario, `GET /_stand-in/requests`
 * returns the request log.
 */
import { randomUUID } from "node:crypto"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import { parseArgs } from "node:util"

export const Scenarios = [
  "text",
  "slow",
  "bash",
  "write",
  "limit-5h",
  "limit-weekly",
  "limit-opus",
  "limit-sonnet",
  "limit-overage",
  "warning",
  "slow-warning",
  "plain-429",
  "overloaded",
  "unauthorized"
] as const
export type Scenario = (typeof Scenarios)[number]

export const isScenario = (value: unknown): value is Scenario =>
  typeof value === "string" && (Scenarios as ReadonlyArray<string>).includes(value)

/** The unified rate-limit claim Claude Code reads to name the limit it hit. */
const LIMIT_CLAIMS = {
  "limit-5h": "five_hour",
  "limit-weekly": "seven_day",
  "limit-opus": "seven_day_opus",
  "limit-sonnet": "seven_day_sonnet",
  "limit-overage": "overage"
} as const
export type LimitScenario = keyof typeof LIMIT_CLAIMS

const isLimit = (scenario: Scenario): scenario is LimitScenario => scenario in LIMIT_CLAIMS

/**
 * The scenarios that answer with a message and the headers of an approaching 5-hour limit: `warning` as `text`,
 * `slow-warning` as `slow`.
 */
export type WarningScenario = "warning" | "slow-warning"
const isWarning = (scenario: Scenario): scenario is WarningScenario =>
  scenario === "warning" || scenario === "slow-warning"

/** The scenarios whose answers announce a reset instant. */
export type ResetScenario = LimitScenario | WarningScenario

/** How much of the 5-hour window a warning says is used, and the warning threshold it passed (fractions). */
const WARNING_UTILIZATION = "0.92"
const WARNING_THRESHOLD = "0.9"

/** What the server was asked, as a rule or a test sees it. */
export interface ApiRequest {
  readonly method: string
  readonly path: string
  /** The parsed JSON body, or undefined when there was none or it was not JSON. */
  readonly body: unknown
  /** The main loop's requests carry `tools`; side requests (titles etc.) do not. */
  readonly hasTools: boolean
}

/** One line of the request log. */
export interface RequestRecord {
  readonly at: number
  readonly method: string
  readonly path: string
  readonly hasTools: boolean
  /** `main` (carries tools), `side` (a message without tools), `count_tokens`, `control`, or `other`. */
  readonly kind: "main" | "side" | "count_tokens" | "control" | "other"
  /** The scenario a main request's answer followed, or the one a control request switched to; else undefined. */
  readonly scenario: Scenario | undefined
  /** `tool_use` or `text` for a streamed answer; the error type for an error. */
  readonly answer: string
  readonly status: number
  readonly model: string | undefined
  /** A usage-limit or warning answer: the reset instant it announced, unix seconds. */
  readonly resetAt?: number
}

export interface AnthropicApiOptions {
  /** 0 (the default) picks any free port; the server listens on 127.0.0.1 only. */
  readonly port?: number
  /** The scenario main-loop requests follow until it is switched (default `text`). */
  readonly scenario?: Scenario
  /** Decides a main-loop request's scenario before the current one applies; undefined falls through. */
  readonly rule?: (request: ApiRequest) => Scenario | undefined
  /** The answer of `text`, `slow` and the warnings (default: a short sentence; `slow`: a paragraph). */
  readonly text?: string
  /** The answer of `bash` and `write` once their tool call ran (default: a short sentence). */
  readonly toolText?: string
  /** How long `slow` streams its answer (default 30 s). */
  readonly slowSeconds?: number
  /** The command of `bash`; default: the last backticked `… task done NAME …` line of the latest user message. */
  readonly bashCommand?: string
  /** The file `write` creates (default: `notes.md` in the working directory Claude Code tells the model about). */
  readonly writePath?: string
  /**
   * When a limit resets (or the window a warning is about), unix seconds. Default: the whole minute two hours after
   * the request for `limit-5h` and the warnings, three days after it for the others (Claude Code prints a time within
   * a day and a date beyond).
   */
  readonly resetAt?: (scenario: ResetScenario) => number
  readonly now?: () => number
  /** One line per request. */
  readonly log?: (line: string) => void
}

export interface AnthropicApi {
  readonly url: string
  readonly port: number
  requests(): ReadonlyArray<RequestRecord>
  scenario(): Scenario
  setScenario(scenario: Scenario): void
  close(): Promise<void>
}

const DEFAULT_TEXT = "Done. Nothing else to do here."
const SLOW_TEXT =
  "This project routes a queue of tasks to Claude Code sessions running in tmux. It types each task into a free " +
  "session, watches the screen until the turn ends, and moves the task file along when the agent runs its " +
  "completion command. When a session hits a usage limit, the task goes back to the queue."
const FINAL_TEXT = "The command ran. The task is complete."
const SIDE_TEXT = "Stand-in session"

// ---------------------------------------------------------------------------------------------------------------------
// Reading requests

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

type Block = Record<string, unknown>

const blocksOf = (content: unknown): ReadonlyArray<Block> =>
  typeof content === "string"
    ? [{ type: "text", text: content }]
    : Array.isArray(content)
    ? content.filter(isRecord)
    : []

const messagesOf = (body: unknown): ReadonlyArray<Record<string, unknown>> =>
  isRecord(body) && Array.isArray(body.messages) ? body.messages.filter(isRecord) : []

/** The user's text of the latest user message that has any (tool results are not the user's). */
export const latestUserText = (body: unknown): string => {
  const messages = messagesOf(body)
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i]
    if (message?.role !== "user") continue
    const texts = blocksOf(message.content).flatMap((block) =>
      block.type === "text" && typeof block.text === "string" ? [block.text] : []
    )
    if (texts.length > 0) return texts.join("\n")
  }
  return ""
}

/** The last line of `text` holding a backticked `… task done NAME …` command: the task's completion line. */
export const completionCommand = (text: string): string | undefined => {
  const commands = text.split("\n").flatMap((line) => {
    const match = /`([^`]*\btask done \S[^`]*)`/.exec(line)
    return match?.[1] === undefined ? [] : [match[1]]
  })
  return commands.at(-1)
}

/** The main loop continues a tool call: the last message is the user's, holding a `tool_result`. */
export const answersToolResult = (body: unknown): boolean => {
  const last = messagesOf(body).at(-1)
  return last?.role === "user" && blocksOf(last.content).some((block) => block.type === "tool_result")
}

/**
 * The session's working directory, as Claude Code states it: in the system prompt (2.1.197) or in a `system` message
 * of its own (2.1.332), so the whole body is searched.
 */
const workingDirectory = (body: unknown): string | undefined =>
  /(?:Primary working directory|Working directory): ([^\s"\\]+)/.exec(JSON.stringify(body) ?? "")?.[1]

// ---------------------------------------------------------------------------------------------------------------------
// Answers

type Content =
  | { readonly type: "text"; readonly text: string }
  | { readonly type: "tool_use"; readonly name: string; readonly input: Record<string, unknown> }

/** Splits text into a few deltas, as the real API streams it. */
const chunks = (text: string, size: number): ReadonlyArray<string> => {
  const out: Array<string> = []
  for (let at = 0; at < text.length; at += size) out.push(text.slice(at, at + size))
  return out.length === 0 ? [""] : out
}

const sse = (res: ServerResponse, event: string, data: Record<string, unknown>) =>
  res.write(`event: ${event}\ndata: ${JSON.stringify({ type: event, ...data })}\n\n`)

const usage = (output: number) => ({
  input_tokens: 120,
  output_tokens: output,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Streams one message holding `content` as server-sent events; `durationMs` spreads its deltas over that time.
 * Stops early when the client goes away (Esc in Claude Code closes the stream).
 */
const streamMessage = async (
  res: ServerResponse,
  model: string,
  content: Content,
  durationMs: number,
  headers: Record<string, string> = {}
) => {
  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "request-id": `req_standin_${randomUUID()}`,
    ...headers
  })
  const gone = () => res.destroyed || res.writableEnded
  sse(res, "message_start", {
    message: {
      id: `msg_standin_${randomUUID()}`,
      type: "message",
      role: "assistant",
      model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: usage(1)
    }
  })
  const deltas = content.type === "text"
    ? chunks(content.text, durationMs > 0 ? 4 : 12).map((text) => ({ type: "text_delta", text }))
    : chunks(JSON.stringify(content.input), 24).map((partial_json) => ({ type: "input_json_delta", partial_json }))
  sse(res, "content_block_start", {
    index: 0,
    content_block: content.type === "text"
      ? { type: "text", text: "" }
      : { type: "tool_use", id: `toolu_standin_${randomUUID().replace(/-/g, "")}`, name: content.name, input: {} }
  })
  sse(res, "ping", {})
  const pause = durationMs / deltas.length
  for (const delta of deltas) {
    if (gone()) return
    sse(res, "content_block_delta", { index: 0, delta })
    if (pause > 0) await sleep(pause)
  }
  if (gone()) return
  sse(res, "content_block_stop", { index: 0 })
  sse(res, "message_delta", {
    delta: { stop_reason: content.type === "text" ? "end_turn" : "tool_use", stop_sequence: null },
    usage: { output_tokens: deltas.length + 5 }
  })
  sse(res, "message_stop", {})
  res.end()
}

/** The same message, whole, for a request that did not ask for a stream. */
const wholeMessage = (res: ServerResponse, model: string, content: Content, headers: Record<string, string> = {}) => {
  const block = content.type === "text"
    ? content
    : {
      type: "tool_use",
      id: `toolu_standin_${randomUUID().replace(/-/g, "")}`,
      name: content.name,
      input: content.input
    }
  sendJson(res, 200, {
    id: `msg_standin_${randomUUID()}`,
    type: "message",
    role: "assistant",
    model,
    content: [block],
    stop_reason: content.type === "text" ? "end_turn" : "tool_use",
    stop_sequence: null,
    usage: usage(10)
  }, headers)
}

const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { "content-type": "application/json", "request-id": `req_standin_${randomUUID()}`, ...headers })
  res.end(JSON.stringify(body))
}

const apiError = (type: string, message: string) => ({ type: "error", error: { type, message } })

interface ErrorAnswer {
  readonly status: number
  readonly type: string
  readonly message: string
  readonly headers: Record<string, string>
  /** A usage limit's reset instant, unix seconds. */
  readonly resetAt?: number
}

/**
 * The headers of a successful answer that says the 5-hour window is nearly used up, in both forms Claude Code reads:
 * the per-window ones (`…-5h-utilization`, `…-5h-surpassed-threshold`, `…-5h-reset`) and the top-level status.
 */
const warningHeaders = (at: number): Record<string, string> => ({
  "anthropic-ratelimit-unified-status": "allowed_warning",
  "anthropic-ratelimit-unified-reset": String(at),
  "anthropic-ratelimit-unified-representative-claim": "five_hour",
  "anthropic-ratelimit-unified-5h-status": "allowed_warning",
  "anthropic-ratelimit-unified-5h-utilization": WARNING_UTILIZATION,
  "anthropic-ratelimit-unified-5h-surpassed-threshold": WARNING_THRESHOLD,
  "anthropic-ratelimit-unified-5h-reset": String(at)
})

/** The error a scenario answers with, or undefined when it answers with a message. */
const errorFor = (scenario: Scenario, resetAt: (scenario: ResetScenario) => number): ErrorAnswer | undefined => {
  if (isLimit(scenario)) {
    const at = resetAt(scenario)
    // Extra usage (`overage`) is refused on its own status too, as the real API says when it is used up.
    const overage: Record<string, string> = scenario === "limit-overage"
      ? {
        "anthropic-ratelimit-unified-overage-status": "rejected",
        "anthropic-ratelimit-unified-overage-reset": String(at)
      }
      : {}
    return {
      status: 429,
      type: "rate_limit_error",
      message: "This request would exceed your account's rate limit. Please try again later.",
      headers: {
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-reset": String(at),
        "anthropic-ratelimit-unified-representative-claim": LIMIT_CLAIMS[scenario],
        ...overage
      },
      resetAt: at
    }
  }
  switch (scenario) {
    case "plain-429":
      // An API-key rate limit: no unified headers, so Claude Code does not read it as a usage limit.
      return {
        status: 429,
        type: "rate_limit_error",
        message: "Number of request tokens has exceeded your per-minute rate limit",
        headers: { "retry-after": "1" }
      }
    case "overloaded":
      return { status: 529, type: "overloaded_error", message: "Overloaded", headers: {} }
    case "unauthorized":
      return { status: 401, type: "authentication_error", message: "invalid x-api-key", headers: {} }
    default:
      return undefined
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// The server

const readBody = async (req: IncomingMessage): Promise<string> => {
  const parts: Array<Buffer> = []
  for await (const part of req) parts.push(Buffer.from(part))
  return Buffer.concat(parts).toString("utf8")
}

const parseJson = (text: string): unknown => {
  try {
    return text === "" ? undefined : JSON.parse(text)
  } catch {
    return undefined
  }
}

export const startAnthropicApi = async (options: AnthropicApiOptions = {}): Promise<AnthropicApi> => {
  const now = options.now ?? Date.now
  const resetAt = options.resetAt ??
    ((scenario: ResetScenario) =>
      Math.floor(now() / 60_000) * 60 + (scenario === "limit-5h" || isWarning(scenario) ? 2 * 3600 : 3 * 86_400))
  const log = options.log ?? (() => {})
  let current: Scenario = options.scenario ?? "text"
  const records: Array<RequestRecord> = []

  const record = (entry: Omit<RequestRecord, "at">) => {
    records.push({ at: now(), ...entry })
    log(
      `${entry.method} ${entry.path} ${entry.kind}${entry.hasTools ? " tools" : ""} → ${entry.status} ${entry.answer}` +
        (entry.scenario === undefined ? "" : ` [${entry.scenario}]`)
    )
  }

  /** The content a message-answering scenario gives the main loop. */
  const mainContent = (scenario: Scenario, body: unknown): Content => {
    if (scenario === "bash") {
      if (answersToolResult(body)) return { type: "text", text: options.toolText ?? FINAL_TEXT }
      const command = options.bashCommand ?? completionCommand(latestUserText(body)) ?? "echo task done"
      return { type: "tool_use", name: "Bash", input: { command, description: "Run the task's completion command" } }
    }
    if (scenario === "write") {
      if (answersToolResult(body)) return { type: "text", text: options.toolText ?? "I wrote notes.md." }
      const file_path = options.writePath ?? `${workingDirectory(body) ?? "/tmp"}/notes.md`
      return { type: "tool_use", name: "Write", input: { file_path, content: "# Notes\n\nWritten by the stand-in.\n" } }
    }
    const slow = scenario === "slow" || scenario === "slow-warning"
    return { type: "text", text: options.text ?? (slow ? SLOW_TEXT : DEFAULT_TEXT) }
  }

  const handleMessages = async (req: IncomingMessage, res: ServerResponse, path: string, body: unknown) => {
    const hasTools = isRecord(body) && Array.isArray(body.tools) && body.tools.length > 0
    const model = isRecord(body) && typeof body.model === "string" ? body.model : "claude-sonnet-4-5"
    const stream = isRecord(body) && body.stream === true
    const base = { method: req.method ?? "POST", path, hasTools, model }
    if (!hasTools) {
      record({ ...base, kind: "side", scenario: undefined, answer: "text", status: 200 })
      const side: Content = { type: "text", text: SIDE_TEXT }
      return stream ? streamMessage(res, model, side, 0) : wholeMessage(res, model, side)
    }
    const scenario = options.rule?.({ method: base.method, path, body, hasTools }) ?? current
    const error = errorFor(scenario, resetAt)
    if (error !== undefined) {
      record({
        ...base,
        kind: "main",
        scenario,
        answer: error.type,
        status: error.status,
        ...(error.resetAt === undefined ? {} : { resetAt: error.resetAt })
      })
      return sendJson(res, error.status, apiError(error.type, error.message), error.headers)
    }
    const content = mainContent(scenario, body)
    const warnedReset = isWarning(scenario) ? resetAt(scenario) : undefined
    const headers = warnedReset === undefined ? {} : warningHeaders(warnedReset)
    record({
      ...base,
      kind: "main",
      scenario,
      answer: content.type,
      status: 200,
      ...(warnedReset === undefined ? {} : { resetAt: warnedReset })
    })
    const slow = (scenario === "slow" || scenario === "slow-warning") && content.type === "text"
    const duration = slow ? (options.slowSeconds ?? 30) * 1000 : 0
    return stream ? streamMessage(res, model, content, duration, headers) : wholeMessage(res, model, content, headers)
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/"
    const method = req.method ?? "GET"
    const body = parseJson(await readBody(req))
    if (method === "POST" && path === "/v1/messages") return handleMessages(req, res, path, body)
    const plain = { method, path, hasTools: false, scenario: undefined, status: 200, model: undefined }
    if (method === "POST" && path === "/v1/messages/count_tokens") {
      record({ ...plain, kind: "count_tokens", answer: "count" })
      return sendJson(res, 200, { input_tokens: 120 })
    }
    if (path === "/_stand-in/scenario" && method === "POST") {
      const wanted = isRecord(body) ? body.scenario : undefined
      if (!isScenario(wanted)) return sendJson(res, 400, { error: `scenario must be one of ${Scenarios.join(", ")}` })
      current = wanted
      record({ ...plain, kind: "control", scenario: wanted, answer: "switched" })
      return sendJson(res, 200, { scenario: current })
    }
    if (path === "/_stand-in/scenario" && method === "GET") return sendJson(res, 200, { scenario: current })
    if (path === "/_stand-in/requests" && method === "GET") return sendJson(res, 200, records)
    // Anything else Claude Code asks (`HEAD /api/hello` at start-up, say): logged, and an empty answer it can live with.
    record({ ...plain, kind: "other", answer: "empty" })
    return sendJson(res, 200, {})
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      log(`error: ${String(error)}`)
      if (!res.headersSent) sendJson(res, 500, apiError("api_error", "stand-in failure"))
      else res.destroy()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve())
  })
  const address = server.address()
  const port = isRecord(address) && typeof address.port === "number" ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests: () => [...records],
    scenario: () => current,
    setScenario: (scenario) => {
      current = scenario
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)))
        // Streams in progress and idle keep-alive connections would otherwise hold close() open.
        server.closeAllConnections()
      })
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: "0" },
      scenario: { type: "string", default: "text" },
      text: { type: "string" },
      "bash-command": { type: "string" },
      "slow-seconds": { type: "string" }
    }
  })
  if (!isScenario(values.scenario)) {
    process.stderr.write(`anthropic-api: --scenario must be one of ${Scenarios.join(", ")}\n`)
    process.exit(2)
  }
  const api = await startAnthropicApi({
    port: Number(values.port),
    scenario: values.scenario,
    ...(values.text === undefined ? {} : { text: values.text }),
    ...(values["bash-command"] === undefined ? {} : { bashCommand: values["bash-command"] }),
    ...(values["slow-seconds"] === undefined ? {} : { slowSeconds: Number(values["slow-seconds"]) }),
    log: (line) => process.stderr.write(`anthropic-api: ${line}\n`)
  })
  process.stdout.write(`listening on ${api.url}\n`)
  const stop = () => void api.close().then(() => process.exit(0))
  process.on("SIGINT", stop)
  process.on("SIGTERM", stop)
}
