/**
 * Delegation to secutools: a write-ahead marker, then the submission, then the reaper's polls until the job ends.
 * Easy to get wrong: the marker (with its idempotency key and run) is on disk before anything is sent, and every
 * resume sends the same key again, so a crash at any point yields at most one job per task; and a submission whose
 * answer may have been lost (network error, timeout, 5xx after every retry) never sends the task to run locally —
 * the job may exist — it is asked again later with the same key.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import * as Semaphore from "effect/Semaphore"
import { emptyHistogram, type Histogram, observe, REAP_LATENCY_BOUNDS } from "../domain/histogram.ts"
import { newRunId, TaskEvent } from "../domain/lifecycle.ts"
import type { DelegationMarker } from "../domain/marker.ts"
import type { Provider } from "../domain/provider.ts"
import type { Task, TaskName } from "../domain/task.ts"
import { formatDuration, Outcome, renderFooter } from "../domain/footer.ts"
import { Secutools, type SecutoolsError } from "../ports/secutools.ts"
import { isResourceError, type StoreError, TaskStore } from "../ports/task-store.ts"
import { failpoint } from "./failpoints.ts"
import { type MarkerBook, reapJob } from "./reaper.ts"
import { TaskLocks } from "./task-locks.ts"
import { applyEvent, nowIso, readTask, type TaskMoveError } from "./task-moves.ts"

export interface DelegationSettings {
  readonly reapInterval: Duration.Duration
  readonly reapConcurrency: number
  /** A job still queued or running this long after submission fails; so does a submission unanswered this long. */
  readonly jobTimeout: Duration.Duration
  /**
   * Whether this daemon submits and polls jobs (delegation is on); without, delegated tasks only wait. Default true.
   */
  readonly reaps?: boolean
  /**
   * The queue is shared with other hosts: a job is reaped by one host at a time (the store's `claimMarker`), and a
   * host that does not reap leaves other hosts' jobs to them. Default false.
   */
  readonly sharedQueue?: boolean
}

export interface DelegationCounters {
  /** Jobs secutools accepted. */
  submitted: number
  completed: number
  failed: number
  /** Requests retried after a retryable failure (counted by the adapter's retry hook). */
  retries: number
  /** Submissions that failed for good: the task went back to local routing. */
  rejected: number
}

export interface ActiveJob {
  readonly task: TaskName
  readonly provider: Provider
  readonly state: DelegationMarker["state"]
  readonly job_id: string | null
  readonly created_at: string
  readonly submitted_at: string | null
  readonly polls: number
}

export interface DelegationStatus {
  readonly active: ReadonlyArray<ActiveJob>
  readonly counters: DelegationCounters & { readonly active: number }
  readonly reapLatency: Histogram
}

/** The counters, shared with the secutools adapter's retry hook; one per daemon. */
export class DelegationCountersRef extends Context.Service<DelegationCountersRef, DelegationCounters>()(
  "claude-failover/services/DelegationCounters"
) {
  static readonly layer = Layer.sync(DelegationCountersRef, () => ({
    submitted: 0,
    completed: 0,
    failed: 0,
    retries: 0,
    rejected: 0
  }))
}

