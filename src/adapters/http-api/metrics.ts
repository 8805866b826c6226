/**
 * `GET /metrics`: one status snapshot in the Prometheus text exposition format 0.0.4.
 * Easy to get wrong: label values (session names come from tmux, so anything) are escaped, every session state is
 * listed even at 0 so a series never vanishes, and histogram buckets are cumulative with `+Inf` equal to `_count`.
 */
import type { Histogram } from "../../domain/histogram.ts"
import { Stages } from "../../ports/task-store.ts"
import { HeadlessOutcomes, type Snapshot } from "../../services/status.ts"

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

/** The states a session can be in, as the status service names them. */
export const SessionStates = [
  "idle",
  "busy",
  "permission_prompt",
  "usage_limited",
  "exited",
  "unknown",
  "missing"
] as const

type Labels = ReadonlyArray<readonly [name: string, value: string]>

interface Sample {
  readonly suffix?: string
  readonly labels?: Labels
  readonly value: number
}

interface Family {
  readonly name: string
  readonly help: string
  readonly type: "counter" | "gauge" | "histogram"
  readonly samples: ReadonlyArray<Sample>
}

const escapeLabelValue = (value: string): string =>
  value.replaceAll("\\", "\\\\").replaceAll("\"", "\\\"").replaceAll("\n", "\\n")

const escapeHelp = (text: string): string => text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n")

/** Go's float syntax for the specials, which is what Prometheus parses; finite numbers print as JavaScript does. */
const formatValue = (value: number): string =>
  Number.isNaN(value) ? "NaN" : value === Infinity ? "+Inf" : value === -Infinity ? "-Inf" : String(value)

const renderLabels = (labels: Labels | undefined): string =>
  labels === undefined || labels.length === 0
    ? ""
    : `{${labels.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(",")}}`

const renderFamily = (family: Family): string =>
  [
    `# HELP ${family.name} ${escapeHelp(family.help)}`,
    `# TYPE ${family.name} ${family.type}`,
    ...family.samples.map((sample) =>
      `${family.name}${sample.suffix ?? ""}${renderLabels(sample.labels)} ${formatValue(sample.value)}`
    )
  ].join("\n")

const single = (name: string, type: "counter" | "gauge", help: string, value: number): Family => ({
  name,
  type,
  help,
  samples: [{ value }]
})

const histogram = (name: string, help: string, h: Histogram): Family => ({
  name,
  type: "histogram",
  help,
  samples: [
    // A bound of +Inf would repeat the bucket that `count` already gives.
    ...h.bounds.flatMap((bound, i) =>
      Number.isFinite(bound)
        ? [{ suffix: "_bucket", labels: [["le", formatValue(bound)]] as const, value: h.counts[i] ?? 0 }]
        : []
    ),
    { suffix: "_bucket", labels: [["le", "+Inf"]], value: h.count },
    { suffix: "_sum", value: h.sum },
    { suffix: "_count", value: h.count }
  ]
})

/** Every known state, then any other state a session reported, so an unexpected one is still visible. */
const statesOf = (snapshot: Snapshot): ReadonlyArray<string> => {
  const known: ReadonlyArray<string> = SessionStates
  const others = [...new Set(snapshot.sessions.map((s) => s.state).filter((state) => !known.includes(state)))].sort()
  return [...known, ...others]
}

