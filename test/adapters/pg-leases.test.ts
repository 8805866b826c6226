/**
 * Claims and leases on a real PostgreSQL, each host with its own pool of connections: of several hosts claiming the
 * same tasks at once each task goes to exactly one, a live host keeps its leases, and the tasks of a host that stops
 * are taken over by exactly one other host once its leases run out.
 */
import { expect } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import type { DelegationMarker } from "../../src/domain/marker.ts"
import { TaskEvent } from "../../src/domain/lifecycle.ts"
import { TaskName } from "../../src/domain/task.ts"
import { TaskStore } from "../../src/ports/task-store.ts"
import { Delegation } from "../../src/services/delegation.ts"
import { applyEvent, readTask } from "../../src/services/task-moves.ts"
import { memoryDelegation } from "../services/delegation-layers.ts"
import { makeLeases } from "../../src/adapters/pg/leases.ts"
import { hostOn, onSharedQueue } from "./pg-database.ts"

const TTL = Duration.seconds(1)

const hostNamed = (host: string) => hostOn(host, TTL)

const markerOf = (task: TaskName, key: string): DelegationMarker => ({
  task,
  provider: "gemini",
  run: "r1",
  idempotency_key: key,
  state: "submitted",
  job_id: `job-of-${task}`,
  created_at: "2026-11-26T07:00:00.000Z",
  submitted_at: "2026-11-26T07:00:01.000Z",
  polls: 0
})

const names = (prefix: string, count: number) =>
  Array.from({ length: count }, (_, i) => TaskName.make(`${prefix}-${String(i).padStart(3, "0")}.md`))

/** Tries to move each task from pending/ to active/; the ones this host got. */
const claimAll = (host: Effect.Success<ReturnType<typeof hostNamed>>, tasks: ReadonlyArray<TaskName>) =>
  Effect.forEach(tasks, (task) =>
    host.store.move("pending", "active", task).pipe(
      Effect.as([task]),
      Effect.catchTag("TaskNotFound", () => Effect.succeed([]))
    ), { concurrency: 4 }).pipe(Effect.map((claimed) => claimed.flat()))

/** Polls `check` until it holds, for at most `within` (a condition with a deadline, not a fixed sleep). */
const eventually = <A>(check: Effect.Effect<A, unknown>, holds: (a: A) => boolean, within: Duration.Duration) =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(within)
    for (;;) {
      const value = yield* check
      if (holds(value)) return value
      if (Date.now() > deadline) return value
      yield* Effect.sleep(Duration.millis(100))
    }
  })

