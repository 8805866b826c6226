/**
 * A host's pending/ directory as the intake of a shared PostgreSQL queue: a real directory, a real server. Files
 * become pending tasks with their bytes and are removed; a crash between the two neither loses nor doubles a task;
 * a taken name keeps both tasks; a file still being written waits.
 */
import { expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { makeFsTaskStore, prepareQueue } from "../../src/adapters/fs-task-store.ts"
import { makePgTaskStore } from "../../src/adapters/pg/task-store.ts"
import { TaskName } from "../../src/domain/task.ts"
import { importDrops } from "../../src/services/drop-import.ts"
import { onSharedQueue } from "../adapters/pg-database.ts"

const SETTLE_MS = 1_000

/** A queue directory of this host, with the files written a minute ago (settled). */
const hostDirectory = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "cf-drops-"))),
  (root) => Effect.sync(() => rmSync(root, { recursive: true, force: true }))
)

/** This host's directory store and the shared queue's. */
const stores = Effect.gen(function*() {
  const root = yield* hostDirectory
  const files = yield* Effect.as(prepareQueue({ root }), makeFsTaskStore({ root }))
  return { root, files, queue: yield* makePgTaskStore() }
})

/** One round of the drop box: the files it took in. */
const takeIn = (files: Parameters<typeof importDrops>[0], queue: Parameters<typeof importDrops>[1]) =>
  Effect.map(importDrops(files, queue, SETTLE_MS), (round) => round.imported)

const drop = (root: string, name: string, text: string | Uint8Array, ageMs = 60_000) => {
  const path = join(root, "pending", name)
  writeFileSync(path, text)
  const at = (Date.now() - ageMs) / 1000
  utimesSync(path, at, at)
}

onSharedQueue("files dropped on a host, taken into the shared queue", (it) => {
  it.effect("each settled file becomes a pending task with its bytes and is removed; a fresh one waits", () =>
    Effect.gen(function*() {
      const { files, queue, root } = yield* stores
      drop(root, "one.md", "---\npriority: 10\n---\nFirst.\n")
      drop(root, "two.md", "Second, with ünïcödé and a \"quote\".\n")
      drop(root, "fresh.md", "Still being written", 0)

      const imported = yield* takeIn(files, queue)
      expect(imported).toStrictEqual([
        { file: "one.md", task: "one.md", already: false },
        { file: "two.md", task: "two.md", already: false }
      ])
      expect((yield* queue.read("pending", TaskName.make("two.md"))).text).toBe(
        "Second, with ünïcödé and a \"quote\".\n"
      )
      expect(yield* files.list("pending")).toStrictEqual(["fresh.md"])
      expect(yield* takeIn(files, queue)).toStrictEqual([])
    }))

  it.effect("a crash after the task was taken in but before its file was removed: the file goes, no second task", () =>
    Effect.gen(function*() {
      const { files, queue, root } = yield* stores
      // As a host that died between the two steps left it.
      yield* queue.create("pending", TaskName.make("half.md"), "Half imported.\n")
      drop(root, "half.md", "Half imported.\n")

      expect(yield* takeIn(files, queue)).toStrictEqual([
        { file: "half.md", task: "half.md", already: true }
      ])
      expect(yield* files.list("pending")).toStrictEqual([])
      expect((yield* queue.list("pending")).filter((name) => name.startsWith("half"))).toStrictEqual(["half.md"])
    }))

  it.effect("a name another pending task has: both are kept, the dropped one under a free name", () =>
    Effect.gen(function*() {
      const { files, queue, root } = yield* stores
      yield* queue.create("pending", TaskName.make("report.md"), "Another host's report.\n")
      drop(root, "report.md", "This host's report.\n")

      expect(yield* takeIn(files, queue)).toStrictEqual([
        { file: "report.md", task: "report-2.md", already: false }
      ])
      expect((yield* queue.read("pending", TaskName.make("report.md"))).text).toBe("Another host's report.\n")
      expect((yield* queue.read("pending", TaskName.make("report-2.md"))).text).toBe("This host's report.\n")
      expect(yield* files.list("pending")).toStrictEqual([])
    }))

  it.effect("a file that can never be a task goes to this host's failed/ with its reason, not into the shared queue", () =>
    Effect.gen(function*() {
      const { files, queue, root } = yield* stores
      drop(root, "binary.md", "Text with a NUL byte (\u0000), which PostgreSQL's text cannot hold.\n")
      drop(root, "latin1.md", Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]))
      writeFileSync(join(root, "pending", "-rf.md"), "A name no task can have.\n")
      drop(root, "fine.md", "Fine.\n")
      const round = yield* importDrops(files, queue, SETTLE_MS)
      expect(round.imported.map((drop) => drop.task)).toStrictEqual(["fine.md"])
      expect(round.quarantined).toBe(3)
      expect(yield* files.list("pending")).toStrictEqual([])
      const failed = yield* files.list("failed")
      expect(failed).toContain("binary.md")
      expect(failed).toContain("latin1.md")
      expect(failed.length).toBe(3)
      expect(yield* queue.list("pending")).not.toContain("binary.md")
      expect(yield* queue.list("failed")).toStrictEqual([])
    }))

  it.effect("a file still being written says when it will have settled", () =>
    Effect.gen(function*() {
      const { files, queue, root } = yield* stores
      drop(root, "later.md", "Being written", 200)
      const round = yield* importDrops(files, queue, SETTLE_MS)
      expect(round.imported).toStrictEqual([])
      expect(round.nextSettle).toBeGreaterThan(Date.now())
      expect(round.nextSettle).toBeLessThanOrEqual(Date.now() + SETTLE_MS)
    }))
})
