/**
 * The queue shared by several hosts (QUEUE_BACKEND=postgres), as the daemon's services use it: this host, its leases
 * and jobs, the other hosts, and the feed of every change any host commits. Implemented on PostgreSQL in
 * `../adapters/pg/`.
 * Easy to get wrong: a notification is only a wake-up — one sent while the feed was down is lost — so every time the
 * feed (re)connects, the caller is told to look at the whole queue again.
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { TaskName } from "../domain/task.ts"
import { type Stage, type StoreError, TaskStore } from "./task-store.ts"

/** One of a host's sessions, as its heartbeat reports it. */
export interface HostSession {
  readonly session: string
  readonly state: string
  readonly task: string | null
}

export interface Host {
  readonly host: string
  readonly startedAt: number
  readonly heartbeatAt: number
  /** Active tasks leased to the host. */
  readonly leases: number
  /** Delegated jobs the host reaps. */
  readonly jobs: number
  /** Its sessions at its last heartbeat. */
  readonly sessions: ReadonlyArray<HostSession>
}

export interface ExpiredLease {
  readonly task: TaskName
  /** The host that held it. */
  readonly host: string
  /** How long ago it ran out, by the database's clock. */
  readonly expiredForMs: number
}

/** Two daemons run as one host: exit 2, as for a setting to fix. */
export class HostIdInUse extends Schema.TaggedError<HostIdInUse>()("HostIdInUse", {
  host: Schema.String,
  /** True when another daemon took the host over from this one while it ran (its heartbeat had lapsed). */
  renewed: Schema.Boolean
}) {
  readonly exitCode = 2
  override get message(): string {
    return this.renewed
      ? `another daemon now runs as HOST_ID ${this.host} (this one's heartbeat had lapsed); this one stops — give ` +
        "each daemon its own HOST_ID"
      : `HOST_ID ${this.host} is used by a running daemon (its heartbeat goes on): give each daemon its own HOST_ID`
  }
}

/** Delegated jobs of other hosts, as this host finds them on the shared queue. */
export interface OtherJobs {
  /** Jobs a live host reaps: their tasks are not this host's to route. */
  readonly reaped: ReadonlyArray<TaskName>
  /** Jobs no live host reaps (their host stopped renewing them, or none ever did): for a reaping host to take on. */
  readonly free: ReadonlyArray<TaskName>
}

/** Hosts and leases: what this host holds, and what it takes over from hosts that stopped. */
export interface Leases {
  readonly host: string
  /**
   * Announces this daemon as the host (again, after a restart: its start time is reset, its leases are kept);
   * refused while another daemon's heartbeat as the same host is younger than a lease — the other's last heartbeat
   * (epoch ms, database clock) is returned then.
   */
  readonly register: Effect.Effect<Option.Option<number>, StoreError>
  /**
   * The host is alive: its heartbeat, every lease it holds and (when it reaps) its jobs are renewed; returns how many
   * leases it holds. Fails with HostIdInUse when another daemon has taken the host over.
   */
  readonly heartbeat: Effect.Effect<number, StoreError | HostIdInUse>
  /** Active tasks whose lease has run out, and those no host holds (put in active/ by hand). */
  readonly expired: Effect.Effect<ReadonlyArray<ExpiredLease>, StoreError>
  /** Takes an expired lease over for this host; true for exactly one of several hosts asking at once. */
  takeOver(task: TaskName): Effect.Effect<boolean, StoreError>
  /** Other hosts' delegated jobs: those a live host reaps, and those nobody does. */
  readonly otherJobs: Effect.Effect<OtherJobs, StoreError>
  /** This host's sessions as they are now, for every host's status. */
  reportSessions(sessions: ReadonlyArray<HostSession>): Effect.Effect<void, StoreError>
  /** Every host, with its heartbeat, the leases and jobs it holds and its sessions. */
  readonly hosts: Effect.Effect<ReadonlyArray<Host>, StoreError>
}

/** One task that changed on any host: where it arrived, or where it left. */
export interface QueueChange {
  readonly stage: Stage
  readonly name: TaskName
}

export class SharedQueue extends Context.Service<SharedQueue, {
  readonly host: string
  /** The queue's TaskStore: this host's view (its list of active/ is the runs it holds). */
  readonly store: TaskStore["Service"]
  readonly leases: Leases
  readonly leaseTtl: Duration.Duration
  /**
   * Listens for changes forever: `connected` after each (re)connection (changes may have been missed: look at the
   * whole queue), `changed` for each change; a dropped connection is said once per outage and listened to again.
   */
  readonly follow: (handlers: {
    readonly connected: Effect.Effect<void>
    readonly changed: (change: QueueChange) => Effect.Effect<void>
  }) => Effect.Effect<never>
}>()("claude-failover/adapters/pg/SharedQueue") {
  /** The shared queue's store as the TaskStore. */
  static readonly taskStore = Layer.effect(TaskStore, SharedQueue.use((queue) => Effect.succeed(queue.store)))
}
