/**
 * A scripted stand-in for Claude Code's headless mode (`claude -p PROMPT --output-format stream-json --verbose`): the
 * stream-json lines Claude Code 2.1.332 prints, and the process faults a daemon running it has to survive.
 * Easy to get wrong: every line goes out with a synchronous write to fd 1 (a test that kills the process right after
 * reading a line must not lose the lines before it), except `huge`, which streams through `process.stdout` and waits
 * for `drain`; and only the prompt's last backticked `… task done …` command is ever run, the rest is just text.
 *
 * Run as `node stand-ins/claude-headless.ts -p [PROMPT] [--resume SID] [other flags, ignored]`. The prompt is the
 * argument after `-p`/`--print` (or `--print=PROMPT`) when it is not a flag, else all of stdin (as the daemon passes it); `--resume SID` (`-r SID`, `--resume=SID`) puts SID in every line instead
 * of a fresh session id. Any other flag is skipped, so `--output-format stream-json --verbose` and friends are fine.
 *
 * Modes (env STANDIN_MODES, a comma list: one per invocation in order, the last one repeats; default `ok`):
 *   ok            init, an answer, the prompt's completion command through `sh -c` (unless STANDIN_RUN_COMPLETION=0),
 *                 an allowed rate_limit_event, a success result; exit 0
 *   limit         init, a rejected five_hour rate_limit_event, `You've hit your 5-hour limit · resets 10:59pm (UTC)`
 *                 as an API error message, an is_error result; exit 1
 *   auth          init, `Not logged in · Please run /login` (401) and an is_error result; exit 1
 *   overloaded    init, three api_retry lines (529), `API Error: 529 Overloaded…` and an is_error result; exit 1
 *   crash         init, an answer, `stand-in crashed` on stderr; exit 3 with no result
 *   signal        init, then SIGKILL to itself
 *   hang          init, then nothing, forever, until killed
 *   garbage       lines that are not JSON, an unknown type, an unknown system subtype; then as `ok`
 *   huge          init, then STANDIN_HUGE_BYTES of `x` with no newline; then as `hang`
 *   close-stdout  init, then closes stdout (the reader sees EOF) and hangs
 *
 * Settings (env):
 *   STANDIN_MODES          see above; an unknown mode name exits 2 with a message on stderr
 *   STANDIN_STATE          a file counting the invocations, so STANDIN_MODES advances (created if missing); without
 *                          it every invocation takes the first mode. One line per invocation, appended, so invocations
 *                          running at the same time still each take their own turn
 *   STANDIN_DELAY_MS       every mode waits this long after the init line, printing nothing (default 0)
 *   STANDIN_RUN_COMPLETION `0`: `ok` does not run the completion command
 *   STANDIN_RESULT         `ok`'s result text (default "Did the task.")
 *   STANDIN_COST           `ok`'s total_cost_usd (default 0.0123)
 *   STANDIN_RESET_S        `limit`: the limit resets this many seconds from now (default 3600)
 *   STANDIN_HUGE_BYTES     `huge`: how many bytes of the line without end (default 40 MiB)
 *   STANDIN_LOG            a file to append one JSON line per event to, synchronously:
 *                          {"event":"started","mode","pid","args","resume","session","at"},
 *                          {"event":"completion","command","exitCode","at"}, {"event":"exit","code","at"} (before
 *                          every process.exit, `crash` included; `signal`, `hang`, `huge`, `close-stdout` never log it)
 */
import { randomUUID } from "node:crypto"
import { spawnSync } from "node:child_process"
import { appendFileSync, closeSync, readFileSync, writeSync } from "node:fs"

const MODES = [
  "ok",
  "limit",
  "auth",
  "overloaded",
  "crash",
  "signal",
  "hang",
  "garbage",
  "huge",
  "close-stdout"
] as const
type Mode = (typeof MODES)[number]

const MODEL = "claude-sonnet-5-5"
const VERSION = "2.1.332"
const STARTED_AT = Date.now()
const LOG = process.env.STANDIN_LOG

const isMode = (name: string): name is Mode => MODES.some((mode) => mode === name)

/** The prompt and the resumed session from argv; every other flag, with or without a value, is skipped. */
const parseArgv = (args: ReadonlyArray<string>): { prompt: string | undefined; resume: string | undefined } => {
  let prompt: string | undefined
  let resume: string | undefined
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? ""
    if (arg === "-p" || arg === "--print") {
      // As in Claude Code, `-p` may be followed by the prompt; otherwise the prompt comes on stdin.
      const next = args[i + 1]
      if (next !== undefined && !next.startsWith("-")) prompt = args[++i]
    } else if (arg.startsWith("--print=")) prompt = arg.slice("--print=".length)
    else if (arg === "-r" || arg === "--resume") resume = args[++i]
    else if (arg.startsWith("--resume=")) resume = arg.slice("--resume=".length)
  }
  return { prompt, resume }
}

/** Which invocation this is (0, 1, …): appends a line naming itself to the state file and finds that line. */
const invocationIndex = (stateFile: string | undefined, id: string): number => {
  if (stateFile === undefined) return 0
  appendFileSync(stateFile, `${id}\n`)
  return readFileSync(stateFile, "utf8").split("\n").indexOf(id)
}

