/**
 * The end-of-demo report, read from the finished queue alone: one row per task, the failovers, totals, and what
 * did not end where the sample said it would. Easy to get wrong: the route shown is where the task actually ran;
 * the reason is `decide`'s for that route (rule 7 only explains a task that ran on secutools after all).
 */
import { Result } from "effect"
import type { Counters, FaultKind } from "../src/adapters/fake-secutools/jobs.ts"
import { formatCost } from "../src/domain/footer.ts"
import { decide } from "../src/domain/routing.ts"
import { parseTask, type TaskFields } from "../src/domain/task.ts"
import { failureReasonOf, type FinishedTask, located, tookOf } from "./progress.ts"
import { DEMO_SITUATION, type RanOn, type SampleTask } from "./tasks.ts"

export interface SummaryRow {
  readonly task: string
  readonly stage: "done" | "failed"
  readonly route: "local" | "delegate" | "—"
  readonly reason: string
  /** The session, or `provider · job`. */
  readonly ranOn: string
  readonly took: string
  readonly attempts: string
  readonly outcome: string
  /** Why it went back to pending, when it did. */
  readonly failover?: string
  readonly where: RanOn
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
      where: "nowhere"
    }
  }
  const fields = parsed.success.fields
  const failover = lastRequeue(fields)
  const delegated = fields.job_id !== undefined || (fields.provider !== undefined && fields.session === undefined)
  const decision = decide(fields, { ...DEMO_SITUATION, localAvailable: !delegated })
  const cost = fields.cost_usd === undefined ? "" : ` (${formatCost(fields.cost_usd)})`
  const outcome = task.stage === "done" ? `done${cost}` : `failed: ${failureReasonOf(task.text) ?? "no reason given"}`
  return {
    task: task.name,
    stage: task.stage,
    route: delegated ? "delegate" : "local",
    reason: decision.reason,
    ranOn: delegated ? `${fields.provider ?? "?"} · ${fields.job_id ?? "no job"}` : fields.session ?? "—",
    took: tookOf(task.text) ?? "—",
    attempts: String(fields.attempts ?? "—"),
    outcome,
    ...(failover === undefined ? {} : { failover }),
    where: delegated ? `secutools ${fields.provider ?? "?"}` : "local"
  }
}

/** Why the task last went back to the queue, from its history. */
const lastRequeue = (fields: TaskFields): string | undefined =>
  fields.history?.filter((entry) => entry.event === "requeued").at(-1)?.reason

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
    line.map((cell, i) => i === line.length - 1 ? cell : cell + " ".repeat((widths[i] ?? 0) - [...cell].length)).join("  ")
  const rule = widths.map((width) => "─".repeat(width)).join("  ")
  const [header = [], ...body] = cells
  return [render(header), rule, ...body.map(render)].join("\n")
}

export const renderFailovers = (rows: ReadonlyArray<SummaryRow>): ReadonlyArray<string> =>
  rows.flatMap((row) => row.failover === undefined ? [] : [`${row.task}: ${row.failover}`])

const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? "" : "s"}`

export const renderTotals = (rows: ReadonlyArray<SummaryRow>): string => {
  const count = (keep: (row: SummaryRow) => boolean) => rows.filter(keep).length
  return [
    `${rows.length} tasks`,
    `${count((row) => row.stage === "done")} done, ${count((row) => row.stage === "failed")} failed`,
    `${count((row) => row.route === "local")} ran locally, ${count((row) => row.route === "delegate")} on secutools, ${
      count((row) => row.route === "—")
    } malformed`,
    plural(count((row) => row.failover !== undefined), "failover")
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
      ...(row.stage === sample.expected.stage ? [] : [`${sample.name} ended ${row.stage}, expected ${sample.expected.stage}`]),
      ...(sample.expected.ranOn.includes(row.where)
        ? []
        : [`${sample.name} ran on ${row.where}, expected ${sample.expected.ranOn.join(" or ")}`])
    ]
  })

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
  const failovers = renderFailovers(report.rows)
  return [
    renderTable(report.rows),
    ...(failovers.length === 0 ? [] : ["", "Failovers:", ...failovers.map((line) => `  ${line}`)]),
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

