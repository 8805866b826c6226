/**
 * The secutools job API as a service: submit with an idempotency key, get a job's status.
 * Easy to get wrong: only transport errors, timeouts, 408, 429 and 5xx are worth retrying; `retryable` says which.
 */
import { Context, type Effect, Schema } from "effect"
import { RemoteJobStatus } from "../domain/job.ts"
import { Provider } from "../domain/provider.ts"

export interface SubmitRequest {
  readonly task_id: string
  readonly provider: Provider
  readonly prompt: string
  readonly complexity_hint?: string
  readonly metadata?: Readonly<Record<string, string>>
}

export const SubmitResponse = Schema.Struct({ job_id: Schema.String, status: RemoteJobStatus })
export type SubmitResponse = typeof SubmitResponse.Type

export const JobView = Schema.Struct({
  job_id: Schema.String,
  status: RemoteJobStatus,
  provider: Schema.String,
  result: Schema.optionalKey(Schema.NullOr(Schema.String)),
  error: Schema.optionalKey(Schema.NullOr(Schema.String)),
  cost_usd: Schema.optionalKey(Schema.NullOr(Schema.Finite)),
  created_at: Schema.String,
  finished_at: Schema.optionalKey(Schema.NullOr(Schema.String))
})
export type JobView = typeof JobView.Type

export const SecutoolsFailure = Schema.Union([
  Schema.TaggedStruct("Transport", { detail: Schema.String }),
  Schema.TaggedStruct("Timeout", { afterMs: Schema.Number }),
  Schema.TaggedStruct("Status", {
    status: Schema.Int,
    body: Schema.String,
    retryAfterMs: Schema.optionalKey(Schema.Number)
  }),
  Schema.TaggedStruct("Decode", { detail: Schema.String })
])
export type SecutoolsFailure = typeof SecutoolsFailure.Type

export class SecutoolsError extends Schema.TaggedError<SecutoolsError>()("SecutoolsError", {
  operation: Schema.String,
  reason: SecutoolsFailure
}) {
  /** Network errors, timeouts, 408, 429 and 5xx except 501 (not implemented will not get better). */
  get retryable(): boolean {
    switch (this.reason._tag) {
      case "Transport":
      case "Timeout":
        return true
      case "Status":
        return this.reason.status === 408 || this.reason.status === 429 ||
          (this.reason.status >= 500 && this.reason.status !== 501)
      case "Decode":
        return false
    }
  }

  override get message(): string {
    const reason = this.reason
    switch (reason._tag) {
      case "Transport":
        return `${this.operation}: network error: ${reason.detail}`
      case "Timeout":
        return `${this.operation}: no answer within ${reason.afterMs}ms`
      case "Status":
        return `${this.operation}: HTTP ${reason.status}${reason.body === "" ? "" : `: ${reason.body.slice(0, 200)}`}`
      case "Decode":
        return `${this.operation}: unexpected answer: ${reason.detail}`
    }
  }
}

export class Secutools extends Context.Service<Secutools, {
  submit(request: SubmitRequest, idempotencyKey: string): Effect.Effect<SubmitResponse, SecutoolsError>
  get(jobId: string): Effect.Effect<JobView, SecutoolsError>
}>()("claude-failover/ports/Secutools") {}
