/**
 * `npm run demo`: three Claude Code stand-ins in a private tmux server, the secutools stand-in, a dozen sample tasks
 * and the daemon as a real process; prints each thing that happens, then a summary. Easy to get wrong: everything
 * started here is stopped in `finally`, on failure and on Ctrl-C too; only the queue directory is kept, to look at.
 */
import { randomUUID } from "node:crypto"
import { resolve } from "node:path"
import { type FakeSecutools, type FakeSecutoolsOptions, startFakeSecutools } from "../src/adapters/fake-secutools/server.ts"
import { DaemonProcess } from "./daemon.ts"
import { describeFinished, describeLogRecord, formatEvent, parseLogLine } from "./progress.ts"
import { createQueue, entries, readFinished, writeSamples } from "./queue.ts"
import { problems, renderReport, summarizeTask } from "./summary.ts"
import { planRoute, SAMPLE_TASKS } from "./tasks.ts"
import { PrivateTmux } from "./tmux.ts"
import { waitFor } from "./wait.ts"

const ROOT = resolve(import.meta.dirname, "..")

/** claude-2 is quick, so it is free first for a second task, in the middle of which it hits its usage limit. */
const SESSIONS: ReadonlyArray<readonly [string, Readonly<Record<string, string>>]> = [
  ["claude-1", { STANDIN_WORK_MS: "2500" }],
  ["claude-2", { STANDIN_WORK_MS: "800", STANDIN_LIMIT_AFTER: "1" }],
  ["claude-3", { STANDIN_WORK_MS: "2500" }]
]

/** Seed 2 puts a 5xx and a 429 among the first six requests, so retries show early. */
const SECUTOOLS: Omit<FakeSecutoolsOptions, "apiKey"> = { durationMs: 2000, ratio5xx: 0.1, ratio429: 0.05, retryAfter: 1, seed: 2 }

/** Short intervals, so a dozen tasks take seconds, and retries fast enough to watch. */
const DAEMON_SETTINGS = {
  POLL_INTERVAL: "250ms",
  SCAN_INTERVAL: "1s",
  REAP_INTERVAL: "300ms",
  SECUTOOLS_RETRY_BASE: "100ms",
  SECUTOOLS_RETRY_MAX_DELAY: "1s",
  API_PORT: "0",
  LOG_FORMAT: "json"
}

const FINISH_TIMEOUT_MS = 50_000

const say = (line = "") => process.stdout.write(`${line}\n`)

/** The routing reason of each sample that runs locally: the daemon logs a local dispatch without it. */
const localReasons = new Map(SAMPLE_TASKS.flatMap((sample) => {
  const planned = planRoute(sample.name, sample.text)
  return planned._tag === "Decided" && planned.decision.route === "local" ? [[sample.name, planned.decision.reason]] : []
}))

interface Followed {
  readonly daemon: DaemonProcess
  /** Lines on its stdout that were not JSON log records. */
  readonly otherOutput: ReadonlyArray<string>
  readonly finishedAfterMs: number | undefined
  readonly issues: ReadonlyArray<string>
}

