/**
 * One snapshot of everything an operator asks about: sessions, stale tasks, the queue by stage, delegated jobs and
 * the counters behind /metrics. Easy to get wrong: taking one lists every stage (done/ can hold thousands of names),
 * so the live layer shares each snapshot between the requests of a SNAPSHOT_TTL window instead of taking one per
 * request; and it parses only the frontmatter of active and pending tasks, never the done/ archive.
 */
import type { RunOutcome } from "../domain/headless.ts"
import { Clock, Context, Duration, Effect, Layer, Option, Result } from "effect"
import type { Histogram } from "../domain/histogram.ts"
import { parseTask, type Task, type TaskFields, type TaskName } from "../domain/task.ts"
import { type Stage, Stages, TaskStore } from "../ports/task-store.ts"
import { type ActiveJob, Delegation, type DelegationCounters } from "./delegation.ts"
import { Dispatcher } from "./dispatcher.ts"

export interface SessionView {
  readonly session: string
  /** idle | busy | permission_prompt | usage_limited | exited | unknown | missing */
  readonly state: string
  readonly account: string
  readonly task: string | null
  /** ISO instant until which the session's account rests after a usage limit, or null. */
  readonly cooldown_until: string | null
  /** Where the state came from: the session's hooks, or its screen. */
  readonly signal: "hook" | "pane" | "process"
}

export interface StaleView {
  readonly task: string
  readonly session: string
  readonly unchanged_for_s: number
}

/** An active task waiting in its session for the usage limit to reset (limit policy `wait`). */
export interface WaitingView {
  readonly task: string
  readonly session: string
  /** The reset (ISO): the session goes on after it. */
  readonly until: string
  /** Who continues the turn: Claude Code by itself, or the daemon typing "continue". */
  readonly continues: "claude-code" | "daemon"
}

export interface TaskView {
  readonly name: string
  readonly state: string
  readonly session?: string
  readonly provider?: string
  readonly job_id?: string
  readonly attempts?: number
}

/** An ended headless run (the latest ones), as the status API lists it. */
export interface HeadlessRunView {
  readonly task: string
  readonly run: string
  readonly slot: string
  /** finished | limited | needs_person | api_error | fault */
  readonly outcome: HeadlessOutcome
  readonly detail: string
  readonly ended_at: string
  readonly claude_session: string | null
  readonly cost_usd: number | null
  readonly turns: number | null
  readonly duration_ms: number | null
  /** Relative to the queue directory. */
  readonly transcript: string
}

export const HeadlessOutcomes = ["finished", "limited", "needs_person", "api_error", "fault"] as const
export type HeadlessOutcome = (typeof HeadlessOutcomes)[number]

const outcomeName: Record<RunOutcome["_tag"], HeadlessOutcome> = {
  Finished: "finished",
  Limited: "limited",
  NeedsPerson: "needs_person",
  ApiError: "api_error",
  Fault: "fault"
}

export interface Snapshot {
  /** When the snapshot was taken (ISO). */
  readonly at: string
  readonly sessions: ReadonlyArray<SessionView>
  readonly stale: ReadonlyArray<StaleView>
  readonly waiting: ReadonlyArray<WaitingView>
  readonly attention: ReadonlyArray<{ readonly session: string; readonly reason: string }>
  /** Tasks per stage, in name order (the store's). done/ and failed/ entries carry their names only. */
  readonly tasks: Readonly<Record<Stage, ReadonlyArray<TaskView>>>
  readonly dispatcher: { readonly dispatched: number; readonly failovers: number; readonly malformed: number }
  /** Headless runs: the latest ended ones, newest last, and totals since the daemon started. */
  readonly headless: {
    readonly recent: ReadonlyArray<HeadlessRunView>
    readonly runs: Readonly<Record<HeadlessOutcome, number>>
    readonly cost_usd: number
    readonly turns: number
  }
  readonly delegation: {
    readonly active: ReadonlyArray<ActiveJob>
    readonly counters: DelegationCounters & { readonly active: number }
  }
  /** Seconds each delegated job took from submission to its task being finished by the reaper. */
  readonly reapLatency: Histogram
}

export class StatusReport extends Context.Service<StatusReport, {
  readonly snapshot: Effect.Effect<Snapshot>
}>()("claude-failover/services/StatusReport") {}

const iso = (ms: number) => new Date(ms).toISOString()

const viewOf = (name: TaskName, fields: TaskFields): TaskView => ({
  name,
  state: fields.state ?? "pending",
  ...(fields.session === undefined ? {} : { session: fields.session }),
  ...(fields.provider === undefined ? {} : { provider: fields.provider }),
  ...(fields.job_id === undefined ? {} : { job_id: fields.job_id }),
  ...(fields.attempts === undefined ? {} : { attempts: fields.attempts })
})