export class Delegation extends Context.Service<Delegation, {
  /** Writes the marker and the task's `delegated_to_secutools` state; the submission follows on another fiber. */
  start(task: Task, provider: Provider, reason: string): Effect.Effect<void, TaskMoveError>
  /** Start-up, after recovery: reads the markers; `submitting` ones are submitted again with their key (at their retry
   * time), `submitted` ones polled. */
  readonly resume: Effect.Effect<void, StoreError>
  /** Start-up without delegation: reads the markers only, so status and intake know which tasks are delegated. */
  readonly load: Effect.Effect<ReadonlyArray<TaskName>, StoreError>
  /** Whether the task has a marker (it is delegated, or being delegated, here or by another host). */
  isDelegated(name: TaskName): boolean
  /**
   * On a shared queue, other hosts' jobs as last found: those a live host reaps are not this host's to route (and no
   * longer this host's to poll, if it had them); those nobody reaps are taken on here when this host reaps.
   */
  otherHosts(jobs: {
    readonly reaped: ReadonlyArray<TaskName>
    readonly free: ReadonlyArray<TaskName>
  }): Effect.Effect<void>
  /**
   * A marker that appeared on disk while the daemon runs (a delegated task copied in with it): read and taken on
   * like one found at start-up — submitted again with its key, or polled, when delegation is on.
   */
  adopt(name: TaskName): Effect.Effect<void>
  /** Submits whatever waits, with the reaper polling every REAP_INTERVAL; forever. */
  readonly run: Effect.Effect<never>
  readonly status: Effect.Effect<DelegationStatus>
}>()("claude-failover/services/Delegation") {}

/** Submissions in flight at once: a restart on thousands of unsubmitted markers is bound by round trips, not CPU. */
const SUBMIT_CONCURRENCY = 16
/** Tasks named in the start-up line about resubmissions; the rest are counted. */
const RESUBMITS_NAMED = 10
/** Waits between submissions whose answer may have been lost: 30 s, doubling, at most 5 min. */
const RESUBMIT_FIRST_MS = 30_000
const RESUBMIT_MAX_MS = 5 * 60_000

const stemOf = (name: TaskName) => name.slice(0, -".md".length)

/** Failures after which secutools certainly holds no job for the key: the request was refused as it stood. */
const definitelyRefused = (error: SecutoolsError): boolean => error.reason._tag === "Status" && !error.retryable