/** Starts the daemon, prints a line per event until every sample has finished (or the deadline), then stops it. */
const followDaemon = async (
  queue: string,
  settings: Readonly<Record<string, string>>,
  signal: AbortSignal,
  onStart: (daemon: DaemonProcess) => void
): Promise<Followed> => {
  const started = Date.now()
  const event = (text: string) => say(formatEvent(Date.now() - started, text))
  const reported = new Set<string>()
  /** Local tasks that reached done/ or failed/ since the last look (the daemon does not log those). */
  const reportFinished = () => {
    const finished = readFinished(queue)
    for (const task of finished.filter((task) => !reported.has(task.name))) {
      reported.add(task.name)
      const text = describeFinished(task)
      if (text !== undefined) event(text)
    }
    return finished
  }

  const otherOutput: Array<string> = []
  const daemon = new DaemonProcess(ROOT, settings, (line) => {
    const record = parseLogLine(line)
    if (record === undefined) return void otherOutput.push(line)
    const text = describeLogRecord(record, (task) => localReasons.get(task))
    if (text === undefined) return
    // A session gets a new task only once its last one left active/: say that one finished first.
    reportFinished()
    event(text)
  })
  onStart(daemon)

  const issues: Array<string> = []
  let finishedAfterMs: number | undefined
  const allFinished = () => {
    const finished = reportFinished()
    if (!daemon.running) throw new Error(`the daemon exited early (${daemon.child.exitCode ?? daemon.child.signalCode})`)
    return SAMPLE_TASKS.every((sample) => finished.some((task) => task.name === sample.name))
  }
  const settled = () => entries(queue, "pending").length === 0 && entries(queue, "active").length === 0
  try {
    await waitFor("every task in done/ or failed/", allFinished, { timeoutMs: FINISH_TIMEOUT_MS, signal, intervalMs: 200 })
    finishedAfterMs = Date.now() - started
    await waitFor("pending/ and active/ to be empty (no marker left)", settled, { timeoutMs: 5_000, signal })
  } catch (error) {
    if (signal.aborted) throw error
    issues.push(error instanceof Error ? error.message : String(error))
    for (const stage of ["pending", "active"] as const) {
      const left = entries(queue, stage)
      if (left.length > 0) issues.push(`${stage}/ still holds ${left.join(", ")}`)
    }
  }

  const code = await daemon.stop()
  event(`daemon stopped by SIGTERM: exit code ${code ?? "none (killed after 10s)"}`)
  if (code !== 0) issues.push(`the daemon exited with ${code ?? "no code (killed after 10s)"}, not 0`)
  return { daemon, otherOutput, finishedAfterMs, issues }
}

const demo = async (signal: AbortSignal): Promise<number> => {
  const began = Date.now()
  const queue = createQueue()
  const tmux = new PrivateTmux(ROOT)
  let secutools: FakeSecutools | undefined
  let daemon: DaemonProcess | undefined
  try {
    say("claude-failover demo")
    say(`  queue      ${queue} (kept afterwards)`)
    say(`  tmux       private server ${tmux.socket}; to watch: tmux -L ${tmux.socket} attach -r -t claude-2`)
    for (const [session, env] of SESSIONS) tmux.startStandin(session, env)
    await tmux.waitUntilReady(SESSIONS.map(([session]) => session), signal)
    say("  sessions   claude-1, claude-3: 2.5s a task; claude-2: 0.8s a task, then its usage limit hits during its second")

    const apiKey = `demo-${randomUUID()}`
    secutools = await startFakeSecutools({ apiKey, ...SECUTOOLS })
    say(`  secutools  stand-in on ${secutools.url}: jobs take 2s; ~10% 5xx and ~5% 429 answers injected`)
    writeSamples(queue, SAMPLE_TASKS)
    say(`  tasks      ${SAMPLE_TASKS.length} sample tasks in pending/`)
    say()

    const settings = {
      ...DAEMON_SETTINGS,
      QUEUE_DIR: queue,
      TMUX_SOCKET: tmux.socket,
      SECUTOOLS_API_KEY: apiKey,
      SECUTOOLS_URL: secutools.url
    }
    const followed = await followDaemon(queue, settings, signal, (started) => (daemon = started))

    const finished = readFinished(queue)
    const rows = SAMPLE_TASKS.flatMap((sample) => finished.filter((task) => task.name === sample.name).map(summarizeTask))
    const issues = [...followed.issues, ...problems(SAMPLE_TASKS, rows)]
    say()
    say(renderReport({
      rows,
      secutools: secutools.counters(),
      finishedAfterMs: followed.finishedAfterMs,
      totalMs: Date.now() - began,
      queue,
      issues
    }))
    if (issues.length === 0) return 0
    if (followed.daemon.stderr.trim() !== "") say(`daemon stderr:\n${followed.daemon.stderr.trimEnd()}`)
    if (followed.otherOutput.length > 0) say(`daemon stdout (not JSON):\n${followed.otherOutput.join("\n")}`)
    return 1
  } finally {
    if (daemon?.running === true) await daemon.stop(3_000)
    tmux.kill()
    await secutools?.close()
    say(`Cleaned up: tmux server ${tmux.socket} killed, secutools stand-in closed.`)
  }
}

const interrupt = new AbortController()
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => interrupt.abort(new Error(`interrupted by ${signal}`)))
}

demo(interrupt.signal).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exitCode = interrupt.signal.aborted ? 130 : 1
  }
)
