/**
 * The crash-state table (docs/crash-states.md), walked: for every crash point the daemon — a real process, with real
 * tmux stand-ins and a real secutools stand-in — kills itself with SIGKILL right after that durable step; a second
 * daemon starts on the same queue; and the invariants hold: each task in exactly one place, nothing lost, attempts
 * consistent, one secutools job per key, no marker without its task, no debris, no run submitted or completed twice.
 */
import { afterAll, afterEach, describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type FakeSecutools, startFakeSecutools } from "../../src/adapters/fake-secutools/server.ts"
import { type Failpoint, Failpoints } from "../../src/services/failpoints.ts"
import { isRunning } from "../../src/adapters/processes.ts"
import { checkInvariants, readStandinLog } from "./invariants.ts"
import { Daemon, Queue, ROOT, taskFields, TmuxServer, waitFor } from "./support.ts"

const KEY = "sk-crash-points-7f2e"
const BIN = join(ROOT, "bin/claude-failover.js")

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})
const summary: Array<string> = []
afterAll(() => {
  console.log(
    `crash points: ${summary.length} walked (all ${Failpoints.length}, and ${HEADLESS_POINTS.length} of them again on a headless run); nothing lost, nothing run twice\n${
      summary.map((line) => `  ${line}`).join("\n")
    }`
  )
})

type Scenario = "local" | "local-session-exits" | "delegated" | "retry" | "quarantine"

/** Which scenario reaches each crash point. */
const scenarioOf: Readonly<Record<Failpoint, Scenario>> = {
  "assign:written": "local",
  "assign:moved": "local",
  "type:pasted": "local",
  "type:entered": "local",
  "type:started": "local",
  "complete:written": "local",
  "complete:moved": "local",
  "requeue:written": "local-session-exits",
  "requeue:moved": "local-session-exits",
  "delegate:marker": "delegated",
  "delegate:written": "delegated",
  "submit:accepted": "delegated",
  "submit:marker": "delegated",
  "reap:written": "delegated",
  "reap:moved": "delegated",
  "retry:written": "retry",
  "retry:moved": "retry",
  "quarantine:error": "quarantine"
}

interface World {
  readonly queue: Queue
  readonly tmux: TmuxServer
  readonly log: string
  readonly server: FakeSecutools
  readonly names: ReadonlyArray<string>
}

const setUp = async (scenario: Scenario): Promise<World> => {
  const queue = new Queue()
  const tmux = new TmuxServer()
  const logDir = mkdtempSync(join(tmpdir(), "cf-crash-log-"))
  const log = join(logDir, "standins.jsonl")
  const server = await startFakeSecutools({ apiKey: KEY, durationMs: 400, seed: 3 })
  cleanups.push(
    () => tmux.kill(),
    () => queue.remove(),
    () => rmSync(logDir, { recursive: true, force: true }),
    () => server.close()
  )
  const standin = (session: string, env: Record<string, string> = {}) =>
    tmux.startStandin(session, { STANDIN_WORK_MS: "800", STANDIN_LOG: log, STANDIN_NAME: session, ...env })
  const drop = (name: string, text: string) => writeFileSync(join(queue.root, "pending", name), text)
  switch (scenario) {
    case "local":
      standin("claude-1")
      drop("t.md", "Say hello.\n")
      break
    case "local-session-exits":
      standin("claude-1", { STANDIN_EXIT_AFTER: "0" })
      standin("claude-2")
      drop("t.md", "Say hello; the first session dies on it.\n")
      break
    case "retry":
      standin("claude-1", { STANDIN_FAIL: "1" })
      drop("t.md", "This one fails, and is retried.\n")
      break
    case "delegated":
      drop("t.md", "---\npreferred_ai: gemini\n---\nSummarise.\n")
      break
    case "quarantine":
      standin("claude-1")
      drop("bad.md", "---\nallow_delegation: \"yes\"\n---\nx\n")
      drop("t.md", "Say hello.\n")
      break
  }
  if (scenario !== "delegated") {
    await waitFor(
      "the stand-ins to show their input box",
      () =>
        tmux.socket !== "" && spawnSync("tmux", ["-L", tmux.socket, "list-sessions"]).status === 0 &&
        tmux.capture("claude-1").includes("? for shortcuts")
    )
  }
  return { queue, tmux, log, server, names: scenario === "quarantine" ? ["t.md", "bad.md"] : ["t.md"] }
}