onSharedQueue("PostgreSQL leases", (it) => {
  it.effect("three hosts claiming the same 60 tasks at once: each task is claimed once, leased to its claimer", () =>
    Effect.gen(function*() {
      const [a, b, c] = yield* Effect.all([hostNamed("host-a"), hostNamed("host-b"), hostNamed("host-c")])
      const tasks = names("race", 60)
      for (const task of tasks) yield* a.store.create("pending", task, `Task ${task}.\n`)
      // Each host goes through the tasks in its own order, so they collide all along the way.
      const orders = [tasks, [...tasks].reverse(), [...tasks.slice(30), ...tasks.slice(0, 30)]]
      const claimed = yield* Effect.all(
        [claimAll(a, orders[0] ?? []), claimAll(b, orders[1] ?? []), claimAll(c, orders[2] ?? [])],
        { concurrency: "unbounded" }
      )
      const all = claimed.flat()
      expect(all.length).toBe(60)
      expect(new Set(all).size).toBe(60)
      expect(yield* a.store.list("pending")).toStrictEqual([])

      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ readonly name: string; readonly lease_host: string }>`
        SELECT name, lease_host FROM cf_tasks WHERE stage = 'active' AND name LIKE 'race-%'
      `
      const holder = new Map(rows.map((row) => [row.name, row.lease_host]))
      for (const [index, host] of [a, b, c].entries())
        for (const task of claimed[index] ?? []) expect(holder.get(task)).toBe(host.host)
      // Moving a task on (to done/) ends its lease.
      const first = all[0]
      if (first !== undefined) {
        const owner = [a, b, c].find((_, index) => (claimed[index] ?? []).includes(first))
        yield* (owner ?? a).store.move("active", "done", first)
        const after = yield* sql<{ readonly lease_host: string | null }>`
          SELECT lease_host FROM cf_tasks WHERE stage = 'done' AND name = ${first}
        `
        expect(after[0]?.lease_host).toBeNull()
      }
    }))

  it.effect("each host reaps the jobs it delegated; a stopped host's jobs are taken on by exactly one other", () =>
    Effect.gen(function*() {
      const hosts = yield* Effect.all([hostNamed("reap-a"), hostNamed("reap-b"), hostNamed("reap-c")])
      const [a, b, c] = hosts
      const jobsOf = new Map(hosts.map((host) => [host.host, names(`job-${host.host}`, 30)]))
      for (const host of hosts) {
        for (const [index, task] of (jobsOf.get(host.host) ?? []).entries())
          yield* host.store.writeMarker(task, markerOf(task, `key-${host.host}-${index}`))
      }
      // Each host lists its own; sees the others' as reaped by a live host; can neither take nor rewrite them.
      for (const host of hosts) {
        expect(yield* host.store.listMarkers()).toStrictEqual(jobsOf.get(host.host))
        const others = yield* host.leases.otherJobs
        expect(others.free).toStrictEqual([])
        expect(others.reaped.length).toBe(60)
        expect(others.reaped.some((task) => jobsOf.get(host.host)?.includes(task))).toBe(false)
      }
      const ofA = jobsOf.get("reap-a") ?? []
      const firstOfA = ofA[0] ?? TaskName.make("none.md")
      expect(yield* b.store.claimMarker(firstOfA)).toStrictEqual(Option.none())
      const refused = yield* Effect.flip(b.store.writeMarker(firstOfA, markerOf(firstOfA, "key-of-b")))
      expect(refused._tag).toBe("TaskNotFound")
      // Nor remove them: the job goes on, with its marker.
      yield* b.store.removeMarker(firstOfA)
      expect(Option.isSome(yield* a.store.readMarker(firstOfA))).toBe(true)
      // a's own marker is its to take on again (after its restart, say).
      expect(Option.isSome(yield* a.store.claimMarker(firstOfA))).toBe(true)

      // a stops; b and c beat on. Once a's claims run out, they are free, and b and c, both taking every free one at
      // once, get each exactly once.
      const beating = yield* Effect.forkChild(
        Effect.repeat(Effect.all([b.leases.heartbeat, c.leases.heartbeat]), Schedule.spaced(Duration.millis(200)))
      )
      const free = yield* eventually(
        Effect.map(b.leases.otherJobs, (jobs) => jobs.free),
        (names) => names.length === 30,
        Duration.seconds(10)
      )
      expect(free).toStrictEqual(ofA)
      const takeAll = (host: typeof b) =>
        Effect.forEach(
          free,
          (task) => Effect.map(host.store.claimMarker(task), (got) => Option.isSome(got) ? [task] : []),
          {
            concurrency: 4
          }
        ).pipe(Effect.map((got) => got.flat()))
      const [byB, byC] = yield* Effect.all([takeAll(b), takeAll(c)], { concurrency: "unbounded" })
      expect([...byB, ...byC].sort()).toStrictEqual(ofA)
      // Renewed by their new reapers' heartbeats: still theirs after a's lease would have run out again.
      yield* Effect.sleep(Duration.millis(1_500))
      yield* Fiber.interrupt(beating)
      expect((yield* b.store.listMarkers()).filter((task) => ofA.includes(task))).toStrictEqual(byB)
      expect((yield* c.store.listMarkers()).filter((task) => ofA.includes(task))).toStrictEqual(byC)
      expect((yield* c.leases.otherJobs).free).toStrictEqual([])
    }))

  it.effect("one marker per idempotency key: another task's marker with a key in use is refused", () =>
    Effect.gen(function*() {
      const a = yield* hostNamed("key-a")
      yield* a.store.writeMarker(TaskName.make("first.md"), markerOf(TaskName.make("first.md"), "same-key"))
      // Rewriting a task's own marker (submitting → submitted) keeps its key: fine.
      yield* a.store.writeMarker(TaskName.make("first.md"), {
        ...markerOf(TaskName.make("first.md"), "same-key"),
        state: "submitted",
        job_id: "j1"
      })
      const second = yield* Effect.exit(
        a.store.writeMarker(TaskName.make("second.md"), markerOf(TaskName.make("second.md"), "same-key"))
      )
      expect(second._tag).toBe("Failure")
      expect(yield* a.store.readMarker(TaskName.make("second.md"))).toStrictEqual(Option.none())
    }))

  it.effect("a live host keeps its leases; a stopped host's expire, and exactly one other host takes each over", () =>
    Effect.gen(function*() {
      const [a, b, c] = yield* Effect.all([hostNamed("lease-a"), hostNamed("lease-b"), hostNamed("lease-c")])
      const ofA = names("of-a", 5)
      const ofB = names("of-b", 5)
      for (const task of [...ofA, ...ofB]) yield* a.store.create("pending", task, "Work.\n")
      // b claims first: without its heartbeat, its leases would run out before a's.
      expect(yield* claimAll(b, ofB)).toStrictEqual(ofB)
      expect(yield* claimAll(a, ofA)).toStrictEqual(ofA)

      // b goes on beating; a has stopped (as after kill -9).
      const beating = yield* Effect.forkChild(
        Effect.repeat(b.leases.heartbeat, Schedule.spaced(Duration.millis(200)))
      )
      // (The first test's hosts stopped too: only this test's tasks are looked at.)
      const ours = Effect.map(c.leases.expired, (leases) => leases.filter((lease) => lease.task.startsWith("of-")))
      const expired = yield* eventually(ours, (leases) => leases.length >= 5, Duration.seconds(10))
      expect(expired.map((lease) => lease.task)).toStrictEqual(ofA)
      expect(expired.every((lease) => lease.host === "lease-a")).toBe(true)

      // b and c both try to take over each of a's tasks at the same moment.
      const takes = yield* Effect.forEach(
        ofA,
        (task) => Effect.all([b.leases.takeOver(task), c.leases.takeOver(task)], { concurrency: "unbounded" }),
        { concurrency: "unbounded" }
      )
      for (const [byB, byC] of takes) expect(Number(byB) + Number(byC)).toBe(1)
      // Taken over, a task is leased anew: it is no longer expired, and a second take-over finds nothing.
      expect((yield* ours).map((lease) => lease.task)).toStrictEqual([])
      expect(yield* c.leases.takeOver(ofA[0] ?? TaskName.make("none.md"))).toBe(false)

      const hosts = new Map((yield* c.leases.hosts).map((host) => [host.host, host]))
      expect(hosts.get("lease-a")?.leases).toBe(0)
      expect((hosts.get("lease-b")?.leases ?? 0) + (hosts.get("lease-c")?.leases ?? 0)).toBe(10)
      expect(hosts.get("lease-b")?.heartbeatAt ?? 0).toBeGreaterThan(hosts.get("lease-a")?.heartbeatAt ?? 0)
      yield* Fiber.interrupt(beating)
    }))
})

