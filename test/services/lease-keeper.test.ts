/**
 * The lease keeper on a real PostgreSQL with two hosts, each with its own pool: the task a stopped host was running
 * goes back to pending through the same lifecycle as a dead session's (attempt counted, history saying why), a late
 * completion from the stopped host's session is refused by the run token, and a live host's tasks are never touched.
 */
import { expect } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import { newRunId, TaskEvent } from "../../src/domain/lifecycle.ts"
import { parseTask, TaskName } from "../../src/domain/task.ts"
import { TaskStore } from "../../src/ports/task-store.ts"
import { makeLeaseKeeper } from "../../src/services/lease-keeper.ts"
import { TaskLocks } from "../../src/services/task-locks.ts"
import { applyEvent } from "../../src/services/task-moves.ts"
import { performOperation } from "../../src/services/task-operations.ts"
import { makePgTaskStore } from "../../src/adapters/pg/task-store.ts"
import { hostOn, onSharedQueue } from "../adapters/pg-database.ts"

const TTL = Duration.seconds(1)

/** A host on the shared test schema, with its keeper; `on` runs an effect on its store. */
const hostNamed = (host: string) =>
  Effect.gen(function*() {
    const { leases, store } = yield* hostOn(host, TTL)
    const ports = Layer.mergeAll(Layer.succeed(TaskStore, store), TaskLocks.layer)
    const keeper = yield* makeLeaseKeeper(leases, { leaseTtl: TTL, maxAttempts: 5 }).pipe(Effect.provide(ports))
    const on = <A, E>(effect: Effect.Effect<A, E, TaskStore>) => Effect.provide(effect, Layer.succeed(TaskStore, store))
    return { host, store, leases, keeper, on }
  })

/** The host assigns `name` to one of its sessions, as its dispatcher does: the move into active/ is its claim. */
const assign = (on: Effect.Success<ReturnType<typeof hostNamed>>["on"], name: TaskName, session: string) =>
  Effect.gen(function*() {
    const run = newRunId()
    yield* on(applyEvent("pending", name, TaskEvent.Assign({ session, at: new Date().toISOString(), run })))
    return run
  })

const fieldsOf = (
  store: Effect.Success<ReturnType<typeof hostNamed>>["store"],
  stage: "pending" | "active",
  name: TaskName
) => Effect.map(store.read(stage, name), (stored) => Result.getOrThrow(parseTask(name, stored.text)).fields)

onSharedQueue("the lease keeper", (it) => {
  it.effect("a stopped host's task goes back to pending once, counted; its late completion is refused", () =>
    Effect.gen(function*() {
      const [a, b, c] = yield* Effect.all([hostNamed("keep-a"), hostNamed("keep-b"), hostNamed("keep-c")])
      const lost = TaskName.make("lost.md")
      const kept = TaskName.make("kept.md")
      yield* a.store.create("pending", lost, "Do the lost work.\n")
      yield* a.store.create("pending", kept, "Do the kept work.\n")
      const lostRun = yield* assign(a.on, lost, "claude-1")
      yield* assign(b.on, kept, "claude-1")

      // a stops (kill -9: no heartbeat); b and c keep theirs going and look for expired leases.
      const deadline = Date.now() + 10_000
      const takenBy: Array<string> = []
      while (Date.now() < deadline) {
        yield* Effect.all([b.keeper.heartbeat, c.keeper.heartbeat])
        const [byB, byC] = yield* Effect.all([b.keeper.reclaim, c.keeper.reclaim], { concurrency: "unbounded" })
        for (const task of byB) takenBy.push(`b:${task}`)
        for (const task of byC) takenBy.push(`c:${task}`)
        if (takenBy.length > 0) break
        yield* Effect.sleep(Duration.millis(100))
      }
      // Exactly one host took it over; the live host's task was left alone.
      expect(takenBy.map((entry) => entry.slice(2))).toStrictEqual(["lost.md"])
      const back = yield* fieldsOf(b.store, "pending", lost)
      expect(back.state ?? "pending").toBe("pending")
      expect(back.run).toBeUndefined()
      expect(back.attempts).toBe(1)
      expect(back.history?.at(-1)).toMatchObject({ event: "requeued", cause: "session_gone" })
      expect(back.history?.at(-1)?.reason).toContain("host keep-a stopped renewing its lease")
      expect((yield* fieldsOf(b.store, "active", kept)).session).toBe("claude-1")

      // The stopped host's session finishes after all: its run is not the task's any more.
      const late = yield* a.on(performOperation(lost, { op: "done", task: lost, run: lostRun }))
      expect(late.code).toBe(3)
      expect(yield* b.store.list("done")).not.toContain(lost)

      // Run again on b, it is b's: a second look finds nothing to take.
      yield* assign(b.on, lost, "claude-2")
      yield* b.keeper.heartbeat
      expect(yield* c.keeper.reclaim).toStrictEqual([])
    }))

  it.effect("a task in active/ that no host holds (put there by hand) is taken over by one host and sent back", () =>
    Effect.gen(function*() {
      const [a, b] = yield* Effect.all([hostNamed("orphan-a"), hostNamed("orphan-b")])
      const name = TaskName.make("by-hand.md")
      // Written straight into active/ by a store with no host: no lease, so no host's list of active/ shows it.
      const anyone = yield* makePgTaskStore()
      yield* anyone.create(
        "active",
        name,
        "---\nstate: assigned\nrun: r0\nsession: claude-1\nattempts: 1\n---\nWork.\n"
      )
      expect(yield* a.store.list("active")).not.toContain(name)
      const [byA, byB] = yield* Effect.all([a.keeper.reclaim, b.keeper.reclaim], { concurrency: "unbounded" })
      // Exactly one of the two took it (the first test's stopped hosts' tasks may be taken too: not looked at here).
      expect([...byA, ...byB].filter((task) => task === name)).toStrictEqual([name])
      const back = yield* fieldsOf(a.store, "pending", name)
      expect(back.history?.at(-1)?.reason).toContain("no host held it in active/")
    }))
})
