/**
 * The delegated-job state machine: submitting → submitted → queued/running → completed | failed | cancelled.
 * Easy to get wrong: `submitting` may have reached secutools already, so it is resumed with the same key, never dropped.
 */
import * as Data from "effect/Data"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"

/** What secutools reports for a job. */
export const RemoteJobStatus = Schema.Literals(["queued", "running", "completed", "failed", "cancelled"])
export type RemoteJobStatus = typeof RemoteJobStatus.Type

/** `rejected`: the submission failed permanently and the task went back to local routing. */
export type JobState = "submitting" | "submitted" | RemoteJobStatus | "rejected"
export const JobStates: ReadonlyArray<JobState> = [
  "submitting",
  "submitted",
  "queued",
  "running",
  "completed",
  "failed",
  "cancelled",
  "rejected"
]

export type JobEvent = Data.TaggedEnum<{
  Submitted: { readonly jobId: string }
  Observed: { readonly status: RemoteJobStatus }
  Rejected: { readonly reason: string }
}>
export const JobEvent = Data.taggedEnum<JobEvent>()

export class IllegalJobTransition extends Data.TaggedError("IllegalJobTransition")<{
  readonly from: JobState
  readonly event: JobEvent["_tag"]
}> {
  override get message(): string {
    return `a job in state '${this.from}' cannot take '${this.event}'`
  }
}

export const isTerminalJob = (state: JobState): boolean =>
  state === "completed" || state === "failed" || state === "cancelled" || state === "rejected"

/** Polls may see queued and running in either order (a provider can requeue), but never leave a terminal status. */
export const transitionJob = (from: JobState, event: JobEvent): Result.Result<JobState, IllegalJobTransition> => {
  const illegal = Result.fail(new IllegalJobTransition({ from, event: event._tag }))
  if (isTerminalJob(from)) return illegal
  return JobEvent.$match(event, {
    Submitted: () => from === "submitting" ? Result.succeed<JobState>("submitted") : illegal,
    Rejected: () => from === "submitting" ? Result.succeed<JobState>("rejected") : illegal,
    Observed: ({ status }) => from === "submitting" ? illegal : Result.succeed<JobState>(status)
  })
}
