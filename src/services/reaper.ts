/**
 * The reaper: polls one submitted job and, once it has ended, moves its task to done/ or failed/.
 * Easy to get wrong: the task's new state is written in place and the file moved before the marker is removed, so
 * a crash in between leaves a finished task beside its marker, which start-up recovery completes; the job's result
 * only counts for the run the marker names; and SECUTOOLS_JOB_TIMEOUT holds whatever the polls answer (a job whose
 * every poll fails is not polled forever).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { formatDuration, Outcome, renderFooter, renderResult, type Runner } from "../domain/footer.ts"
import { TaskEvent } from "../domain/lifecycle.ts"
import type { DelegationMarker } from "../domain/marker.ts"
import type { TaskName } from "../domain/task.ts"
import { type JobView, Secutools } from "../ports/secutools.ts"
import { type StoreError, TaskStore } from "../ports/task-store.ts"
import { TaskLocks } from "./task-locks.ts"
import { applyEvent, millisBetween, nowIso, readTask } from "./task-moves.ts"

/** The markers as the delegation service keeps them: the reaper removes a finished job's and counts polls. */
export interface MarkerBook {
  readonly remove: (name: TaskName) => Effect.Effect<void, StoreError>
  readonly polled: (name: TaskName, jobId: string) => void
}

export interface ReapContext {
  readonly markers: MarkerBook
  readonly jobTimeout: Duration.Duration
  readonly counters: { completed: number; failed: number }
  /** Seconds from submission to the task's arrival in done/ or failed/. */
  readonly onFinished: (seconds: number) => void
}

/** How a job ended: the job as last seen, or a failure the daemon decided (404, timeout, an answer too large). */
interface Ending {
  readonly job?: JobView
  readonly failure?: string
}

const completed = (ending: Ending): ending is Ending & { readonly job: JobView } =>
  ending.failure === undefined && ending.job?.status === "completed"

const finishTask = Effect.fn("Reaper.finish")(
  function*(
    name: TaskName,
    marker: DelegationMarker,
    ending: Ending,
    markers: MarkerBook
  ) {
    const current = yield* readTask("pending", name)
    const { task } = current
    if (marker.run !== undefined && task.fields.run !== marker.run) {
      // A result for a run the task no longer has: recorded in the log, never applied.
      yield* markers.remove(name)
      yield* Effect.logWarning(
        `refused the result of job ${
          marker.job_id ?? "?"
        } for ${name}: it belongs to run ${marker.run}, the task is run ` +
          `${task.fields.run ?? "(none)"}; nothing changed`
      ).pipe(Effect.annotateLogs({ task: name, job: marker.job_id ?? "", run: marker.run }))
      return undefined
    }
    const at = ending.job?.finished_at ?? (yield* nowIso)
    const jobId = marker.job_id ?? ""
    const costUsd = ending.job?.cost_usd ?? undefined
    const runner: Runner = {
      _tag: "Job",
      provider: marker.provider,
      jobId,
      ...(costUsd === undefined ? {} : { costUsd })
    }
    const durationMs = millisBetween(marker.created_at, at)
    const timing = { at, runner, ...(durationMs === undefined ? {} : { durationMs }) }
    const crashPoints = { written: "reap:written", moved: "reap:moved" } as const
    if (completed(ending)) {
      const result = ending.job.result ?? ""
      yield* applyEvent(
        "pending",
        name,
        TaskEvent.Complete({ at, jobId, ...(costUsd === undefined ? {} : { costUsd }) }),
        {
          footer: () => renderResult(marker.provider, result) + renderFooter(Outcome.Done(timing)),
          crashPoints,
          current
        }
      )
    } else {
      const reason = ending.failure ?? ending.job?.error ?? `job ${jobId} ended ${ending.job?.status ?? "unknown"}`
      yield* applyEvent("pending", name, TaskEvent.Fail({ at }), {
        footer: () => renderFooter(Outcome.Failed({ ...timing, reason })),
        crashPoints,
        current,
        // The job it ran as, when there was one (the file learns it only now).
        adjust: (fields) => marker.job_id === null ? fields : { ...fields, job_id: marker.job_id }
      })
    }
    yield* markers.remove(name)
    return millisBetween(marker.submitted_at, yield* nowIso)
  },
  (effect) => TaskStore.use((store) => store.atomically(effect)),
  Effect.uninterruptible
)
// On a shared queue the move and the marker's removal are one transaction; a stop (SIGTERM) waits for both to happen.

