/**
 * Turns the daemon's JSON log lines, and local tasks arriving in done/ or failed/, into one short human line each.
 * Easy to get wrong: the daemon never logs a local task's end (the agent's own `task done` command moves it), so
 * those come from the queue, and the daemon's lines for delegated ends are the only ones for those: no duplicates.
 */
import { Result } from "effect"
import { parseTask } from "../src/domain/task.ts"

export interface LogRecord {
  readonly message: string
  readonly level: string
  readonly timestamp: string
  readonly annotations: Readonly<Record<string, unknown>>
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** One line of the daemon's stdout under LOG_FORMAT=json; undefined when it is not such a record. */
export const parseLogLine = (line: string): LogRecord | undefined => {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return undefined
  }
  if (!isObject(value) || typeof value.message !== "string") return undefined
  return {
    message: value.message,
    level: typeof value.level === "string" ? value.level : "INFO",
    timestamp: typeof value.timestamp === "string" ? value.timestamp : "",
    annotations: isObject(value.annotations) ? value.annotations : {}
  }
}

/** `  3.4s  text`: seconds since the daemon started, right-aligned so the texts line up. */
export const formatEvent = (elapsedMs: number, text: string): string =>
  `${(Math.max(0, elapsedMs) / 1000).toFixed(1).padStart(6)}s  ${text}`

const annotation = (record: LogRecord, key: string): string | undefined => {
  const value = record.annotations[key]
  return typeof value === "string" && value !== "" ? value : undefined
}

/** `2026-11-25T11:07:00.000Z` → `11:07 UTC`. */
const clockTime = (iso: string) => {
  const match = /T(\d\d:\d\d)/.exec(iso)
  return match?.[1] === undefined ? iso : `${match[1]} UTC`
}

/** Drops a trailing `(…)` banner quote and an HTTP body: the human line keeps the fact, the queue keeps the rest. */
/** `… hit its usage limit (the banner); it resets at …` → `… hit its usage limit`: the banner line says the rest. */
const withoutBanner = (text: string) => text.replace(/ \(.*$/, "")
const withoutBody = (text: string) => text.replace(/: \{.*$/, "")

/** `name.md:3:1: field …` → `line 3: field …`, for lines that already name the file. */
export const located = (name: string, problem: string): string => {
  if (!problem.startsWith(`${name}:`)) return problem
  const rest = problem.slice(name.length + 1)
  const at = /^(\d+)(?::\d+)?: /.exec(rest)
  return at === null ? rest.trimStart() : `line ${at[1]}: ${rest.slice(at[0].length)}`
}

type Rule = (match: RegExpExecArray, record: LogRecord, localReason: (task: string) => string | undefined) => string

/** The daemon's messages this demo explains, by pattern; the first that matches wins. */
const RULES: ReadonlyArray<readonly [RegExp, Rule]> = [
  [/^claude-failover starting on (.+)$/, (m) => `daemon started on ${m[1]}`],
  [/^(\S+) → session (\S+)$/, (m, _, localReason) => {
    const reason = localReason(m[1] ?? "")
    return `${m[1]} → ${m[2]} (local${reason === undefined ? "" : `: ${reason}`})`
  }],
  [/^(\S+) → secutools (\S+) \((.+)\)$/, (m) => `${m[1]} → secutools ${m[2]} (${m[3]})`],
  [/^(\S+) submitted to secutools (\S+) as job (\S+)$/, (m) => `${m[1]} submitted to ${m[2]} as job ${m[3]}`],
  // Duration.format writes a zero delay (full jitter can draw one) as a bare `0`.
  [/^secutools (.+); retrying in (.+)$/, (m) =>
    `↻ secutools ${withoutBody(m[1] ?? "")}; retrying in ${m[2] === "0" ? "0ms" : m[2]}`],
  [/^session (\S+) hit its usage limit; account (\S+) rests until (.+)$/, (m) =>
    `⚠ ${m[1]} hit its usage limit: no new tasks for account ${m[2]} until ${clockTime(m[3] ?? "")}`],
  [/^(\S+) back to pending: (.+)$/, (m) => `⇄ failover: ${m[1]} back to pending (${withoutBanner(m[2] ?? "")})`],
  [/^(\S+) back to local routing: (.+)$/, (m) => `⇄ ${m[1]} back to local routing: ${m[2]}`],
  [/^(\S+) done by secutools (\S+) \(job (\S+)\)$/, (m) => `✓ ${m[1]} done by secutools ${m[2]} (job ${m[3]})`],
  [/^(\S+) (failed|cancelled) at secutools: (.+)$/, (m, record) => {
    const provider = annotation(record, "provider")
    return `✗ ${m[1]} ${m[2]} at secutools${provider === undefined ? "" : ` ${provider}`}: ${m[3]}`
  }],
  [/^pending\/(\S+) cannot be parsed; moved to failed\/ with (\S+)$/, (m, record) => {
    const reason = annotation(record, "reason")
    return `✗ ${m[1]} is malformed → failed/: ${reason === undefined ? `see ${m[2]}` : located(m[1] ?? "", reason)}`
  }]
]

/**
 * The human line for a log record, or undefined for records the demo does not explain (other INFO lines);
 * warnings and errors it does not know are shown as they are, so nothing that goes wrong is hidden.
 */
export const describeLogRecord = (
  record: LogRecord,
  localReason: (task: string) => string | undefined
): string | undefined => {
  for (const [pattern, rule] of RULES) {
    const match = pattern.exec(record.message)
    if (match !== null) return rule(match, record, localReason)
  }
  return record.level === "INFO" || record.level === "DEBUG" ? undefined : `daemon ${record.level}: ${record.message}`
}

/** A task that reached done/ or failed/. `error` is the `.error` file beside a file that did not parse. */
export interface FinishedTask {
  readonly name: string
  readonly stage: "done" | "failed"
  readonly text: string
  readonly error?: string
}

/** The footer's `took …`, e.g. `3s` or `1m 4s`. */
export const tookOf = (text: string): string | undefined =>
  /^claude-failover: \w+ · .* · took ([^·\n]+?)\s*$/m.exec(text)?.[1]

/** The `Reason: …` line of a failed task's footer. */
export const failureReasonOf = (text: string): string | undefined => /^Reason: (.+)$/m.exec(text)?.[1]

/** The line for a task a local session finished; undefined for delegated or malformed ones (the daemon logs those). */
export const describeFinished = (task: FinishedTask): string | undefined => {
  if (task.error !== undefined) return undefined
  const parsed = parseTask(task.name, task.text)
  if (Result.isFailure(parsed)) return undefined
  const fields = parsed.success.fields
  if (fields.session === undefined || fields.job_id !== undefined) return undefined
  const took = tookOf(task.text)
  const timing = took === undefined ? "" : ` (took ${took})`
  return task.stage === "done"
    ? `✓ ${task.name} done by ${fields.session}${timing}`
    : `✗ ${task.name} failed in ${fields.session}: ${failureReasonOf(task.text) ?? "no reason given"}${timing}`
}
