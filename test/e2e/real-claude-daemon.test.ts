/**
 * The daemon as a real process with real Claude Code 2.1.332 sessions in a private tmux server, against the Anthropic
 * API stand-in answering with a Bash tool call that runs the task's completion line. Three sessions work; one of them
 * hits a 5-hour limit in its first task, which fails over with the reset time from the banner; a fourth opens on the
 * trust dialog and a fifth on the API-key dialog, and neither is ever typed into. Once from the screens alone, once
 * with the hooks installed and a poll interval so long that only the hooks can be what moves the run along.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  answersToolResult,
  type AnthropicApi,
  latestUserText,
  startAnthropicApi
} from "../../stand-ins/anthropic-api.ts"
import { freePort } from "../free-port.ts"
import { API_KEY, claudeAccount, killClaudes, OAUTH, startClaude } from "./real-claude.ts"
import { Daemon, Queue, ROOT, taskFields, TmuxServer, waitFor } from "./support.ts"

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const BIN = join(ROOT, "bin/claude-failover.js")
const WORKERS = ["claude-1", "claude-2", "claude-3"] as const
const TASKS = ["alpha.md", "bravo.md", "charlie.md", "delta.md"] as const
/** The task whose first run hits the 5-hour limit. */
const LIMITED = "bravo.md"

interface SessionView {
  readonly session: string
  readonly state: string
  readonly signal?: string
}

const getJson = async <A>(port: number, path: string): Promise<A> => {
  const answer = await fetch(`http://127.0.0.1:${port}${path}`)
  return (await answer.json()) as A
}

/**
 * Everything one run needs: the API stand-in (the first run of LIMITED gets a 5-hour limit, every other main-loop
 * request the Bash tool call), five Claude Code sessions, a queue with four tasks, the daemon's port.
 */
const setUp = async (options: { readonly hooks: boolean }) => {
  const root = mkdtempSync(join(tmpdir(), "cf-real-claude-"))
  const tmux = new TmuxServer()
  const queue = new Queue()
  cleanups.push(() => rmSync(root, { recursive: true, force: true }), () => queue.remove(), () => killClaudes(tmux))
  const limitedRuns = new Set<string>()
  const api: AnthropicApi = await startAnthropicApi({
    scenario: "bash",
    // The answer after the completion line ran takes a few seconds: the session turns idle well after the queue
    // changed, so nothing but a look at the session (a poll, or its Stop hook) can tell the daemon it is free.
    text: "The command ran. The task is complete.",
    slowSeconds: 3,
    rule: (request) => {
      if (answersToolResult(request.body)) return "slow"
      const run = new RegExp(
        `^Task ${LIMITED.replace(".", "\\.")} from the claude-failover queue \\(run (\\S+)\\):`,
        "m"
      )
        .exec(latestUserText(request.body))?.[1]
      if (run === undefined) return undefined
      if (limitedRuns.size === 0) limitedRuns.add(run)
      return limitedRuns.has(run) ? "limit-5h" : undefined
    }
  })
  cleanups.push(() => api.close())
  const port = await freePort()

  // The completion commands allowed, as the README tells operators: Claude Code's auto mode asks a model whether a
  // command is safe, and the stand-in is no such model.
  const node = process.execPath
  const allow = [`Bash(${node} ${BIN} task done:*)`, `Bash(${node} ${BIN} task fail:*)`]
  const accounts = {
    "claude-1": claudeAccount(root, "claude-1", { allow }),
    "claude-2": claudeAccount(root, "claude-2", { allow }),
    "claude-3": claudeAccount(root, "claude-3", { allow }),
    "claude-4": claudeAccount(root, "claude-4", { trusted: false }),
    "claude-5": claudeAccount(root, "claude-5")
  }
  if (options.hooks) {
    for (const account of Object.values(accounts)) {
      const install = spawnSync(process.execPath, [BIN, "hooks", "install", "--config-dir", account.configDir], {
        env: { PATH: process.env.PATH ?? "", API_PORT: String(port), QUEUE_DIR: queue.root },
        encoding: "utf8"
      })
      expect(install.status, install.stderr).toBe(0)
    }
  }
  for (const session of WORKERS) startClaude(tmux, session, accounts[session], api.url, OAUTH)
  startClaude(tmux, "claude-4", accounts["claude-4"], api.url, OAUTH)
  startClaude(tmux, "claude-5", accounts["claude-5"], api.url, API_KEY)
  await waitFor(
    "the workers' empty input boxes and the two dialogs",
    () =>
      WORKERS.every((s) => /^❯\s*$/m.test(tmux.capture(s))) &&
      tmux.capture("claude-4").includes("Quick safety check") &&
      tmux.capture("claude-5").includes("Detected a custom API key"),
    60_000
  )
  const dialogs = { trust: tmux.capture("claude-4"), apiKey: tmux.capture("claude-5") }

  TASKS.forEach((name, i) =>
    writeFileSync(join(queue.root, "pending", name), `---\npriority: ${i + 1}\n---\nSay hello (${name}).\n`)
  )
  return { api, tmux, queue, port, dialogs }
}

/** Watches /api/sessions while the run goes on: every (session, state, signal) seen. */
const watchSessions = (port: number) => {
  const seen: Array<SessionView> = []
  let stopped = false
  const loop = (async () => {
    while (!stopped) {
      const sessions = await getJson<{ readonly sessions: ReadonlyArray<SessionView> }>(port, "/api/sessions").catch(
        () => undefined
      )
      if (sessions !== undefined) seen.push(...sessions.sessions)
      await new Promise((resolve) => setTimeout(resolve, 150))
    }
  })()
  return {
    seen,
    stop: async () => {
      stopped = true
      await loop
    }
  }
}

