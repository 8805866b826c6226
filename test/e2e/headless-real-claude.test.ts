/**
 * Headless slots with the real Claude Code 2.1.332 (`claude -p --output-format stream-json`), the daemon as a real
 * process, against the Anthropic API stand-in: tasks finish with Claude Code's session and cost in the done/ file; a
 * 5-hour limit mid-task rests the account until the reset the API announced, to the second, and the task is requeued
 * or — limit policy `wait` — resumed in the same Claude Code session after the reset; a 529 and a login failure hand
 * the task back.
 */
import { afterEach, describe, expect, it, onTestFailed } from "@effect/vitest"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  answersToolResult,
  type AnthropicApiOptions,
  latestUserText,
  startAnthropicApi
} from "../../stand-ins/anthropic-api.ts"
import { freePort } from "../free-port.ts"
import { claudeAccount, claudeBinary, OAUTH } from "./real-claude.ts"
import { Daemon, Queue, taskFields, waitFor } from "./support.ts"

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

interface SessionView {
  readonly session: string
  readonly state: string
  readonly signal?: string
  readonly cooldown_until: string | null
}

const getJson = async <A>(port: number, path: string): Promise<A> =>
  (await (await fetch(`http://127.0.0.1:${port}${path}`)).json()) as A

/** The daemon with headless slots running the real Claude Code against an API stand-in set up by `api`. */
const setUp = async (api: AnthropicApiOptions, env: Readonly<Record<string, string>> = {}) => {
  const root = mkdtempSync(join(tmpdir(), "cf-headless-real-"))
  const queue = new Queue()
  cleanups.push(() => rmSync(root, { recursive: true, force: true }), () => queue.remove())
  const stand = await startAnthropicApi(api)
  cleanups.push(() => stand.close())
  const account = claudeAccount(root, "account")
  const port = await freePort()
  const daemon = new Daemon({
    QUEUE_DIR: queue.root,
    SESSIONS_MODE: "headless",
    CLAUDE_COMMAND: claudeBinary(),
    SESSIONS_CWD: account.work,
    API_PORT: String(port),
    // What the runs inherit: a fresh Claude Code home and config, the stand-in, fake credentials.
    HOME: account.home,
    CLAUDE_CONFIG_DIR: account.configDir,
    ANTHROPIC_BASE_URL: stand.url,
    DISABLE_AUTOUPDATER: "1",
    // Claude Code retries a 529 ten times with backoff (minutes); once is enough to see it end the turn.
    CLAUDE_CODE_MAX_RETRIES: "1",
    ...OAUTH,
    ...env
  })
  cleanups.push(() => daemon.stop("SIGKILL"))
  onTestFailed(() =>
    console.log(
      `--- daemon output ---\n${daemon.output}--- end ---\n${
        JSON.stringify(stand.requests().map((r) => [r.kind, r.scenario, r.answer, r.status]))
      }`
    )
  )
  await daemon.ready()
  const add = (name: string, text: string) => writeFileSync(join(queue.root, "pending", name), text)
  const sessions = async () =>
    (await getJson<{ readonly sessions: ReadonlyArray<SessionView> }>(port, "/api/sessions")).sessions
  const transcript = (name: string) => {
    const fields = taskFields(name, queue.read("done", name))
    return readFileSync(join(queue.root, fields.transcript ?? "none"), "utf8").trim().split("\n").map((line) =>
      JSON.parse(line)
    )
  }
  return { api: stand, queue, daemon, add, sessions, transcript, port }
}

const taskRun = (name: string, body: unknown) =>
  new RegExp(`^Task ${name.replace(".", "\\.")} from the claude-failover queue \\(run (\\S+)\\):`, "m").exec(
    latestUserText(body)
  )?.[1]

