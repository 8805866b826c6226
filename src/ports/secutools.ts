/**
 * The secutools job API as a service: submit with an idempotency key, get a job's status.
 * Easy to get wrong: only transport errors, timeouts, 408, 429 and 5xx are worth retrying; `retryable` says which. A job id
 * reaches a URL only once it passed `JobId`.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { RemoteJobStatus } from "../domain/job.ts"
import type { Provider } from "../domain/provider.ts"

export interface SubmitRequest {
  readonly task_id: string
  readonly provider: Provider
  readonly prompt: string
  readonly complexity_hint?: string
  readonly metadata?: Readonly<Record<string, string>>
}

/**
 * A job id as secutools hands it out and as it may travel in a URL path: 1–128 of `A-Z a-z 0-9 . _ : -`, the first a
 * letter or digit, so `.`, `..`, `` and anything with a `/` are refused before a request is made.
 */
export const JobId = Schema.String.pipe(
  Schema.check(Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, {
    expected: "a job id: 1–128 of A-Z a-z 0-9 . _ : -, the first a letter or digit"
  }))
)
export type JobId = typeof JobId.Type
const jobIdGuard = Schema.is(JobId)
/** Not a type guard on purpose: a JobId is a plain string, so a guard would leave `never` in the `false` branch. */
export const isJobId = (value: string): boolean => jobIdGuard(value)

export const SubmitResponse = Schema.Struct({ job_id: JobId, status: RemoteJobStatus })
export type SubmitResponse = typeof SubmitResponse.Type

export const JobView = Schema.Struct({
  job_id: JobId,
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
  Schema.TaggedStruct("Decode", { detail: Schema.String }),
  /** The answer's body was longer than SECUTOOLS_MAX_ANSWER; reading stopped there. */
  Schema.TaggedStruct("TooLarge", { limitBytes: Schema.Number }),
  /** Refused before sending: the id is not a `JobId`. */
  Schema.TaggedStruct("InvalidJobId", { jobId: Schema.String })
])
export type SecutoolsFailure = typeof SecutoolsFailure.Type

/** `8 MB`, `64 KB`, `1500 bytes`: sizes as SECUTOOLS_MAX_ANSWER is written (1024-based). */
const formatBytes = (bytes: number): string =>
  bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0
    ? `${bytes / (1024 * 1024)} MB`
    : bytes >= 1024 && bytes % 1024 === 0
    ? `${bytes / 1024} KB`
    : `${bytes} bytes`

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
      case "TooLarge":
      case "InvalidJobId":
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
      case "TooLarge":
        return `${this.operation}: answer larger than ${formatBytes(reason.limitBytes)} (SECUTOOLS_MAX_ANSWER)`
      case "InvalidJobId":
        return `${this.operation}: refused, ${JSON.stringify(reason.jobId.slice(0, 140))} is not a secutools job id ` +
          "(1–128 of A-Z a-z 0-9 . _ : -, the first a letter or digit)"
    }
  }
}

export class Secutools extends Context.Service<Secutools, {
  submit(request: SubmitRequest, idempotencyKey: string): Effect.Effect<SubmitResponse, SecutoolsError>
  get(jobId: string): Effect.Effect<JobView, SecutoolsError>
}>()("claude-failover/ports/Secutools") {}
