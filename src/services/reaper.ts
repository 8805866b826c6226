/**
 * The reaper: polls one submitted job and, once it has ended, moves its task to done/ or failed/.
 * Easy to get wrong: the destination is written before the pending file and the marker are removed, so a crash
 * in between leaves a duplicate that start-up recovery resolves, never a lost task.
 */
import { Duration, Effect, Result } from "effect"
import { Outcome, renderFooter, renderResult, type Runner } from "../domain/footer.ts"
import { TaskEvent } from "../domain/lifecycle.ts"
import type { DelegationMarker } from "../domain/marker.ts"
import type { TaskName } from "../domain/task.ts"
import { type JobView, Secutools } from "../ports/secutools.ts"
import { TaskStore } from "../ports/task-store.ts"
import { millisBetween, moveTask, nowIso } from "./task-moves.ts"

export interface ReapContext {
  readonly jobTimeout: Duration.Duration
  readonly counters: { completed: number; failed: number }
  /** Seconds from submission to the task's arrival in done/ or failed/. */
  readonly onFinished: (seconds: number) => void
}

/** How a job ended: the job as last seen, or a failure the daemon decided (404, timeout). */
interface Ending {
  readonly job?: JobView
  readonly failure?: string
}

const completed = (ending: Ending): ending is Ending & { readonly job: JobView } =>
  ending.failure === undefined && ending.job?.status === "completed"

const finishTask = Effect.fn("Reaper.finish")(function*(name: TaskName, marker: DelegationMarker, ending: Ending) {
  const store = yield* TaskStore
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
  if (completed(ending)) {
    const result = ending.job.result ?? ""
    yield* moveTask(
      "pending",
      "done",
      name,
      TaskEvent.Complete({ at, provider: marker.provider, jobId, ...(costUsd === undefined ? {} : { costUsd }) }),
      () => renderResult(marker.provider, result) + renderFooter(Outcome.Done(timing))
    )
  } else {
    const reason = ending.failure ?? ending.job?.error ?? `job ${jobId} ended ${ending.job?.status ?? "unknown"}`
    yield* moveTask("pending", "failed", name, TaskEvent.Fail({ at }), () => renderFooter(Outcome.Failed({ ...timing, reason })))
  }
  yield* store.removeMarker(name)
  return millisBetween(marker.submitted_at, yield* nowIso)
}, Effect.uninterruptible) // a stop (SIGTERM) waits for the move and the marker's removal to both happen

/** Finishes the task, counts it as completed or failed, and reports how long it took since submission. */
const finish = (name: TaskName, marker: DelegationMarker, ending: Ending, context: ReapContext) =>
  Effect.tap(finishTask(name, marker, ending), (ms) =>
    Effect.sync(() => {
      if (completed(ending)) context.counters.completed++
      else context.counters.failed++
      if (ms !== undefined) context.onFinished(ms / 1000)
    }))

/** One poll of the job behind `marker`; terminal statuses, a job secutools no longer knows and timeouts finish the task. */
export const reapJob = Effect.fn("Reaper.reapJob")(function*(name: TaskName, marker: DelegationMarker, context: ReapContext) {
  const secutools = yield* Secutools
  const store = yield* TaskStore
  const jobId = marker.job_id
  if (jobId === null) return
  const polled = yield* Effect.result(secutools.get(jobId))
  const annotations = { task: name, job: jobId, provider: marker.provider }
  if (Result.isFailure(polled)) {
    const error = polled.failure
    if (error.reason._tag === "Status" && error.reason.status === 404) {
      yield* finish(name, marker, { failure: `secutools no longer knows job ${jobId} (HTTP 404)` }, context)
      return yield* Effect.logWarning(`${name} failed: secutools no longer knows job ${jobId}`).pipe(Effect.annotateLogs(annotations))
    }
    return yield* Effect.logWarning(`polling job ${jobId} of ${name}: ${error.message}`).pipe(Effect.annotateLogs(annotations))
  }
  const job = polled.success
  if (job.status === "completed") {
    yield* finish(name, marker, { job }, context)
    return yield* Effect.logInfo(`${name} done by secutools ${marker.provider} (job ${jobId})`).pipe(Effect.annotateLogs(annotations))
  }
  if (job.status === "failed" || job.status === "cancelled") {
    yield* finish(name, marker, { job }, context)
    return yield* Effect.logWarning(`${name} ${job.status} at secutools: ${job.error ?? "no reason given"}`).pipe(
      Effect.annotateLogs(annotations)
    )
  }
  const waitedMs = millisBetween(marker.submitted_at, yield* nowIso) ?? 0
  if (waitedMs > Duration.toMillis(context.jobTimeout)) {
    const reason = `job ${jobId} was still ${job.status} after ${Duration.format(context.jobTimeout)}`
    yield* finish(name, marker, { failure: reason }, context)
    return yield* Effect.logWarning(`${name} failed: ${reason}`).pipe(Effect.annotateLogs(annotations))
  }
  yield* store.writeMarker(name, { ...marker, polls: marker.polls + 1 })
})