describe("headless slots with the real Claude Code", () => {
  it(
    "tasks finish by their completion line; the done file holds Claude Code's session, cost, turns and transcript",
    async () => {
      const { add, api, daemon, queue, transcript } = await setUp({ scenario: "bash" }, { HEADLESS_SLOTS: "2" })
      const names = ["one.md", "two.md", "three.md"]
      for (const name of names) add(name, `Say hello (${name}).\n`)
      // The completion line finishes each task; its run's facts follow once Claude Code has printed its result.
      await waitFor("every task done, with its run's facts", () =>
        queue.tasks("done").length === names.length &&
        names.every((name) => taskFields(name, queue.read("done", name)).transcript !== undefined), 90_000)
      expect(await daemon.stop()).toBe(0)
      const sessions = new Set<string>()
      for (const name of names) {
        const text = queue.read("done", name)
        const fields = taskFields(name, text)
        expect(fields.session, name).toMatch(/^headless-[12]$/)
        expect(fields.attempts, name).toBe(1)
        expect(fields.claude_session, name).toMatch(/^[0-9a-f-]{36}$/)
        expect(fields.cost_usd, name).toBeGreaterThan(0)
        expect(fields.turns, name).toBe(2)
        expect(text).toContain(`Headless run: claude session ${fields.claude_session}`)
        // The transcript is Claude Code's own stream: its first line names the same session, its last is the result.
        const lines = transcript(name)
        expect(lines[0]).toMatchObject({ type: "system", subtype: "init", session_id: fields.claude_session })
        expect(lines.at(-1)).toMatchObject({ type: "result", is_error: false, session_id: fields.claude_session })
        expect(lines.some((l) => l.type === "user" && JSON.stringify(l).includes(`${name} done`))).toBe(true)
        sessions.add(fields.claude_session ?? "")
      }
      expect(sessions.size).toBe(names.length)
      // Each completion line ran once: the agent's, allowed by the daemon's --allowedTools rules.
      expect(api.requests().filter((r) => r.kind === "main" && r.answer === "tool_use")).toHaveLength(names.length)
    },
    120_000
  )

  it(
    "a 5-hour limit mid-task: the account rests until the announced reset exactly and the task goes back to the queue",
    async () => {
      const resetAt = Math.floor(Date.now() / 1000) + 3 * 3600
      // The task's first request writes a file (a tool call); the request after it hits the limit.
      const { add, daemon, port, queue, sessions } = await setUp({
        scenario: "write",
        resetAt: () => resetAt,
        rule: (request) => answersToolResult(request.body) ? "limit-5h" : undefined
      }, { HEADLESS_SLOTS: "2" })
      add("job.md", "Write some notes.\n")
      await waitFor("the task back in pending/", () => {
        const pending = queue.tasks("pending")
        return pending.includes("job.md") && taskFields("job.md", queue.read("pending", "job.md")).history !== undefined
      }, 60_000)
      const requeued = taskFields("job.md", queue.read("pending", "job.md")).history?.at(-1)
      expect(requeued).toMatchObject({ event: "requeued", cause: "usage_limit" })
      expect(requeued?.reason).toContain(`it resets at ${new Date(resetAt * 1000).toISOString()}`)
      // Both slots share the default account: both rest until the reset, to the second, and nothing else runs.
      const views = await sessions()
      expect(views.map((v) => [v.session, v.cooldown_until, v.signal])).toStrictEqual([
        ["headless-1", new Date(resetAt * 1000).toISOString(), "process"],
        ["headless-2", new Date(resetAt * 1000).toISOString(), "process"]
      ])
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
      expect(metrics).toMatch(/claude_failover_headless_runs_total\{outcome="limited"\} 1/)
      expect(daemon.output.match(/→ session headless-/g)).toHaveLength(1)
    },
    120_000
  )

  it(
    "limit policy wait: the run is resumed in the same Claude Code session after the reset and finishes there",
    async () => {
      let resetAt = 0
      const limited = new Set<string>()
      const { add, api, daemon, queue, transcript } = await setUp({
        scenario: "write",
        resetAt: () => resetAt,
        rule: (request) => {
          // After the tool call: the limit, once. The resumed turn ("continue") answers with text: the result ends it.
          if (answersToolResult(request.body) && limited.size === 0) {
            limited.add("job.md")
            resetAt = Math.floor(Date.now() / 1000) + 5
            return "limit-5h"
          }
          return latestUserText(request.body).trim() === "continue" ? "text" : undefined
        }
      }, { LIMIT_POLICY: "wait" })
      add("job.md", "Write some notes.\n")
      await waitFor("the task done", () => queue.tasks("done").includes("job.md"), 90_000)
      expect(await daemon.stop()).toBe(0)
      const fields = taskFields("job.md", queue.read("done", "job.md"))
      // One run, never taken back: it waited in its slot and went on in the same Claude Code session.
      expect(fields.attempts).toBe(1)
      expect(fields.history ?? []).toStrictEqual([])
      const lines = transcript("job.md")
      const inits = lines.filter((l) => l.type === "system" && l.subtype === "init")
      expect(inits).toHaveLength(2)
      expect(new Set(inits.map((l) => l.session_id))).toStrictEqual(new Set([fields.claude_session]))
      // The resumed turn started after the reset, not before.
      const continued = api.requests().find((r) => r.kind === "main" && r.scenario === "text")
      expect(continued?.at).toBeGreaterThanOrEqual(resetAt * 1000)
      expect(daemon.output).toContain("waits in session headless-1 for its usage limit to reset")
    },
    120_000
  )

  it(
    "a 529 that outlasts Claude Code's retries and a login failure hand the task back; the login failure rests the slot",
    async () => {
      const overloaded = new Set<string>()
      const { add, daemon, port, queue } = await setUp({
        scenario: "bash",
        rule: (request) => {
          if (answersToolResult(request.body)) return undefined
          const busy = taskRun("busy.md", request.body)
          // busy.md's first run meets 529s; its second goes through.
          if (busy !== undefined && (overloaded.size === 0 || overloaded.has(busy))) {
            overloaded.add(busy)
            return "overloaded"
          }
          return taskRun("locked.md", request.body) === undefined ? undefined : "unauthorized"
        }
      }, { HEADLESS_SLOTS: "1" })
      add("busy.md", "---\npriority: 1\n---\nSay hello.\n")
      await waitFor("busy.md done on its second run", () => queue.tasks("done").includes("busy.md"), 60_000)
      const busy = taskFields("busy.md", queue.read("done", "busy.md"))
      expect(busy.attempts).toBe(2)
      expect(busy.history?.at(-1)).toMatchObject({ event: "requeued", cause: "api_error", run: [...overloaded][0] })
      expect(busy.history?.at(-1)?.reason).toContain("529")
      add("locked.md", "Say hello.\n")
      await waitFor("locked.md back in pending/", () =>
        existsSync(join(queue.root, "pending", "locked.md")) &&
        (taskFields("locked.md", queue.read("pending", "locked.md")).history?.length ?? 0) > 0, 60_000)
      expect(taskFields("locked.md", queue.read("pending", "locked.md")).history?.at(-1)?.reason).toContain(
        "Not logged in"
      )
      const watchdog = await getJson<
        { readonly attention: ReadonlyArray<{ readonly session: string; readonly reason: string }> }
      >(port, "/watchdog/status")
      expect(watchdog.attention).toEqual(
        expect.arrayContaining([{ session: "headless-1", reason: expect.stringContaining("Not logged in") }])
      )
      expect(await daemon.stop()).toBe(0)
    },
    120_000
  )
})
