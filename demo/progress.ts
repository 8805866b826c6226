/**
 * Turns the daemon's JSON log lines, and local tasks arriving in done/ or failed/, into one short human line each.
 * Easy to get wrong: the daemon never logs a local task's end (the agent's own `task done` command moves it), so
 * those come from the queue, and the daemon's lines for delegated ends are the only ones for those: no duplicates.
 * The same holds for headless runs: a run that finished is told by its done/ file (cost, Claude Code's session), so
 * the daemon's "ended: Finished" and "done: its headless run … ended with a result" lines are not shown again.
 */
import { Result } from "effect"
import { formatCost } from "../src/domain/footer.ts"
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

/**
 * `2026-11-25T11:07:00.000Z` → `11:07 UTC`; `…T22:27:41.000Z` → `22:27:41 UTC`: a headless run's reset is exact to the
 * second, a tmux banner's to the minute, and each is shown as exactly as it is known.
 */
export const clockTime = (iso: string): string => {
  const match = /T(\d\d:\d\d)(?::(\d\d))?/.exec(iso)
  if (match?.[1] === undefined) return iso
  return match[2] === undefined || match[2] === "00" ? `${match[1]} UTC` : `${match[1]}:${match[2]} UTC`
}

/**
 * `session claude-2 hit its usage limit (the banner); it resets at …` → `session claude-2 hit its usage limit`, and
 * `session headless-1 exited: its process ended with code 3 …` → `session headless-1 exited`: the line before it (the
 * limit, the run's end) says the rest, the queue keeps all of it.
 */
const firstClause = (text: string) => text.replace(/ \(.*$/, "").replace(/: .*$/, "")
const withoutBody = (text: string) => text.replace(/: \{.*$/, "")

/**
 * Why a headless run ended without a result, shortened: `exited: its process ended with code 3 and no result: oops`
 * → `exit code 3, stderr "oops"`; `exited: its process was killed by SIGKILL` → `killed by SIGKILL`; a stop keeps
 * its reason (`was stopped: …` → `stopped: …`).
 */
export const describeFault = (reason: string): string => {
  const exited = /^exited: its process ended with code (\d+) and no result(?:: (.+))?$/.exec(reason)
  if (exited !== null) return `exit code ${exited[1]}${exited[2] === undefined ? "" : `, stderr "${exited[2]}"`}`
  const killed = /^exited: its process was killed by (\S+)$/.exec(reason)
  if (killed !== null) return `killed by ${killed[1]}`
  return reason.replace(/^was stopped: /, "stopped: ")
}

/**
 * The line for `headless run R of TASK in SLOT ended: OUTCOME (DETAIL)`; undefined for a finished run, whose task's
 * arrival in done/ is the line that says so (with its cost and Claude Code session).
 */
export const describeRunEnd = (task: string, slot: string, outcome: string, detail: string): string | undefined => {
  switch (outcome) {
    case "Finished":
      return undefined
    case "Limited":
      return `⏹ ${task}: its run in ${slot} stopped at a usage limit${detail === "" ? "" : ` ("${detail}")`}`
    case "NeedsPerson":
      return `✋ ${task}: its run in ${slot} needs a person: ${detail}`
    case "ApiError":
      return `✗ ${task}: its run in ${slot} ended with an API error: ${detail}`
    case "Fault":
      return `✗ ${task}: its run in ${slot} ended without a result (${describeFault(detail)})`
    default:
      return `${task}: its run in ${slot} ended: ${outcome}${detail === "" ? "" : ` (${detail})`}`
  }
}

/** `name.md:3:1: field …` → `line 3: field …`, for lines that already name the file. */
export const located = (name: string, problem: string): string => {
  if (!problem.startsWith(`${name}:`)) return problem
  const rest = problem.slice(name.length + 1)
  const at = /^(\d+)(?::\d+)?: /.exec(rest)
  return at === null ? rest.trimStart() : `line ${at[1]}: ${rest.slice(at[0].length)}`
}

/** The human line for a matched record; undefined when another line (or the queue) already says it. */
type Rule = (
  match: RegExpExecArray,
  record: LogRecord,
  localReason: (task: string) => string | undefined
) => string | undefined

/** The daemon's messages this demo explains, by pattern; the first that matches wins. */
const RULES: ReadonlyArray<readonly [RegExp, Rule]> = [
  [/^claude-failover \S+ started on (.+?); /, (m) => `daemon started on ${m[1]}`],
  [/^headless slots: (.+)$/, (m) => `headless slots ${m[1]}: one \`claude -p\` run each at a time`],
  // The run id is for the log's readers; the queue keeps it in the task's history.
  [/^(\S+) → session (\S+)(?: \(run [^;)\s]+(?:; (.+))?\))?$/, (m, _, localReason) => {
    const reason = localReason(m[1] ?? "") ?? m[3]
    return `${m[1]} → ${m[2]} (local${reason === undefined ? "" : `: ${reason}`})`
  }],
  [/^(\S+) → secutools (\S+) \((.+)\)$/, (m) => `${m[1]} → secutools ${m[2]} (${m[3]})`],
  [/^(\S+) submitted to secutools (\S+) as job (\S+)$/, (m) => `${m[1]} submitted to ${m[2]} as job ${m[3]}`],
  // Duration.format writes a zero delay (full jitter can draw one) as a bare `0`.
  [
    /^secutools (.+); retrying in (.+)$/,
    (m) => `↻ secutools ${withoutBody(m[1] ?? "")}; retrying in ${m[2] === "0" ? "0ms" : m[2]}`
  ],
  [
    /^session (\S+) hit its usage limit; account (\S+) rests until (.+)$/,
    (m) => `⚠ ${m[1]} hit its usage limit: no new tasks for account ${m[2]} until ${clockTime(m[3] ?? "")}`
  ],
  // The run ended in a slot: dollars and turns come with the finished file; the log line has only the outcome.
  [
    /^headless run \S+ of (\S+) in (\S+) ended: (\w+)(?: \((.*)\))?$/s,
    (m) => describeRunEnd(m[1] ?? "", m[2] ?? "", m[3] ?? "", m[4] ?? "")
  ],
  [/^\S+ done: its headless run in \S+ ended with a result$/, () => undefined],
  [
    /^stopped (\d+) process\(es\) of headless runs left by a daemon that stopped: (.+)$/,
    (m) => `↯ stopped ${m[1]} headless run(s) an earlier daemon left running: ${m[2]}`
  ],
  // A usage limit sends the task elsewhere (a failover); any other end of a run is tried again (a retry).
  [
    /^(\S+) back to pending: (.+)$/,
    (m) =>
      `⇄ ${/usage limit/.test(m[2] ?? "") ? "failover" : "retry"}: ${m[1]} back to pending (${firstClause(m[2] ?? "")})`
  ],
  [/^(\S+) back to local routing: (.+)$/, (m) => `⇄ ${m[1]} back to local routing: ${m[2]}`],
  [
    /^(\S+) done by secutools (\S+) \(job ([^,\s)]+)(?:, took [^)]+)?\)$/,
    (m) => `✓ ${m[1]} done by secutools ${m[2]} (job ${m[3]})`
  ],
  [/^(\S+) (failed|cancelled) at secutools: (.+)$/, (m, record) => {
    const provider = annotation(record, "provider")
    return `✗ ${m[1]} ${m[2]} at secutools${provider === undefined ? "" : ` ${provider}`}: ${m[3]}`
  }],
  [
    /^(?:pending|active)\/(\S+) cannot be run: (.+); moved to failed\/(\S+) with (\S+)$/s,
    (m) => `✗ ${m[1]} cannot be run → failed/: ${located(m[1] ?? "", m[2] ?? `see ${m[4]}`)}`
  ],
  // Start-up recovery quarantines the files already there; the quarantine's own line (above) has said it.
  [/^recovery: (?:pending|active)\/\S+: cannot be run \(.*\); quarantined as failed\/\S+$/s, () => undefined]
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

