/**
 * The status snapshot: pending tasks the dispatcher already parsed are taken from its index, new ones are read; and
 * the live layer shares one snapshot between the requests of a SNAPSHOT_TTL window.
 */
import { describe, expect, it } from "@effect/vitest"
import { HookEvents } from "../../src/services/hook-events.ts"
import { SessionStarterOff } from "../../src/services/session-starter.ts"
import { Deferred, Duration, Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import { MemoryTaskStoreLayer } from "../../src/adapters/memory-task-store.ts"
import { MemoryTmuxLayer } from "../../src/adapters/memory-tmux.ts"
import { TaskName } from "../../src/domain/task.ts"
import { TaskStore } from "../../src/ports/task-store.ts"
import { Dispatcher, DispatcherLayer } from "../../src/services/dispatcher.ts"
import { OwnWrites } from "../../src/services/own-writes.ts"
import {
  sharedSnapshot,
  type Snapshot,
  SNAPSHOT_TTL,
  StatusReport,
  StatusReportLayer
} from "../../src/services/status.ts"
import { fixture } from "../fixtures/status-snapshot.ts"
import { memoryDelegation } from "./delegation-layers.ts"
import { dispatchSettingsForTests } from "./dispatch-settings.ts"

const layer = StatusReportLayer.pipe(
  Layer.provideMerge(DispatcherLayer(dispatchSettingsForTests())),
  Layer.provideMerge(memoryDelegation()),
  Layer.provideMerge(SessionStarterOff),
  Layer.provideMerge(HookEvents.layerMemory()),
  Layer.provideMerge(Layer.mergeAll(OwnWrites.tracking.pipe(Layer.provide(MemoryTaskStoreLayer)), MemoryTmuxLayer))
)

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
