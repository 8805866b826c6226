/** The TaskStore contract, run against every implementation (memory and filesystem). */
import { expect, layer } from "@effect/vitest"
import { Effect, Exit, type Layer, Option } from "effect"
import type { DelegationMarker } from "../../src/domain/marker.ts"
import { TaskName } from "../../src/domain/task.ts"
import { TaskStore } from "../../src/ports/task-store.ts"

const marker = (name: string): DelegationMarker => ({
  task: name,
  provider: "gemini",
  run: "r1",
  idempotency_key: "key-1",
  state: "submitting",
  job_id: null,
  created_at: "2026-11-24T10:00:00.000Z",
  submitted_at: null,
  polls: 0
})

const failureTag = (exit: Exit.Exit<unknown, { readonly _tag: string }>) =>
  Exit.isFailure(exit) ? JSON.stringify(exit.cause) : "success"

export const taskStoreContract = <E>(title: string, makeLayer: () => Layer.Layer<TaskStore, E>) =>
  layer(makeLayer(), { excludeTestServices: true })(title, (it) => {
    it.effect("creates, lists in name order, and reads back", () =>
      Effect.gen(function*() {
        const store = yield* TaskStore
        yield* store.create("pending", TaskName.make("b.md"), "B")
        yield* store.create("pending", TaskName.make("a.md"), "A")
        expect(yield* store.list("pending")).toStrictEqual(["a.md", "b.md"])
        expect((yield* store.read("pending", TaskName.make("a.md"))).text).toBe("A")
        expect(yield* store.has("pending", TaskName.make("a.md"))).toBe(true)
        expect(yield* store.has("done", TaskName.make("a.md"))).toBe(false)
      }))

    it.effect("create never overwrites: a taken name fails with NameTaken and the file is unchanged", () =>
      Effect.gen(function*() {
        const store = yield* TaskStore
        const name = TaskName.make("taken.md")
        yield* store.create("pending", name, "first")
        expect(failureTag(yield* Effect.exit(store.create("pending", name, "second")))).toContain("NameTaken")
        expect((yield* store.read("pending", name)).text).toBe("first")
      }))

    it.effect("replace rewrites a file in place", () =>
      Effect.gen(function*() {
        const store = yield* TaskStore
        const name = TaskName.make("rewritten.md")
        yield* store.create("active", name, "before")
        yield* store.replace("active", name, "after")
        expect((yield* store.read("active", name)).text).toBe("after")
      }))

    it.effect("move keeps the bytes and the file's identity, and removes the source", () =>
      Effect.gen(function*() {
        const store = yield* TaskStore
        const name = TaskName.make("raw.md")
        yield* store.create("pending", name, "---\nbroken: [\n")
        const before = yield* store.read("pending", name)
        yield* store.move("pending", "failed", name)
        const after = yield* store.read("failed", name)
        expect(after.text).toBe("---\nbroken: [\n")
        expect(after.identity).toBe(before.identity)
        expect(yield* store.list("pending")).not.toContain(name)
        expect(failureTag(yield* Effect.exit(store.move("pending", "failed", name)))).toContain("TaskNotFound")
      }))

    it.effect("move never overwrites: a taken destination fails with NameTaken and both files stay", () =>
      Effect.gen(function*() {
        const store = yield* TaskStore
        const name = TaskName.make("twice.md")
        yield* store.create("done", name, "old, finished")
        yield* store.create("active", name, "new")
        expect(failureTag(yield* Effect.exit(store.move("active", "done", name)))).toContain("NameTaken")
        expect((yield* store.read("done", name)).text).toBe("old, finished")
        expect((yield* store.read("active", name)).text).toBe("new")
        yield* store.move("active", "done", name, TaskName.make("twice-2.md"))
        expect((yield* store.read("done", TaskName.make("twice-2.md"))).text).toBe("new")
      }))

    it.effect("a rewritten file is a new file: its identity changes", () =>
      Effect.gen(function*() {
        const store = yield* TaskStore
        const name = TaskName.make("identity.md")
        yield* store.create("pending", name, "one")
        const first = (yield* store.read("pending", name)).identity
        yield* store.replace("pending", name, "two")
        expect((yield* store.read("pending", name)).identity).not.toBe(first)
      }))

    it.effect("reading a missing task fails with TaskNotFound", () =>
      Effect.gen(function*() {
        const store = yield* TaskStore
        expect(failureTag(yield* Effect.exit(store.read("done", TaskName.make("nope.md"))))).toContain("TaskNotFound")
      }))

    it.effect("markers are written, listed, read and removed", () =>
      Effect.gen(function*() {
        const store = yield* TaskStore
        const name = TaskName.make("delegated.md")
        yield* store.writeMarker(name, marker(name))
        expect(yield* store.listMarkers()).toContain(name)
        expect(yield* store.readMarker(name)).toStrictEqual(Option.some(marker(name)))
        // The writer reaps its own marker: taking it on (after a restart, say) gives it back.
        expect(yield* store.claimMarker(name)).toStrictEqual(Option.some(marker(name)))
        yield* store.removeMarker(name)
        expect(yield* store.readMarker(name)).toStrictEqual(Option.none())
        expect(yield* store.claimMarker(name)).toStrictEqual(Option.none())
        expect(yield* store.listMarkers()).not.toContain(name)
      }))
  })
