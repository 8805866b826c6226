/**
 * The footers appended to a task's body when it reaches `done/` or `failed/`.
 * Easy to get wrong: a footer only appends; it never edits what the operator or the agent wrote above it.
 */
import * as Data from "effect/Data"

/** What a headless run reported of itself: its Claude Code session, cost, turns, and where its transcript is. */
export interface HeadlessFacts {
  readonly claudeSession?: string
  readonly costUsd?: number
  readonly turns?: number
  readonly transcript?: string
}

/** Who ran the task: a local session (with a headless run's facts) or a secutools job. */
export type Runner =
  | {
    readonly _tag: "Session"
    readonly session: string
    /** On a queue shared by several hosts: the session's host. */
    readonly host?: string | undefined
    readonly headless?: HeadlessFacts
  }
  | { readonly _tag: "Job"; readonly provider: string; readonly jobId: string; readonly costUsd?: number }

export type Outcome = Data.TaggedEnum<{
  Done: { readonly at: string; readonly runner: Runner; readonly durationMs?: number; readonly summary?: string }
  Failed: { readonly at: string; readonly runner?: Runner; readonly durationMs?: number; readonly reason: string }
}>
export const Outcome = Data.taggedEnum<Outcome>()

/** `850ms`, `41s`, `3m 12s`, `2h 5m`: precise enough to read at a glance. */
export const formatDuration = (ms: number): string => {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`
  const totalSeconds = Math.round(ms / 1000)
  const hours = Math.floor(totalSeconds / 3600)
  const minutes = Math.floor((totalSeconds % 3600) / 60)
  const seconds = totalSeconds % 60
  if (hours > 0) return `${hours}h ${minutes}m`
  if (minutes > 0) return `${minutes}m ${seconds}s`
  return `${seconds}s`
}

/** Dollars with enough digits for sub-cent jobs: `$0.0042`, `$1.25`. */
export const formatCost = (usd: number): string =>
  `$${usd >= 1 ? usd.toFixed(2) : Number(usd.toPrecision(2)).toString()}`

/** `claude session 4387… · cost $0.0123 · 2 turns · transcript transcripts/x.md.r1.jsonl` */
export const describeHeadless = (facts: HeadlessFacts): ReadonlyArray<string> => [
  ...(facts.claudeSession === undefined ? [] : [`claude session ${facts.claudeSession}`]),
  ...(facts.costUsd === undefined ? [] : [`cost ${formatCost(facts.costUsd)}`]),
  ...(facts.turns === undefined ? [] : [`${facts.turns} turn${facts.turns === 1 ? "" : "s"}`]),
  ...(facts.transcript === undefined ? [] : [`transcript ${facts.transcript}`])
]

/** A run's session, with its host on a queue shared by several hosts (session names repeat there): `claude-1 on box-2`. */
export const sessionOnHost = (session: string, host: string | undefined): string =>
  host === undefined ? session : `${session} on ${host}`

const describeRunner = (runner: Runner): ReadonlyArray<string> =>
  runner._tag === "Session"
    ? [
      `session ${sessionOnHost(runner.session, runner.host)}`,
      ...(runner.headless === undefined ? [] : describeHeadless(runner.headless))
    ]
    : [
      `provider ${runner.provider}`,
      `job ${runner.jobId}`,
      ...(runner.costUsd === undefined ? [] : [`cost ${formatCost(runner.costUsd)}`])
    ]

/** The last footer `renderFooter` appended: `claude-failover: done · AT · session x · took 3s`, then its detail line. */
const FOOTER = /\n---\nclaude-failover: (done|failed) · [^·\n]+(?: · ([^\n]*))?\n(?:\n(?:Reason: )?([^\n]*))?/g

export interface ReadFooter {
  readonly outcome: "done" | "failed"
  /** What follows the time: who ran it and how long it took (`session claude-1 · took 41s`). */
  readonly facts?: string
  /** A failure's `Reason:` line. */
  readonly reason?: string
}

/** The last footer of a body, as `renderFooter` wrote it; undefined when there is none. */
export const readFooter = (body: string): ReadFooter | undefined => {
  const last = [...body.matchAll(FOOTER)].at(-1)
  if (last === undefined) return undefined
  const reason = last[0].includes("\nReason: ") ? last[3] : undefined
  return {
    outcome: last[1] === "done" ? "done" : "failed",
    ...(last[2] === undefined || last[2] === "" ? {} : { facts: last[2] }),
    ...(reason === undefined || reason === "" ? {} : { reason })
  }
}

/** A block that starts on a fresh line, so it appends cleanly whatever the body ended with. */
export const renderFooter = (outcome: Outcome): string => {
  const facts = [
    `claude-failover: ${outcome._tag === "Done" ? "done" : "failed"}`,
    outcome.at,
    ...(outcome.runner === undefined ? [] : describeRunner(outcome.runner)),
    ...(outcome.durationMs === undefined ? [] : [`took ${formatDuration(outcome.durationMs)}`])
  ]
  const detail = outcome._tag === "Done"
    ? (outcome.summary === undefined ? [] : ["", outcome.summary])
    : ["", `Reason: ${outcome.reason}`]
  return ["", "", "---", facts.join(" · "), ...detail, ""].join("\n")
}

/** The result a delegated job returned, under a heading, then its footer. */
export const renderResult = (provider: string, result: string): string =>
  ["", "", `## Result (${provider})`, "", result.trimEnd()].join("\n")

const FOOTER_START = "\n\n---\nclaude-failover: "

/**
 * The body as the operator wrote it: the daemon's last footer (and the result block of `provider` right above it)
 * removed, for a task that runs again. A body without a footer is returned unchanged.
 */
export const stripAppended = (body: string, provider?: string): string => {
  const footer = body.lastIndexOf(FOOTER_START)
  if (footer < 0 || !/^claude-failover: (?:done|failed) · /.test(body.slice(footer + 6))) return body
  const above = body.slice(0, footer)
  const result = provider === undefined ? -1 : above.lastIndexOf(`\n\n## Result (${provider})\n\n`)
  return result < 0 ? above : above.slice(0, result)
}