const taskView = (name: TaskName, text: string): TaskView =>
  Result.match(parseTask(name, text), {
    onFailure: (): TaskView => ({ name, state: "unparsable" }),
    onSuccess: ({ fields }) => viewOf(name, fields)
  })

export const makeStatusReport = Effect.gen(function*() {
  const store = yield* TaskStore
  const dispatcher = yield* Dispatcher
  const delegation = yield* Delegation

  /** Pending tasks the dispatcher has parsed come from its index; only the others (new, delegated) are read here. */
  const stage = (name: Stage, parsed: ReadonlyMap<TaskName, Task>) =>
    Effect.gen(function*() {
      const names = yield* store.list(name)
      if (name === "done" || name === "failed") return names.map((task): TaskView => ({ name: task, state: name }))
      const views: Array<TaskView> = []
      for (const task of names) {
        const known = name === "pending" ? parsed.get(task) : undefined
        if (known !== undefined) {
          views.push(viewOf(task, known.fields))
          continue
        }
        const read = yield* Effect.result(store.read(name, task))
        if (Result.isSuccess(read)) views.push(taskView(task, read.success.text))
      }
      return views
    }).pipe(Effect.orElseSucceed((): ReadonlyArray<TaskView> => []))

  const snapshot = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const local = yield* dispatcher.status
    const delegated = yield* delegation.status
    const tasks = Object.fromEntries(
      yield* Effect.forEach(
        Stages,
        (name) => Effect.map(stage(name, local.pendingTasks), (views) => [name, views] as const)
      )
    ) as Record<Stage, ReadonlyArray<TaskView>>
    const ended = (outcome: RunOutcome["_tag"]) => local.headless.runs.get(outcome) ?? 0
    return {
      at: iso(now),
      sessions: local.sessions.map((s) => ({
        session: s.session,
        state: s.state,
        account: s.account,
        task: Option.getOrNull(s.task),
        cooldown_until: Option.match(s.cooldownUntil, { onNone: () => null, onSome: iso }),
        signal: s.signal
      })),
      stale: local.stale.map((s) => ({
        task: s.task,
        session: s.session,
        unchanged_for_s: Math.round(s.unchangedForMs / 1000)
      })),
      waiting: local.waiting.map((w) => ({
        task: w.task,
        session: w.session,
        until: iso(w.until),
        continues: w.auto ? "claude-code" as const : "daemon" as const
      })),
      attention: local.attention,
      tasks,
      dispatcher: local.counters,
      headless: {
        recent: local.headless.recent.map((r) => ({
          task: r.task,
          run: r.run,
          slot: r.slot,
          outcome: outcomeName[r.outcome],
          detail: r.detail,
          ended_at: iso(r.endedAt),
          claude_session: Option.getOrNull(r.claudeSession),
          cost_usd: Option.getOrNull(r.costUsd),
          turns: Option.getOrNull(r.turns),
          duration_ms: Option.getOrNull(r.durationMs),
          transcript: r.transcript
        })),
        runs: {
          finished: ended("Finished"),
          limited: ended("Limited"),
          needs_person: ended("NeedsPerson"),
          api_error: ended("ApiError"),
          fault: ended("Fault")
        },
        cost_usd: local.headless.costUsd,
        turns: local.headless.turns
      },
      delegation: { active: delegated.active, counters: delegated.counters },
      reapLatency: delegated.reapLatency
    } satisfies Snapshot
  })

  return StatusReport.of({ snapshot })
})

/**
 * How long a snapshot is reused after it is taken. 500 concurrent requests then list the queue once, not 500 times,
 * and an answer is never more than this out of date.
 */
export const SNAPSHOT_TTL = Duration.millis(250)

/**
 * `report` with its snapshot shared. Callers that ask while one is being taken wait for that one, and callers in
 * the `ttl` after it completes get it too. It is taken again only when every waiting caller has given up.
 */
export const sharedSnapshot = (ttl: Duration.Duration) => (report: StatusReport["Service"]) =>
  Effect.map(Effect.cachedWithTTL(report.snapshot, ttl), (snapshot) => StatusReport.of({ snapshot }))

/** The live StatusReport: `makeStatusReport` with its snapshot shared for SNAPSHOT_TTL. */
export const StatusReportLayer = Layer.effect(
  StatusReport,
  Effect.flatMap(makeStatusReport, sharedSnapshot(SNAPSHOT_TTL))
)
