/**
 * The crash points of delegation and assignment on a queue shared on PostgreSQL: the daemon — a real process, on the
 * local PostgreSQL, with a real secutools stand-in and dry-run sessions — kills itself with SIGKILL at the point; a
 * daemon started again as the same host finishes the work; and every task is done once, with one secutools job per
 * task and per key, and no marker left. A point inside a transaction (the marker and the delegated state, the rewrite
 * and the move of an assignment) leaves nothing of it: the restarted host starts the step afresh.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { renameSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { startFakeSecutools } from "../../src/adapters/fake-secutools/server.ts"
import type { Failpoint } from "../../src/services/failpoints.ts"
import { TEST_DATABASE_URL } from "../adapters/pg-database.ts"
import { Daemon, Queue, taskFields, waitFor } from "./support.ts"

const KEY = "sk-crash-shared-5d1c"

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** TEST_DATABASE_URL's server, with another database in the path. */
const onDatabase = (database: string) => {
  const url = new URL(TEST_DATABASE_URL)
  url.pathname = `/${database}`
  return url.toString()
}
const psql = (database: string, sql: string): ReadonlyArray<ReadonlyArray<string>> =>
  execFileSync("psql", [onDatabase(database), "-AtF", "\t", "-c", sql], { encoding: "utf8" })
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => line.split("\t"))

/**
 * Points of the shared queue's delegation and assignment: which kind of task reaches each, and what the queue holds
 * when the daemon dies there. A point inside a transaction leaves the queue as it was before the transaction.
 */
const POINTS: ReadonlyArray<readonly [Failpoint, "delegated" | "local", ReadonlyArray<string>]> = [
  ["delegate:marker", "delegated", ["pending/t.md"]],
  ["delegate:written", "delegated", ["pending/t.md", "marker/t.md"]],
  ["submit:accepted", "delegated", ["pending/t.md", "marker/t.md"]],
  ["submit:marker", "delegated", ["pending/t.md", "marker/t.md"]],
  ["reap:written", "delegated", ["pending/t.md", "marker/t.md"]],
  ["reap:moved", "delegated", ["pending/t.md", "marker/t.md"]],
  ["assign:written", "local", ["pending/t.md"]],
  ["assign:moved", "local", ["pending/t.md"]]
]

describe("crash points on a shared queue (PostgreSQL)", () => {
  for (const [point, kind, held] of POINTS) {
    it(`killed at ${point}: the host started again finishes it, once`, async () => {
      const database = `cf_crash_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
      psql("postgres", `CREATE DATABASE ${database}`)
      cleanups.push(() => psql("postgres", `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`))
      const secutools = await startFakeSecutools({ apiKey: KEY, durationMs: 300, seed: 3 })
      cleanups.push(() => secutools.close())
      const queue = new Queue()
      cleanups.push(() => queue.remove())
      const start = (env: Record<string, string> = {}) => {
        const daemon = new Daemon({
          QUEUE_DIR: queue.root,
          QUEUE_BACKEND: "postgres",
          DATABASE_URL: onDatabase(database),
          HOST_ID: "crashing-host",
          LEASE_TTL: "3s",
          SESSIONS_MODE: "dry-run",
          TMUX_SESSIONS: "claude-1",
          DRY_RUN_DELAY: "100ms",
          SECUTOOLS_API_KEY: KEY,
          SECUTOOLS_URL: secutools.url,
          REAP_INTERVAL: "200ms",
          ...env
        })
        cleanups.push(() => daemon.stop("SIGKILL"))
        return daemon
      }
      const crashing = start({ CLAUDE_FAILOVER_FAILPOINT: point })
      await crashing.ready()
      const text = kind === "delegated" ? "---\npreferred_ai: gpu\n---\nSummarise.\n" : "Say hello.\n"
      const temp = join(queue.root, ".t.md.tmp")
      writeFileSync(temp, text)
      renameSync(temp, join(queue.root, "pending", "t.md"))
      await waitFor(`the daemon to kill itself at ${point}`, async () => {
        await Promise.race([crashing.exited, new Promise((resolve) => setTimeout(resolve, 50))])
        return crashing.process.signalCode === "SIGKILL"
      }, 30_000)
      const atCrash = psql(database, "SELECT stage, name FROM cf_tasks UNION ALL SELECT 'marker', name FROM cf_markers")
        .map((row) => row.join("/"))
      expect(atCrash).toStrictEqual(held)

      // The same host again: it waits out its own lapsed heartbeat, then recovers and goes on.
      const again = start()
      await waitFor(
        `t.md done after the restart (crashed at ${point} with ${atCrash})`,
        () => psql(database, "SELECT stage FROM cf_tasks WHERE name = 't.md'").flat().join() === "done",
        40_000,
        250
      )
      expect(psql(database, "SELECT stage, name FROM cf_tasks")).toStrictEqual([["done", "t.md"]])
      await waitFor("no marker left", () => psql(database, "SELECT name FROM cf_markers").length === 0, 10_000, 250)
      expect(await again.stop()).toBe(0)

      const done = taskFields(
        "t.md",
        Buffer.from(psql(database, "SELECT encode(convert_to(text, 'UTF8'), 'hex') FROM cf_tasks")[0]?.[0] ?? "", "hex")
          .toString("utf8")
      )
      expect(done.state).toBe("done")
      const counters = secutools.counters()
      if (kind === "delegated") {
        // One job for the task, under one key, however often it was submitted.
        expect(counters.jobsByTask).toStrictEqual({ t: 1 })
        expect(Object.values(counters.jobsByKey)).toStrictEqual([1])
        expect(done.job_id).toBeDefined()
      } else {
        expect(counters.submits).toBe(0)
        expect(done.host).toBe("crashing-host")
      }
      // The host's own copy of what it finished.
      expect(queue.tasks("done")).toStrictEqual(["t.md"])
    }, 90_000)
  }
})
