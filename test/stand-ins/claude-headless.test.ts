/**
 * The headless Claude Code stand-in as a real process: each mode's stream-json lines, exit code or signal, log events,
 * and the faults (hang, endless line, closed stdout) a daemon reading it has to survive.
 * Every wait is on a stream or exit event with a deadline; a process still running is killed and the temp directory
 * removed even when a test fails. A kill that ends in SIGTERM proves the process was still alive when it was sent.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { afterAll, afterEach, describe, expect, it } from "vitest"

const ROOT = resolve(import.meta.dirname, "../..")
const NODE = join(ROOT, "node_modules/.bin/node")
const SCRIPT = join(ROOT, "stand-ins/claude-headless.ts")
const DEADLINE_MS = 5_000
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

const temp = realpathSync(mkdtempSync(join(tmpdir(), "cf-headless-")))
let dirs = 0
/** A fresh working directory per process: the completion command writes its marker there. */
const workDir = () => {
  const dir = join(temp, `w${++dirs}`)
  mkdirSync(dir)
  return dir
}

const running = new Set<ChildProcess>()
afterEach(() => {
  for (const child of running) child.kill("SIGKILL")
  running.clear()
})
afterAll(() => rmSync(temp, { recursive: true, force: true }))

/** Rejects, naming what it waited for, unless `promise` settles within the deadline. */
const within = <A>(what: string, promise: Promise<A>, ms = DEADLINE_MS): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

type Json = Record<string, unknown>

interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** The stand-in's environment: this process's, minus any STANDIN_* setting leaking in from outside. */
const environment = (env: Readonly<Record<string, string>>) => {
  const base = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("STANDIN_")))
  return { ...base, ...env }
}

/** A running stand-in: what it printed so far, and waits on what it prints next. */
const start = (args: ReadonlyArray<string>, env: Readonly<Record<string, string>> = {}, cwd = workDir()) => {
  const child = spawn(NODE, [SCRIPT, ...args], { cwd, env: environment(env), stdio: ["ignore", "pipe", "pipe"] })
  running.add(child)
  const out: Array<Buffer> = []
  let outBytes = 0
  let err = ""
  const watchers = new Set<() => void>()
  const stdoutEnded = new Promise<void>((resolve) => child.stdout.once("end", resolve))
  const exited = new Promise<Exit>((resolve) =>
    child.once("close", (code, signal) => {
      running.delete(child)
      resolve({ code, signal })
    })
  )
  child.stdout.on("data", (chunk: Buffer) => {
    out.push(chunk)
    outBytes += chunk.length
    for (const watch of watchers) watch()
  })
  child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()))
  const stdout = () => Buffer.concat(out).toString()
  /** Resolves once `check` holds for what was printed, re-checked on every chunk. */
  const until = (what: string, check: () => boolean) =>
    within(
      what,
      new Promise<void>((resolve, reject) => {
        const watch = () => {
          if (!check()) return
          watchers.delete(watch)
          resolve()
        }
        watchers.add(watch)
        void exited.then(() => {
          watchers.delete(watch)
          if (check()) resolve()
          else reject(new Error(`the stand-in exited before ${what}; stdout: ${stdout().slice(0, 500)}`))
        })
        watch()
      })
    )
  return {
    child,
    stdout,
    stdoutBytes: () => outBytes,
    stderr: () => err,
    stdoutEnded,
    exited: () => within("the stand-in to exit", exited),
    until,
    untilInit: () => until("the init line", () => lines(stdout()).some((line) => line.includes(`"subtype":"init"`))),
    /** SIGTERM, then how it ended: a SIGTERM ending proves it had not exited by itself first. */
    terminate: async () => {
      child.kill("SIGTERM")
      return within("the stand-in to die", exited)
    }
  }
}

/** The complete lines of an output (what follows the last newline is still being written). */
const lines = (stdout: string) => stdout.split("\n").slice(0, -1)
const parse = (stdout: string): ReadonlyArray<Json> => lines(stdout).map((line) => JSON.parse(line) as Json)

/** Runs the stand-in to its end. */
const run = async (args: ReadonlyArray<string>, env: Readonly<Record<string, string>> = {}, cwd = workDir()) => {
  const standIn = start(args, env, cwd)
  const exit = await standIn.exited()
  return { ...exit, stdout: standIn.stdout(), stderr: standIn.stderr() }
}

/** A task prompt as the daemon writes it: an example command in the text, the real completion line last. */
const prompt = [
  "Task x.md from the claude-failover queue (run r1):",
  "",
  "Explain the example `printf example > marker; : task done x.md --run old`, do not run it.",
  "",
  "When you have finished, run this shell command, exactly as written:",
  "`printf ran > marker; : task done x.md --run r1`"
].join("\n")

