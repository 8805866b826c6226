/**
 * The end-of-demo report, read from the finished queue alone: one row per task, the failovers and retries, totals,
 * and what did not end where the sample said it would. Easy to get wrong: the route shown is where the task actually ran;
 * the reason is `decide`'s for that route (rule 7 only explains a task that ran on secutools after all).
 */
import { Result } from "effect"
import type { Counters, FaultKind } from "../src/adapters/fake-secutools/jobs.ts"
import { formatCost } from "../src/domain/footer.ts"
import { decide } from "../src/domain/routing.ts"
import { parseTask, type TaskFields } from "../src/domain/task.ts"
import { failureReasonOf, type FinishedTask, located, tookOf } from "./progress.ts"
import { DEMO_SITUATION, type RanOn, type SampleTask } from "./tasks.ts"

/** A time the task went back to pending, from its history. */
export interface Requeue {
  /** `usage_limit`, `session_exited`, …: what the attempt limit counts. */
  readonly cause: string
  /** The session it left. */
  readonly session: string
  readonly reason: string
}

export interface SummaryRow {
  readonly task: string
  readonly stage: "done" | "failed"
  readonly route: "local" | "delegate" | "—"
  readonly reason: string
  /** The session (`slot · claude SESSION` for a headless run), or `provider · job`. */
  readonly ranOn: string
  readonly took: string
  readonly attempts: string
  readonly outcome: string
  /** Every time it went back to pending, oldest first. */
  readonly requeues: ReadonlyArray<Requeue>
  readonly where: RanOn
  /** The local session it ended in. */
  readonly session?: string
  /** What its last run cost: a delegated job's, or a headless run's. */
  readonly costUsd?: number
  /** A headless run's Claude Code session. */
  readonly claudeSession?: string
}

export const summarizeTask = (task: FinishedTask): SummaryRow => {
  const parsed = parseTask(task.name, task.text)
  if (task.error !== undefined || Result.isFailure(parsed)) {
    const problem = task.error ?? (Result.isFailure(parsed) ? parsed.failure.message : "does not parse")
    return {
      task: task.name,
      stage: task.stage,
      route: "—",
      reason: "malformed",
      ranOn: "—",
      took: "—",
      attempts: "—",
      outcome: `${task.stage}: ${located(task.name, problem.trim())}`,
      requeues: [],
      where: "nowhere"
    }
  }
  const fields = parsed.success.fields
  const delegated = fields.job_id !== undefined || (fields.provider !== undefined && fields.session === undefined)
  const decision = decide(fields, { ...DEMO_SITUATION, localAvailable: !delegated })
  const cost = fields.cost_usd === undefined ? "" : ` (${formatCost(fields.cost_usd)})`
  const outcome = task.stage === "done" ? `done${cost}` : `failed: ${failureReasonOf(task.text) ?? "no reason given"}`
  const local = fields.session ?? "—"
  return {
    task: task.name,
    stage: task.stage,
    route: delegated ? "delegate" : "local",
    reason: decision.reason,
    ranOn: delegated
      ? `${fields.provider ?? "?"} · ${fields.job_id ?? "no job"}`
      : fields.claude_session === undefined
      ? local
      : `${local} · claude ${fields.claude_session.slice(0, 8)}`,
    took: tookOf(task.text) ?? "—",
    attempts: String(fields.attempts ?? "—"),
    outcome,
    requeues: requeuesOf(fields),
    where: delegated ? `secutools ${fields.provider ?? "?"}` : "local",
    ...(delegated || fields.session === undefined ? {} : { session: fields.session }),
    ...(fields.cost_usd === undefined ? {} : { costUsd: fields.cost_usd }),
    ...(fields.claude_session === undefined ? {} : { claudeSession: fields.claude_session })
  }
}

/** Every time the task went back to the queue, from its history. */
const requeuesOf = (fields: TaskFields): ReadonlyArray<Requeue> =>
  (fields.history ?? []).flatMap((entry) =>
    entry.event === "requeued"
      ? [{ cause: entry.cause ?? "unknown", session: entry.session ?? "?", reason: entry.reason ?? "no reason given" }]
      : []
  )

/** A usage limit sends the task to another account (a failover); any other requeue tries it again (a retry). */
const isFailover = (requeue: Requeue) => requeue.cause === "usage_limit"

const COLUMNS: ReadonlyArray<readonly [string, (row: SummaryRow) => string]> = [
  ["task", (row) => row.task],
  ["route", (row) => row.route],
  ["reason", (row) => row.reason],
  ["ran on", (row) => row.ranOn],
  ["took", (row) => row.took],
  ["attempts", (row) => row.attempts],
  ["outcome", (row) => row.outcome]
]

/** A plain-text table; the last column (the outcome, often long) is not padded. */
export const renderTable = (rows: ReadonlyArray<SummaryRow>): string => {
  const cells = [COLUMNS.map(([title]) => title), ...rows.map((row) => COLUMNS.map(([, cell]) => cell(row)))]
  const widths = COLUMNS.map((_, i) => Math.max(...cells.map((line) => [...(line[i] ?? "")].length)))
  const render = (line: ReadonlyArray<string>) =>
    line.map((cell, i) => i === line.length - 1 ? cell : cell + " ".repeat((widths[i] ?? 0) - [...cell].length)).join(
      "  "
    )
  const rule = widths.map((width) => "─".repeat(width)).join("  ")
  const [header = [], ...body] = cells
  return [render(header), rule, ...body.map(render)].join("\n")
}

