import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { FsTaskStoreLayer, prepareQueue, writeAtomic } from "../../src/adapters/fs-task-store.ts"
import { TaskName } from "../../src/domain/task.ts"
import { TaskStore } from "../../src/ports/task-store.ts"
import { taskStoreContract } from "./task-store-contract.ts"

const roots: Array<string> = []
const freshRoot = () => {
  const root = mkdtempSync(join(tmpdir(), "queue-"))
  roots.push(root)
  return root
}
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true })
})

taskStoreContract("filesystem task store", () => FsTaskStoreLayer({ root: freshRoot() }))

describe("filesystem task store on disk", () => {
  it.effect("creates the stage directories and ignores what is not a task file", () => {
    const root = freshRoot()
    return Effect.gen(function*() {
      const store = yield* TaskStore
      const pending = join(root, "pending")
      writeFileSync(join(pending, "real.md"), "x")
      writeFileSync(join(pending, ".hidden.md"), "x")
      writeFileSync(join(pending, "notes.txt"), "x")
      writeFileSync(join(pending, ".real.md.1.2.abc.tmp"), "x")
      writeFileSync(join(pending, "real.md.delegated"), "{}")
      mkdirSync(join(pending, "dir.md"))
      writeFileSync(join(root, "outside.md"), "secret")
      symlinkSync(join(root, "outside.md"), join(pending, "link.md"))
      expect(readdirSync(root).sort()).toStrictEqual(["active", "done", "failed", "outside.md", "pending"])
      expect(yield* store.list("pending")).toStrictEqual(["real.md"])
      const viaLink = yield* Effect.exit(store.read("pending", TaskName.make("link.md")))
      expect(Exit.isFailure(viaLink) && JSON.stringify(viaLink.cause)).toContain("symlinks are never followed")
    }).pipe(Effect.provide(FsTaskStoreLayer({ root })))
  })

  it.effect("writes leave no temporary files and the error note lands beside the task", () => {
    const root = freshRoot()
    return Effect.gen(function*() {
      const store = yield* TaskStore
      const name = TaskName.make("bad.md")
      yield* store.write("failed", name, "---\nx: [\n")
      yield* store.writeError(name, "bad.md:2:4: invalid YAML")
      expect(readdirSync(join(root, "failed")).sort()).toStrictEqual(["bad.md", "bad.md.error"])
      expect(readFileSync(join(root, "failed", "bad.md.error"), "utf8")).toBe("bad.md:2:4: invalid YAML\n")
    }).pipe(Effect.provide(FsTaskStoreLayer({ root })))
  })

  it.effect("start-up removes temporary files older than an hour and keeps fresh ones", () => {
    const root = freshRoot()
    mkdirSync(join(root, "active"), { recursive: true })
    const old = join(root, "active", ".a.md.1.1.x.tmp")
    const fresh = join(root, "active", ".b.md.1.1.y.tmp")
    writeFileSync(old, "x")
    writeFileSync(fresh, "y")
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000)
    utimesSync(old, twoHoursAgo, twoHoursAgo)
    return Effect.gen(function*() {
      yield* prepareQueue({ root })
      expect(readdirSync(join(root, "active"))).toStrictEqual([".b.md.1.1.y.tmp"])
    })
  })

  it("an atomic write replaces the whole file or nothing", async () => {
    const root = freshRoot()
    await writeAtomic(root, "t.md", "first")
    await writeAtomic(root, "t.md", "second")
    expect(readFileSync(join(root, "t.md"), "utf8")).toBe("second")
    expect(readdirSync(root)).toStrictEqual(["t.md"])
  })
})