export const renderMetrics = (snapshot: Snapshot): string => {
  const counters = snapshot.delegation.counters
  const states = statesOf(snapshot)
  const families: ReadonlyArray<Family> = [
    {
      name: "claude_failover_tasks",
      type: "gauge",
      help: "Tasks in the queue directory, by stage.",
      samples: Stages.map((stage) => ({ labels: [["stage", stage]], value: snapshot.tasks[stage].length }))
    },
    single(
      "claude_failover_dispatches_total",
      "counter",
      "Tasks typed into a local session.",
      snapshot.dispatcher.dispatched
    ),
    {
      name: "claude_failover_headless_runs_total",
      type: "counter",
      help: "Headless runs that ended, by outcome.",
      samples: HeadlessOutcomes.map((outcome) => ({
        labels: [["outcome", outcome]],
        value: snapshot.headless.runs[outcome]
      }))
    },
    single(
      "claude_failover_headless_cost_usd_total",
      "counter",
      "Cost headless runs reported (total_cost_usd).",
      snapshot.headless.cost_usd
    ),
    single(
      "claude_failover_headless_turns_total",
      "counter",
      "Turns headless runs reported (num_turns).",
      snapshot.headless.turns
    ),
    single(
      "claude_failover_failovers_total",
      "counter",
      "Active tasks taken back from a usage-limited or exited session.",
      snapshot.dispatcher.failovers
    ),
    single(
      "claude_failover_malformed_tasks_total",
      "counter",
      "Task files that could not be parsed and went to failed/.",
      snapshot.dispatcher.malformed
    ),
    single("claude_failover_delegation_submitted_total", "counter", "Jobs secutools accepted.", counters.submitted),
    single(
      "claude_failover_delegation_completed_total",
      "counter",
      "Delegated jobs that completed.",
      counters.completed
    ),
    single(
      "claude_failover_delegation_failed_total",
      "counter",
      "Delegated jobs that failed or were cancelled.",
      counters.failed
    ),
    single("claude_failover_delegation_retries_total", "counter", "secutools requests retried.", counters.retries),
    single(
      "claude_failover_delegation_rejected_total",
      "counter",
      "Submissions that failed for good; the task went back to local routing.",
      counters.rejected
    ),
    single("claude_failover_delegation_active", "gauge", "Delegated tasks not finished yet.", counters.active),
    histogram(
      "claude_failover_reap_latency_seconds",
      "Seconds from a job's submission to its task being finished by the reaper.",
      snapshot.reapLatency
    ),
    {
      name: "claude_failover_sessions",
      type: "gauge",
      help: "Local sessions, by state.",
      samples: states.map((state) => ({
        labels: [["state", state]],
        value: snapshot.sessions.filter((s) => s.state === state).length
      }))
    },
    {
      name: "claude_failover_session_state",
      type: "gauge",
      help: "1 for the state each local session is in, 0 for the others.",
      // tmux session names are unique; the filter keeps a duplicate upstream from emitting a duplicate series.
      samples: snapshot.sessions.filter((s, i, all) => all.findIndex((o) => o.session === s.session) === i).flatMap((
        s
      ) =>
        states.map((state) => ({
          labels: [["session", s.session], ["state", state]],
          value: s.state === state ? 1 : 0
        }))
      )
    },
    {
      name: "claude_failover_host_heartbeat_age_seconds",
      type: "gauge",
      help: "Seconds since each host of a shared queue (PostgreSQL) renewed its leases.",
      samples: snapshot.hosts.map((h) => ({ labels: [["host", h.host]], value: h.heartbeat_age_s }))
    },
    {
      name: "claude_failover_host_leases",
      type: "gauge",
      help: "Running tasks leased to each host of a shared queue (PostgreSQL).",
      samples: snapshot.hosts.map((h) => ({ labels: [["host", h.host]], value: h.leases }))
    },
    {
      name: "claude_failover_host_jobs",
      type: "gauge",
      help: "Delegated jobs each host of a shared queue (PostgreSQL) submits and polls.",
      samples: snapshot.hosts.map((h) => ({ labels: [["host", h.host]], value: h.jobs }))
    },
    {
      name: "claude_failover_host_sessions",
      type: "gauge",
      help: "Sessions of each host of a shared queue (PostgreSQL) at its last heartbeat.",
      samples: snapshot.hosts.map((h) => ({ labels: [["host", h.host]], value: h.sessions.length }))
    },
    single(
      "claude_failover_stale_tasks",
      "gauge",
      "Active tasks whose pane has not changed for STALE_AFTER.",
      snapshot.stale.length
    )
  ]
  return `${families.map(renderFamily).join("\n")}\n`
}