const startDaemon = (world: World, env: Record<string, string> = {}) => {
  const daemon = new Daemon({
    QUEUE_DIR: world.queue.root,
    TMUX_SOCKET: world.tmux.socket,
    SECUTOOLS_API_KEY: KEY,
    SECUTOOLS_URL: world.server.url,
    REAP_INTERVAL: "200ms",
    ...env
  })
  cleanups.push(() => daemon.stop("SIGKILL"))
  return daemon
}

/** What the queue looks like: stage/name for every task file and marker. */
const layout = (queue: Queue) =>
  ["pending", "active", "done", "failed"].flatMap((stage) =>
    readdirSync(join(queue.root, stage)).filter((f) => !f.startsWith(".")).map((f) => `${stage}/${f}`)
  ).sort().join(" ")

const finished = (world: World) => () =>
  world.names.every((name) => world.queue.tasks("done").includes(name) || world.queue.tasks("failed").includes(name)) &&
  world.queue.tasks("active").length === 0 && world.queue.list("pending").length === 0

describe("every crash point of docs/crash-states.md", () => {
  for (const point of Failpoints) {
    it(`killed at ${point}, restarted: nothing lost, nothing twice`, async () => {
      const scenario = scenarioOf[point]
      const world = await setUp(scenario)
      const crashing = startDaemon(world, { CLAUDE_FAILOVER_FAILPOINT: point })
      if (scenario === "retry") {
        await waitFor("t.md to fail once", () => world.queue.tasks("failed").includes("t.md"), 30_000)
        // Goes through the daemon, which dies applying it; the command then takes the lock and finishes on its own.
        const retried = spawnSync(process.execPath, [BIN, "task", "retry", "t.md", "--queue-dir", world.queue.root], {
          encoding: "utf8",
          timeout: 30_000
        })
        expect(retried.status, retried.stderr).toBe(0)
      }
      await waitFor(`the daemon to kill itself at ${point}`, async () => {
        await Promise.race([crashing.exited, new Promise((r) => setTimeout(r, 50))])
        return crashing.process.signalCode === "SIGKILL"
      }, 30_000)
      const atCrash = layout(world.queue)

      const restarted = startDaemon(world)
      await restarted.ready()
      await waitFor(`every task finished after the restart (crashed at ${point}: ${atCrash})`, finished(world), 40_000)
      expect(await restarted.stop()).toBe(0)

      const { census, problems } = checkInvariants(world.queue.root, {
        names: world.names,
        allFinished: true,
        standinLog: readStandinLog(world.log),
        secutools: world.server.counters()
      })
      expect(problems, `crashed at ${point} (${atCrash})`).toStrictEqual([])
      const outcome = world.queue.tasks("done").includes("t.md") ? "done" : "failed"
      const fields = taskFields("t.md", world.queue.read(outcome, "t.md"))
      switch (scenario) {
        case "local":
        case "delegated":
          expect(outcome).toBe("done")
          break
        case "local-session-exits":
          expect(outcome).toBe("done")
          expect(fields.session).toBe("claude-2")
          expect(fields.history?.some((entry) => entry.cause === "session_exited")).toBe(true)
          break
        case "retry":
          expect(outcome).toBe("failed")
          expect(fields.history?.some((entry) => entry.event === "retried")).toBe(true)
          expect(fields.attempts).toBe(2)
          break
        case "quarantine":
          expect(world.queue.list("failed")).toContain("bad.md.error")
          break
      }
      summary.push(
        `${point.padEnd(17)} at crash: ${atCrash || "(empty)"} → ${outcome}, attempts ${fields.attempts ?? 0}, ` +
          `runs submitted ${census.runsSubmitted}, jobs ${Object.keys(world.server.counters().jobsByKey).length}`
      )
    }, 90_000)
  }
})

