import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Result } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { MemoryTaskStoreLayer } from "../../src/adapters/memory-task-store.ts"
import { MemoryTmuxControl, MemoryTmuxLayer } from "../../src/adapters/memory-tmux.ts"
import { parseTask, TaskName } from "../../src/domain/task.ts"
import { type Stage, TaskStore } from "../../src/ports/task-store.ts"
import { recover } from "../../src/services/recovery.ts"

const screen = (file: string) => readFileSync(join(import.meta.dirname, "../fixtures/screens", file), "utf8")
const layer = Layer.mergeAll(MemoryTaskStoreLayer, MemoryTmuxLayer)
const put = (stage: Stage, name: string, text: string) =>
  TaskStore.use((store) => store.write(stage, TaskName.make(name), text))
const assigned = (session: string, extra = "") =>
  `---\nstate: assigned\nsession: ${session}\nassigned_at: 2026-11-24T10:00:00.000Z\nattempts: 1\n${extra}---\nWork.\n`

describe("start-up recovery", () => {
  it.effect("keeps the most advanced copy of a name found in two stages", () =>
    Effect.gen(function*() {
      yield* put("pending", "a.md", "x")
      yield* put("active", "a.md", assigned("claude-9", "started_at: 2026-11-24T10:00:01.000Z\n"))
      yield* put("done", "a.md", "---\nstate: done\n---\nx")
      yield* put("pending", "b.md", "x")
      yield* put("active", "b.md", assigned("claude-9", "started_at: 2026-11-24T10:00:01.000Z\n"))
      yield* put("done", "c.md", "d")
      yield* put("failed", "c.md", "f")
      yield* (yield* MemoryTmuxControl).setPane("claude-9", { screen: screen("busy--spinner-cogitating.txt") })
      const result = yield* recover("UTC")
      expect([...result.duplicates].sort()).toStrictEqual(["active/a.md", "failed/c.md", "pending/a.md", "pending/b.md"])
      const store = yield* TaskStore
      expect(yield* store.list("done")).toStrictEqual(["a.md", "c.md"])
      expect(yield* store.list("active")).toStrictEqual(["b.md"])
      expect(yield* store.list("pending")).toStrictEqual([])
    }).pipe(Effect.provide(layer)))

  it.effect("gives back active tasks whose session is gone, exited, limited, or idle and never typed into", () =>
    Effect.gen(function*() {
      const tmux = yield* MemoryTmuxControl
      const started = "started_at: 2026-11-24T10:00:01.000Z\n"
      yield* tmux.setPane("limited", { screen: screen("usage_limited--five-hour-reached.txt") })
      yield* tmux.setPane("exited", { command: "bash", screen: "$ " })
      yield* tmux.setPane("idle", { screen: screen("idle--boxed-prompt-after-work.txt") })
      yield* tmux.setPane("busy", { screen: screen("busy--spinner-cogitating.txt") })
      yield* put("active", "gone.md", assigned("nowhere", started))
      yield* put("active", "limited.md", assigned("limited", started))
      yield* put("active", "exited.md", assigned("exited", started))
      yield* put("active", "never-typed.md", assigned("idle"))
      yield* put("active", "typed-idle.md", assigned("idle", started))
      yield* put("active", "working.md", assigned("busy"))
      const result = yield* recover("UTC")
      expect([...result.requeued].sort()).toStrictEqual(["exited.md", "gone.md", "limited.md", "never-typed.md"])
      const store = yield* TaskStore
      expect(yield* store.list("active")).toStrictEqual(["typed-idle.md", "working.md"])
      const requeued = Result.getOrThrow(parseTask("gone.md", (yield* store.read("pending", TaskName.make("gone.md"))).text))
      expect(requeued.fields).toMatchObject({ state: "pending", attempts: 1 })
      expect(requeued.fields.last_failover).toBe("session nowhere is gone (recovered at start-up)")
    }).pipe(Effect.provide(layer)))
})
