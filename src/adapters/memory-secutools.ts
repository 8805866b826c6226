/**
 * An in-memory secutools for unit tests: jobs deduplicated by idempotency key, statuses set by the test.
 * Easy to get wrong: the same key must yield the same job, as the real API promises.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import type { RemoteJobStatus } from "../domain/job.ts"
import { type JobView, Secutools, SecutoolsError, type SubmitRequest } from "../ports/secutools.ts"

interface MemoryJobs {
  readonly byKey: ReadonlyMap<string, string>
  readonly jobs: ReadonlyMap<string, JobView & { readonly request: SubmitRequest }>
}

/** What a unit test needs to steer the in-memory secutools. */
export class MemorySecutoolsControl extends Context.Service<MemorySecutoolsControl, {
  readonly jobs: Effect.Effect<ReadonlyArray<JobView & { readonly request: SubmitRequest }>>
  finish(
    jobId: string,
    status: RemoteJobStatus,
    outcome?: { result?: string; error?: string; cost_usd?: number }
  ): Effect.Effect<void>
}>()("claude-failover/adapters/MemorySecutoolsControl") {}

const notFound = (operation: string, jobId: string) =>
  new SecutoolsError({ operation, reason: { _tag: "Status", status: 404, body: `no job ${jobId}` } })

export const MemorySecutoolsLayer = Layer.effectContext(Effect.gen(function*() {
  const state = yield* Ref.make<MemoryJobs>({ byKey: new Map(), jobs: new Map() })

  const secutools = Secutools.of({
    submit: (request, idempotencyKey) =>
      Ref.modify(state, (current) => {
        const existing = current.byKey.get(idempotencyKey)
        const known = existing === undefined ? undefined : current.jobs.get(existing)
        if (known !== undefined) return [{ job_id: known.job_id, status: known.status }, current]
        const jobId = `j_${current.jobs.size + 1}`
        const job = {
          job_id: jobId,
          status: "queued" as const,
          provider: request.provider,
          created_at: new Date(0).toISOString(),
          request
        }
        return [
          { job_id: jobId, status: job.status },
          { byKey: new Map(current.byKey).set(idempotencyKey, jobId), jobs: new Map(current.jobs).set(jobId, job) }
        ]
      }),
    get: (jobId) =>
      Ref.get(state).pipe(Effect.flatMap((current) => {
        const job = current.jobs.get(jobId)
        if (job === undefined) return Effect.fail(notFound("get job", jobId))
        const { request: _request, ...view } = job
        return Effect.succeed(view)
      }))
  })

  const control = MemorySecutoolsControl.of({
    jobs: Ref.get(state).pipe(Effect.map((current) => [...current.jobs.values()])),
    finish: (jobId, status, outcome = {}) =>
      Ref.update(state, (current) => {
        const job = current.jobs.get(jobId)
        if (job === undefined) return current
        return { ...current, jobs: new Map(current.jobs).set(jobId, { ...job, ...outcome, status }) }
      })
  })

  return Context.make(Secutools, secutools).pipe(Context.add(MemorySecutoolsControl, control))
}))
