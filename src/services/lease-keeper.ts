/**
 * On a queue shared by several hosts: keeps this host's leases alive, and takes over the active tasks of hosts whose
 * leases ran out, ending each run as a run whose session died is ended on one host — back to pending with its
 * attempt counted (failed/ at MAX_ATTEMPTS), its run token gone, so a late completion from the lost host is refused.
 * The delegated jobs such hosts reaped are handed to the delegation service (`followJobs`).
 * Easy to get wrong: only another host's expired leases are taken here — this host's own, from before a restart, are
 * start-up recovery's, which can look at the sessions' screens; and a take-over is a claim (one host wins it), made
 * before the run is ended, so two hosts never requeue the same task.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import type { HostSession, Leases, OtherJobs } from "../ports/shared-queue.ts"
import { formatDuration } from "../domain/footer.ts"
import type { TaskName } from "../domain/task.ts"
import type { TaskStore } from "../ports/task-store.ts"
import { TaskLocks } from "./task-locks.ts"
import { endUnfinishedRun } from "./task-moves.ts"

export interface LeaseKeeperSettings {
  readonly leaseTtl: Duration.Duration
  readonly maxAttempts: number
  /** This host's sessions now, reported with each heartbeat so that every host's status shows them. */
  readonly sessions?: Effect.Effect<ReadonlyArray<HostSession>>
}

export const makeLeaseKeeper = (leases: Leases, settings: LeaseKeeperSettings) =>
  Effect.gen(function*() {
    const locks = yield* TaskLocks
    const ports = yield* Effect.context<TaskStore | TaskLocks>()

    /** Other hosts' tasks whose lease ran out, taken over and sent back; the names this host took. */
    const reclaim = Effect.gen(function*() {
      const taken: Array<TaskName> = []
      for (const lease of yield* leases.expired) {
        if (lease.host === leases.host) continue
        if (!(yield* leases.takeOver(lease.task))) continue
        const reason = lease.host === ""
          ? `no host held it in active/ (put there by hand?); ${leases.host} took it over`
          : `host ${lease.host} stopped renewing its lease (it ran out ${
            formatDuration(lease.expiredForMs)
          } ago); its session cannot be reached from ${leases.host}`
        const ended = yield* Effect.result(
          locks.withTask(lease.task, endUnfinishedRun(lease.task, "session_gone", reason, settings.maxAttempts))
        )
        if (Result.isFailure(ended)) {
          yield* Effect.logError(`taking over ${lease.task} from host ${lease.host} failed: ${ended.failure.message}`)
          continue
        }
        taken.push(lease.task)
        yield* Effect.logWarning(
          `${lease.task} ${ended.success.gaveUp ? "failed" : "back to pending"}: ${ended.success.reason}`
        ).pipe(Effect.annotateLogs({ task: lease.task, host: lease.host }))
      }
      return taken
    }).pipe(Effect.provideContext(ports))

    /**
     * A heartbeat and a look for expired leases, every third of a lease: a live host never loses one. Ends only when
     * another daemon has taken this host over (HostIdInUse): this one must stop supervising what is now the other's.
     */
    const run = Effect.forever(
      Effect.all([
        leases.heartbeat,
        reclaim,
        Effect.flatMap(settings.sessions ?? Effect.succeed([]), leases.reportSessions)
      ], { discard: true }).pipe(
        Effect.catchTag("StoreError", (error) =>
          Effect.logWarning(`the shared queue's leases: ${error.message}; tried again`)),
        Effect.andThen(Effect.sleep(Duration.divideUnsafe(settings.leaseTtl, 3)))
      )
    )

    /**
     * Other hosts' delegated jobs, every third of a lease, told to `note` (the delegation service): which a live host
     * reaps, and which nobody does any more, for this host to take on — a stopped host's jobs pass on as its tasks do.
     */
    const followJobs = (note: (jobs: OtherJobs) => Effect.Effect<void>) =>
      Effect.forever(
        Effect.flatMap(leases.otherJobs, note).pipe(
          Effect.catchTag("StoreError", (error) =>
            Effect.logWarning(`the shared queue's delegated jobs: ${error.message}; tried again`)),
          Effect.andThen(Effect.sleep(Duration.divideUnsafe(settings.leaseTtl, 3)))
        )
      )

    return { heartbeat: leases.heartbeat, reclaim, run, followJobs }
  })
