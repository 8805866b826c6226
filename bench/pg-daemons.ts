/**
 * Rows 9c–9e: the shared PostgreSQL queue with the daemons themselves (dry-run sessions). 9c: tasks dropped on one
 * host and done by three daemons of 4 sessions each, against one daemon of 12 on the same server. 9d/9e: a task
 * dropped on a host whose only session is busy, until another host types it (the change announced by NOTIFY),
 * against the same drop on one daemon's own file queue. A fresh database per measurement, on BENCH_DATABASE_URL's
 * server (by default the local one); the rows are skipped, saying so, when none answers.
 * Easy to get wrong: a drop must find the other host at rest with a session free, or the time measured is the wait for
 * a session: each drop waits until the previous task is done.
 */
import { execFileSync } from "node:child_process"
import { DaemonProcess, dryRunDaemon } from "./daemon-process.ts"
import { BenchQueue, taskName, taskText } from "./queue-dir.ts"
import type { Sizes } from "./sizes.ts"
import { median, percentile } from "./stats.ts"
import { failedRows, q, type Row } from "./table.ts"
import { nowMs, waitFor } from "./wait.ts"

const SERVER_URL = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const TURN = "50ms"

export const DAEMON_CLAIM_ROWS = [
  { id: "9c", what: "shared queue, daemons: tasks done/s, 3 hosts × 4 dry-run sessions" },
  { id: "9d", what: "  drop on a busy host → typed on another (NOTIFY): p50" },
  { id: "9e", what: "  the same: p99" }
] as const

/** A database of its own on the bench's server; dropped by `drop`. */
const freshDatabase = () => {
  const name = `cf_bench_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  const on = (database: string) => {
    const url = new URL(SERVER_URL)
    url.pathname = `/${database}`
    return url.toString()
  }
  const psql = (database: string, sql: string) =>
    execFileSync("psql", [on(database), "-Atc", sql], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim()
  psql("postgres", `CREATE DATABASE ${name}`)
  return {
    url: on(name),
    count: (stage: string) => Number(psql(name, `SELECT count(*) FROM cf_tasks WHERE stage = '${stage}'`)),
    drop: () => psql("postgres", `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  }
}

/** A daemon on the shared queue at `url`, on a directory of its own. */
const startHost = async (url: string, index: number, sessions: number, turn: string) => {
  const queue = new BenchQueue(`pg-host-${index}`)
  const daemon = new DaemonProcess({
    ...dryRunDaemon(queue.dir, sessions, turn),
    QUEUE_BACKEND: "postgres",
    DATABASE_URL: url,
    HOST_ID: `bench-${index}`
  })
  await daemon.started()
  return { queue, daemon }
}

type Host = Awaited<ReturnType<typeof startHost>>

const stopHosts = async (hosts: ReadonlyArray<Host>) => {
  await Promise.all(hosts.map((host) => host.daemon.stop()))
  for (const host of hosts) host.queue.remove()
}

/** `tasks` dropped on the first host at once; tasks done per second until the last is done, and races lost. */
const drainRate = async (sessions: ReadonlyArray<number>, tasks: number) => {
  const database = freshDatabase()
  const hosts = await Promise.all(sessions.map((count, i) => startHost(database.url, i + 1, count, TURN)))
  try {
    const [first] = hosts
    if (first === undefined) throw new Error("no host")
    for (let i = 0; i < tasks; i++) first.queue.stage(taskName("drain", i), taskText({}, `Task ${i}.`))
    const startedAt = nowMs()
    for (let i = 0; i < tasks; i++) first.queue.drop(taskName("drain", i))
    await waitFor(`${tasks} tasks done`, () => database.count("done") === tasks, { timeoutMs: 600_000, everyMs: 100 })
    const seconds = (nowMs() - startedAt) / 1000
    const lost = hosts.reduce(
      (sum, host) => sum + host.daemon.lines.filter((l) => l.message.includes("another host took it")).length,
      0
    )
    return { perSecond: tasks / seconds, lost }
  } finally {
    await stopHosts(hosts)
    database.drop()
  }
}

