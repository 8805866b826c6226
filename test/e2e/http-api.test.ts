/**
 * The status API of the real daemon process (dry-run sessions, in-process secutools): every endpoint's JSON shape,
 * the token rule, the loopback default, /metrics as Prometheus text, and what a stop leaves behind.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import {
  DelegatedStatus,
  Health,
  Paths,
  SessionsStatus,
  TasksStatus,
  WatchdogStatus
} from "../../src/adapters/http-api/contract.ts"
import { parsePrometheusText, valueOf } from "../adapters/prometheus-text.ts"
import { Daemon, Queue, waitFor } from "./support.ts"

const TOKEN = "api-token-5d2e-never-logged"

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A daemon with two dry-run sessions that work 20 s per task, and secutools jobs that take 3 s. */
const start = async (env: Record<string, string> = {}) => {
  const queue = new Queue()
  cleanups.push(() => queue.remove())
  writeFileSync(join(queue.root, "pending", "local.md"), "---\nowner: ops\n---\nLocal.\n")
  writeFileSync(join(queue.root, "pending", "remote.md"), "---\npreferred_ai: gemini\n---\nRemote.\n")
  const clean = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(SECUTOOLS_|API_)/.test(key)))
  const daemon = new Daemon({
    ...clean,
    QUEUE_DIR: queue.root,
    SESSIONS_MODE: "dry-run",
    SECUTOOLS_MODE: "fake",
    DRY_RUN_DELAY: "20s",
    REAP_INTERVAL: "200ms",
    API_PORT: "0",
    ...env
  })
  cleanups.push(() => daemon.stop("SIGKILL"))
  const url = await waitFor(
    "the API's address",
    () => /status API listening on (http:\/\/\S+)/.exec(daemon.output)?.[1],
    20_000
  )
  return { daemon, queue, url }
}

const get = async (url: string, path: string, token?: string) => {
  const response = await fetch(
    `${url}${path}`,
    token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } }
  )
  return { status: response.status, type: response.headers.get("content-type") ?? "", text: await response.text() }
}

/** Decodes strictly: a field the contract does not name is an error too. */
const shaped = <A, I>(schema: Schema.Codec<A, I>, text: string): A =>
  Schema.decodeUnknownSync(schema)(JSON.parse(text), { onExcessProperty: "error" })

/** Polls `path` until its body satisfies `ready`, or fails after 15 s. */
const until = <A, I>(url: string, path: string, schema: Schema.Codec<A, I>, ready: (body: A) => boolean) =>
  waitFor(`${path} to be ready`, async () => {
    const body = shaped(schema, (await get(url, path)).text)
    return ready(body) ? body : undefined
  }, 15_000)

describe("status API of the running daemon", () => {
  it("listens on loopback by default and serves every endpoint in its documented shape", async () => {
    const { daemon, url } = await start()
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(url).not.toBe("http://127.0.0.1:0")

    const sessions = await until(
      url,
      Paths.sessions,
      SessionsStatus,
      (body) => body.sessions.some((s) => s.task === "local.md" && s.state === "busy")
    )
    expect(sessions.sessions).toStrictEqual([
      {
        session: "claude-1",
        state: "busy",
        signal: "pane",
        account: "claude-1",
        task: "local.md",
        cooldown_until: null
      },
      { session: "claude-2", state: "idle", signal: "pane", account: "claude-2", task: null, cooldown_until: null }
    ])

    const tasks = shaped(TasksStatus, (await get(url, Paths.tasks)).text)
    expect(tasks.active).toStrictEqual([{ name: "local.md", state: "assigned", session: "claude-1", attempts: 1 }])
    expect(tasks.counts.active).toBe(1)
    expect(tasks.counts.pending + tasks.counts.done).toBe(1)

    const delegated = shaped(DelegatedStatus, (await get(url, Paths.delegated)).text)
    expect(delegated.counters.submitted + delegated.counters.completed).toBeGreaterThanOrEqual(0)
    const watchdog = shaped(WatchdogStatus, (await get(url, Paths.watchdog)).text)
    expect(watchdog).toMatchObject({ stale: [], attention: [] })
    expect(shaped(Health, (await get(url, Paths.health)).text)).toStrictEqual({ status: "ok" })

    // The delegated task ends in done/ and the counters say so.
    const done = await until(url, Paths.delegated, DelegatedStatus, (body) => body.counters.completed === 1)
    expect(done).toStrictEqual({
      active: [],
      counters: { submitted: 1, completed: 1, failed: 0, retries: 0, rejected: 0, active: 0 }
    })

    const metrics = await get(url, Paths.metrics)
    expect(metrics.status).toBe(200)
    expect(metrics.type).toContain("text/plain")
    const families = parsePrometheusText(metrics.text)
    expect(valueOf(families, "claude_failover_tasks", "claude_failover_tasks", { stage: "active" })).toBe(1)
    expect(valueOf(families, "claude_failover_tasks", "claude_failover_tasks", { stage: "done" })).toBe(1)
    expect(valueOf(families, "claude_failover_dispatches_total", "claude_failover_dispatches_total")).toBe(1)
    expect(
      valueOf(families, "claude_failover_delegation_completed_total", "claude_failover_delegation_completed_total")
    ).toBe(1)
    expect(valueOf(families, "claude_failover_reap_latency_seconds", "claude_failover_reap_latency_seconds_count"))
      .toBe(1)
    expect(valueOf(families, "claude_failover_sessions", "claude_failover_sessions", { state: "busy" })).toBe(1)

    expect(await daemon.stop()).toBe(0)
  })

  it("with API_TOKEN, every route but /healthz needs the bearer token, and the token is never logged", async () => {
    const { daemon, url } = await start({ API_TOKEN: TOKEN })
    for (const path of [Paths.sessions, Paths.tasks, Paths.delegated, Paths.watchdog, Paths.metrics]) {
      expect((await get(url, path)).status, path).toBe(401)
      expect((await get(url, path, "wrong")).status, path).toBe(401)
      expect((await get(url, path, TOKEN)).status, path).toBe(200)
    }
    expect((await get(url, Paths.health)).status).toBe(200)
    expect(await daemon.stop()).toBe(0)
    expect(daemon.output).not.toContain(TOKEN)
  })
})