/** The mode for this invocation, or the unknown names in STANDIN_MODES. */
const chooseMode = (index: number): Mode | { unknown: ReadonlyArray<string> } => {
  const names = (process.env.STANDIN_MODES ?? "ok").split(",").map((name) => name.trim()).filter((name) => name !== "")
  const unknown = names.filter((name) => !isMode(name))
  if (unknown.length > 0) return { unknown }
  const modes = names.filter(isMode)
  return modes[Math.min(index, modes.length - 1)] ?? "ok"
}

const log = (event: string, fields: Readonly<Record<string, unknown>>) => {
  if (LOG !== undefined) appendFileSync(LOG, `${JSON.stringify({ event, ...fields, at: Date.now() })}\n`)
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)

/** Writes all of `text` to fd 1, synchronously; a non-blocking pipe that is full (EAGAIN) is retried, not dropped. */
const writeOut = (text: string) => {
  const bytes = Buffer.from(text)
  let written = 0
  while (written < bytes.length) {
    try {
      written += writeSync(1, bytes, written)
    } catch (error) {
      if (!(error instanceof Error && "code" in error && error.code === "EAGAIN")) throw error
      sleepSync(1)
    }
  }
}

const emitRaw = (line: string) => writeOut(`${line}\n`)
const emit = (value: Readonly<Record<string, unknown>>) => emitRaw(JSON.stringify(value))

const exit = (code: number): never => {
  log("exit", { code })
  process.exit(code)
}

