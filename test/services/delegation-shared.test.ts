/**
 * Delegation on a queue shared by several hosts (a real PostgreSQL, one secutools for all): a stopped host's jobs are
 * taken on by a live one and finished there, with the same jobs (no second submission under a new key); a live host's
 * jobs are left to it; and a host whose jobs were taken on while its heartbeat had lapsed stops polling them.
 */
import { expect } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import { MemorySecutoolsControl, MemorySecutoolsLayer } from "../../src/adapters/memory-secutools.ts"
import { parseTask, TaskName } from "../../src/domain/task.ts"
import { TaskStore } from "../../src/ports/task-store.ts"
import { Delegation, DelegationCountersRef, DelegationLayer } from "../../src/services/delegation.ts"
import { TaskLocks } from "../../src/services/task-locks.ts"
import { hostOn, onSharedQueue } from "../adapters/pg-database.ts"
import { delegationSettings } from "./delegation-layers.ts"

const TTL = Duration.seconds(1)
const TEXT = "---\npreferred_ai: gpu\n---\nSummarise.\n"

/** Polls `check` until it holds, for at most `within` (a condition with a deadline, not a fixed sleep). */
const eventually = <A, E>(check: Effect.Effect<A, E>, holds: (a: A) => boolean, within = Duration.seconds(10)) =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(within)
    for (;;) {
      const value = yield* check
      if (holds(value) || Date.now() > deadline) return value
      yield* Effect.sleep(Duration.millis(50))
    }
  })

onSharedQueue("delegation on a shared queue", (it) => {
  it.effect("a stopped host's jobs are taken on and finished by one live host; a live host's are left to it", () =>
    Effect.gen(function*() {
      const secutools = yield* Layer.build(MemorySecutoolsLayer)
      const control = Context.get(secutools, MemorySecutoolsControl)
      const hostNamed = (id: string) =>
        Effect.gen(function*() {
          const host = yield* hostOn(id, TTL)
          const context = yield* Layer.build(
            DelegationLayer(delegationSettings({ reapInterval: Duration.millis(100), sharedQueue: true })).pipe(
              Layer.provideMerge(Layer.mergeAll(
                Layer.succeedContext(secutools),
                DelegationCountersRef.layer,
                TaskLocks.layer,
                Layer.succeed(TaskStore, host.store)
              ))
            )
          )
          const delegation = Context.get(context, Delegation)
          const delegate = (name: TaskName) =>
            delegation.start(Result.getOrThrow(parseTask(name, TEXT)), "gpu", "asked for").pipe(
              Effect.provideContext(context)
            )
          /** One look at the other hosts' jobs, as the lease keeper takes it every third of a lease. */
          const lookAtOthers = Effect.flatMap(host.leases.otherJobs, delegation.otherHosts)
          return { ...host, delegation, delegate, lookAtOthers }
        })
      const [stopping, live, taker] = yield* Effect.all([hostNamed("dj-a"), hostNamed("dj-b"), hostNamed("dj-c")])
      const [first, second, third] = ["dj-1.md", "dj-2.md", "dj-3.md"].map((name) => TaskName.make(name))
      if (first === undefined || second === undefined || third === undefined) throw new Error("three tasks")
      for (const name of [first, second, third]) yield* stopping.store.create("pending", name, TEXT)

      // dj-a delegates two tasks, submits them, and stops; dj-b delegates one and lives on (so does dj-c).
      yield* stopping.delegate(first)
      yield* stopping.delegate(second)
      const submitting = yield* Effect.forkChild(stopping.delegation.run)
      yield* eventually(control.jobs, (jobs) => jobs.length === 2)
      yield* Fiber.interrupt(submitting)
      yield* live.delegate(third)
      const beating = yield* Effect.forkChild(
        Effect.repeat(
          Effect.all([live.leases.heartbeat, taker.leases.heartbeat]),
          Schedule.spaced(Duration.millis(200))
        )
      )
      const reaping = yield* Effect.forkChild(
        Effect.all([live.delegation.run, taker.delegation.run], { concurrency: "unbounded" })
      )

      // While dj-a's hold lasts, its jobs are not dj-c's to take: only known as delegated, so never routed there.
      yield* taker.lookAtOthers
      expect([first, second, third].map((name) => taker.delegation.isDelegated(name))).toStrictEqual([true, true, true])
      expect((yield* taker.delegation.status).active).toStrictEqual([])

      // Once it has run out, dj-c takes them on (dj-b's stays dj-b's) and polls them to the end.
      const taken = yield* eventually(
        Effect.andThen(taker.lookAtOthers, taker.delegation.status),
        (status) => status.active.length === 2
      )
      expect(taken.active.map((job) => [job.task, job.state])).toStrictEqual([[first, "submitted"], [
        second,
        "submitted"
      ]])
      for (const job of yield* control.jobs) yield* control.finish(job.job_id, "completed", { result: "Summary." })
      const sql = yield* SqlClient.SqlClient
      const stages = sql<{ readonly name: string; readonly stage: string }>`
        SELECT name, stage FROM cf_tasks WHERE name LIKE 'dj-%' ORDER BY name
      `
      const after = yield* eventually(stages, (rows) => rows.every((row) => row.stage === "done"))
      expect(after.map((row) => [row.name, row.stage])).toStrictEqual([
        [first, "done"],
        [second, "done"],
        [third, "done"]
      ])
      // Each by the host that held its job, with the one job made for its key.
      expect((yield* taker.delegation.status).counters.completed).toBe(2)
      expect((yield* live.delegation.status).counters.completed).toBe(1)
      expect((yield* control.jobs).length).toBe(3)
      expect(yield* sql`SELECT name FROM cf_markers WHERE name LIKE 'dj-%'`).toStrictEqual([])

      // dj-a, back after its hold ran out, finds its jobs were another host's: it no longer polls them.
      const [fourth] = [TaskName.make("dj-4.md")]
      yield* stopping.store.create("pending", fourth, TEXT)
      yield* stopping.delegate(fourth)
      yield* eventually(
        Effect.andThen(taker.lookAtOthers, taker.delegation.status),
        (status) => status.active.length === 1
      )
      yield* stopping.lookAtOthers
      expect((yield* stopping.delegation.status).active.map((job) => job.task)).not.toContain(fourth)
      // And the jobs finished elsewhere meanwhile: its reaper finds their tasks gone from pending/ and forgets them.
      const resumed = yield* Effect.forkChild(stopping.delegation.run)
      expect((yield* eventually(stopping.delegation.status, (status) => status.active.length === 0)).active)
        .toStrictEqual([])
      yield* Fiber.interrupt(resumed)
      yield* Fiber.interrupt(reaping)
      yield* Fiber.interrupt(beating)
    }))
})
