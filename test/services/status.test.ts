/**
 * The status snapshot: pending tasks the dispatcher already parsed are taken from its index, new and active ones are
 * read (again only when their file changed); and the live layer shares one snapshot between the requests of a
 * SNAPSHOT_TTL window, taking the next one ahead of the window's end.
 */
import { describe, expect, it } from "@effect/vitest"
import { HookEvents } from "../../src/services/hook-events.ts"
import { SessionStarterOff } from "../../src/services/session-starter.ts"
import { Deferred, Duration, Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import { makeMemoryTaskStore, MemoryTaskStoreLayer } from "../../src/adapters/memory-task-store.ts"
import { MemoryTmuxLayer } from "../../src/adapters/memory-tmux.ts"
import { TaskName } from "../../src/domain/task.ts"
import { TaskStore } from "../../src/ports/task-store.ts"
import { Dispatcher, DispatcherLayer } from "../../src/services/dispatcher.ts"
import { OwnWrites } from "../../src/services/own-writes.ts"
import {
  sharedSnapshot,
  type Snapshot,
  SNAPSHOT_REFRESH_AHEAD,
  SNAPSHOT_TTL,
  StatusReport,
  StatusReportLayer
} from "../../src/services/status.ts"
import { fixture } from "../fixtures/status-snapshot.ts"
import { memoryDelegation } from "./delegation-layers.ts"
import { dispatchSettingsForTests } from "./dispatch-settings.ts"

const layerOver = (store: Layer.Layer<TaskStore>) =>
  StatusReportLayer.pipe(
    Layer.provideMerge(DispatcherLayer(dispatchSettingsForTests())),
    Layer.provideMerge(memoryDelegation()),
    Layer.provideMerge(SessionStarterOff),
    Layer.provideMerge(HookEvents.layerMemory()),
    Layer.provideMerge(Layer.mergeAll(OwnWrites.tracking.pipe(Layer.provide(store)), MemoryTmuxLayer))
  )

const layer = layerOver(MemoryTaskStoreLayer)

/** The memory store, counting the files it reads from active/. */
const countingReads = () => {
  const reads = { active: 0 }
  const store = Layer.effect(
    TaskStore,
    Effect.map(makeMemoryTaskStore, ({ store }) =>
      TaskStore.of({
        ...store,
        read: (stage, name) => {
          if (stage === "active") reads.active++
          return store.read(stage, name)
        }
      }))
  )
  return { reads, store }
}

const activeFile = (attempts: number) =>
  `---\nstate: assigned\nsession: claude-1\nrun: r1\nattempts: ${attempts}\n---\nRunning.\n`

describe("status snapshot", () => {
  it.effect("lists pending tasks from the dispatcher's index, reading only files it has not parsed yet", () =>
    Effect.gen(function*() {
      const store = yield* TaskStore
      yield* store.create("pending", TaskName.make("indexed.md"), "---\nattempts: 2\n---\nIndexed.\n")
      yield* TestClock.adjust("1 second")
      const dispatcher = yield* Dispatcher
      yield* dispatcher.tick
      // Were the file read again, this would show as unparsable: the index's parse is what the snapshot uses.
      yield* store.replace("pending", TaskName.make("indexed.md"), "---\nattempts: [\n---\n")
      yield* store.create("pending", TaskName.make("new.md"), "---\nattempts: 1\n---\nNew.\n")
      yield* store.create("done", TaskName.make("old.md"), "Old.\n")
      const snapshot = yield* (yield* StatusReport).snapshot
      expect(snapshot.tasks).toStrictEqual({
        pending: [
          { name: "indexed.md", state: "pending", attempts: 2 },
          { name: "new.md", state: "pending", attempts: 1 }
        ],
        active: [],
        done: [{ name: "old.md", state: "done" }],
        failed: []
      })
    }).pipe(Effect.provide(layer)))

  it.effect("the live layer reuses a snapshot for SNAPSHOT_TTL after taking it, then lists the queue again", () =>
    Effect.gen(function*() {
      const store = yield* TaskStore
      const status = yield* StatusReport
      yield* store.create("done", TaskName.make("a.md"), "A.\n")
      expect((yield* status.snapshot).tasks.done.map((t) => t.name)).toStrictEqual(["a.md"])
      yield* store.create("done", TaskName.make("b.md"), "B.\n")
      yield* TestClock.adjust(Duration.subtract(SNAPSHOT_TTL, Duration.millis(1)))
      expect((yield* status.snapshot).tasks.done.map((t) => t.name)).toStrictEqual(["a.md"])
      yield* TestClock.adjust("1 millis")
      expect((yield* status.snapshot).tasks.done.map((t) => t.name)).toStrictEqual(["a.md", "b.md"])
    }).pipe(Effect.provide(layer)))

  it.effect("an active task is read once, then read again only when its file is rewritten", () => {
    const counting = countingReads()
    return Effect.gen(function*() {
      const store = yield* TaskStore
      const status = yield* StatusReport
      const name = TaskName.make("running.md")
      yield* store.create("active", name, activeFile(1))
      const view = (attempts: number) => [{ name, state: "assigned", session: "claude-1", attempts }]
      expect((yield* status.snapshot).tasks.active).toStrictEqual(view(1))
      yield* TestClock.adjust(SNAPSHOT_TTL)
      expect((yield* status.snapshot).tasks.active).toStrictEqual(view(1))
      expect(counting.reads.active).toBe(1)
      yield* store.replace("active", name, activeFile(2))
      yield* TestClock.adjust(SNAPSHOT_TTL)
      expect((yield* status.snapshot).tasks.active).toStrictEqual(view(2))
      expect(counting.reads.active).toBe(2)
      // Gone from active/: gone from the snapshot.
      yield* store.move("active", "done", name)
      yield* TestClock.adjust(SNAPSHOT_TTL)
      expect((yield* status.snapshot).tasks.active).toStrictEqual([])
    }).pipe(Effect.provide(layerOver(counting.store)))
  })
})

/** A StatusReport whose snapshot waits for `gate`, counting how many times it is taken. */
const gatedReport = (gate: Deferred.Deferred<void>) => {
  let taken = 0
  const report = StatusReport.of({
    snapshot: Effect.gen(function*() {
      taken++
      yield* Deferred.await(gate)
      return { ...fixture, at: `snapshot ${taken}` } satisfies Snapshot
    })
  })
  return { report, taken: () => taken }
}

/** A StatusReport whose n-th snapshot waits for the n-th gate (the first is open), counting how many were taken. */
const gatedReports = (gates: ReadonlyArray<Deferred.Deferred<void>>) => {
  let taken = 0
  const report = StatusReport.of({
    snapshot: Effect.gen(function*() {
      const n = ++taken
      const gate = gates[n - 1]
      if (gate !== undefined) yield* Deferred.await(gate)
      return { ...fixture, at: `snapshot ${n}` } satisfies Snapshot
    })
  })
  return { report, taken: () => taken }
}

describe("sharedSnapshot", () => {
  it.effect("500 concurrent callers while a snapshot is being taken: it is taken once and all get it", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const inner = gatedReport(gate)
      const shared = yield* sharedSnapshot(SNAPSHOT_TTL)(inner.report)
      let asked = 0
      const ask = Effect.andThen(Effect.sync(() => asked++), shared.snapshot)
      const callers = yield* Effect.forEach(Array.from({ length: 500 }), () => Effect.forkChild(ask))
      yield* Effect.yieldNow
      // Every caller is waiting on the snapshot being taken, and it was taken once.
      expect([asked, inner.taken()]).toStrictEqual([500, 1])
      yield* Deferred.succeed(gate, undefined)
      const answers = yield* Effect.forEach(callers, Fiber.join)
      expect(inner.taken()).toBe(1)
      expect(new Set(answers.map((a) => a.at))).toStrictEqual(new Set(["snapshot 1"]))
    }))

  it.effect("a caller after the window gets a fresh snapshot", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      yield* Deferred.succeed(gate, undefined)
      const inner = gatedReport(gate)
      const shared = yield* sharedSnapshot(Duration.millis(250))(inner.report)
      expect((yield* shared.snapshot).at).toBe("snapshot 1")
      yield* TestClock.adjust("249 millis")
      expect((yield* shared.snapshot).at).toBe("snapshot 1")
      yield* TestClock.adjust("1 millis")
      expect((yield* shared.snapshot).at).toBe("snapshot 2")
      expect(inner.taken()).toBe(2)
    }))

  it.effect("a caller in the window's last SNAPSHOT_REFRESH_AHEAD is answered at once and starts the next snapshot; callers after the window wait for that one", () =>
    Effect.gen(function*() {
      const [first, second] = [yield* Deferred.make<void>(), yield* Deferred.make<void>()]
      yield* Deferred.succeed(first, undefined)
      const inner = gatedReports([first, second])
      const shared = yield* sharedSnapshot(SNAPSHOT_TTL)(inner.report)
      expect((yield* shared.snapshot).at).toBe("snapshot 1")
      const refreshAt = Duration.subtract(SNAPSHOT_TTL, SNAPSHOT_REFRESH_AHEAD)
      yield* TestClock.adjust(Duration.subtract(refreshAt, Duration.millis(1)))
      expect((yield* shared.snapshot).at).toBe("snapshot 1")
      expect(inner.taken()).toBe(1)
      yield* TestClock.adjust("1 millis")
      // The next snapshot is under way (waiting for its gate), and this caller did not wait for it.
      expect((yield* shared.snapshot).at).toBe("snapshot 1")
      expect(inner.taken()).toBe(2)
      yield* TestClock.adjust(SNAPSHOT_REFRESH_AHEAD)
      let answered = false
      const late = yield* Effect.forkChild(Effect.tap(shared.snapshot, () => Effect.sync(() => (answered = true))))
      yield* Effect.yieldNow
      expect(answered).toBe(false)
      yield* Deferred.succeed(second, undefined)
      expect((yield* Fiber.join(late)).at).toBe("snapshot 2")
      expect(inner.taken()).toBe(2)
    }))

  it.effect("a snapshot that took longer than SNAPSHOT_REFRESH_AHEAD starts the next that long before the window ends", () =>
    Effect.gen(function*() {
      let taken = 0
      const slow = StatusReport.of({
        snapshot: Effect.gen(function*() {
          const n = ++taken
          yield* Effect.sleep("200 millis")
          return { ...fixture, at: `snapshot ${n}` } satisfies Snapshot
        })
      })
      const shared = yield* sharedSnapshot(SNAPSHOT_TTL)(slow)
      const first = yield* Effect.forkChild(shared.snapshot)
      yield* TestClock.adjust("200 millis")
      expect((yield* Fiber.join(first)).at).toBe("snapshot 1")
      // It took 200 ms, so the next one starts 200 ms before the window ends (at 50 ms), not 100 ms before.
      yield* TestClock.adjust("49 millis")
      expect((yield* shared.snapshot).at).toBe("snapshot 1")
      expect(taken).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect((yield* shared.snapshot).at).toBe("snapshot 1")
      expect(taken).toBe(2)
      // The window ends as the next snapshot is ready: nobody waits.
      yield* TestClock.adjust("200 millis")
      expect((yield* shared.snapshot).at).toBe("snapshot 2")
      expect(taken).toBe(2)
    }))

  it.effect("callers that all give up abandon the snapshot; the next caller takes a new one", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const inner = gatedReport(gate)
      const shared = yield* sharedSnapshot(SNAPSHOT_TTL)(inner.report)
      const callers = yield* Effect.forEach([1, 2, 3], () => Effect.forkChild(shared.snapshot))
      yield* Effect.yieldNow
      yield* Effect.forEach(callers, Fiber.interrupt)
      yield* Deferred.succeed(gate, undefined)
      expect((yield* shared.snapshot).at).toBe("snapshot 2")
      expect(inner.taken()).toBe(2)
    }))
})
