/**
 * `npm run demo`: three Claude Code stand-ins in a private tmux server, the secutools stand-in, a dozen sample tasks
 * and the daemon as a real process; prints each thing that happens, then a summary. `npm run demo -- --headless`:
 * the same with two headless slots (`claude -p` stand-ins) instead of tmux. Easy to get wrong: everything started
 * here is stopped in `finally`, on failure and on Ctrl-C too; only the queue directory is kept, to look at.
 */
import { randomUUID } from "node:crypto"
import { resolve } from "node:path"
import {
  type FakeSecutools,
  type FakeSecutoolsOptions,
  startFakeSecutools
} from "../src/adapters/fake-secutools/server.ts"
import { DaemonProcess } from "./daemon.ts"
import { headlessSessions } from "./headless.ts"
import {
  awaitsRunFacts,
  describeFinished,
  describeLogRecord,
  type FinishedTask,
  formatEvent,
  parseLogLine
} from "./progress.ts"
import { createQueue, entries, readFinished, writeSamples } from "./queue.ts"
import { type DemoSessions, tmuxSessions } from "./sessions.ts"
import { problems, renderReport, summarizeTask } from "./summary.ts"
import { planRoute, SAMPLE_TASKS } from "./tasks.ts"
import { waitFor } from "./wait.ts"

const ROOT = resolve(import.meta.dirname, "..")

/** Seed 2 puts a 5xx and a 429 among the first six requests, so retries show early. */
const SECUTOOLS: Omit<FakeSecutoolsOptions, "apiKey"> = {
  durationMs: 2000,
  ratio5xx: 0.1,
  ratio429: 0.05,
  retryAfter: 1,
  seed: 2
}

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
  return planned._tag === "Decided" && planned.decision.route === "local"
    ? [[sample.name, planned.decision.reason]]
    : []
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
  options: { readonly signal: AbortSignal; readonly runFacts: boolean },
  onStart: (daemon: DaemonProcess) => void
): Promise<Followed> => {
  const { signal } = options
  const started = Date.now()
  const event = (text: string) => say(formatEvent(Date.now() - started, text))
  const reported = new Set<string>()
  /** A finished task whose run's facts are still to come is told once they are there (or at the very end). */
  const postponed = (task: FinishedTask, final: boolean) => options.runFacts && !final && awaitsRunFacts(task)
  /** Local tasks that reached done/ or failed/ since the last look (the daemon does not log those). */
  const reportFinished = (final = false) => {
    const finished = readFinished(queue)
    for (const task of finished.filter((task) => !reported.has(task.name) && !postponed(task, final))) {
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
    if (!daemon.running)
      throw new Error(`the daemon exited early (${daemon.child.exitCode ?? daemon.child.signalCode})`)
    return SAMPLE_TASKS.every((sample) => finished.some((task) => task.name === sample.name))
  }
  const settled = () =>
    entries(queue, "pending").length === 0 && entries(queue, "active").length === 0 &&
    !readFinished(queue).some((task) => postponed(task, false))
  try {
    await waitFor("every task in done/ or failed/", allFinished, {
      timeoutMs: FINISH_TIMEOUT_MS,
      signal,
      intervalMs: 200
    })
    finishedAfterMs = Date.now() - started
    await waitFor("pending/ and active/ to be empty (no marker left), every run's facts written", settled, {
      timeoutMs: 5_000,
      signal
    })
    reportFinished(true)
  } catch (error) {
    if (signal.aborted) throw error
    reportFinished(true)
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

const USAGE = "usage: npm run demo [-- --headless]"

const demo = async (signal: AbortSignal, headless: boolean): Promise<number> => {
  const began = Date.now()
  const queue = createQueue()
  const sessions: DemoSessions = headless ? headlessSessions(ROOT, queue) : tmuxSessions(ROOT)
  let secutools: FakeSecutools | undefined
  let daemon: DaemonProcess | undefined
  let code = 1
  try {
    say(sessions.title)
    say(`  queue      ${queue} (kept afterwards)`)
    const sessionSettings = await sessions.start(signal, say)

    const apiKey = `demo-${randomUUID()}`
    secutools = await startFakeSecutools({ apiKey, ...SECUTOOLS })
    say(`  secutools  stand-in on ${secutools.url}: jobs take 2s; ~10% 5xx and ~5% 429 answers injected`)
    writeSamples(queue, SAMPLE_TASKS)
    say(`  tasks      ${SAMPLE_TASKS.length} sample tasks in pending/`)
    say()

    const settings = {
      ...DAEMON_SETTINGS,
      ...sessionSettings,
      QUEUE_DIR: queue,
      SECUTOOLS_API_KEY: apiKey,
      SECUTOOLS_URL: secutools.url
    }
    const followed = await followDaemon(
      queue,
      settings,
      { signal, runFacts: sessions.runFacts },
      (started) => (daemon = started)
    )

    const finished = readFinished(queue)
    const rows = SAMPLE_TASKS.flatMap((sample) =>
      finished.filter((task) => task.name === sample.name).map(summarizeTask)
    )
    const issues = [...followed.issues, ...problems(SAMPLE_TASKS, rows), ...sessions.problems(rows)]
    say()
    say(renderReport({
      rows,
      secutools: secutools.counters(),
      finishedAfterMs: followed.finishedAfterMs,
      totalMs: Date.now() - began,
      queue,
      issues
    }))
    if (issues.length > 0) {
      if (followed.daemon.stderr.trim() !== "") say(`daemon stderr:\n${followed.daemon.stderr.trimEnd()}`)
      if (followed.otherOutput.length > 0) say(`daemon stdout (not JSON):\n${followed.otherOutput.join("\n")}`)
    }
    code = issues.length === 0 ? 0 : 1
  } finally {
    if (daemon?.running === true) await daemon.stop(3_000)
    const stopped = sessions.stop()
    await secutools?.close()
    say(`Cleaned up: ${stopped.cleaned}, secutools stand-in closed.`)
    for (const problem of stopped.problems) say(`PROBLEM: ${problem}`)
    if (stopped.problems.length > 0) code = 1
  }
  return code
}

const interrupt = new AbortController()
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => interrupt.abort(new Error(`interrupted by ${signal}`)))
}

const args = process.argv.slice(2)
if (args.some((arg) => arg !== "--headless")) {
  process.stderr.write(`${USAGE}\n`)
  process.exit(2)
}

demo(interrupt.signal, args.includes("--headless")).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exitCode = interrupt.signal.aborted ? 130 : 1
  }
)