/**
 * Finishes the task under its lock, counts it as completed or failed, reports how long it took since submission, and
 * logs `line` — all one uninterruptible step, so a stop cannot leave a finished task no line reported.
 */
const finish = (
  name: TaskName,
  marker: DelegationMarker,
  ending: Ending,
  context: ReapContext,
  line: Effect.Effect<void>
) =>
  TaskLocks.use((locks) => locks.withTask(name, finishTask(name, marker, ending, context.markers))).pipe(
    Effect.tap((ms) =>
      Effect.sync(() => {
        if (ms === undefined) return
        if (completed(ending)) context.counters.completed++
        else context.counters.failed++
        context.onFinished(ms / 1000)
      })
    ),
    Effect.andThen(line),
    Effect.uninterruptible
  )

/** One poll of the job behind `marker`; terminal statuses, a job secutools no longer knows and timeouts finish the task. */
export const reapJob = Effect.fn("Reaper.reapJob")(
  function*(name: TaskName, marker: DelegationMarker, context: ReapContext) {
    const secutools = yield* Secutools
    const jobId = marker.job_id
    if (jobId === null) return
    const annotations = { task: name, job: jobId, provider: marker.provider }
    const waitedMs = millisBetween(marker.submitted_at ?? marker.created_at, yield* nowIso) ?? 0
    const timedOut = waitedMs > Duration.toMillis(context.jobTimeout)
    /** The task fails with `reason`, said in one warning (`line`: when the log should say it otherwise). */
    const failWith = (reason: string, line = `${name} failed: ${reason}`) =>
      finish(
        name,
        marker,
        { failure: reason },
        context,
        Effect.logWarning(line).pipe(Effect.annotateLogs(annotations))
      )
    const polled = yield* Effect.result(secutools.get(jobId))
    if (Result.isFailure(polled)) {
      const error = polled.failure
      if (error.reason._tag === "Status" && error.reason.status === 404) {
        return yield* failWith(
          `secutools no longer knows job ${jobId} (HTTP 404)`,
          `${name} failed: secutools no longer knows job ${jobId}`
        )
      }
      if (error.reason._tag === "TooLarge") return yield* failWith(`${error.message}; the job's result was not read`)
      if (timedOut) {
        return yield* failWith(
          `job ${jobId} could not be polled for ${Duration.format(context.jobTimeout)} (last: ${error.message})`
        )
      }
      return yield* Effect.logWarning(`polling job ${jobId} of ${name}: ${error.message}`).pipe(
        Effect.annotateLogs(annotations)
      )
    }
    const job = polled.success
    if (job.status === "completed") {
      const took = formatDuration(millisBetween(marker.created_at, yield* nowIso) ?? 0)
      return yield* finish(
        name,
        marker,
        { job },
        context,
        Effect.logInfo(`${name} done by secutools ${marker.provider} (job ${jobId}, took ${took})`).pipe(
          Effect.annotateLogs(annotations)
        )
      )
    }
    if (job.status === "failed" || job.status === "cancelled") {
      return yield* finish(
        name,
        marker,
        { job },
        context,
        Effect.logWarning(`${name} ${job.status} at secutools: ${job.error ?? "no reason given"}`).pipe(
          Effect.annotateLogs(annotations)
        )
      )
    }
    if (timedOut)
      return yield* failWith(`job ${jobId} was still ${job.status} after ${Duration.format(context.jobTimeout)}`)
    context.markers.polled(name, jobId)
  }
)
