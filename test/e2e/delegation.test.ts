/**
 * Delegation end to end: the daemon as a real process, the secutools stand-in as a real HTTP server on loopback
 * injecting 5xx bursts, 429s and lost answers, a real queue directory; and the daemon killed with SIGKILL mid-run.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import {
  type FakeSecutools,
  type FakeSecutoolsOptions,
  startFakeSecutools
} from "../../src/adapters/fake-secutools/server.ts"
import { Daemon, frontmatter, Queue, TmuxServer, waitFor } from "./support.ts"

const KEY = "sk-e2e-3b1f8a-do-not-log"

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const serve = async (options: Partial<FakeSecutoolsOptions> = {}) => {
  const server = await startFakeSecutools({ apiKey: KEY, durationMs: 600, seed: 11, ...options })
  cleanups.push(() => server.close())
  return server
}

const newQueue = () => {
  const queue = new Queue()
  cleanups.push(() => queue.remove())
  return queue
}

const startDaemon = (queue: Queue, server: FakeSecutools | undefined, env: Record<string, string> = {}) => {
  const daemon = new Daemon({
    QUEUE_DIR: queue.root,
    // A tmux server that does not exist: no local sessions at all.
    TMUX_SOCKET: `cf-none-${process.pid}`,
    REAP_INTERVAL: "200ms",
    SECUTOOLS_RETRY_BASE: "50ms",
    SECUTOOLS_RETRY_MAX_DELAY: "500ms",
    SECUTOOLS_RETRY_ATTEMPTS: "12",
    SECUTOOLS_RETRY_DEADLINE: "60s",
    SECUTOOLS_TIMEOUT: "3s",
    ...(server === undefined ? {} : { SECUTOOLS_API_KEY: KEY, SECUTOOLS_URL: server.url }),
    ...env
  })
  cleanups.push(() => daemon.stop("SIGKILL"))
  return daemon
}

const PROVIDERS = ["gpu", "gemini", "claude-api"] as const

/** 20 tasks over the three providers; every fifth one fails at the provider. */
const writeTwenty = (queue: Queue) => {
  const names: Array<string> = []
  for (let i = 1; i <= 20; i++) {
    const name = `d-${String(i).padStart(2, "0")}.md`
    const provider = PROVIDERS[i % PROVIDERS.length] ?? "gpu"
    const body = i % 5 === 0 ? `[fail] Task ${i} cannot be done.` : `Task ${i}: summarise.`
    writeFileSync(join(queue.root, "pending", name), `---\npreferred_ai: ${provider}\ntag: e2e-${i}\n---\n${body}\n`)
    names.push(name)
  }
  return names
}

const finished = (queue: Queue) => [...queue.tasks("done"), ...queue.tasks("failed")]

/** What a stage holds besides the temporary files a killed writer may leave (cleared after an hour). */
const visible = (queue: Queue, stage: string) => queue.list(stage).filter((file) => !/^\..+\.tmp$/.test(file))

/** Every task in exactly one terminal place, with what the contract says it carries there; no marker left. */
const expectTerminal = (queue: Queue, names: ReadonlyArray<string>) => {
  expect(visible(queue, "pending")).toStrictEqual([])
  expect(visible(queue, "active")).toStrictEqual([])
  expect([...visible(queue, "done"), ...visible(queue, "failed")].sort()).toStrictEqual([...names].sort())
  for (const [i, name] of names.entries()) {
    const inDone = queue.tasks("done").includes(name)
    const inFailed = queue.tasks("failed").includes(name)
    expect(inDone !== inFailed, `${name} in exactly one of done/ and failed/`).toBe(true)
    const provider = PROVIDERS[(i + 1) % PROVIDERS.length]
    const text = queue.read(inDone ? "done" : "failed", name)
    const fields = frontmatter(text)
    expect(fields).toMatchObject({ provider, tag: `e2e-${i + 1}` })
    expect(fields.job_id).toMatch(/^j_\d+$/)
    if ((i + 1) % 5 === 0) {
      expect(inFailed, `${name} fails at the provider`).toBe(true)
      expect(fields.state).toBe("failed")
      expect(text).toContain(`Reason: ${provider}: model refused the task`)
    } else {
      expect(inDone, `${name} completes`).toBe(true)
      expect(fields.state).toBe("done")
      expect(Number(fields.cost_usd)).toBeGreaterThan(0)
      expect(text).toContain(`## Result (${provider})`)
      expect(text).toMatch(
        new RegExp(`claude-failover: done · \\S+ · provider ${provider} · job j_\\d+ · cost \\$[\\d.]+ · took `)
      )
    }
  }
}