/** Keeps the process alive and silent until something kills it. */
const hang = () => {
  setInterval(() => undefined, 1 << 30)
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** `10:59pm`, as Claude Code names a reset time in UTC. */
const utcClock = (epochSeconds: number) => {
  const at = new Date(epochSeconds * 1000)
  const hour = at.getUTCHours()
  const minutes = String(at.getUTCMinutes()).padStart(2, "0")
  return `${hour % 12 === 0 ? 12 : hour % 12}:${minutes}${hour < 12 ? "am" : "pm"}`
}

/**
 * The completion command: the last backticked command holding `task done` in the prompt, scanning line by line.
 * The daemon appends it last; an earlier example of it in the task's own text must not be the one run.
 */
const completionCommand = (prompt: string): string | undefined => {
  let found: string | undefined
  for (const line of prompt.split("\n")) {
    for (const match of line.matchAll(/`([^`]*\btask done \S[^`]*)`/g)) found = match[1]
  }
  return found
}

/** The stream-json lines of one invocation, each stamped with its session id and a fresh uuid. */
const lines = (session: string) => {
  const stamp = () => ({ session_id: session, uuid: randomUUID() })
  const message = (text: string, model: string, usage: { input_tokens: number; output_tokens: number }) => ({
    id: `msg_${randomUUID().replaceAll("-", "").slice(0, 24)}`,
    type: "message",
    role: "assistant",
    model,
    content: [{ type: "text", text }],
    stop_reason: null,
    usage
  })
  return {
    init: () => ({
      type: "system",
      subtype: "init",
      cwd: process.cwd(),
      tools: ["Bash"],
      model: MODEL,
      permissionMode: "default",
      claude_code_version: VERSION,
      ...stamp()
    }),
    answer: (text: string) => ({
      type: "assistant",
      message: message(text, MODEL, { input_tokens: 120, output_tokens: 1 }),
      parent_tool_use_id: null,
      ...stamp()
    }),
    /** An error Claude Code shows as if the model said it: a synthetic message flagged `is_api_error_message`. */
    apiError: (text: string, fields: Readonly<Record<string, unknown>>) => ({
      type: "assistant",
      message: message(text, "<synthetic>", { input_tokens: 0, output_tokens: 0 }),
      parent_tool_use_id: null,
      ...stamp(),
      is_api_error_message: true,
      ...fields
    }),
    rateLimit: (info: Readonly<Record<string, unknown>>) => ({
      type: "rate_limit_event",
      rate_limit_info: info,
      ...stamp()
    }),
    retry: (attempt: number) => ({
      type: "system",
      subtype: "api_retry",
      attempt,
      max_retries: 10,
      retry_delay_ms: 1000 * 2 ** (attempt - 1) + 23,
      error_status: 529,
      error: "overloaded",
      ...stamp()
    }),
    success: (result: string, cost: number) => ({
      type: "result",
      subtype: "success",
      is_error: false,
      duration_ms: Date.now() - STARTED_AT,
      duration_api_ms: 20,
      num_turns: 2,
      result,
      stop_reason: "end_turn",
      total_cost_usd: cost,
      terminal_reason: "completed",
      api_error_status: null,
      permission_denials: [],
      ...stamp()
    }),
    /** The result after an API error: `subtype` still says success, `is_error` is what tells. */
    failed: (text: string, fields: Readonly<Record<string, unknown>>) => ({
      type: "result",
      subtype: "success",
      is_error: true,
      duration_ms: Date.now() - STARTED_AT,
      duration_api_ms: 0,
      num_turns: 1,
      result: text,
      stop_reason: "stop_sequence",
      total_cost_usd: 0,
      terminal_reason: "api_error",
      permission_denials: [],
      ...stamp(),
      ...fields
    })
  }
}

type Lines = ReturnType<typeof lines>

/** Runs the command as the agent's Bash tool would: its own output is captured, never mixed into the stream. */
const runCompletion = (command: string) => {
  const result = spawnSync("sh", ["-c", command], {
    cwd: process.cwd(),
    env: process.env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  log("completion", { command, exitCode: result.status })
}

const ok = (out: Lines, prompt: string) => {
  emit(out.answer("Done."))
  const command = completionCommand(prompt)
  if (command !== undefined && process.env.STANDIN_RUN_COMPLETION !== "0") runCompletion(command)
  emit(out.rateLimit({ status: "allowed", isUsingOverage: false }))
  emit(out.success(process.env.STANDIN_RESULT ?? "Did the task.", Number(process.env.STANDIN_COST ?? 0.0123)))
  exit(0)
}

const limit = (out: Lines) => {
  const resetsAt = Math.round(Date.now() / 1000 + Number(process.env.STANDIN_RESET_S ?? 3600))
  const text = `You've hit your 5-hour limit · resets ${utcClock(resetsAt)} (UTC)`
  emit(out.rateLimit({ status: "rejected", resetsAt, rateLimitType: "five_hour", isUsingOverage: false }))
  emit(out.apiError(text, {
    error: "rate_limit",
    api_error_status: 429,
    api_error: "usage_limit_reached",
    api_error_type: "rate_limit_error"
  }))
  emit(out.failed(text, { api_error: "usage_limit_reached", api_error_status: 429 }))
  exit(1)
}

const auth = (out: Lines) => {
  const text = "Not logged in · Please run /login"
  emit(out.apiError(text, { error: "authentication_failed", api_error_status: 401 }))
  emit(out.failed(text, { api_error: null, api_error_status: 401 }))
  exit(1)
}

const overloaded = (out: Lines) => {
  for (const attempt of [1, 2, 3]) emit(out.retry(attempt))
  const text = "API Error: 529 Overloaded. This is a server-side issue, usually temporary — try again in a moment."
  emit(out.apiError(text, { error: "overloaded", api_error_status: 529 }))
  emit(out.failed(text, { api_error: null, api_error_status: 529 }))
  exit(1)
}

const crash = (out: Lines) => {
  emit(out.answer("Working on it."))
  process.stderr.write("stand-in crashed\n")
  exit(3)
}

/** One line without end, through `process.stdout` so a slow reader holds it back instead of it piling up in memory. */
const huge = async () => {
  const total = Number(process.env.STANDIN_HUGE_BYTES ?? 40 * 1024 * 1024)
  const chunk = Buffer.alloc(64 * 1024, "x")
  for (let sent = 0; sent < total; sent += chunk.length) {
    const part = total - sent < chunk.length ? chunk.subarray(0, total - sent) : chunk
    if (!process.stdout.write(part)) await new Promise((resolve) => process.stdout.once("drain", resolve))
  }
  hang()
}

const GARBAGE = [
  "not json at all",
  `{"type":`,
  "",
  "[1,2,3]",
  `"a string"`,
  `{"type":"future_event","x":1}`,
  `{"type":"system","subtype":"something_new"}`
]

/** What each mode does after the init line (and STANDIN_DELAY_MS). */
const behaviours: Record<Mode, (out: Lines, prompt: string) => void | Promise<void>> = {
  ok,
  garbage: ok,
  limit,
  auth,
  overloaded,
  crash,
  signal: () => void process.kill(process.pid, "SIGKILL"),
  hang,
  huge,
  "close-stdout": () => {
    closeSync(1)
    hang()
  }
}

/** The whole of stdin, as the daemon passes the prompt. */
const readStdin = async (): Promise<string> => {
  const chunks: Array<Buffer> = []
  for await (const chunk of process.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)))
  return Buffer.concat(chunks).toString("utf8")
}

const main = async () => {
  let { prompt, resume } = parseArgv(process.argv.slice(2))
  const session = resume ?? randomUUID()
  const mode = chooseMode(invocationIndex(process.env.STANDIN_STATE, randomUUID()))
  if (typeof mode !== "string") {
    process.stderr.write(
      `stand-in: unknown mode(s) in STANDIN_MODES: ${mode.unknown.join(", ")} (known: ${MODES.join(", ")})\n`
    )
    return exit(2)
  }
  log("started", { mode, pid: process.pid, args: process.argv.slice(2), resume: resume ?? null, session })
  if (prompt === undefined) prompt = await readStdin()
  if (prompt.trim() === "") {
    process.stderr.write("stand-in: no prompt: pass -p PROMPT or the prompt on stdin\n")
    return exit(2)
  }
  const out = lines(session)
  if (mode === "garbage") GARBAGE.forEach(emitRaw)
  emit(out.init())
  await sleep(Number(process.env.STANDIN_DELAY_MS ?? 0))
  await behaviours[mode](out, prompt)
}

await main()
