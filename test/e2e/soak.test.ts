/**
 * A bounded randomised soak: hundreds of mixed local and delegated tasks, three Claude Code stand-ins in a private
 * tmux server (one hits its usage limit), the secutools stand-in injecting 5xx, 429, dropped connections and lost
 * answers — and the daemon SIGKILLed at random moments and restarted, with a second daemon started against the same
 * queue now and then (it must refuse to run). At the end every task is finished, in exactly one place, and no run was
 * submitted or completed twice. `SOAK=long` runs a longer one (not part of `npm test`).
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startFakeSecutools } from "../../src/adapters/fake-secutools/server.ts"
import { checkInvariants, readStandinLog } from "./invariants.ts"
import { Daemon, Queue, TmuxServer, waitFor } from "./support.ts"

const LONG = process.env.SOAK === "long"
const TASKS = LONG ? 1200 : 160
const KILLS = LONG ? 60 : 8
const KEY = "sk-soak-91c3"

/** A small deterministic PRNG, so a failing soak can be replayed with the seed it prints. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

describe("soak", () => {
  it(
    `${TASKS} mixed tasks, ${KILLS} SIGKILLs at random, second daemons refused: nothing lost, nothing twice`,
    async () => {
      const seed = Number(process.env.SOAK_SEED ?? Date.now() % 100_000)
      const random = prng(seed)
      const queue = new Queue()
      const tmux = new TmuxServer()
      const logDir = mkdtempSync(join(tmpdir(), "cf-soak-"))
      const log = join(logDir, "standins.jsonl")
      const server = await startFakeSecutools({
        apiKey: KEY,
        durationMs: 300,
        seed,
        ratio5xx: 0.08,
        ratio429: 0.04,
        retryAfter: 1,
        dropRatio: 0.03,
        lostAnswerRatio: 0.08
      })
      cleanups.push(
        () => tmux.kill(),
        () => queue.remove(),
        () => rmSync(logDir, { recursive: true, force: true }),
        () => server.close()
      )
      for (
        const [session, extra] of [["claude-1", {}], ["claude-2", {}], ["claude-3", {
          STANDIN_LIMIT_AFTER: "15"
        }]] as const
      ) {
        tmux.startStandin(session, { STANDIN_WORK_MS: "250", STANDIN_LOG: log, STANDIN_NAME: session, ...extra })
      }
      await waitFor(
        "the stand-ins",
        () => ["claude-1", "claude-2", "claude-3"].every((s) => tmux.capture(s).includes("? for shortcuts"))
      )

      // The tasks: local ones, delegated ones to each provider, some that fail at the provider, some that may fail over.
      const names: Array<string> = []
      const failing = new Set<string>()
      const taskText = (i: number): string => {
        const kind = i % 6
        if (kind === 0)
          return `---\npreferred_ai: gpu\n---\nRender frame ${i}.\n`
        if (kind === 1) return `---\npreferred_ai: gemini\n---\nSummarise chapter ${i}.\n`
        if (kind === 2)
          return `---\npreferred_ai: auto\ncomplexity_hint: ${["low", "medium", "high"][i % 3]}\n---\nSort list ${i}.\n`
        if (kind === 3) return `---\nallow_delegation: true\n---\nTidy module ${i}; may fail over.\n`
        return `Fix bug ${i} locally.\n`
      }
      const drop = (i: number) => {
        const name = `s-${String(i).padStart(4, "0")}.md`
        let text = taskText(i)
        if (i % 6 === 1 && i % 5 === 0) {
          text = text.replace("Summarise", "[fail] Summarise")
          failing.add(name)
        }
        writeFileSync(join(queue.root, "pending", name), text)
        names.push(name)
      }

      const env = {
        QUEUE_DIR: queue.root,
        TMUX_SOCKET: tmux.socket,
        SECUTOOLS_API_KEY: KEY,
        SECUTOOLS_URL: server.url,
        REAP_INTERVAL: "200ms",
        SECUTOOLS_RETRY_BASE: "50ms",
        SECUTOOLS_RETRY_MAX_DELAY: "400ms",
        SECUTOOLS_RETRY_ATTEMPTS: "8",
        SECUTOOLS_TIMEOUT: "2s",
        SETTLE_AFTER: "200ms"
      }
      const daemons: Array<Daemon> = []
      const start = () => {
        const daemon = new Daemon(env)
        daemons.push(daemon)
        cleanups.push(() => daemon.stop("SIGKILL"))
        return daemon
      }

      let current = start()
      await current.ready()
      let dropped = 0
      let kills = 0
      const refused: Array<number | null> = []
      const deadline = Date.now() + (LONG ? 20 : 2.5) * 60_000
      // Drop the tasks in bursts while killing the daemon at random moments.
      while (kills < KILLS || dropped < TASKS) {
        if (Date.now() > deadline)
          throw new Error(`soak ran out of time: ${dropped} dropped, ${kills} kills (seed ${seed})`)
        const burst = Math.min(TASKS - dropped, 10 + Math.floor(random() * 25))
        for (let i = 0; i < burst; i++) drop(++dropped)
        await new Promise((resolve) => setTimeout(resolve, 1500 + random() * 3500))
        if (kills < KILLS) {
          if (random() < 0.3) {
            const second = start()
            refused.push(await second.exited)
            expect(second.output, `seed ${seed}`).toContain("is locked by a daemon")
          }
          current.process.kill("SIGKILL")
          await current.exited
          kills++
          current = start()
          await current.ready()
        }
      }

      const finishedAll = () =>
        names.every((name) => queue.tasks("done").includes(name) || queue.tasks("failed").includes(name)) &&
        queue.tasks("active").length === 0 && queue.list("pending").length === 0
      await waitFor(`all ${TASKS} tasks finished (seed ${seed})`, finishedAll, (LONG ? 10 : 2) * 60_000).catch(
        (error: unknown) => {
          // What is left, and what the daemon last said: a timeout alone tells nothing to go on.
          const left = ["pending", "active"].flatMap((stage) =>
            queue.list(stage).map((file) =>
              `${stage}/${file}: ${
                file.endsWith(".md")
                  ? readFileSync(join(queue.root, stage, file), "utf8").split("\n---\n")[0]
                  : "marker"
              }`
            )
          )
          throw new Error(
            `${error instanceof Error ? error.message : String(error)}\nleft:\n${left.join("\n")}\n` +
              `daemon output (last lines):\n${current.output.split("\n").slice(-60).join("\n")}`
          )
        }
      )
      expect(await current.stop()).toBe(0)

      const events = readStandinLog(log)
      const { census, problems } = checkInvariants(queue.root, {
        names,
        allFinished: true,
        standinLog: events,
        secutools: server.counters()
      })
      expect(problems, `seed ${seed}`).toStrictEqual([])
      expect(refused.every((code) => code === 2), `seed ${seed}`).toBe(true)
      expect([...queue.tasks("failed")].sort(), `seed ${seed}`).toStrictEqual([...failing].sort())
      const counters = server.counters()
      const injected = Object.values(counters.injected).reduce((a, b) => a + b, 0)
      console.log(
        `soak (seed ${seed}): ${TASKS} tasks (${census.done} done, ${census.failed} failed as their provider said), ` +
          `${kills} SIGKILLs, ${refused.length} second daemons refused with exit 2, ` +
          `${census.runsSubmitted} local runs submitted (none twice), ${
            Object.keys(counters.jobsByKey).length
          } secutools jobs ` +
          `(one per key) through ${injected} injected faults; nothing lost, nothing run twice`
      )
    },
    (LONG ? 35 : 4.5) * 60_000
  )
})
