/**
 * inotify drops events silently when its queue overflows; the periodic scan must still pick up every task.
 * The files are written synchronously in this process, so the event loop cannot drain inotify meanwhile and
 * the kernel queue (max_queued_events) really overflows.
 */
import { expect, it } from "@effect/vitest"
import { HookEvents } from "../../src/services/hook-events.ts"
import { SessionStarterOff } from "../../src/services/session-starter.ts"
import { Duration, Effect, Layer } from "effect"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { FsTaskStoreLayer } from "../../src/adapters/fs-task-store.ts"
import { MemoryTmuxLayer } from "../../src/adapters/memory-tmux.ts"
import { watchQueue } from "../../src/daemon.ts"
import { Dispatcher, DispatcherLayer } from "../../src/services/dispatcher.ts"
import { OwnWrites } from "../../src/services/own-writes.ts"
import { TaskLocks } from "../../src/services/task-locks.ts"
import { memoryDelegation } from "./delegation-layers.ts"
import { dispatchSettingsForTests } from "./dispatch-settings.ts"

const kernelQueue = Number(readFileSync("/proc/sys/fs/inotify/max_queued_events", "utf8").trim())

it.live(`a burst of more than ${kernelQueue} files is fully picked up`, () => {
  const root = mkdtempSync(join(tmpdir(), "cf-burst-"))
  const layer = DispatcherLayer(dispatchSettingsForTests({
    pollInterval: Duration.millis(200),
    scanInterval: Duration.seconds(1),
    queueDir: root,
    command: { program: ["node", "cli.js"], queueDir: root }
  })).pipe(
    Layer.provideMerge(SessionStarterOff),
    Layer.provideMerge(HookEvents.layerMemory()),
    Layer.provideMerge(memoryDelegation()),
    Layer.provideMerge(
      Layer.mergeAll(
        OwnWrites.tracking.pipe(Layer.provide(FsTaskStoreLayer({ root }))),
        MemoryTmuxLayer,
        TaskLocks.layer
      )
    )
  )

  const burst = kernelQueue + 1000
  return Effect.gen(function*() {
    const dispatcher = yield* Dispatcher
    yield* watchQueue(root, { pending: dispatcher.noticed, active: dispatcher.wake, requests: Effect.void })
    yield* Effect.forkChild(dispatcher.run)
    yield* Effect.sleep(Duration.millis(300))
    for (let i = 0; i < burst; i++) writeFileSync(join(root, "pending", `t-${i}.md`), `Task ${i}\n`)

    const deadline = Date.now() + 90_000
    let seen = 0
    while (seen < burst && Date.now() < deadline) {
      yield* Effect.sleep(Duration.millis(250))
      seen = (yield* dispatcher.status).pending
    }
    expect(seen).toBe(burst)
  }).pipe(
    Effect.scoped,
    Effect.provide(layer),
    Effect.ensuring(Effect.sync(() => rmSync(root, { recursive: true, force: true })))
  )
}, 120_000)
