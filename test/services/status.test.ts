/** The status snapshot: pending tasks the dispatcher already parsed are taken from its index, new ones are read. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { MemoryTaskStoreLayer } from "../../src/adapters/memory-task-store.ts"
import { MemoryTmuxLayer } from "../../src/adapters/memory-tmux.ts"
import { TaskName } from "../../src/domain/task.ts"
import { TaskStore } from "../../src/ports/task-store.ts"
import { Dispatcher, DispatcherLayer } from "../../src/services/dispatcher.ts"
import { StatusReport, StatusReportLayer } from "../../src/services/status.ts"
import { memoryDelegation } from "./delegation-layers.ts"
import { dispatchSettingsForTests } from "./dispatch-settings.ts"

const layer = StatusReportLayer.pipe(
  Layer.provideMerge(DispatcherLayer(dispatchSettingsForTests())),
  Layer.provideMerge(memoryDelegation()),
  Layer.provideMerge(Layer.mergeAll(MemoryTaskStoreLayer, MemoryTmuxLayer))
)

describe("status snapshot", () => {
  it.effect("lists pending tasks from the dispatcher's index, reading only files it has not parsed yet", () =>
    Effect.gen(function*() {
      const store = yield* TaskStore
      yield* store.write("pending", TaskName.make("indexed.md"), "---\nattempts: 2\n---\nIndexed.\n")
      yield* TestClock.adjust("1 second")
      const dispatcher = yield* Dispatcher
      yield* dispatcher.tick
      // Were the file read again, this would show as unparsable: the index's parse is what the snapshot uses.
      yield* store.write("pending", TaskName.make("indexed.md"), "---\nattempts: [\n---\n")
      yield* store.write("pending", TaskName.make("new.md"), "---\nattempts: 1\n---\nNew.\n")
      yield* store.write("done", TaskName.make("old.md"), "Old.\n")
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
})
