/**
 * The queue directory as a service: tasks by stage, the delegation markers and the `.error` notes.
 * Easy to get wrong: nothing here ever overwrites another task. `create` and `move` fail with NameTaken when the
 * name is used, and a move is a link then an unlink, so a crash in between leaves the same file (same identity)
 * in two stages, which recovery can tell apart from a different file that happens to have the same name.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { DelegationMarker } from "../domain/marker.ts"
import type { TaskName } from "../domain/task.ts"

export const Stages = ["pending", "active", "done", "failed"] as const
export type Stage = typeof Stages[number]

/** pending < active < done | failed: the stage a task's state belongs in, and the order of a task's life. */
export const stageRank = (stage: Stage): number => stage === "pending" ? 0 : stage === "active" ? 1 : 2

export interface StoredTask {
  readonly stage: Stage
  readonly name: TaskName
  readonly text: string
  readonly mtimeMs: number
  readonly size: number
  /** The file itself (device and inode on disk): two names with the same identity are one file. */
  readonly identity: string
}

/** What a file is, without reading it. */
export interface FileStat {
  readonly identity: string
  /** How many names the file has (hard links): more than one after a move or rename cut short. */
  readonly links: number
  readonly mtimeMs: number
  readonly size: number
}

/** Identity, size and mtime: a file with the same stamp has not been rewritten (rewrites are atomic renames). */
export const stampOf = (file: Pick<FileStat, "identity" | "size" | "mtimeMs">): string =>
  `${file.identity}:${file.size}:${file.mtimeMs}`

/** A directory entry that looks like a task but cannot be one: a bad name, or not a regular file. */
export interface Stray {
  readonly stage: Stage
  /** The name's bytes as the directory holds them (they may not be UTF-8). */
  readonly raw: Uint8Array
  /** The name as printable text (invalid UTF-8 shown with replacement characters). */
  readonly display: string
  readonly kind: "bad-name" | "not-a-file"
  readonly problem: string
}

export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  operation: Schema.String,
  path: Schema.String,
  problem: Schema.String,
  /** errno code when the system gave one (ENOSPC, EROFS, EMFILE, …): callers back off on resource errors. */
  code: Schema.optionalKey(Schema.String)
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

/** The name is already used in the destination stage: nothing was written. */
export class NameTaken extends Schema.TaggedError<NameTaken>()("NameTaken", {
  stage: Schema.String,
  name: Schema.String
}) {
  override get message(): string {
    return `${this.stage}/${this.name} already exists`
  }
}

/** The file is there but is not a task the daemon can read: too large, not UTF-8 text, not a regular file. */
export class Unreadable extends Schema.TaggedError<Unreadable>()("Unreadable", {
  stage: Schema.String,
  name: Schema.String,
  problem: Schema.String,
  /** A file with these bytes will never read better: it goes to failed/ as it is. */
  quarantine: Schema.Boolean
}) {
  override get message(): string {
    return `${this.stage}/${this.name}: ${this.problem}`
  }
}

export class TaskStore extends Context.Service<TaskStore, {
  /** Task files of a stage (`*.md`, valid name, regular file, not hidden), in name order. */
  list(stage: Stage): Effect.Effect<ReadonlyArray<TaskName>, StoreError>
  /** Entries of a stage named like tasks (`*.md`, not hidden) that cannot be one. */
  strays(stage: Stage): Effect.Effect<ReadonlyArray<Stray>, StoreError>
  has(stage: Stage, name: TaskName): Effect.Effect<boolean, StoreError>
  /** The file's identity and link count, without reading it (and without following a symlink). */
  stat(stage: Stage, name: TaskName): Effect.Effect<FileStat, StoreError | TaskNotFound>
  /**
   * The stage's task files that have more than one name (a move cut short between its link and its unlink), with
   * their identity; looked through in one pass, as start-up recovery needs it for every file.
   */
  linked(stage: Stage): Effect.Effect<ReadonlyMap<TaskName, string>, StoreError>
  read(stage: Stage, name: TaskName): Effect.Effect<StoredTask, StoreError | TaskNotFound | Unreadable>
  /** A new file, atomically (temporary file, flush, link); fails with NameTaken rather than overwrite. */
  create(stage: Stage, name: TaskName, text: string): Effect.Effect<void, StoreError | NameTaken>
  /**
   * Replaces the file's content atomically (temporary file, flush, rename over it). On a queue shared by several hosts,
   * fails with TaskNotFound when the task was changed or moved by another host since this one read it.
   */
  replace(stage: Stage, name: TaskName, text: string): Effect.Effect<void, StoreError | TaskNotFound>
  /** Moves `from/name` to `to/toName` (default: the same name), bytes untouched; never overwrites. */
  move(
    from: Stage,
    to: Stage,
    name: TaskName,
    toName?: TaskName
  ): Effect.Effect<void, StoreError | TaskNotFound | NameTaken>
  remove(stage: Stage, name: TaskName): Effect.Effect<void, StoreError>
  /** Moves a stray regular file into failed/ under `name` (never overwriting). */
  quarantineStray(stray: Stray, name: TaskName): Effect.Effect<void, StoreError | NameTaken>
  /** `failed/NAME.md.error`: why NAME.md was quarantined. */
  writeError(name: TaskName, reason: string): Effect.Effect<void, StoreError>
  readMarker(name: TaskName): Effect.Effect<Option.Option<DelegationMarker>, StoreError>
  /**
   * Writes the marker, and on a queue shared by several hosts makes this host its reaper; fails with TaskNotFound when
   * another live host reaps it (of two hosts delegating the same task, the second finds the task taken).
   */
  writeMarker(name: TaskName, marker: DelegationMarker): Effect.Effect<void, StoreError | TaskNotFound>
  /**
   * The marker, for this daemon to submit and poll its job. On one host's queue, simply read (the queue's lock makes
   * this daemon the only reaper). On a shared queue, taken only when no live host reaps it — another host's job, or
   * one whose host stopped renewing it — and then this host's while its heartbeat goes on: none otherwise.
   */
  claimMarker(name: TaskName): Effect.Effect<Option.Option<DelegationMarker>, StoreError>
  /** Removes the marker (on a shared queue, not one another live host reaps: that host's job goes on). */
  removeMarker(name: TaskName): Effect.Effect<void, StoreError>
  /** Names of the pending tasks that have a marker beside them (on a shared queue, the markers this host reaps). */
  listMarkers(): Effect.Effect<ReadonlyArray<TaskName>, StoreError>
  /**
   * Runs `effect`'s writes as one: on a queue shared by several hosts, no other host sees its first write without its
   * last (a task rewritten in pending/ and then moved to active/ is never seen half way), and a failure undoes them.
   * On one host's files each write is atomic on its own and the queue's lock keeps other writers out: it just runs.
   */
  atomically<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | StoreError, R>
}>()("claude-failover/ports/TaskStore") {}

/** Resource errors: the disk is full or read-only, or the process is out of descriptors; worth waiting out. */
export const RESOURCE_ERRORS: ReadonlySet<string> = new Set([
  "ENOSPC",
  "EDQUOT",
  "EROFS",
  "EMFILE",
  "ENFILE",
  "EACCES",
  "EPERM",
  "EIO",
  // A stage that became a mount of its own after start-up: links into it fail until it is put back.
  "EXDEV"
])

export const isResourceError = (error: { readonly _tag: string; readonly code?: string | undefined }): boolean =>
  error._tag === "StoreError" && error.code !== undefined && RESOURCE_ERRORS.has(error.code)
