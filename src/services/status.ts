/**
 * One snapshot of everything an operator asks about: sessions, stale tasks, the queue by stage, delegated jobs and
 * the counters behind /metrics. Easy to get wrong: taking one lists every stage (done/ can hold thousands of names),
 * so the live layer shares each snapshot between the requests of a SNAPSHOT_TTL window instead of taking one per
 * request, and takes the next one while the current one is still served; and it parses only the frontmatter of
 * active and pending tasks (each file again only when it changed), never the done/ archive.
 */
import type { RunOutcome } from "../domain/headless.ts"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import type { Histogram } from "../domain/histogram.ts"
import { parseTask, type Task, type TaskFields, type TaskName } from "../domain/task.ts"
import { type Stage, Stages, stampOf, TaskStore } from "../ports/task-store.ts"
import { type ActiveJob, Delegation, type DelegationCounters } from "./delegation.ts"
import { SharedQueue } from "../ports/shared-queue.ts"
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

/** A host of the shared queue, as `GET /api/hosts` shows it. */
export interface HostView {
  readonly host: string
  readonly this: boolean
  readonly started_at: string
  readonly heartbeat_at: string
  readonly heartbeat_age_s: number
  readonly alive: boolean
  readonly leases: number
  /** Delegated jobs it reaps. */
  readonly jobs: number
  /** Its sessions at its last heartbeat. */
  readonly sessions: ReadonlyArray<{ readonly session: string; readonly state: string; readonly task: string | null }>
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
  /** The hosts of a queue shared on PostgreSQL; none with the file queue (or while the database cannot be read). */
  readonly hosts: ReadonlyArray<HostView>
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

/** Files looked at together for one snapshot. */
const READ_CONCURRENCY = 16

export const makeStatusReport = Effect.gen(function*() {
  const store = yield* TaskStore
  const dispatcher = yield* Dispatcher
  const delegation = yield* Delegation
  const shared = yield* Effect.serviceOption(SharedQueue)

  const hostsAt = (now: number): Effect.Effect<ReadonlyArray<HostView>> =>
    Option.match(shared, {
      onNone: () => Effect.succeed([]),
      onSome: (queue) =>
        queue.leases.hosts.pipe(
          Effect.map((hosts) =>
            hosts.map((h) => ({
              host: h.host,
              this: h.host === queue.host,
              started_at: iso(h.startedAt),
              heartbeat_at: iso(h.heartbeatAt),
              heartbeat_age_s: Math.max(0, Math.round((now - h.heartbeatAt) / 100) / 10),
              alive: now - h.heartbeatAt < Duration.toMillis(queue.leaseTtl),
              leases: h.leases,
              jobs: h.jobs,
              sessions: h.sessions
            }))
          ),
          Effect.orElseSucceed((): ReadonlyArray<HostView> => [])
        )
    })

  /**
   * Views of the files read for earlier snapshots (active tasks, pending ones not indexed yet), by stage and name,
   * with the identity, size and mtime of the file each was read from: a file that has not changed is not read again.
   */
  const readViews: Record<Stage, ReadonlyMap<TaskName, { readonly stamp: string; readonly view: TaskView }>> = {
    pending: new Map(),
    active: new Map(),
    done: new Map(),
    failed: new Map()
  }

  /** The views of `names` in `stage`, each file looked at (stat) and read only when it changed; gone files left out. */
  const readStage = (stage: Stage, names: ReadonlyArray<TaskName>) =>
    Effect.gen(function*() {
      const before = readViews[stage]
      const after = new Map<TaskName, { readonly stamp: string; readonly view: TaskView }>()
      yield* Effect.forEach(names, (task) =>
        Effect.gen(function*() {
          const stat = yield* store.stat(stage, task)
          const known = before.get(task)
          if (known !== undefined && known.stamp === stampOf(stat)) {
            after.set(task, known)
            return
          }
          const read = yield* store.read(stage, task)
          after.set(task, { stamp: stampOf(read), view: taskView(task, read.text) })
        }).pipe(Effect.ignore), { concurrency: READ_CONCURRENCY, discard: true })
      readViews[stage] = after
      return after
    })

  /**
   * Pending tasks the dispatcher has parsed come from its index, delegated ones from their markers (which hold the
   * job id: the file learns it only when the job ends); only the others (active and new ones) are looked at here.
   */
  const stage = (name: Stage, parsed: ReadonlyMap<TaskName, Task>, jobs: ReadonlyMap<TaskName, ActiveJob>) =>
    Effect.gen(function*() {
      const names = yield* store.list(name)
      if (name === "done" || name === "failed") return names.map((task): TaskView => ({ name: task, state: name }))
      const unknown = names.filter((task) => name !== "pending" || (!parsed.has(task) && !jobs.has(task)))
      const read = yield* readStage(name, unknown)
      const views: Array<TaskView> = []
      for (const task of names) {
        const known = name === "pending" ? parsed.get(task) : undefined
        if (known !== undefined) {
          views.push(viewOf(task, known.fields))
          continue
        }
        const job = name === "pending" ? jobs.get(task) : undefined
        if (job !== undefined) {
          views.push({
            name: task,
            state: "delegated_to_secutools",
            provider: job.provider,
            ...(job.job_id === null ? {} : { job_id: job.job_id })
          })
          continue
        }
        const view = read.get(task)?.view
        if (view !== undefined) views.push(view)
      }
      return views
    }).pipe(Effect.orElseSucceed((): ReadonlyArray<TaskView> => []))

  const snapshot = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const local = yield* dispatcher.status
    const delegated = yield* delegation.status
    const jobs = new Map(delegated.active.map((job) => [job.task, job]))
    const tasks = Object.fromEntries(
      yield* Effect.forEach(
        Stages,
        (name) => Effect.map(stage(name, local.pendingTasks, jobs), (views) => [name, views] as const),
        { concurrency: "unbounded" }
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
      reapLatency: delegated.reapLatency,
      hosts: yield* hostsAt(now)
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
 * A request in the last part of a snapshot's TTL (this long, or as long as the last snapshot took if that was longer)
 * starts taking the next one in the background and is answered from the current one, so under steady requests nobody
 * waits for the queue to be listed; past the TTL, callers wait.
 */
export const SNAPSHOT_REFRESH_AHEAD = Duration.millis(100)

/** A snapshot being taken, and how many callers wait for it. */
interface Taking {
  readonly result: Deferred.Deferred<Snapshot>
  fiber: Fiber.Fiber<void> | undefined
  waiters: number
  done: boolean
}

/**
 * `report` with its snapshot shared. Callers that ask while one is being taken wait for that one, and callers in
 * the `ttl` after it completes get it too; a caller in the last `refreshAhead` of that window (or the last time a
 * snapshot took, if longer) gets it as well, and starts taking the next one on a fiber of its own. A snapshot that
 * callers wait for is given up when every one of them has given up; one taken ahead runs to its end.
 */
export const sharedSnapshot = (ttl: Duration.Duration, refreshAhead: Duration.Duration = SNAPSHOT_REFRESH_AHEAD) =>
(
  report: StatusReport["Service"]
) =>
  Effect.sync(() => {
    const ttlMs = Duration.toMillis(ttl)
    const refreshAheadMs = Duration.toMillis(refreshAhead)
    /** How long the last snapshot took to take. */
    let tookMs = 0
    let latest: { readonly snapshot: Snapshot; readonly takenAt: number } | undefined
    let taking: Taking | undefined

    const start = Effect.suspend(() => {
      const run: Taking = { result: Deferred.makeUnsafe<Snapshot>(), fiber: undefined, waiters: 0, done: false }
      taking = run
      const take = Effect.gen(function*() {
        const startedAt = yield* Clock.currentTimeMillis
        const exit = yield* Effect.exit(report.snapshot)
        const now = yield* Clock.currentTimeMillis
        run.done = true
        // A run given up (or replaced) publishes nothing.
        if (taking === run) {
          taking = undefined
          if (Exit.isSuccess(exit)) {
            latest = { snapshot: exit.value, takenAt: now }
            tookMs = now - startedAt
          }
        }
        yield* Deferred.done(run.result, exit)
      })
      // Started at once, so that the caller that starts it has it under way when it yields.
      return Effect.map(Effect.forkDetach(take, { startImmediately: true }), (fiber) => {
        run.fiber = fiber
        return run
      })
    })

    const join = (run: Taking) => {
      let joined = false
      return Effect.suspend(() => {
        joined = true
        run.waiters++
        return Deferred.await(run.result)
      }).pipe(Effect.onExit(() => {
        if (!joined) return Effect.void
        run.waiters--
        if (run.waiters > 0 || run.done || run.fiber === undefined) return Effect.void
        // The last caller waiting for it gave up: nobody wants this snapshot any more.
        if (taking === run) taking = undefined
        return Effect.asVoid(Effect.forkDetach(Fiber.interrupt(run.fiber)))
      }))
    }

    const snapshot = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const age = latest === undefined ? Infinity : now - latest.takenAt
      if (latest !== undefined && age < ttlMs) {
        const refreshAtMs = ttlMs - Math.max(refreshAheadMs, tookMs)
        return age >= refreshAtMs && taking === undefined
          ? Effect.as(start, latest.snapshot)
          : Effect.succeed(latest.snapshot)
      }
      return taking === undefined ? Effect.flatMap(start, join) : join(taking)
    })
    return StatusReport.of({ snapshot })
  })

/** The live StatusReport: `makeStatusReport` with its snapshot shared for SNAPSHOT_TTL. */
export const StatusReportLayer = Layer.effect(
  StatusReport,
  Effect.flatMap(makeStatusReport, sharedSnapshot(SNAPSHOT_TTL))
)