/**
 * A task a local session finished whose file has no run's facts (cost, Claude Code's session) yet. In a headless slot
 * they are still to come: the agent's `task done` moved the file, and the daemon adds them once the run's process has
 * ended, a moment later. A tmux session's task never gets them, so only the headless demo asks.
 */
export const awaitsRunFacts = (task: FinishedTask): boolean => {
  if (task.stage !== "done" || task.error !== undefined) return false
  const parsed = parseTask(task.name, task.text)
  if (Result.isFailure(parsed)) return false
  const fields = parsed.success.fields
  return fields.session !== undefined && fields.job_id === undefined && fields.claude_session === undefined
}

/** The `Reason: …` line of a failed task's footer. */
export const failureReasonOf = (text: string): string | undefined => /^Reason: (.+)$/m.exec(text)?.[1]

/**
 * The line for a task a local session finished; undefined for delegated or malformed ones (the daemon logs those).
 * A headless run's facts follow the time it took: its cost and Claude Code's session (`claude --resume` takes it).
 */
export const describeFinished = (task: FinishedTask): string | undefined => {
  if (task.error !== undefined) return undefined
  const parsed = parseTask(task.name, task.text)
  if (Result.isFailure(parsed)) return undefined
  const fields = parsed.success.fields
  if (fields.session === undefined || fields.job_id !== undefined) return undefined
  const took = tookOf(task.text)
  const facts = [
    ...(took === undefined ? [] : [`took ${took}`]),
    ...(fields.cost_usd === undefined ? [] : [`cost ${formatCost(fields.cost_usd)}`]),
    ...(fields.claude_session === undefined ? [] : [`claude session ${fields.claude_session}`])
  ]
  const after = facts.length === 0 ? "" : ` (${facts.join(", ")})`
  return task.stage === "done"
    ? `✓ ${task.name} done by ${fields.session}${after}`
    : `✗ ${task.name} failed in ${fields.session}: ${failureReasonOf(task.text) ?? "no reason given"}${after}`
}
