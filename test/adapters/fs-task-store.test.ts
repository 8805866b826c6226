import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { execFileSync } from "node:child_process"
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { FsTaskStoreLayer, prepareQueue, removeTempDebris, writeAtomic } from "../../src/adapters/fs-task-store.ts"
import { TaskName } from "../../src/domain/task.ts"
import { TaskStore } from "../../src/ports/task-store.ts"
import { tempDirs } from "../temp-dirs.ts"
import { taskStoreContract } from "./task-store-contract.ts"

const freshRoot = tempDirs("queue-")

taskStoreContract("filesystem task store", () => FsTaskStoreLayer({ root: freshRoot() }))

const failure = (exit: Exit.Exit<unknown, unknown>) => Exit.isFailure(exit) ? JSON.stringify(exit.cause) : "success"

describe("filesystem task store on disk", () => {
  it.effect("lists only regular task files; names that cannot be tasks and non-files are strays, never followed", () => {
    const root = freshRoot()
    return Effect.gen(function*() {
      const store = yield* TaskStore
      const pending = join(root, "pending")
      writeFileSync(join(pending, "real.md"), "x")
      writeFileSync(join(pending, ".hidden.md"), "x")
      writeFileSync(join(pending, "notes.txt"), "x")
      writeFileSync(join(pending, ".cf-1-1-abc.tmp"), "x")
      writeFileSync(join(pending, "real.md.delegated"), "{}")
      writeFileSync(join(pending, "-dash.md"), "x")
      writeFileSync(join(pending, "new\nline.md"), "x")
      writeFileSync(Buffer.concat([Buffer.from(`${pending}/bad-`), Buffer.from([0xff, 0xfe]), Buffer.from(".md")]), "x")
      mkdirSync(join(pending, "dir.md"))
      writeFileSync(join(root, "outside.md"), "secret")
      symlinkSync(join(root, "outside.md"), join(pending, "link.md"))
      execFileSync("mkfifo", [join(pending, "pipe.md")])
      expect(readdirSync(root).sort()).toStrictEqual(["active", "done", "failed", "outside.md", "pending", "requests"])
      expect(yield* store.list("pending")).toStrictEqual(["real.md"])
      const strays = (yield* store.strays("pending")).map((stray) => `${stray.kind}: ${JSON.stringify(stray.display)}`)
        .sort()
      expect(strays).toStrictEqual([
        `bad-name: "-dash.md"`,
        `bad-name: "bad-\uFFFD\uFFFD.md"`,
        `bad-name: "new\\nline.md"`,
        `not-a-file: "dir.md"`,
        `not-a-file: "link.md"`,
        `not-a-file: "pipe.md"`
      ])
      expect(failure(yield* Effect.exit(store.read("pending", TaskName.make("link.md"))))).toContain(
        "symlinks are never followed"
      )
      // A FIFO under a task's name is refused at once, not waited on.
      expect(failure(yield* Effect.exit(store.read("pending", TaskName.make("pipe.md"))))).toContain(
        "not a regular file"
      )
    }).pipe(Effect.provide(FsTaskStoreLayer({ root })))
  })

  it.effect("a stray with a name that is not UTF-8 moves to failed/ under a usable name, bytes untouched", () => {
    const root = freshRoot()
    return Effect.gen(function*() {
      const store = yield* TaskStore
      const raw = Buffer.concat([Buffer.from("bad-"), Buffer.from([0xff]), Buffer.from(".md")])
      writeFileSync(Buffer.concat([Buffer.from(`${root}/pending/`), raw]), "the body")
      const [stray] = yield* store.strays("pending")
      expect(stray?.kind).toBe("bad-name")
      if (stray === undefined) return
      yield* store.quarantineStray(stray, TaskName.make("bad-x.md"))
      expect(readdirSync(join(root, "pending"))).toStrictEqual([])
      expect(readFileSync(join(root, "failed", "bad-x.md"), "utf8")).toBe("the body")
    }).pipe(Effect.provide(FsTaskStoreLayer({ root })))
  })

  it.effect("a file over the size cap, or not UTF-8 text, is unreadable and marked for quarantine", () => {
    const root = freshRoot()
    return Effect.gen(function*() {
      const store = yield* TaskStore
      writeFileSync(join(root, "pending", "big.md"), "x".repeat(2048))
      writeFileSync(
        join(root, "pending", "binary.md"),
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0xff])
      )
      const big = failure(yield* Effect.exit(store.read("pending", TaskName.make("big.md"))))
      expect(big).toContain("Unreadable")
      expect(big).toContain("2048 bytes")
      expect(big).toContain("\"quarantine\":true")
      const binary = failure(yield* Effect.exit(store.read("pending", TaskName.make("binary.md"))))
      expect(binary).toContain("not UTF-8")
      expect(binary).toContain("\"quarantine\":true")
    }).pipe(Effect.provide(FsTaskStoreLayer({ root, maxTaskBytes: 1024 })))
  })

  it.effect("writes leave no temporary files and the error note lands beside the task", () => {
    const root = freshRoot()
    return Effect.gen(function*() {
      const store = yield* TaskStore
      const name = TaskName.make("bad.md")
      yield* store.create("failed", name, "---\nx: [\n")
      yield* store.writeError(name, "bad.md:2:4: invalid YAML")
      expect(readdirSync(join(root, "failed")).sort()).toStrictEqual(["bad.md", "bad.md.error"])
      expect(readFileSync(join(root, "failed", "bad.md.error"), "utf8")).toBe("bad.md:2:4: invalid YAML\n")
    }).pipe(Effect.provide(FsTaskStoreLayer({ root })))
  })

  it.effect("a 200-byte task name can be written, moved and marked (temporary names do not grow with it)", () => {
    const root = freshRoot()
    return Effect.gen(function*() {
      const store = yield* TaskStore
      const name = TaskName.make(`${"n".repeat(197)}.md`)
      yield* store.create("pending", name, "body")
      yield* store.replace("pending", name, "body 2")
      yield* store.move("pending", "active", name)
      expect(yield* store.list("active")).toStrictEqual([name])
    }).pipe(Effect.provide(FsTaskStoreLayer({ root })))
  })

  it.effect("debris removal takes this program's temporary files and leaves other writers' hidden files", () => {
    const root = freshRoot()
    return Effect.gen(function*() {
      yield* prepareQueue({ root })
      writeFileSync(join(root, "active", ".cf-123-1-abcd.tmp"), "x")
      writeFileSync(join(root, "requests", ".cf-9-9-zz.tmp"), "x")
      writeFileSync(join(root, "pending", ".editor-swap.md.tmp"), "y")
      const removed = yield* removeTempDebris(root)
      expect([...removed].sort()).toStrictEqual(["active/.cf-123-1-abcd.tmp", "requests/.cf-9-9-zz.tmp"])
      expect(readdirSync(join(root, "pending"))).toStrictEqual([".editor-swap.md.tmp"])
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
