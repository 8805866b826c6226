/**
 * The queue directory as a service: tasks by stage, the delegation markers and the `.error` notes.
 * Easy to get wrong: `transfer` writes the destination before removing the source, so a crash duplicates, never loses.
 */
import { Context, type Effect, type Option, Schema } from "effect"
import type { DelegationMarker } from "../domain/marker.ts"
import type { TaskName } from "../domain/task.ts"

export const Stages = ["pending", "active", "done", "failed"] as const
export type Stage = typeof Stages[number]

/** pending < active < done | failed: recovery keeps the most advanced copy of a name. */
export const stageRank = (stage: Stage): number => stage === "pending" ? 0 : stage === "active" ? 1 : 2

export interface StoredTask {
  readonly stage: Stage
  readonly name: TaskName
  readonly text: string
  readonly mtimeMs: number
}

export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  operation: Schema.String,
  path: Schema.String,
  problem: Schema.String
}) {
  override get message(): string {
    return `${this.operation} ${this.path}: ${this.problem}`
  }
}

export class TaskNotFound extends Schema.TaggedError<TaskNotFound>()("TaskNotFound", {
  stage: Schema.String,
  name: Schema.String
}) {
  override get message(): string {
    return `no task '${this.name}' in ${this.stage}/`
  }
}

export class TaskStore extends Context.Service<TaskStore, {
  /** Task files of a stage (`*.md`, not hidden, not temporary, not symlinks), in name order. */
  list(stage: Stage): Effect.Effect<ReadonlyArray<TaskName>, StoreError>
  read(stage: Stage, name: TaskName): Effect.Effect<StoredTask, StoreError | TaskNotFound>
  /** Atomic: temporary file, flush, rename. */
  write(stage: Stage, name: TaskName, text: string): Effect.Effect<void, StoreError>
  /** Renames `from/NAME` to `to/NAME`, bytes untouched; for files the daemon must not rewrite. */
  move(from: Stage, to: Stage, name: TaskName): Effect.Effect<void, StoreError | TaskNotFound>
  /** Writes `text` into `to`, then removes the copy in `from`. */
  transfer(from: Stage, to: Stage, name: TaskName, text: string): Effect.Effect<void, StoreError>
  remove(stage: Stage, name: TaskName): Effect.Effect<void, StoreError>
  /** `failed/NAME.md.error`: why NAME.md could not be parsed. */
  writeError(name: TaskName, reason: string): Effect.Effect<void, StoreError>
  readMarker(name: TaskName): Effect.Effect<Option.Option<DelegationMarker>, StoreError>
  writeMarker(name: TaskName, marker: DelegationMarker): Effect.Effect<void, StoreError>
  removeMarker(name: TaskName): Effect.Effect<void, StoreError>
  /** Names of the pending tasks that have a marker beside them. */
  listMarkers(): Effect.Effect<ReadonlyArray<TaskName>, StoreError>
}>()("claude-failover/ports/TaskStore") {}