/** The crash points a headless run passes, and the stand-in modes that take a task through them. */
const HEADLESS_POINTS: ReadonlyArray<readonly [Failpoint, string]> = [
  ["assign:written", "ok"],
  ["assign:moved", "ok"],
  // The process runs on after the daemon died: the next start stops it and gives the task back.
  ["type:started", "hang,ok"],
  ["complete:written", "ok"],
  ["complete:moved", "ok"],
  ["requeue:written", "crash,ok"],
  ["requeue:moved", "crash,ok"]
]

describe("every crash point a headless run passes", () => {
  for (const [point, modes] of HEADLESS_POINTS) {
    it(`killed at ${point} (stand-in ${modes}), restarted: nothing lost, nothing twice, no process left`, async () => {
      const queue = new Queue()
      const dir = mkdtempSync(join(tmpdir(), "cf-crash-headless-"))
      cleanups.push(() => queue.remove(), () => rmSync(dir, { recursive: true, force: true }))
      const log = join(dir, "standin.jsonl")
      writeFileSync(join(queue.root, "pending", "t.md"), "Say hello.\n")
      const start = (env: Record<string, string> = {}) => {
        const daemon = new Daemon({
          QUEUE_DIR: queue.root,
          SESSIONS_MODE: "headless",
          CLAUDE_COMMAND: `${process.execPath} ${join(ROOT, "stand-ins/claude-headless.ts")}`,
          STANDIN_MODES: modes,
          STANDIN_STATE: join(dir, "state"),
          STANDIN_LOG: log,
          ...env
        })
        cleanups.push(() => daemon.stop("SIGKILL"))
        return daemon
      }
      const crashing = start({ CLAUDE_FAILOVER_FAILPOINT: point })
      await waitFor(`the daemon to kill itself at ${point}`, async () => {
        await Promise.race([crashing.exited, new Promise((r) => setTimeout(r, 50))])
        return crashing.process.signalCode === "SIGKILL"
      }, 30_000)
      const atCrash = layout(queue)
      const restarted = start()
      await restarted.ready()
      // Finished, and its run over: the result's facts are in the done file (the completion line came first) — except
      // when the daemon died applying that line: the run's result then went to no one (docs/crash-states.md).
      const lostFacts = point.startsWith("complete:")
      await waitFor(
        `t.md finished after the restart (crashed at ${point}: ${atCrash})`,
        () =>
          queue.tasks("done").includes("t.md") && queue.tasks("active").length === 0 &&
          (lostFacts || taskFields("t.md", queue.read("done", "t.md")).transcript !== undefined),
        40_000
      )
      expect(await restarted.stop()).toBe(0)
      const { problems } = checkInvariants(queue.root, { names: ["t.md"], allFinished: true })
      expect(problems, `crashed at ${point} (${atCrash})`).toStrictEqual([])
      const events = readStandinLog(log) as ReadonlyArray<
        { readonly event: string; readonly pid?: number; readonly command?: string }
      >
      // Every stand-in process is gone, and the task's completion line ran for one run only.
      const pids = events.flatMap((e) => (e.event === "started" && e.pid !== undefined ? [e.pid] : []))
      expect(pids.filter(isRunning), "stand-in processes left").toStrictEqual([])
      const completedRuns = new Set(
        events.flatMap((e) => (e.event === "completion" ? [/--run (\S+)/.exec(e.command ?? "")?.[1]] : []))
      )
      // (A run stopped as an orphan right after its completion line may not have logged it.)
      expect(completedRuns.size, `completions: ${[...completedRuns].join(", ")}`).toBe(
        lostFacts ? Math.min(completedRuns.size, 1) : 1
      )
      const fields = taskFields("t.md", queue.read("done", "t.md"))
      if (point === "type:started") expect(fields.history?.at(-1)?.cause).toBe("orphaned")
      // The line was applied (by the daemon, or by the command once the daemon had died): one run, never repeated.
      if (lostFacts) expect([fields.attempts, fields.history ?? []]).toStrictEqual([1, []])
      if (point.startsWith("requeue"))
        expect(fields.history?.some((entry) => entry.cause === "session_exited")).toBe(true)
      summary.push(
        `headless ${point.padEnd(17)} at crash: ${atCrash || "(empty)"} → done, attempts ${fields.attempts ?? 0}`
      )
    }, 90_000)
  }
})