export const makeDelegation = (settings: DelegationSettings) =>
  Effect.gen(function*() {
    const store = yield* TaskStore
    const secutools = yield* Secutools
    const locks = yield* TaskLocks
    const counters = yield* DelegationCountersRef
    const ports = yield* Effect.context<TaskStore | Secutools | TaskLocks>()
    const submissions = yield* Queue.unbounded<TaskName>()
    const reaps = settings.reaps ?? true
    const sharedQueue = settings.sharedQueue ?? false
    /** On a shared queue: tasks whose jobs other live hosts reap. */
    let reapedElsewhere: ReadonlySet<TaskName> = new Set()
    /**
     * Every marker this daemon reaps, by task: read once at start-up (`load`), then changed only here, each write
     * mirrored. The daemon holds the queue's lock, so nobody else writes them while it runs (on a shared queue, another
     * host takes one over only once this host's heartbeat has stopped); listing and reading them every reaper round
     * cost a read per job per round.
     */
    const known = new Map<TaskName, DelegationMarker>()
    /** Tasks `start` just delegated, as written: their submission need not read the file again. */
    const startedTasks = new Map<TaskName, Task>()
    /** A marker for `known`: taken on when this daemon reaps (on a shared queue, none if another host reaps it). */
    const markerToKeep = (name: TaskName) => reaps ? store.claimMarker(name) : store.readMarker(name)
    const keep = (name: TaskName, marker: DelegationMarker) =>
      Effect.andThen(store.writeMarker(name, marker), Effect.sync(() => known.set(name, marker)))
    const drop = (name: TaskName) => Effect.andThen(store.removeMarker(name), Effect.sync(() => known.delete(name)))
    let reapLatency = emptyHistogram(REAP_LATENCY_BOUNDS)
    const onFinished = (seconds: number) => {
      reapLatency = observe(reapLatency, seconds)
    }

    /** The task as secutools will see it; `pending` means a crash came between the marker and this state. */
    const ensureDelegated = Effect.fn("Delegation.ensureDelegated")(
      function*(name: TaskName, marker: DelegationMarker) {
        const { task } = yield* readTask("pending", name)
        if (task.fields.state !== undefined && task.fields.state !== "pending") return task
        const applied = yield* applyEvent(
          "pending",
          name,
          TaskEvent.Delegate({
            provider: marker.provider,
            at: marker.created_at,
            run: marker.run ?? newRunId()
          })
        )
        return applied.task
      }
    )

    /** A submission refused for good: back to local routing, for good, with the reason in the task's history. */
    const reject = Effect.fn("Delegation.reject")(
      function*(name: TaskName, marker: DelegationMarker, error: SecutoolsError) {
        const reason = `delegation to ${marker.provider} failed: ${error.message}; runs locally`
        const at = yield* nowIso
        // One change on a shared queue: no host sees the task routable while its marker is still there.
        yield* store.atomically(Effect.andThen(
          applyEvent(
            "pending",
            name,
            TaskEvent.Requeue({ at, cause: "delegation_rejected", reason }),
            {
              // allow_delegation: false pins the task to routing rule 3, so it is not sent to secutools again.
              adjust: (fields) => ({ ...fields, allow_delegation: false })
            }
          ),
          store.removeMarker(name)
        ))
        known.delete(name)
        counters.rejected++
        yield* Effect.logWarning(`${name} back to local routing: ${reason}`).pipe(
          Effect.annotateLogs({ task: name, provider: marker.provider })
        )
      }
    )

    /** No definite answer for too long: failed/, not local — the job may exist at secutools. */
    const giveUp = Effect.fn("Delegation.giveUp")(
      function*(name: TaskName, marker: DelegationMarker, error: SecutoolsError) {
        const at = yield* nowIso
        const reason =
          `no definite answer from secutools ${marker.provider} within ${Duration.format(settings.jobTimeout)} ` +
          `(last: ${error.message}); a job may exist under idempotency key ${marker.idempotency_key}, so it does not run locally`
        yield* store.atomically(Effect.andThen(
          applyEvent("pending", name, TaskEvent.Fail({ at }), {
            footer: () => renderFooter(Outcome.Failed({ at, reason }))
          }),
          store.removeMarker(name)
        ))
        known.delete(name)
        counters.failed++
        yield* Effect.logError(`${name} failed: ${reason}`).pipe(
          Effect.annotateLogs({ task: name, provider: marker.provider })
        )
      }
    )

    /** The answer may have been lost: keep the marker and its key, and ask again later. */
    const defer = Effect.fn("Delegation.defer")(
      function*(name: TaskName, marker: DelegationMarker, error: SecutoolsError) {
        const now = yield* Clock.currentTimeMillis
        if (now - Date.parse(marker.created_at) > Duration.toMillis(settings.jobTimeout))
          return yield* giveUp(name, marker, error)
        const attempts = (marker.submit_attempts ?? 0) + 1
        const delayMs = Math.min(RESUBMIT_MAX_MS, RESUBMIT_FIRST_MS * 2 ** (attempts - 1))
        const retryAt = new Date(now + delayMs).toISOString()
        yield* keep(name, {
          ...marker,
          submit_attempts: attempts,
          retry_at: retryAt,
          last_error: error.message
        })
        yield* Effect.logWarning(
          `${name}: submitting to ${marker.provider} got no definite answer (${error.message}); the job may exist, so it is ` +
            `asked again with the same key at ${retryAt}`
        ).pipe(Effect.annotateLogs({ task: name, provider: marker.provider }))
        yield* schedule(name, delayMs)
      }
    )

    const schedule = (name: TaskName, delayMs: number) =>
      Effect.asVoid(
        Effect.forkDetach(Effect.andThen(Effect.sleep(Duration.millis(delayMs)), Queue.offer(submissions, name)))
      )

    const submit = Effect.fn("Delegation.submit")(function*(name: TaskName) {
      const marker = known.get(name)
      const started = startedTasks.get(name)
      startedTasks.delete(name)
      if (marker === undefined || marker.state !== "submitting") return
      const now = yield* Clock.currentTimeMillis
      const due = marker.retry_at === undefined || marker.retry_at === null ? now : Date.parse(marker.retry_at)
      if (due > now) return yield* schedule(name, due - now)
      const task = started ?? (yield* locks.withTask(name, ensureDelegated(name, marker)))
      const request = {
        task_id: task.fields.id ?? stemOf(name),
        provider: marker.provider,
        prompt: task.body,
        ...(task.fields.complexity_hint === undefined ? {} : { complexity_hint: task.fields.complexity_hint }),
        metadata: {
          task: name,
          attempt: String(task.fields.attempts ?? 1),
          ...(marker.run === undefined ? {} : { run: marker.run })
        }
      }
      const submitted = yield* Effect.result(secutools.submit(request, marker.idempotency_key))
      if (Result.isFailure(submitted)) {
        const error = submitted.failure
        return yield* locks.withTask(
          name,
          definitelyRefused(error) ? reject(name, marker, error) : defer(name, marker, error)
        )
      }
      yield* failpoint("submit:accepted")
      const jobId = submitted.success.job_id
      // Only the marker records the job: the task file gets its job_id when the reaper finishes it (one write fewer
      // per task; a crash before the marker is written resubmits with the same key and gets the same job).
      yield* locks.withTask(
        name,
        Effect.gen(function*() {
          yield* keep(name, {
            ...marker,
            state: "submitted",
            job_id: jobId,
            submitted_at: yield* nowIso,
            retry_at: null,
            last_error: null
          })
          yield* failpoint("submit:marker")
        })
      )
      counters.submitted++
      yield* Effect.logInfo(`${name} submitted to secutools ${marker.provider} as job ${jobId}`).pipe(
        Effect.annotateLogs({ task: name, provider: marker.provider, job: jobId })
      )
    }, (effect, name) =>
      Effect.catch(effect, (error) => {
        if (error._tag === "TaskNotFound") {
          // The task left pending/, or (on a shared queue) another host reaps its job now: not this daemon's to submit.
          known.delete(name)
          return Effect.logInfo(
            `${name}: not submitted from here: ${sharedQueue ? "another host reaps its job, or " : ""}it left pending/`
          ).pipe(Effect.annotateLogs({ task: name }))
        }
        if (isResourceError(error)) {
          // The queue cannot be written for now (disk full, database down): the same key is sent again later.
          return Effect.andThen(
            Effect.logWarning(
              `submitting ${name}: ${error.message}; tried again in ${formatDuration(RESUBMIT_FIRST_MS)}, same key`
            ).pipe(Effect.annotateLogs({ task: name })),
            schedule(name, RESUBMIT_FIRST_MS)
          )
        }
        return Effect.logError(`submitting ${name} failed: ${error.message}; retried at the next start-up`).pipe(
          Effect.annotateLogs({ task: name })
        )
      }))

    const start = Effect.fn("Delegation.start")(function*(task: Task, provider: Provider, reason: string) {
      const at = yield* nowIso
      const run = newRunId()
      const marker: DelegationMarker = {
        task: task.name,
        provider,
        run,
        idempotency_key: `${stemOf(task.name)}-${crypto.randomUUID()}`,
        state: "submitting",
        job_id: null,
        created_at: at,
        submitted_at: null,
        polls: 0
      }
      // Marker first (write-ahead), then the task's state. On a shared queue the two are one transaction, and the
      // marker is a claim: of two hosts delegating the same task, the second finds it taken (TaskNotFound) and writes
      // nothing. A task that cannot take its new state keeps no marker.
      const applied = yield* store.atomically(Effect.gen(function*() {
        yield* store.writeMarker(task.name, marker)
        yield* failpoint("delegate:marker")
        return yield* applyEvent("pending", task.name, TaskEvent.Delegate({ provider, at, run })).pipe(
          Effect.tapError(() => Effect.ignore(store.removeMarker(task.name)))
        )
      }))
      known.set(task.name, marker)
      yield* failpoint("delegate:written")
      startedTasks.set(task.name, applied.task)
      yield* Effect.logInfo(`${task.name} → secutools ${provider} (${reason})`).pipe(
        Effect.annotateLogs({ task: task.name, provider, run })
      )
      yield* Queue.offer(submissions, task.name)
    }, Effect.provideContext(ports))

    /** Reads every marker on disk into `known`; an unreadable one is said once and left (a restart fails its task). */
    const load = Effect.gen(function*() {
      known.clear()
      // Without secutools, a host of a shared queue holds no job: those it reaped before pass to other hosts.
      if (sharedQueue && !reaps) return []
      const names = yield* store.listMarkers()
      // Read 16 at a time, kept in their listed order. Taken on, when this daemon reaps: on a shared queue, another
      // host may have taken one over while this one was down (it is then that host's: none here).
      const markers = yield* Effect.forEach(
        names,
        (name) => Effect.map(Effect.result(markerToKeep(name)), (marker) => [name, marker] as const),
        { concurrency: 16 }
      )
      for (const [name, marker] of markers) {
        if (Result.isFailure(marker)) {
          yield* Effect.logError(
            `cannot read the delegation marker of ${name}: ${marker.failure.message}; ${name} waits (a restart fails it)`
          )
          continue
        }
        if (Option.isSome(marker.success))
          known.set(name, marker.success.value)
      }
      return [...known.keys()]
    })

    const resume = Effect.gen(function*() {
      yield* load
      const again = [...known].filter(([, marker]) => marker.state === "submitting").map(([name]) => name)
      if (again.length > 0) {
        const named = again.slice(0, RESUBMITS_NAMED).join(", ")
        const more = again.length > RESUBMITS_NAMED ? ` and ${again.length - RESUBMITS_NAMED} more` : ""
        yield* Effect.logInfo(
          `submitting again with the same idempotency keys (a job already made is answered, not made twice): ${named}${more}`
        )
      }
      for (const name of again) yield* Queue.offer(submissions, name)
    })

    /** The reaper's view of the markers: it counts polls (in memory: a count is not worth a disk write per poll). */
    const book: MarkerBook = {
      polled: (name, jobId) => {
        const current = known.get(name)
        if (current?.state === "submitted" && current.job_id === jobId)
          known.set(name, { ...current, polls: current.polls + 1 })
      },
      remove: drop
    }

    // Jobs are polled REAP_CONCURRENCY at a time (the permits are shared by overlapping rounds): one job waiting out a
    // Retry-After does not hold back the others, and a job still being polled is not polled again by the next round.
    const polling = new Set<TaskName>()
    const permits = yield* Semaphore.make(settings.reapConcurrency)
    const reapOne = (name: TaskName, marker: DelegationMarker) =>
      reapJob(name, marker, { jobTimeout: settings.jobTimeout, counters, onFinished, markers: book }).pipe(
        Effect.catchTag("TaskNotFound", () =>
          locks.withTask(
            name,
            Effect.andThen(
              drop(name),
              Effect.logWarning(`removed the delegation marker of ${name}: its task left pending/`)
            )
          )),
        Effect.catch((error) => Effect.logError(`polling ${name} failed: ${error.message}`)),
        permits.withPermit,
        Effect.ensuring(Effect.sync(() => polling.delete(name))),
        Effect.provideContext(ports)
      )
    // A round is REAP_CONCURRENCY workers going through the jobs not already being polled, on a fiber of its own: a
    // fiber per job waiting on the permits would cost a round over 10,000 jobs time quadratic in their number.
    const reapOnce = Effect.suspend(() => {
      const due: Array<readonly [TaskName, DelegationMarker]> = []
      for (const [name, marker] of known) {
        if (marker.state !== "submitted" || polling.has(name)) continue
        polling.add(name)
        due.push([name, marker])
      }
      return Effect.forkChild(
        Effect.forEach(due, ([name, marker]) => reapOne(name, marker), {
          concurrency: settings.reapConcurrency,
          discard: true
        })
      )
    })

    const submitter = Effect.forever(
      Effect.flatMap(Queue.take(submissions), (name) => submit(name).pipe(Effect.provideContext(ports)))
    )
    const reaper = Effect.forever(Effect.andThen(reapOnce, Effect.sleep(settings.reapInterval)))
    const run = Effect.all([...Array.from({ length: SUBMIT_CONCURRENCY }, () => submitter), reaper], {
      concurrency: "unbounded"
    }).pipe(Effect.andThen(Effect.never))

    const status = Effect.sync(() => {
      const active = [...known]
      return {
        active: active.map(([name, marker]) => ({
          task: name,
          provider: marker.provider,
          state: marker.state,
          job_id: marker.job_id,
          created_at: marker.created_at,
          submitted_at: marker.submitted_at,
          polls: marker.polls
        })),
        counters: { ...counters, active: active.length },
        reapLatency
      }
    })

    /** Markers found unreadable by `adopt`: said once (a restart fails their task). */
    const unreadableSaid = new Set<TaskName>()
    const adopt = (name: TaskName) =>
      Effect.gen(function*() {
        if (known.has(name)) return
        // On a shared queue, a host without secutools leaves every job to the hosts that have it.
        if (sharedQueue && !reaps) return
        const marker = yield* markerToKeep(name)
        if (Option.isNone(marker)) return
        known.set(name, marker.value)
        yield* Effect.logWarning(
          sharedQueue
            ? `${name}: took its delegated job on (${marker.value.state}, ${marker.value.provider}): no live host ` +
              "reaped it"
            : `${name}: found its delegation marker (${marker.value.state}, ${marker.value.provider}) beside it; ` +
              "taken on, never routed again"
        ).pipe(Effect.annotateLogs({ task: name }))
        if (marker.value.state === "submitting") yield* Queue.offer(submissions, name)
      }).pipe(
        Effect.catch((error) =>
          unreadableSaid.has(name) ? Effect.void : Effect.andThen(
            Effect.sync(() => unreadableSaid.add(name)),
            Effect.logError(`cannot read the delegation marker of ${name}: ${error.message}; ${name} waits`)
          )
        ),
        Effect.provideContext(ports)
      )

    const otherHosts = (jobs: { readonly reaped: ReadonlyArray<TaskName>; readonly free: ReadonlyArray<TaskName> }) =>
      Effect.gen(function*() {
        reapedElsewhere = new Set(jobs.reaped)
        for (const name of jobs.reaped) {
          if (!known.has(name)) continue
          // This host's heartbeat lapsed and another took the job on: it is polled there now, not here too. Asked again
          // first: the list may be older than this host's own taking it on (its reaper having stopped meanwhile).
          // (When the store cannot say, the job stays: polled twice for a while rather than by nobody.)
          const ours = yield* store.claimMarker(name).pipe(Effect.map(Option.isSome), Effect.orElseSucceed(() => true))
          if (ours) continue
          known.delete(name)
          yield* Effect.logWarning(`${name}: another host reaps its job now; no longer polled here`).pipe(
            Effect.annotateLogs({ task: name })
          )
        }
        for (const name of jobs.free) yield* adopt(name)
      })

    return Delegation.of({
      start,
      adopt,
      resume: Effect.provideContext(resume, ports),
      load: Effect.provideContext(load, ports),
      isDelegated: (name) => known.has(name) || reapedElsewhere.has(name),
      otherHosts,
      run,
      status
    })
  })

/** Needs TaskStore, Secutools, TaskLocks and DelegationCountersRef. */
export const DelegationLayer = (settings: DelegationSettings) => Layer.effect(Delegation, makeDelegation(settings))