/** The prompt of `name` typed by one of `hosts`: the log line. */
const typedOn = (hosts: ReadonlyArray<Host>, name: string) =>
  Promise.race(hosts.map((host) =>
    host.daemon.waitForLine(
      `the prompt of ${name} typed`,
      (l) => l.message.startsWith("dry run: would type into") && l.message.includes(name),
      60_000
    )
  ))

/**
 * Drops, one at a time, on the first host, each timed until some host types it. On the shared queue the first host's
 * only session is made busy first (a task of an hour, before the second host starts, so it cannot take it).
 */
const dropLatencies = async (drops: number, shared: boolean) => {
  const database = shared ? freshDatabase() : undefined
  const hosts: Array<Host> = []
  try {
    if (database === undefined) {
      const queue = new BenchQueue("files-host")
      hosts.push({ queue, daemon: new DaemonProcess(dryRunDaemon(queue.dir, 2, TURN)) })
      await hosts[0]?.daemon.started()
    } else {
      hosts.push(await startHost(database.url, 1, 1, "1h"))
      hosts[0]?.queue.stage("blocker.md", taskText({}, "Keep the session busy."))
      hosts[0]?.queue.drop("blocker.md")
      await typedOn(hosts, "blocker.md")
      hosts.push(await startHost(database.url, 2, 2, TURN))
    }
    const [first] = hosts
    if (first === undefined) throw new Error("no host")
    const samples: Array<number> = []
    for (let i = 0; i < drops; i++) {
      const name = taskName("hop", i)
      first.queue.stage(name, taskText({}, `Task ${i}.`))
      const at = first.queue.drop(name)
      samples.push((await typedOn(hosts, name)).at - at)
      const done = (l: { readonly message: string }) => l.message.startsWith(`${name} done`)
      await Promise.race(hosts.map((host) => host.daemon.waitForLine(`${name} done`, done, 60_000)))
    }
    return samples
  } finally {
    await stopHosts(hosts)
    database?.drop()
  }
}

export const pgDaemons = async (sizes: Sizes): Promise<ReadonlyArray<Row>> => {
  try {
    freshDatabase().drop()
  } catch (error) {
    const message = error instanceof Error ? error.message.split("\n")[0] : String(error)
    return failedRows(DAEMON_CLAIM_ROWS, `skipped: no PostgreSQL to measure on (${message})`)
  }
  const tasks = sizes.quick ? 60 : 300
  const drops = sizes.quick ? 10 : 40
  const three = await drainRate([4, 4, 4], tasks)
  const one = await drainRate([12], tasks)
  const hop = await dropLatencies(drops, true)
  const local = await dropLatencies(drops, false)
  const [rate, p50, p99] = DAEMON_CLAIM_ROWS
  const localIs = "one daemon, its own file queue, 2 sessions free"
  return [
    {
      ...rate,
      what: `${rate.what}, ${tasks} tasks dropped on one host`,
      figure: q(three.perSecond, "tasks/s"),
      baseline: q(one.perSecond, "tasks/s"),
      baselineIs: "one daemon with the 12 sessions, same server",
      note: `each turn ${TURN} then its completion line (a process); ${three.lost} dispatches lost to another ` +
        `host (the session waited for the next tick), ${one.lost} with one host`
    },
    {
      ...p50,
      what: `${p50.what}, ${drops} drops`,
      figure: q(median(hop), "ms"),
      baseline: q(median(local), "ms"),
      baselineIs: localIs,
      note: "timed from the rename into the busy host's pending/ to the other host's dry-run typing line"
    },
    { ...p99, figure: q(percentile(hop, 99), "ms"), baseline: q(percentile(local, 99), "ms"), baselineIs: localIs }
  ]
}
