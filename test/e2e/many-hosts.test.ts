/**
 * Three daemons as real processes, each with its own queue directory (its drop box) and its own three sessions, on
 * one PostgreSQL server of the test's own, delegating to one secutools stand-in (a real HTTP server): every task
 * dropped on any host is done exactly once, locally or by one secutools job, although one host is killed (kill -9)
 * mid-run with runs and jobs of its own, and the database is stopped and started again mid-run.
 *
 * What holds while the database is down: nothing is lost. A task in a session goes on running; its completion line
 * waits for the database (up to 30 s) and is then applied; the dispatcher gives no new work and says so once; drops
 * wait as files; once the server is back each host reconnects, listens again and looks at the whole queue.
 */
import { renameSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { startFakeSecutools } from "../../src/adapters/fake-secutools/server.ts"
import { Daemon, Queue, taskFields, waitFor } from "./support.ts"
import { PrivatePostgres } from "./private-postgres.ts"

const TASKS_PER_HOST = 100
/** The queue is looked at with psql, a process each time: not more often than this. */
const PSQL_EVERY_MS = 500
const HOSTS = ["host-1", "host-2", "host-3"] as const
const KEY = "sk-many-hosts-do-not-log"
/** Every third task asks for a provider: delegated, by whichever host routes it first. */
const PROVIDERS = ["gpu", "gemini", "claude-api"] as const
const providerOf = (i: number) => i % 3 === 0 ? PROVIDERS[(i / 3) % PROVIDERS.length] : undefined

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Written beside pending/ and renamed in, as a careful operator drops a file: never seen half written. */
const dropTask = (queue: Queue, name: string, text: string) => {
  const temp = join(queue.root, `.${name}.tmp`)
  writeFileSync(temp, text)
  renameSync(temp, join(queue.root, "pending", name))
}

describe("three hosts on one PostgreSQL queue", () => {
  it(
    "300 tasks, local and delegated, dropped on three hosts are each done once, through a host killed mid-run and a database restart",
    async () => {
      const pg = await PrivatePostgres.start()
      cleanups.push(() => pg.destroy())
      pg.query("CREATE DATABASE queue")
      // Jobs long enough to be in flight when host-3 dies; some answers lost, so that submissions are sent again.
      const secutools = await startFakeSecutools({ apiKey: KEY, durationMs: 20_000, seed: 7, lostAnswerRatio: 0.1 })
      cleanups.push(() => secutools.close())
      const stageCounts = () =>
        Object.fromEntries(
          pg.query("SELECT stage, count(*) FROM cf_tasks GROUP BY stage", "queue").map(([s, n]) => [
            s,
            Number(n)
          ])
        )
      const done = () => stageCounts()["done"] ?? 0

      const hosts = HOSTS.map((id) => {
        const queue = new Queue()
        cleanups.push(() => queue.remove())
        const daemon = new Daemon({
          QUEUE_DIR: queue.root,
          QUEUE_BACKEND: "postgres",
          DATABASE_URL: pg.url("queue"),
          HOST_ID: id,
          SESSIONS_MODE: "dry-run",
          TMUX_SESSIONS: "claude-1,claude-2,claude-3",
          // host-3's turns are long enough to be cut off in the middle, its completion lines not yet run.
          DRY_RUN_DELAY: id === "host-3" ? "2s" : "50ms",
          LEASE_TTL: "6s",
          SECUTOOLS_API_KEY: KEY,
          SECUTOOLS_URL: secutools.url,
          REAP_INTERVAL: "500ms",
          SECUTOOLS_RETRY_BASE: "50ms",
          SECUTOOLS_RETRY_MAX_DELAY: "500ms",
          // The change feed wakes each host at once: the scan is only the safety net, as in production.
          SCAN_INTERVAL: "5s"
        }, { ownProcessGroup: true })
        cleanups.push(() => daemon.killHost().catch(() => undefined))
        return { id, queue, daemon }
      })
      await Promise.all(hosts.map((host) => host.daemon.ready()))

      const names: Array<string> = []
      const delegated: Array<string> = []
      for (const [h, host] of hosts.entries()) {
        for (let i = 0; i < TASKS_PER_HOST; i++) {
          const name = `h${h + 1}-${String(i).padStart(3, "0")}.md`
          const provider = providerOf(i)
          names.push(name)
          if (provider !== undefined) delegated.push(name)
          const ask = provider === undefined ? "" : `preferred_ai: ${provider}\n`
          dropTask(host.queue, name, `---\npriority: ${(i % 5) + 1}\n${ask}---\nTask ${name}, dropped on ${host.id}.\n`)
        }
      }

      // host-3 is killed while it runs tasks and reaps jobs; they pass to the others once its leases run out.
      const [, , third] = hosts
      if (third === undefined) throw new Error("three hosts")
      const jobsOfThird = () =>
        pg.query("SELECT name FROM cf_markers WHERE reaper_host = 'host-3'", "queue").map(([name]) => name ?? "")
      await waitFor(
        "30 tasks done, host-3 running at least two and reaping at least two jobs",
        () => {
          if (done() < 30) return false
          const running = pg.query(
            "SELECT name FROM cf_tasks WHERE stage = 'active' AND lease_host = 'host-3'",
            "queue"
          )
          return running.length >= 2 && jobsOfThird().length >= 2
        },
        120_000,
        PSQL_EVERY_MS
      )
      // The host dies as a machine does: the daemon and everything it started (its sessions' completion lines).
      await third.daemon.killHost()
      const cutOff = pg.query("SELECT name FROM cf_tasks WHERE stage = 'active' AND lease_host = 'host-3'", "queue")
        .map(([name]) => name ?? "")
      expect(cutOff.length).toBeGreaterThan(0)
      const orphanedJobs = jobsOfThird().sort()
      expect(orphanedJobs.length).toBeGreaterThan(0)
      // Its drop box had been taken in: none of its tasks waits as a file.
      expect(third.queue.tasks("pending")).toStrictEqual([])

      // The database goes away for two seconds while the other two hosts are busy.
      await waitFor("180 tasks done", () => done() >= 180, 120_000, PSQL_EVERY_MS)
      pg.stop()
      const downAt = Date.now()
      await waitFor("two seconds down", () => Date.now() - downAt >= 2_000, 5_000)
      pg.startAgain()

      await waitFor("all 300 tasks done", () => done() === 300, 180_000, PSQL_EVERY_MS).catch((error: unknown) => {
        throw new Error(
          `${String(error)}: ${JSON.stringify(stageCounts())}\n` +
            hosts.map((host) => `--- ${host.id}\n${host.daemon.output.slice(-4000)}`).join("\n")
        )
      })
      expect(stageCounts()).toStrictEqual({ done: 300 })
      expect(pg.query("SELECT count(*) FROM cf_markers", "queue")).toStrictEqual([["0"]])
      // One secutools job per delegated task and per idempotency key, whichever host submitted or took it on.
      const counters = secutools.counters()
      expect(Object.keys(counters.jobsByTask).sort()).toStrictEqual(delegated.map((name) => name.slice(0, -3)).sort())
      expect(Object.values(counters.jobsByTask).every((n) => n === 1)).toBe(true)
      expect(Object.values(counters.jobsByKey).every((n) => n === 1)).toBe(true)
      expect(counters.duplicateSubmits).toBeGreaterThan(0)
      // Each host lists the others: host-3 silent, the live two alive, none running anything now.
      const [first] = hosts
      const api = /status API listening on (http:\/\/\S+)/.exec(first?.daemon.output ?? "")?.[1]
      const listed = await fetch(`${api}/api/hosts`).then((response) =>
        response.json() as Promise<{ readonly hosts: ReadonlyArray<Record<string, unknown>> }>
      )
      expect(listed.hosts.map((h) => [h["host"], h["this"], h["alive"], h["leases"]])).toStrictEqual([
        ["host-1", true, true, 0],
        ["host-2", false, true, 0],
        ["host-3", false, false, 0]
      ])
      // Stopped before their logs are read: a done line follows its commit by a moment.
      for (const host of hosts.slice(0, 2)) {
        expect(host.daemon.process.exitCode, host.id).toBeNull()
        expect(await host.daemon.stop(), host.id).toBe(0)
      }

      // Each task ran once (twice for those cut off with host-3), and was completed once, by the host that ran it:
      // a host's log has a done line for exactly the tasks whose done text names it. (host-3's log may lack the line of
      // a completion it committed just before it was killed.)
      const texts = doneTexts(pg)
      expect([...texts.keys()].sort()).toStrictEqual([...names].sort())
      const fields = new Map([...texts].map(([name, text]) => [name, taskFields(name, text)]))
      const doneOn = (id: string) => [...fields].filter(([, f]) => f.host === id).map(([name]) => name).sort()
      // (A completion whose commit was cut off by the database restart is tried again and then found already done.)
      const doneLines = (host: (typeof hosts)[number]) =>
        [
          ...host.daemon.output.matchAll(
            /\] INFO \(#\d+\): (\S+\.md) (?:done \(session claude-\d on (\S+),|was already done \(run )/g
          )
        ]
          .map((m) => {
            if (m[2] !== undefined) expect(m[2]).toBe(host.id)
            return m[1] ?? ""
          })
          .sort()
      for (const host of hosts.slice(0, 2)) {
        const lines = doneLines(host)
        const unsaid = doneOn(host.id).filter((name) => !lines.includes(name))
        // What the log says of a task done without its done line: the first thing a person would read.
        const said = unsaid.flatMap((name) => host.daemon.output.split("\n").filter((line) => line.includes(name)))
        expect(unsaid, `${host.id}:\n${said.join("\n")}`).toStrictEqual([])
        expect(lines, host.id).toStrictEqual(doneOn(host.id))
      }
      const byThird = doneLines(third)
      expect(doneOn("host-3").filter((name) => !byThird.includes(name)).length).toBeLessThanOrEqual(1)
      expect(byThird.every((name) => doneOn("host-3").includes(name))).toBe(true)
      for (const [name, f] of fields) {
        expect(f.attempts, name).toBe(cutOff.includes(name) ? 2 : 1)
        // Run locally, on a host; or done by its one job, never in a session too.
        if (delegated.includes(name)) expect([f.host, typeof f.job_id], name).toStrictEqual([undefined, "string"])
        else expect(HOSTS as ReadonlyArray<string | undefined>, name).toContain(f.host)
      }
      // host-3's jobs were taken on by the live hosts, each by one, and finished there.
      const tookOn = (host: (typeof hosts)[number]) =>
        [...host.daemon.output.matchAll(/(\S+\.md): took its delegated job on/g)].map((m) => m[1] ?? "")
      const taken = hosts.slice(0, 2).flatMap(tookOn)
      expect([...taken].sort(), "each orphaned job taken on once").toStrictEqual(orphanedJobs)
      for (const name of orphanedJobs) {
        const finishers = hosts.slice(0, 2).filter((host) => host.daemon.output.includes(`${name} done by secutools`))
        expect(finishers.length, name).toBe(1)
      }

      // Each live host's done/ holds a copy of exactly the tasks it finished, as the shared queue holds them.
      const jobsDoneBy = (host: (typeof hosts)[number]) =>
        [...host.daemon.output.matchAll(/\] INFO \(#\d+\): (\S+\.md) done by secutools/g)].map((m) => m[1] ?? "")
      for (const host of hosts.slice(0, 2)) {
        const copies = host.queue.tasks("done")
        expect([...copies].sort(), host.id).toStrictEqual([...doneOn(host.id), ...jobsDoneBy(host)].sort())
        for (const name of copies) expect(host.queue.read("done", name), name).toBe(texts.get(name))
      }
      for (const name of cutOff) {
        // Run on host-3 (cut off), then again on another host: the second attempt is the one that finished.
        const requeued = fields.get(name)?.history?.find((entry) => entry.event === "requeued")
        expect(requeued, name).toMatchObject({ cause: "session_gone", host: "host-3" })
        expect(requeued?.reason, name).toContain("host host-3 stopped renewing its lease")
        expect(fields.get(name)?.host, name).not.toBe("host-3")
      }

      // The database restart: each live host's change feed dropped and came back (and the daemons ran on to the end).
      for (const host of hosts.slice(0, 2)) {
        expect(host.daemon.output, host.id).toContain("the shared queue's change feed dropped")
        expect(host.daemon.output, host.id).toContain("the shared queue's change feed is back")
      }
    },
    420_000
  )
})

/** Each done task's text (hex in the query: psql would split a multi-line field over several lines). */
const doneTexts = (pg: PrivatePostgres): ReadonlyMap<string, string> =>
  new Map(
    pg.query("SELECT name, encode(convert_to(text, 'UTF8'), 'hex') FROM cf_tasks WHERE stage = 'done'", "queue")
      .map(([name = "", hex = ""]) => [name, Buffer.from(hex, "hex").toString("utf8")])
  )