const runAndCheck = async (options: { readonly hooks: boolean }) => {
  const { api, dialogs, port, queue, tmux } = await setUp(options)
  // With hooks the screens are polled once an hour, far beyond the test's deadline: only the hooks (and queue changes)
  // can move the run along.
  const pollMs = options.hooks ? 3_600_000 : 300
  const daemon = new Daemon({
    QUEUE_DIR: queue.root,
    TMUX_SOCKET: tmux.socket,
    TMUX_SESSIONS: "claude-1,claude-2,claude-3,claude-4,claude-5",
    API_PORT: String(port),
    POLL_INTERVAL: `${pollMs}ms`
  })
  cleanups.push(() => daemon.stop("SIGKILL"))
  await daemon.ready()
  const watch = watchSessions(port)
  await waitFor("every task done", () => queue.tasks("done").length === TASKS.length, 150_000).catch(
    (error: unknown) => {
      // What a person would look at first: the daemon's log and the five screens.
      const screens = ["claude-1", "claude-2", "claude-3", "claude-4", "claude-5"].map((s) =>
        `--- ${s}\n${tmux.capture(s)}`
      )
      throw new Error(`${String(error)}\n--- daemon\n${daemon.output.slice(-6000)}\n${screens.join("\n")}`)
    }
  )
  // The dialogs stay on the watch a moment longer: they must still be listed for a person.
  const watchdog = await getJson<
    { readonly attention: ReadonlyArray<{ readonly session: string; readonly reason: string }> }
  >(port, "/watchdog/status")
  await watch.stop()
  expect(await daemon.stop()).toBe(0)

  // Every task done once, by one of the three workers; the stand-in ran each completion line once.
  expect(queue.tasks("pending")).toStrictEqual([])
  expect(queue.tasks("active")).toStrictEqual([])
  expect(queue.tasks("failed")).toStrictEqual([])
  const bashRuns = api.requests().filter((r) => r.kind === "main" && r.answer === "tool_use")
  expect(bashRuns).toHaveLength(TASKS.length)
  for (const name of TASKS) {
    const fields = taskFields(name, queue.read("done", name))
    expect(WORKERS as ReadonlyArray<string>).toContain(fields.session)
    expect(fields.attempts, name).toBe(name === LIMITED ? 2 : 1)
  }

  // The limited task failed over: back to the queue with the reset the banner named, then done in another session.
  const limit = api.requests().find((r) => r.scenario === "limit-5h")
  expect(limit?.resetAt).toBeDefined()
  const limited = taskFields(LIMITED, queue.read("done", LIMITED))
  const requeued = limited.history?.at(-1)
  expect(requeued).toMatchObject({ event: "requeued", cause: "usage_limit" })
  expect(requeued?.reason).toContain("You've hit your 5-hour limit · resets")
  expect(requeued?.reason).toContain(`it resets at ${new Date((limit?.resetAt ?? 0) * 1000).toISOString()}`)
  expect(limited.session).not.toBe(requeued?.session)
  // Claude Code 2.1.332 would have continued the old turn by itself at the reset: the daemon cancelled that first.
  expect(tmux.capture(requeued?.session ?? "")).toContain("Automatic continue cancelled")

  // The dialogs: never typed into (the same dialog, the same screen), never given a task, listed for a person.
  expect(tmux.capture("claude-4")).toBe(dialogs.trust)
  expect(tmux.capture("claude-5")).toBe(dialogs.apiKey)
  expect(tmux.currentCommand("claude-4")).not.toMatch(/^(?:bash|sh)$/)
  for (const name of TASKS) {
    const fields = taskFields(name, queue.read("done", name))
    for (const entry of [fields.session, ...(fields.history ?? []).map((h) => h.session)])
      expect(entry).not.toMatch(/claude-[45]/)
  }
  expect(daemon.output).not.toMatch(/→ session claude-[45]/)
  expect(watchdog.attention).toEqual(expect.arrayContaining([
    { session: "claude-4", reason: expect.stringContaining("Accessing workspace:") },
    { session: "claude-5", reason: expect.stringContaining("Detected a custom API key") }
  ]))
  for (const session of ["claude-4", "claude-5"]) {
    expect(watch.seen.filter((s) => s.session === session).every((s) => s.state === "setup_dialog"), session).toBe(true)
  }
  return { seen: watch.seen, api, queue }
}

describe("the daemon with real Claude Code sessions", () => {
  it(
    "from the screens alone: tasks done, a 5-hour limit fails over with its reset time, dialogs untouched and listed",
    async () => {
      const { seen } = await runAndCheck({ hooks: false })
      // No hooks installed: every state came from a screen.
      expect(seen.filter((s) => WORKERS.includes(s.session as never)).every((s) => s.signal === "pane")).toBe(true)
    },
    240_000
  )

  it(
    "with the hooks installed the same run takes its states from them: done before a single poll would have seen it",
    async () => {
      const { seen } = await runAndCheck({ hooks: true })
      // Four tasks on three sessions need a session seen idle again after a turn. Each turn's last answer streams for
      // 3 s after its completion line changed the queue, so no wake-up on a queue change sees the session idle: with
      // the screens polled once an hour, only the Stop hook can have freed one before the run's deadline. (Without the
      // hooks installed, the same run never gets past the third task within it.)
      expect(seen.some((s) => WORKERS.includes(s.session as never) && s.signal === "hook")).toBe(true)
    },
    240_000
  )
})