describe("delegation end to end", () => {
  it("20 tasks over gpu, gemini and claude-api through 5xx bursts and 429s: done or failed, nothing left behind", async () => {
    const server = await serve({ burst5xx: { every: 9, length: 3 }, ratio429: 0.1, retryAfter: 1 })
    const queue = newQueue()
    const names = writeTwenty(queue)
    writeFileSync(join(queue.root, "pending", "local.md"), "A task with no delegation fields stays local.\n")

    const daemon = startDaemon(queue, server)
    await waitFor("20 delegated tasks finished", () => finished(queue).length === 20, 60_000)
    await waitFor("their markers removed", () => visible(queue, "pending").length === 1, 10_000)
    expect(await daemon.stop()).toBe(0)

    // The task without delegation fields is local; with no session to run it, it waits, and has no marker.
    expect(queue.list("pending")).toStrictEqual(["local.md"])
    rmSync(join(queue.root, "pending", "local.md"))
    expectTerminal(queue, names)
    const counters = server.counters()
    expect(counters.injected.status5xx).toBeGreaterThan(0)
    expect(counters.injected.status429).toBeGreaterThan(0)
    expect(counters.jobsCreated).toBe(20)
    expect(Object.values(counters.jobsByTask).every((n) => n === 1)).toBe(true)
    expect(Object.keys(counters.jobsByTask)).not.toContain("local")
    expect(daemon.output).toContain("retrying in")
    expect(daemon.output).not.toContain(KEY)
  })

  it("killed with SIGKILL at random moments and restarted each time: every task ends once, one job per task", async () => {
    const server = await serve({
      burst5xx: { every: 11, length: 2 },
      ratio429: 0.05,
      retryAfter: 1,
      lostAnswerRatio: 0.15
    })
    const queue = newQueue()
    const names = writeTwenty(queue)
    const kills: Array<number> = []
    for (let round = 0; round < 6 && finished(queue).length < 20; round++) {
      const daemon = startDaemon(queue, server)
      await waitFor("the daemon to start", () => daemon.output.includes(" started on "), 20_000)
      const after = 100 + Math.floor(Math.random() * 900)
      kills.push(after)
      await new Promise((resolve) => setTimeout(resolve, after))
      await daemon.stop("SIGKILL")
    }
    const last = startDaemon(queue, server)
    await waitFor("the last daemon to start", () => last.output.includes(" started on "), 20_000)
    await waitFor(`20 tasks finished (kills after ${kills.join(", ")} ms)`, () => finished(queue).length === 20, 90_000)
    await waitFor("markers removed", () => visible(queue, "pending").length === 0, 10_000)
    expect(await last.stop()).toBe(0)

    expectTerminal(queue, names)
    const counters = server.counters()
    expect(Object.values(counters.jobsByKey).every((n) => n === 1)).toBe(true)
    expect(Object.keys(counters.jobsByTask).sort()).toStrictEqual(names.map((name) => name.slice(0, -3)))
    expect(Object.values(counters.jobsByTask).every((n) => n === 1), `kills after ${kills.join(", ")} ms`).toBe(true)
  })

  it("without SECUTOOLS_API_KEY, tasks that ask for a provider run locally and secutools hears nothing", async () => {
    const server = await serve()
    const queue = newQueue()
    const tmux = new TmuxServer()
    cleanups.push(() => tmux.kill())
    tmux.startStandin("claude-1")
    await waitFor("the stand-in's input box", () => tmux.capture("claude-1").includes("? for shortcuts"))
    writeFileSync(
      join(queue.root, "pending", "gpu.md"),
      "---\npreferred_ai: gpu\nallow_delegation: true\n---\nRender.\n"
    )
    writeFileSync(join(queue.root, "pending", "auto.md"), "---\npreferred_ai: auto\n---\nSort.\n")

    const daemon = startDaemon(queue, undefined, { TMUX_SOCKET: tmux.socket, SECUTOOLS_URL: server.url })
    await waitFor("both tasks done locally", () => queue.tasks("done").length === 2, 30_000)
    expect(await daemon.stop()).toBe(0)
    for (const name of ["gpu.md", "auto.md"]) {
      expect(frontmatter(queue.read("done", name))).toMatchObject({ state: "done", session: "claude-1" })
    }
    expect(queue.list("pending")).toStrictEqual([])
    expect(server.counters()).toMatchObject({ submits: 0, gets: 0 })
  })
})