/** The flags the daemon passes to the real Claude Code; the stand-in must skip them, values included. */
const FLAGS = [
  "--output-format",
  "stream-json",
  "--verbose",
  "--permission-mode",
  "acceptEdits",
  "--allowedTools",
  "Bash Edit"
]
const args = (...extra: ReadonlyArray<string>) => [...FLAGS, "-p", prompt, ...extra]

const types = (events: ReadonlyArray<Json>) =>
  events.map((event) => event.subtype === undefined ? event.type : `${String(event.type)}/${String(event.subtype)}`)
const sessions = (events: ReadonlyArray<Json>) => new Set(events.map((event) => event.session_id))
const readLog = (file: string): ReadonlyArray<Json> =>
  existsSync(file)
    ? readFileSync(file, "utf8").split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as Json)
    : []
const modesOf = (file: string) => readLog(file).filter((event) => event.event === "started").map((event) => event.mode)
const textOf = (event: Json | undefined) => JSON.stringify(event?.message ?? null)

/** `10:59pm` for a UTC instant, derived here with Intl rather than the stand-in's arithmetic. */
const utcClock = (epochSeconds: number) =>
  new Intl.DateTimeFormat("en-US", { hour: "numeric", minute: "2-digit", hour12: true, timeZone: "UTC" })
    .format(epochSeconds * 1000).replace(/\s/g, "").toLowerCase()