/** `Failovers:` (and retries, when there were any) with a line per requeue; nothing when no task went back. */
export const renderRequeues = (rows: ReadonlyArray<SummaryRow>): ReadonlyArray<string> => {
  const lines = rows.flatMap((row) => row.requeues.map((requeue) => `  ${row.task}: ${requeue.reason}`))
  if (lines.length === 0) return []
  const retries = rows.some((row) => row.requeues.some((requeue) => !isFailover(requeue)))
  return [retries ? "Failovers and retries:" : "Failovers:", ...lines]
}

const plural = (n: number, noun: string, nouns = `${noun}s`) => `${n} ${n === 1 ? noun : nouns}`

export const renderTotals = (rows: ReadonlyArray<SummaryRow>): string => {
  const count = (keep: (row: SummaryRow) => boolean) => rows.filter(keep).length
  const requeues = rows.flatMap((row) => row.requeues)
  const retries = requeues.filter((requeue) => !isFailover(requeue)).length
  const headless = rows.filter((row) => row.claudeSession !== undefined)
  const headlessCost = headless.reduce((sum, row) => sum + (row.costUsd ?? 0), 0)
  return [
    `${rows.length} tasks`,
    `${count((row) => row.stage === "done")} done, ${count((row) => row.stage === "failed")} failed`,
    `${count((row) => row.route === "local")} ran locally, ${count((row) => row.route === "delegate")} on secutools, ${
      count((row) => row.route === "—")
    } malformed`,
    plural(requeues.filter(isFailover).length, "failover") +
    (retries === 0 ? "" : `, ${plural(retries, "retry", "retries")}`),
    ...(headless.length === 0 ? [] : [`${formatCost(headlessCost)} for the headless runs that finished`])
  ].join(" · ")
}

const FAULTS: ReadonlyArray<readonly [FaultKind, string]> = [
  ["status5xx", "HTTP 5xx"],
  ["status429", "HTTP 429"],
  ["dropped", "dropped connection"],
  ["lostAnswer", "lost answer"],
  ["malformed", "malformed answer"],
  ["slow", "slow answer"]
]

/** What the secutools stand-in saw: submits, jobs, polls and the faults it injected. */
export const renderSecutools = (counters: Counters): string => {
  const injected = FAULTS.flatMap(([kind, label]) => {
    const n = counters.injected[kind]
    return n > 0 ? [`${n}× ${label}`] : []
  })
  return [
    `secutools stand-in: ${counters.submits} submits (${counters.duplicateSubmits} repeated)`,
    `${counters.jobsCreated} jobs`,
    `${counters.gets} polls; injected: ${injected.length === 0 ? "nothing" : injected.join(", ")}`
  ].join(", ")
}

/** Every way the finished queue differs from what the samples expect; empty when all is well. */
export const problems = (samples: ReadonlyArray<SampleTask>, rows: ReadonlyArray<SummaryRow>): ReadonlyArray<string> =>
  samples.flatMap((sample) => {
    const row = rows.find((candidate) => candidate.task === sample.name)
    if (row === undefined) return [`${sample.name} did not finish`]
    return [
      ...(row.stage === sample.expected.stage
        ? []
        : [`${sample.name} ended ${row.stage}, expected ${sample.expected.stage}`]),
      ...(sample.expected.ranOn.includes(row.where)
        ? []
        : [`${sample.name} ran on ${row.where}, expected ${sample.expected.ranOn.join(" or ")}`])
    ]
  })

/**
 * What the headless demo scripts and so must show, beyond each task ending where its sample says: a task that hit the
 * usage limit finished in another slot, a task whose run crashed finished on a retry, and every task a slot finished
 * carries its cost and Claude Code session. Empty when all of that is there.
 */
export const headlessProblems = (rows: ReadonlyArray<SummaryRow>): ReadonlyArray<string> => {
  const done = rows.filter((row) => row.stage === "done" && row.route === "local")
  const failedOver = done.some((row) => row.requeues.some((r) => isFailover(r) && r.session !== row.session))
  const retried = done.some((row) => row.requeues.some((r) => !isFailover(r)))
  return [
    ...(failedOver ? [] : ["no task that hit the usage limit finished in another slot"]),
    ...(retried ? [] : ["no task whose run crashed finished on a retry"]),
    ...done.flatMap((row) =>
      row.costUsd !== undefined && row.claudeSession !== undefined
        ? []
        : [`${row.task} finished in ${row.session ?? "?"} without a cost or a Claude Code session`]
    )
  ]
}

export interface Report {
  readonly rows: ReadonlyArray<SummaryRow>
  readonly secutools: Counters
  /** From the daemon's start until every task had finished; undefined when they had not. */
  readonly finishedAfterMs: number | undefined
  readonly totalMs: number
  readonly queue: string
  /** What went wrong; empty when every task ended where expected. */
  readonly issues: ReadonlyArray<string>
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`

/** The whole end-of-demo report: table, failovers, totals, timings, where the queue is, and the verdict. */
export const renderReport = (report: Report): string => {
  const requeues = renderRequeues(report.rows)
  return [
    renderTable(report.rows),
    ...(requeues.length === 0 ? [] : ["", ...requeues]),
    "",
    renderTotals(report.rows),
    renderSecutools(report.secutools),
    report.finishedAfterMs === undefined
      ? `Not every task finished; the demo took ${seconds(report.totalMs)}.`
      : `All tasks finished ${seconds(report.finishedAfterMs)} after the daemon started; ` +
        `the demo took ${seconds(report.totalMs)}.`,
    `Queue kept at ${report.queue}`,
    ...(report.issues.length === 0
      ? ["Every task ended where expected."]
      : ["", "PROBLEMS:", ...report.issues.map((issue) => `  - ${issue}`)])
  ].join("\n")
}
