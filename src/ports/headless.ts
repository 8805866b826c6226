/**
 * Headless slots as a service: each slot runs at most one `claude -p` process at a time, and says what it is doing.
 * Easy to get wrong: a slot holds an ended run's outcome until the dispatcher has acted on it and released the slot,
 * so a limit or an error is seen by the session book before the slot reads as free again.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { type SlotSpec, SlotState } from "../domain/headless.ts"
import type { TaskName } from "../domain/task.ts"

/** One run to start in a slot. */
export interface HeadlessStart {
  readonly task: TaskName
  readonly run: string
  /** Passed on the process's stdin: a prompt of any size and any bytes, never parsed by a shell. */
  readonly prompt: string
  /** The task's own working directory; none: the configured one. */
  readonly cwd: Option.Option<string>
  /** Continue this Claude Code session (`--resume`) instead of starting a new one. */
  readonly resume: Option.Option<string>
}

export class SlotBusy
  extends Schema.TaggedError<SlotBusy>()("SlotBusy", { slot: Schema.String, state: Schema.String })
{
  override get message(): string {
    return `headless slot ${this.slot} is not free (${this.state})`
  }
}

export class HeadlessSlots extends Context.Service<HeadlessSlots, {
  readonly slots: ReadonlyArray<SlotSpec>
  readonly isSlot: (name: string) => boolean
  readonly state: (slot: string) => Effect.Effect<SlotState>
  /** Starts the run's process in the background; the slot reads Running from now on. */
  readonly start: (slot: string, start: HeadlessStart) => Effect.Effect<void, SlotBusy>
  /** Stops the slot's process (its process group), if one runs; the run ends as a fault with `reason`. */
  readonly stop: (slot: string, reason: string) => Effect.Effect<void>
  /** The ended run has been acted on: the slot is free again (or rests, after a run that needs a person). */
  readonly release: (slot: string) => Effect.Effect<void>
  /** Where the transcript of a run is kept, relative to the queue directory. */
  readonly transcriptOf: (task: TaskName, run: string) => string
  /** Emits whenever a run ends, so the dispatcher need not wait for its next poll. */
  readonly changes: Stream.Stream<void>
}>()("claude-failover/ports/HeadlessSlots") {
  /** No headless slots configured. */
  static readonly none = Layer.sync(HeadlessSlots, () => noSlots)
}

/** No headless slots: what the dispatcher works with when none are configured. */
export const noSlots: HeadlessSlots["Service"] = {
  slots: [],
  isSlot: () => false,
  state: () => Effect.succeed(SlotState.Free()),
  start: (slot) => Effect.fail(new SlotBusy({ slot, state: "no such slot" })),
  stop: () => Effect.void,
  release: () => Effect.void,
  transcriptOf: (task, run) => `transcripts/${task}.${run}.jsonl`,
  changes: Stream.empty
}