onSharedQueue("PostgreSQL: two hosts acting on what each read of the same task", (it) => {
  it.effect("hosts assigning the same pending tasks at once: each task gets one run, no second row", () =>
    Effect.gen(function*() {
      const hosts = yield* Effect.all([hostNamed("assign-a"), hostNamed("assign-b"), hostNamed("assign-c")])
      const tasks = names("assign", 30)
      for (const task of tasks) yield* hosts[0].store.create("pending", task, "Work.\n")
      // Each host reads every task first (as its intake does), then assigns it: the writes race on what each read.
      for (const host of hosts) for (const task of tasks) yield* host.store.read("pending", task)
      const assign = (host: (typeof hosts)[number], task: TaskName) =>
        applyEvent(
          "pending",
          task,
          TaskEvent.Assign({ session: `${host.host}:claude-1`, at: "2026-11-26T09:00:00.000Z", run: host.host })
        ).pipe(
          Effect.provideService(TaskStore, host.store),
          Effect.as([task]),
          Effect.catchTag("TaskNotFound", () => Effect.succeed([]))
        )
      const won = yield* Effect.all(
        hosts.map((host) => Effect.forEach(tasks, (task) => assign(host, task), { concurrency: 4 })),
        { concurrency: "unbounded" }
      )
      const all = won.flatMap((perHost) => perHost.flat())
      expect([...all].sort()).toStrictEqual(tasks)
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ readonly stage: string; readonly name: string; readonly text: string }>`
        SELECT stage, name, text FROM cf_tasks WHERE name LIKE 'assign-%' ORDER BY name
      `
      expect(rows.map((row) => [row.stage, row.name])).toStrictEqual(tasks.map((task) => ["active", task]))
      // The run written is the winner's own: the text was not written over by a host that lost the race.
      for (const [index, host] of hosts.entries()) {
        for (const task of (won[index] ?? []).flat()) {
          expect(rows.find((row) => row.name === task)?.text).toContain(`run: ${host.host}`)
        }
      }
      // Each host's list of active/ is the runs it holds: the tasks it won, none of the others'.
      for (const [index, host] of hosts.entries()) {
        expect(yield* host.store.list("active")).toStrictEqual([...(won[index] ?? []).flat()].sort())
      }
    }))

  it.effect("hosts delegating and assigning the same pending tasks at once: each is delegated once or assigned once", () =>
    Effect.gen(function*() {
      const hosts = yield* Effect.all([hostNamed("deleg-a"), hostNamed("deleg-b"), hostNamed("deleg-c")])
      const [, , assigner] = hosts
      const tasks = names("deleg", 20)
      for (const task of tasks) yield* hosts[0].store.create("pending", task, "---\npreferred_ai: gpu\n---\nWork.\n")
      // Two hosts delegate every task, the third assigns every task to a session; each read them all first.
      const delegators = yield* Effect.forEach(hosts.slice(0, 2), (host) =>
        Effect.map(
          Layer.build(
            memoryDelegation({ sharedQueue: true }).pipe(Layer.provideMerge(Layer.succeed(TaskStore, host.store)))
          ),
          (context) => ({ host, context })
        ))
      for (const host of hosts) for (const task of tasks) yield* host.store.read("pending", task)
      const delegate = (delegator: (typeof delegators)[number], task: TaskName) =>
        Effect.gen(function*() {
          const { task: read } = yield* readTask("pending", task)
          const delegation = yield* Delegation
          yield* delegation.start(read, "gpu", "asked for")
          return [task]
        }).pipe(
          Effect.catchTag("TaskNotFound", () => Effect.succeed([])),
          Effect.provideContext(delegator.context)
        )
      const assign = (task: TaskName) =>
        applyEvent(
          "pending",
          task,
          TaskEvent.Assign({
            session: "claude-1",
            at: "2026-11-26T09:00:00.000Z",
            run: "r-assigned",
            host: assigner.host
          })
        ).pipe(
          Effect.provideService(TaskStore, assigner.store),
          Effect.as([task]),
          Effect.catchTag("TaskNotFound", () => Effect.succeed([]))
        )
      const [byA, byB, assigned] = yield* Effect.all([
        ...delegators.map((delegator) =>
          Effect.map(
            Effect.forEach(tasks, (task) => delegate(delegator, task), { concurrency: 4 }),
            (won) => won.flat()
          )
        ),
        Effect.map(Effect.forEach(tasks, assign, { concurrency: 4 }), (won) => won.flat())
      ], { concurrency: "unbounded" })
      expect([...(byA ?? []), ...(byB ?? []), ...(assigned ?? [])].sort()).toStrictEqual(tasks)

      const sql = yield* SqlClient.SqlClient
      const markers = yield* sql<{ readonly name: string; readonly reaper_host: string; readonly marker: string }>`
        SELECT name, reaper_host, marker FROM cf_markers WHERE name LIKE 'deleg-%' ORDER BY name
      `
      const rows = yield* sql<{ readonly stage: string; readonly name: string; readonly text: string }>`
        SELECT stage, name, text FROM cf_tasks WHERE name LIKE 'deleg-%' ORDER BY name
      `
      // One row per task; a marker exactly for the delegated ones, reaped by the host that won, naming the task's run.
      expect(rows.map((row) => row.name)).toStrictEqual(tasks)
      expect(markers.map((row) => row.name)).toStrictEqual([...(byA ?? []), ...(byB ?? [])].sort())
      for (const row of rows) {
        const marker = markers.find((m) => m.name === row.name)
        if (marker === undefined) {
          expect([row.stage, row.text.includes("run: r-assigned")]).toStrictEqual(["active", true])
          continue
        }
        expect(row.stage).toBe("pending")
        expect(marker.reaper_host).toBe((byA ?? []).includes(TaskName.make(row.name)) ? "deleg-a" : "deleg-b")
        const run = (JSON.parse(marker.marker) as { readonly run: string }).run
        expect(row.text).toContain(`run: ${run}`)
        expect(row.text).toContain("state: delegated_to_secutools")
      }
      // Each delegating host knows the jobs it won as delegated, and no other.
      for (const [index, delegator] of delegators.entries()) {
        const delegation = Context.get(delegator.context, Delegation)
        const won = index === 0 ? byA ?? [] : byB ?? []
        expect(tasks.filter((task) => delegation.isDelegated(task))).toStrictEqual(won)
      }
    }))

  it.effect("a task whose name another host's running task has goes to active/ under a free name, in one transaction", () =>
    Effect.gen(function*() {
      const [here, there] = yield* Effect.all([hostNamed("clash-a"), hostNamed("clash-b")])
      const name = TaskName.make("clash.md")
      yield* there.store.create("pending", name, "The other host's.\n")
      yield* there.store.move("pending", "active", name)
      yield* here.store.create("pending", name, "This host's.\n")
      const applied = yield* applyEvent(
        "pending",
        name,
        TaskEvent.Assign({ session: "claude-1", at: "2026-11-26T09:00:00.000Z", run: "r-here", host: here.host })
      ).pipe(Effect.provideService(TaskStore, here.store))
      expect(applied).toMatchObject({ stage: "active", name: "clash-2.md" })
      expect((yield* here.store.read("active", TaskName.make("clash-2.md"))).text).toContain("run: r-here")
      expect((yield* there.store.read("active", name)).text).toBe("The other host's.\n")
      expect(yield* here.store.has("pending", name)).toBe(false)
    }))

  it.effect("a write the lost host prepared before its task was taken over is refused", () =>
    Effect.gen(function*() {
      const [lost, taker] = yield* Effect.all([hostNamed("stale-a"), hostNamed("stale-b")])
      const task = TaskName.make("stale.md")
      yield* lost.store.create("pending", task, "Work.\n")
      yield* lost.store.move("pending", "active", task)
      const read = yield* lost.store.read("active", task)
      // The lost host stops renewing; the other host takes the task over once the lease has run out.
      yield* eventually(taker.leases.takeOver(task), (taken) => taken, Duration.seconds(10))
      const late = yield* Effect.exit(lost.store.replace("active", task, `${read.text}late: true\n`))
      expect(late._tag).toBe("Failure")
      const moved = yield* Effect.exit(lost.store.move("active", "done", task))
      expect(moved._tag).toBe("Failure")
      expect((yield* taker.store.read("active", task)).text).toBe("Work.\n")
      expect(yield* lost.store.list("active")).toStrictEqual([])
      expect(yield* taker.store.list("active")).toStrictEqual([task])
    }))
})

