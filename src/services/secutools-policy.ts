/**
 * How the daemon and `ccl-delegate` talk to secutools over time: the retry Schedule for one request and the
 * poll Schedule for waiting on a job. Easy to get wrong: the jitter is "full" (anywhere from zero to the capped
 * exponential delay), but a server's `Retry-After` is a floor that jitter must never undercut.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { isTerminalJob } from "../domain/job.ts"
import { type JobView, Secutools, type SecutoolsError } from "../ports/secutools.ts"

export interface RetryPolicy {
  /** The first retry's uncapped delay; it doubles with every retry. */
  readonly baseDelay: Duration.Duration
  readonly maxDelay: Duration.Duration
  /** Tries in all, the first one included. */
  readonly maxAttempts: number
  /** No retry starts later than this after the first failure. */
  readonly deadline: Duration.Duration
}

/**
 * The wait before retry number `retry` (1-based): uniform in [0, min(maxDelay, base·2^(retry-1))] drawn from
 * `random` ∈ [0, 1), raised to `retryAfterMs` when the server asked for a longer pause.
 */
export const retryDelayMs = (
  policy: RetryPolicy,
  retry: number,
  random: number,
  retryAfterMs: number | undefined
): number => {
  const exponential = Duration.toMillis(policy.baseDelay) * 2 ** (retry - 1)
  const ceiling = Math.min(Duration.toMillis(policy.maxDelay), exponential)
  return Math.max(Math.floor(ceiling * random), retryAfterMs ?? 0)
}

/** Retries one secutools request: only retryable failures, at most `maxAttempts` tries, within the deadline. */
export const requestRetry = (policy: RetryPolicy) =>
  Schedule.forever.pipe(
    Schedule.setInputType<SecutoolsError>(),
    Schedule.while(({ attempt, input }) => input.retryable && attempt < policy.maxAttempts),
    Schedule.modifyDelay(({ attempt, input }) =>
      Effect.map(Random.next, (random) =>
        Duration.millis(
          retryDelayMs(policy, attempt, random, input.reason._tag === "Status" ? input.reason.retryAfterMs : undefined)
        ))
    ),
    Schedule.while(({ duration, elapsed }) =>
      elapsed + Duration.toMillis(duration) <= Duration.toMillis(policy.deadline)
    )
  )

/** Called before each retry, e.g. to count it and log why. */
export type OnRetry = (error: SecutoolsError, delay: Duration.Duration) => Effect.Effect<void>

const retried = <A>(effect: Effect.Effect<A, SecutoolsError>, policy: RetryPolicy, onRetry: OnRetry) =>
  Effect.retry(
    effect,
    requestRetry(policy).pipe(Schedule.tap(({ duration, input }) => onRetry(input, duration)))
  )

/** The same service with every request retried under `policy`. */
export const withRetries = (
  secutools: Secutools["Service"],
  policy: RetryPolicy,
  onRetry: OnRetry = () => Effect.void
): Secutools["Service"] =>
  Secutools.of({
    submit: (request, idempotencyKey) => retried(secutools.submit(request, idempotencyKey), policy, onRetry),
    get: (jobId) => retried(secutools.get(jobId), policy, onRetry)
  })

/** Polls a job: quickly at first, then every `interval`. */
export const pollSchedule = (interval: Duration.Duration) =>
  Schedule.min([Schedule.exponential(Duration.min(Duration.millis(250), interval)), Schedule.spaced(interval)])

export class JobWaitTimeout extends Schema.TaggedError<JobWaitTimeout>()("JobWaitTimeout", {
  jobId: Schema.String,
  afterMs: Schema.Number,
  lastStatus: Schema.String
}) {
  override get message(): string {
    return `job ${this.jobId} was still ${this.lastStatus} after ${this.afterMs}ms`
  }
}

/** Polls `get` until the job is completed, failed or cancelled, or fails with JobWaitTimeout at the deadline. */
export const waitForResult = Effect.fn("waitForResult")(function*(
  jobId: string,
  options: { readonly interval: Duration.Duration; readonly timeout: Duration.Duration }
) {
  const secutools = yield* Secutools
  let lastStatus = "unknown"
  return yield* secutools.get(jobId).pipe(
    Effect.tap((job) => Effect.sync(() => (lastStatus = job.status))),
    Effect.repeat({ schedule: pollSchedule(options.interval), until: (job: JobView) => isTerminalJob(job.status) }),
    Effect.timeoutOrElse({
      duration: options.timeout,
      orElse: () => Effect.fail(new JobWaitTimeout({ jobId, afterMs: Duration.toMillis(options.timeout), lastStatus }))
    })
  )
})
