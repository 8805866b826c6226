/**
 * The write-ahead delegation marker `pending/NAME.md.delegated`: written before a job is submitted.
 * Easy to get wrong: the idempotency key is fixed when the marker is first written and reused on every resume.
 */
import { Schema } from "effect"
import { Provider } from "./provider.ts"

export const MarkerState = Schema.Literals(["submitting", "submitted"])
export type MarkerState = typeof MarkerState.Type

export const DelegationMarker = Schema.Struct({
  task: Schema.String,
  provider: Provider,
  idempotency_key: Schema.NonEmptyString,
  state: MarkerState,
  job_id: Schema.NullOr(Schema.String),
  created_at: Schema.String,
  submitted_at: Schema.NullOr(Schema.String),
  polls: Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(0)))
})
export type DelegationMarker = typeof DelegationMarker.Type

export const MarkerJson = Schema.fromJsonString(DelegationMarker)

export const MARKER_SUFFIX = ".delegated"