onSharedQueue("PostgreSQL: one daemon per host id", (it) => {
  it.effect("a second daemon with a host id in use is refused; once the first's heartbeat lapsed it takes over", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const first = yield* makeLeases("twin", TTL, { instance: "daemon-1" })
      const second = yield* makeLeases("twin", TTL, { instance: "daemon-2" })
      expect(yield* first.register).toStrictEqual(Option.none())
      // The first beats on: the second is told whose heartbeat it met, and is refused as long as it goes on.
      const met = yield* second.register
      expect(Option.isSome(met)).toBe(true)
      yield* first.heartbeat
      const again = yield* second.register
      expect(Option.getOrElse(again, () => 0)).toBeGreaterThanOrEqual(Option.getOrElse(met, () => Infinity))
      // The first stops (kill -9): once its heartbeat is older than a lease, the second takes the host over...
      const taken = yield* eventually(second.register, Option.isNone, Duration.seconds(10))
      expect(taken).toStrictEqual(Option.none())
      // ...and the first, coming back, finds it is no longer the host: it must stop.
      const lost = yield* Effect.flip(first.heartbeat)
      expect(lost._tag).toBe("HostIdInUse")
      expect(lost.message).toContain("another daemon now runs as HOST_ID twin")
      expect(yield* second.heartbeat).toBe(0)
      const rows = yield* sql<{ readonly instance: string }>`SELECT instance FROM cf_hosts WHERE host = 'twin'`
      expect(rows).toStrictEqual([{ instance: "daemon-2" }])
    }))
})
