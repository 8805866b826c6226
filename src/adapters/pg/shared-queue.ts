/**
 * The shared queue (`../../ports/shared-queue.ts`) on PostgreSQL: the TaskStore (migrated at start), this host's
 * leases, and the feed of every change any host commits, on a LISTEN connection.
 * Easy to get wrong: a notification is only a wake-up — one sent while this host's listening connection was down is
 * lost — so every time the feed (re)connects, the caller is told to look at the whole queue again.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { join } from "node:path"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { formatDuration } from "../../domain/footer.ts"
import { TaskName } from "../../domain/task.ts"
import { HostIdInUse, type Leases, type QueueChange, SharedQueue } from "../../ports/shared-queue.ts"
import { type Stage, Stages, type StoredTask, StoreError } from "../../ports/task-store.ts"
import { writeAtomic } from "../fs-task-store.ts"
import { makeLeases } from "./leases.ts"
import { migrate, QUEUE_CHANNEL } from "./schema.ts"
import { makePgTaskStore, where } from "./task-store.ts"

export interface SharedQueueSettings {
  readonly url: Redacted.Redacted<string>
  readonly host: string
  readonly leaseTtl: Duration.Duration
  readonly maxTaskBytes: number
  /** Whether this host submits and polls delegated jobs (see `LeaseOptions.reapsJobs`). */
  readonly reapsJobs: boolean
  /** A directory whose done/ and failed/ get a copy of each task this host finishes (MIRROR_FINISHED). */
  readonly mirrorTo?: string
}

/**
 * Writes a finished task's copy into `root`'s done/ or failed/ (atomically, over an older copy of the same name: the
 * task retried and finished again). A copy is only a convenience: one that cannot be written is said, nothing more.
 */
const mirrorInto = (root: string) => (task: StoredTask) =>
  Effect.tryPromise(() => writeAtomic(join(root, task.stage), task.name, task.text)).pipe(
    Effect.catch((error) =>
      Effect.logWarning(`could not copy ${task.stage}/${task.name} into ${root}: ${String(error.cause)}`)
    )
  )

const isStage = (text: string): text is Stage => (Stages as ReadonlyArray<string>).includes(text)
const isTaskName = Schema.is(TaskName)

/** `pending/fix.md` → the change; anything else (another writer's notification on the channel) → undefined. */
export const parseChange = (payload: string): QueueChange | undefined => {
  const slash = payload.indexOf("/")
  const stage = payload.slice(0, slash)
  const name = payload.slice(slash + 1)
  return slash > 0 && isStage(stage) && isTaskName(name) ? { stage, name } : undefined
}

/**
 * Registers this daemon as its host. Another daemon's heartbeat as the same host, younger than a lease, is either a
 * daemon killed a moment ago (its heartbeat stops: this one waits for it to lapse) or a daemon running (its heartbeat
 * goes on: HostIdInUse, and this one does not start).
 */
const registerAlone = (leases: Leases, leaseTtl: Duration.Duration) =>
  Effect.gen(function*() {
    let first: number | undefined
    for (;;) {
      const other = yield* leases.register
      if (Option.isNone(other)) return
      if (first !== undefined && other.value > first)
        return yield* new HostIdInUse({ host: leases.host, renewed: false })
      if (first === undefined) {
        first = other.value
        yield* Effect.logWarning(
          `HOST_ID ${leases.host} has a heartbeat from another daemon ${
            formatDuration(Math.max(0, Date.now() - other.value))
          } ago: waiting up to LEASE_TTL (${
            formatDuration(Duration.toMillis(leaseTtl))
          }) for it to lapse — if it goes ` +
            "on, that daemon runs and this one will not start"
        )
      }
      yield* Effect.sleep(REGISTER_RETRY)
    }
  })

const REGISTER_RETRY = Duration.seconds(1)

/** How long the feed waits before listening again after its connection dropped. */
const RELISTEN_AFTER = Duration.seconds(1)

/** The shared queue on its own pool, the migrations applied first; its store is `SharedQueue.taskStore`. */
export const SharedQueueLayer = (settings: SharedQueueSettings) =>
  Layer.effect(
    SharedQueue,
    Effect.gen(function*() {
      const pg = yield* PgClient.PgClient
      yield* migrate.pipe(
        Effect.mapError((error) =>
          new StoreError({
            operation: "set up the shared queue (DATABASE_URL) at",
            path: where("cf_migrations"),
            problem: error.message,
            code: "EIO"
          })
        )
      )
      const store = yield* makePgTaskStore({
        host: settings.host,
        leaseTtl: settings.leaseTtl,
        maxTaskBytes: settings.maxTaskBytes,
        ...(settings.mirrorTo === undefined ? {} : { onFinished: mirrorInto(settings.mirrorTo) })
      })
      const leases = yield* makeLeases(settings.host, settings.leaseTtl, { reapsJobs: settings.reapsJobs })
      yield* registerAlone(leases, settings.leaseTtl)

      const follow: SharedQueue["Service"]["follow"] = (handlers) => {
        let down = false
        const listening = Effect.scoped(Effect.gen(function*() {
          const notes = yield* pg.listen(QUEUE_CHANNEL)
          if (down) yield* Effect.logInfo("the shared queue's change feed is back")
          down = false
          yield* handlers.connected
          return yield* Effect.forever(Effect.gen(function*() {
            const change = parseChange((yield* Queue.take(notes)).payload)
            if (change !== undefined) yield* handlers.changed(change)
          }))
        }))
        return listening.pipe(
          Effect.catch((error) =>
            Effect.gen(function*() {
              if (!down) {
                yield* Effect.logWarning(
                  `the shared queue's change feed dropped (${error.message}); listening again — until then the queue is ` +
                    "looked at every poll"
                )
              }
              down = true
              yield* Effect.sleep(RELISTEN_AFTER)
            })
          ),
          Effect.forever
        )
      }

      return SharedQueue.of({ host: settings.host, store, leases, leaseTtl: settings.leaseTtl, follow })
    })
  ).pipe(
    Layer.provide(PgClient.layer({
      url: settings.url,
      applicationName: `claude-failover ${settings.host}`,
      connectTimeout: "10 seconds"
    })),
    Layer.provide(NodeServices.layer)
  )
