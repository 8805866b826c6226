/** The TaskStore contract, run against every implementation (memory now, filesystem with local dispatch). */
import { expect, it, layer } from "@effect/vitest"
import { Effect, Exit, type Layer, Option } from "effect"
import type { DelegationMarker } from "../../src/domain/marker.ts"
import { TaskName } from "../../src/domain/task.ts"
import { TaskStore } from "../../src/ports/task-store.ts"

const marker = (name: string): DelegationMarker => ({
  task: name,
  provider: "gemini",
  idempotency_key: "key-1",
  state: "submitting",
  job_id: null,
  created_at: "2026-11-24T10:00:00.000Z",
  submitted_at: null,
  polls: 0
})

export const taskStoreContract = <E>(title: string, makeLayer: () => Layer.Layer<TaskStore, E>) =>
  layer(makeLayer(), { excludeTestServices: true })(title, (it) => {
    it.effect("writes, lists in name order, and reads back", () =>
      Effect.gen(function*() {
        const store = yield* TaskStore
        yield* store.write("pending", TaskName.make("b.md"), "B")
        yield* store.write("pending", TaskName.make("a.md"), "A")
        expect(yield* store.list("pending")).toStrictEqual(["a.md", "b.md"])
        expect((yield* store.read("pending", TaskName.make("a.md"))).text).toBe("A")
      }))

    it.effect("transfer writes the destination and removes the source", () =>
      Effect.gen(function*() {
        const store = yield* TaskStore
        const name = TaskName.make("moving.md")
        yield* store.write("pending", name, "before")
        yield* store.transfer("pending", "active", name, "after")
        expect(yield* store.list("active")).toContain(name)
        expect(yield* store.list("pending")).not.toContain(name)
        expect((yield* store.read("active", name)).text).toBe("after")
      }))

    it.effect("move renames without rewriting", () =>
      Effect.gen(function*() {
        const store = yield* TaskStore
        const name = TaskName.make("raw.md")
        yield* store.write("pending", name, "---\nbroken: [\n")
        yield* store.move("pending", "failed", name)
        expect((yield* store.read("failed", name)).text).toBe("---\nbroken: [\n")
        expect(yield* store.list("pending")).not.toContain(name)
        const again = yield* Effect.exit(store.move("pending", "failed", name))
        expect(Exit.isFailure(again)).toBe(true)
      }))

    it.effect("reading a missing task fails with TaskNotFound", () =>
      Effect.gen(function*() {
        const store = yield* TaskStore
        const exit = yield* Effect.exit(store.read("done", TaskName.make("nope.md")))
        expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toContain("TaskNotFound")
      }))

    it.effect("markers are written, listed, read and removed", () =>
      Effect.gen(function*() {
        const store = yield* TaskStore
        const name = TaskName.make("delegated.md")
        yield* store.writeMarker(name, marker(name))
        expect(yield* store.listMarkers()).toContain(name)
        expect(yield* store.readMarker(name)).toStrictEqual(Option.some(marker(name)))
        yield* store.removeMarker(name)
        expect(yield* store.readMarker(name)).toStrictEqual(Option.none())
      }))
  })
