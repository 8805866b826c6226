/**
 * The write-ahead delegation marker `pending/NAME.md.delegated`: written before a job is submitted.
 * Easy to get wrong: the idempotency key is fixed when the marker is first written and reused on every resume.
 */
import * as Schema from "effect/Schema"
import { Provider } from "./provider.ts"

export const MarkerState = Schema.Literals(["submitting", "submitted"])
export type MarkerState = typeof MarkerState.Type

export const DelegationMarker = Schema.Struct({
  task: Schema.String,
  provider: Provider,
  /** The task's run this job belongs to; a result for another run is refused. */
  run: Schema.optionalKey(Schema.String),
  idempotency_key: Schema.NonEmptyString,
  state: MarkerState,
  job_id: Schema.NullOr(Schema.String),
  created_at: Schema.String,
  submitted_at: Schema.NullOr(Schema.String),
  polls: Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(0))),
  /**
   * A submission whose answer may have been lost (network error, timeout, 5xx after every retry) is not given up:
   * the marker keeps its key and the submission is tried again at this instant.
   */
  retry_at: Schema.optionalKey(Schema.NullOr(Schema.String)),
  /** Submissions that ended without a definite answer so far; the wait before the next one doubles with each. */
  submit_attempts: Schema.optionalKey(Schema.Int),
  last_error: Schema.optionalKey(Schema.NullOr(Schema.String))
})
export type DelegationMarker = typeof DelegationMarker.Type

export const MarkerJson = Schema.fromJsonString(DelegationMarker)

export const MARKER_SUFFIX = ".delegated"