describe("claude-headless stand-in", () => {
  it("ok: init, answer, the prompt's last completion command run in its cwd, allowed rate limit, success; exit 0", async () => {
    const cwd = workDir()
    const log = join(cwd, "log.jsonl")
    const result = await run(args(), { STANDIN_LOG: log, STANDIN_COST: "0.5", STANDIN_RESULT: "All done." }, cwd)
    expect(result).toMatchObject({ code: 0, signal: null })
    const events = parse(result.stdout)
    expect(types(events)).toEqual(["system/init", "assistant", "rate_limit_event", "result/success"])
    expect(events[0]).toMatchObject({ cwd, model: "claude-sonnet-5-5", claude_code_version: "2.1.332" })
    expect(events[2]).toMatchObject({ rate_limit_info: { status: "allowed" } })
    expect(events[3]).toMatchObject({
      is_error: false,
      result: "All done.",
      total_cost_usd: 0.5,
      num_turns: 2,
      terminal_reason: "completed"
    })
    const [session] = sessions(events)
    expect(sessions(events).size).toBe(1)
    expect(session).toMatch(UUID)
    expect(readFileSync(join(cwd, "marker"), "utf8")).toBe("ran")
    const logged = readLog(log)
    expect(logged.map((event) => event.event)).toEqual(["started", "completion", "exit"])
    expect(logged[0]).toMatchObject({ mode: "ok", pid: expect.any(Number), args: args(), resume: null })
    expect(logged[1]).toMatchObject({ command: "printf ran > marker; : task done x.md --run r1", exitCode: 0 })
    expect(logged[2]).toMatchObject({ code: 0 })
  })

  it("ok with STANDIN_RUN_COMPLETION=0 runs nothing; the defaults fill the result", async () => {
    const cwd = workDir()
    const log = join(cwd, "log.jsonl")
    const result = await run(args(), { STANDIN_LOG: log, STANDIN_RUN_COMPLETION: "0" }, cwd)
    expect(result.code).toBe(0)
    expect(existsSync(join(cwd, "marker"))).toBe(false)
    expect(readLog(log).map((event) => event.event)).toEqual(["started", "exit"])
    expect(parse(result.stdout).at(-1)).toMatchObject({ result: "Did the task.", total_cost_usd: 0.0123 })
  })

  it("--resume SID puts SID in every line and in the log", async () => {
    const cwd = workDir()
    const log = join(cwd, "log.jsonl")
    const sid = "43878ddd-e32b-40a7-af7b-a6d59153e47f"
    const result = await run(args("--resume", sid), { STANDIN_LOG: log }, cwd)
    expect(result.code).toBe(0)
    expect([...sessions(parse(result.stdout))]).toEqual([sid])
    expect(readLog(log)[0]).toMatchObject({ resume: sid })
  })

  it("two invocations without --resume get two session ids", async () => {
    const [first, second] = await Promise.all([run(args()), run(args())])
    expect(sessions(parse(first?.stdout ?? "")).size).toBe(1)
    expect(sessions(parse(first?.stdout ?? ""))).not.toEqual(sessions(parse(second?.stdout ?? "")))
  })

  it("STANDIN_MODES with STANDIN_STATE: one mode per invocation in order, the last one repeating", async () => {
    const cwd = workDir()
    const log = join(cwd, "log.jsonl")
    const env = { STANDIN_MODES: "limit,ok", STANDIN_STATE: join(cwd, "state"), STANDIN_LOG: log }
    const codes: Array<number | null> = []
    for (let i = 0; i < 3; i++) codes.push((await run(args(), env, cwd)).code)
    expect(codes).toEqual([1, 0, 0])
    expect(modesOf(log)).toEqual(["limit", "ok", "ok"])
  })

  it("STANDIN_MODES without STANDIN_STATE: always the first mode", async () => {
    const cwd = workDir()
    const log = join(cwd, "log.jsonl")
    for (let i = 0; i < 2; i++) await run(args(), { STANDIN_MODES: "limit,ok", STANDIN_LOG: log }, cwd)
    expect(modesOf(log)).toEqual(["limit", "limit"])
  })

  it("limit: a rejected five_hour event resetting STANDIN_RESET_S from now, the 5-hour message, an is_error result; exit 1", async () => {
    const before = Date.now() / 1000
    const result = await run(args(), { STANDIN_MODES: "limit", STANDIN_RESET_S: "7200" })
    const after = Date.now() / 1000
    expect(result).toMatchObject({ code: 1, signal: null })
    const events = parse(result.stdout)
    expect(types(events)).toEqual(["system/init", "rate_limit_event", "assistant", "result/success"])
    const info = events[1]?.rate_limit_info
    const resetsAt = typeof info === "object" && info !== null && "resetsAt" in info ? Number(info.resetsAt) : NaN
    expect(Number.isInteger(resetsAt)).toBe(true)
    expect(resetsAt).toBeGreaterThanOrEqual(Math.floor(before + 7200))
    expect(resetsAt).toBeLessThanOrEqual(Math.ceil(after + 7200))
    expect(events[1]).toMatchObject({
      rate_limit_info: { status: "rejected", rateLimitType: "five_hour", isUsingOverage: false }
    })
    const text = `You've hit your 5-hour limit · resets ${utcClock(resetsAt)} (UTC)`
    expect(textOf(events[2])).toContain(JSON.stringify(text))
    expect(events[2]).toMatchObject({
      error: "rate_limit",
      is_api_error_message: true,
      api_error_status: 429,
      api_error: "usage_limit_reached",
      api_error_type: "rate_limit_error"
    })
    expect(events[3]).toMatchObject({
      is_error: true,
      result: text,
      api_error: "usage_limit_reached",
      api_error_status: 429,
      terminal_reason: "api_error",
      total_cost_usd: 0
    })
    expect(sessions(events).size).toBe(1)
  })

  it("auth: not logged in (401) and an is_error result; exit 1", async () => {
    const result = await run(args(), { STANDIN_MODES: "auth" })
    expect(result).toMatchObject({ code: 1, signal: null })
    const events = parse(result.stdout)
    expect(types(events)).toEqual(["system/init", "assistant", "result/success"])
    expect(textOf(events[1])).toContain("Not logged in · Please run /login")
    expect(events[1]).toMatchObject({
      error: "authentication_failed",
      is_api_error_message: true,
      api_error_status: 401
    })
    expect(events[2]).toMatchObject({
      is_error: true,
      result: "Not logged in · Please run /login",
      api_error: null,
      api_error_status: 401,
      terminal_reason: "api_error"
    })
  })

  it("overloaded: three 529 retries, the overloaded message, an is_error result; exit 1", async () => {
    const result = await run(args(), { STANDIN_MODES: "overloaded" })
    expect(result).toMatchObject({ code: 1, signal: null })
    const events = parse(result.stdout)
    expect(types(events)).toEqual([
      "system/init",
      "system/api_retry",
      "system/api_retry",
      "system/api_retry",
      "assistant",
      "result/success"
    ])
    expect(events.slice(1, 4).map((event) => [event.attempt, event.error_status, event.error])).toEqual([
      [1, 529, "overloaded"],
      [2, 529, "overloaded"],
      [3, 529, "overloaded"]
    ])
    expect(textOf(events[4])).toContain("API Error: 529 Overloaded.")
    expect(events[4]).toMatchObject({ error: "overloaded", api_error_status: 529 })
    expect(events[5]).toMatchObject({ is_error: true, api_error_status: 529, terminal_reason: "api_error" })
    expect(sessions(events).size).toBe(1)
  })

  it("crash: init and an answer, no result, a line on stderr; exit 3", async () => {
    const result = await run(args(), { STANDIN_MODES: "crash" })
    expect(result).toMatchObject({ code: 3, signal: null })
    expect(types(parse(result.stdout))).toEqual(["system/init", "assistant"])
    expect(result.stderr).toContain("stand-in crashed")
  })

  it("signal: init, then killed by SIGKILL", async () => {
    const result = await run(args(), { STANDIN_MODES: "signal" })
    expect(result).toMatchObject({ code: null, signal: "SIGKILL" })
    expect(types(parse(result.stdout))).toEqual(["system/init"])
  })

  it("garbage: non-JSON lines, an unknown type and an unknown system subtype, then as ok", async () => {
    const cwd = workDir()
    const result = await run(args(), { STANDIN_MODES: "garbage" }, cwd)
    expect(result.code).toBe(0)
    const all = lines(result.stdout)
    const junk = all.slice(0, 5)
    expect(junk).toEqual(["not json at all", `{"type":`, "", "[1,2,3]", `"a string"`])
    const objects = (line: string) => {
      try {
        const value: unknown = JSON.parse(line)
        return typeof value === "object" && value !== null && !Array.isArray(value)
      } catch {
        return false
      }
    }
    expect(junk.some(objects)).toBe(false)
    const events = parse(all.slice(5).join("\n") + "\n")
    expect(types(events)).toEqual([
      "future_event",
      "system/something_new",
      "system/init",
      "assistant",
      "rate_limit_event",
      "result/success"
    ])
    expect(sessions(events.slice(2)).size).toBe(1)
    expect(readFileSync(join(cwd, "marker"), "utf8")).toBe("ran")
  })

  it("hang: init, then alive and silent until killed", async () => {
    const standIn = start(args(), { STANDIN_MODES: "hang" })
    await standIn.untilInit()
    expect(standIn.child.exitCode).toBe(null)
    expect(() => process.kill(standIn.child.pid ?? -1, 0)).not.toThrow()
    expect(await standIn.terminate()).toEqual({ code: null, signal: "SIGTERM" })
    expect(types(parse(standIn.stdout()))).toEqual(["system/init"])
  })

  it("STANDIN_DELAY_MS: silent after init for that long, then the rest; killable meanwhile", async () => {
    const waiting = start(args(), { STANDIN_DELAY_MS: "60000" })
    await waiting.untilInit()
    expect(await waiting.terminate()).toEqual({ code: null, signal: "SIGTERM" })
    expect(types(parse(waiting.stdout()))).toEqual(["system/init"])

    const result = await run(args(), { STANDIN_DELAY_MS: "300" })
    expect(result.code).toBe(0)
    expect(Number(parse(result.stdout).at(-1)?.duration_ms)).toBeGreaterThanOrEqual(300)
  })

  it("huge: at least STANDIN_HUGE_BYTES after init with no newline, then alive until killed", async () => {
    const bytes = 3 * 1024 * 1024
    const standIn = start(args(), { STANDIN_MODES: "huge", STANDIN_HUGE_BYTES: String(bytes) })
    await standIn.untilInit()
    const initBytes = Buffer.byteLength(`${lines(standIn.stdout())[0] ?? ""}\n`)
    await standIn.until(`${bytes} bytes after the init line`, () => standIn.stdoutBytes() - initBytes >= bytes)
    expect(await standIn.terminate()).toEqual({ code: null, signal: "SIGTERM" })
    const rest = standIn.stdout().slice(initBytes)
    expect(rest.length).toBe(bytes)
    expect(rest.includes("\n")).toBe(false)
    expect(/^x+$/.test(rest)).toBe(true)
  })

  it("close-stdout: init, then EOF on stdout while the process lives on", async () => {
    const standIn = start(args(), { STANDIN_MODES: "close-stdout" })
    await within("EOF on stdout", standIn.stdoutEnded)
    expect(types(parse(standIn.stdout()))).toEqual(["system/init"])
    expect(standIn.child.exitCode).toBe(null)
    expect(await standIn.terminate()).toEqual({ code: null, signal: "SIGTERM" })
  })

  it("refuses an unknown mode or a missing prompt: exit 2 with a reason on stderr", async () => {
    const unknown = await run(args(), { STANDIN_MODES: "ok,explode" })
    expect(unknown).toMatchObject({ code: 2, stdout: "" })
    expect(unknown.stderr).toContain("explode")
    const noPrompt = await run(FLAGS)
    expect(noPrompt).toMatchObject({ code: 2, stdout: "" })
    expect(noPrompt.stderr).toContain("-p")
  })
})
