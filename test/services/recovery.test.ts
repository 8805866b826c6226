/** Start-up recovery on a real queue directory (hard links and all) with in-memory tmux sessions. */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option, Result } from "effect"
import { linkSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { FsTaskStoreLayer } from "../../src/adapters/fs-task-store.ts"
import { MemoryTmuxControl, MemoryTmuxLayer } from "../../src/adapters/memory-tmux.ts"
import { promptHeader } from "../../src/domain/prompt.ts"
import { parseTask, TaskName } from "../../src/domain/task.ts"
import { type Stage, TaskStore } from "../../src/ports/task-store.ts"
import { recover, settleFile } from "../../src/services/recovery.ts"
import { readTask } from "../../src/services/task-moves.ts"
import { performOperation } from "../../src/services/task-operations.ts"

const screen = (file: string) => readFileSync(join(import.meta.dirname, "../fixtures/screens", file), "utf8")
const IDLE = screen("idle--boxed-prompt-after-work.txt")
const BUSY = screen("busy--spinner-cogitating.txt")

const roots: Array<string> = []
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true })
})
const withQueue = () => {
  const root = mkdtempSync(join(tmpdir(), "cf-recovery-"))
  roots.push(root)
  return { root, layer: Layer.mergeAll(FsTaskStoreLayer({ root }), MemoryTmuxLayer) }
}

const put = (root: string, stage: Stage, name: string, text: string) => writeFileSync(join(root, stage, name), text)
const files = (root: string, stage: Stage) => readdirSync(join(root, stage)).filter((f) => !f.startsWith(".")).sort()
const fieldsIn = (root: string, stage: Stage, name: string) =>
  Result.getOrThrow(parseTask(name, readFileSync(join(root, stage, name), "utf8"))).fields
const assigned = (session: string, run: string, extra = "") =>
  `---\nstate: assigned\nrun: ${run}\nsession: ${session}\nassigned_at: 2026-11-24T10:00:00.000Z\nattempts: 1\n${extra}---\nWork.\n`
const STARTED = "started_at: 2026-11-24T10:00:01.000Z\n"
const options = { timeZone: "UTC", maxAttempts: 5 }

describe("start-up recovery: files", () => {
  it.effect("one file in two stages (a move cut short) stays where its state belongs; the other link goes", () => {
    const { layer, root } = withQueue()
    return Effect.gen(function*() {
      yield* (yield* MemoryTmuxControl).setPane("claude-9", { screen: BUSY })
      put(root, "pending", "a.md", assigned("claude-9", "r1", STARTED))
      linkSync(join(root, "pending", "a.md"), join(root, "active", "a.md"))
      put(
        root,
        "active",
        "b.md",
        "---\nstate: done\nrun: r2\nsession: claude-9\nassigned_at: 2026-11-24T10:00:00Z\nfinished_at: 2026-11-24T10:01:00Z\n---\nx"
      )
      linkSync(join(root, "active", "b.md"), join(root, "done", "b.md"))
      yield* recover(options)
      expect(files(root, "pending")).toStrictEqual([])
      expect(files(root, "active")).toStrictEqual(["a.md"])
      expect(files(root, "done")).toStrictEqual(["b.md"])
    }).pipe(Effect.provide(layer))
  })

  it.effect("a command that finishes a daemon's move cut between link and unlink keeps one name, not a second copy", () => {
    const { layer, root } = withQueue()
    return Effect.gen(function*() {
      // The daemon died applying b.md's completion: written `done`, linked into done/, not yet unlinked from active/.
      put(
        root,
        "active",
        "b.md",
        "---\nstate: done\nrun: r2\nsession: claude-9\nassigned_at: 2026-11-24T10:00:00Z\nfinished_at: 2026-11-24T10:01:00Z\n---\nx"
      )
      linkSync(join(root, "active", "b.md"), join(root, "done", "b.md"))
      // The agent's completion line, taken over by the command once the daemon is gone.
      const answer = yield* performOperation(TaskName.make("b.md"), { op: "done", task: "b.md", run: "r2" })
      expect(answer.code).toBe(0)
      expect(files(root, "active")).toStrictEqual([])
      expect(files(root, "done")).toStrictEqual(["b.md"])
    }).pipe(Effect.provide(layer))
  })

  it.effect("one file under two names (a rename or a clash-avoiding move cut short) keeps exactly one name", () => {
    const { layer, root } = withQueue()
    return Effect.gen(function*() {
      // A new task renamed away from a finished one's name: link made, old name not yet removed.
      put(root, "done", "x.md", "---\nstate: done\n---\nThe old x.\n")
      put(root, "pending", "x-2.md", "The new x.\n")
      linkSync(join(root, "pending", "x-2.md"), join(root, "pending", "x.md"))
      // A completion moved to a free name in done/ (done/y.md was taken), source not yet removed.
      put(root, "done", "y.md", "---\nstate: done\n---\nThe old y.\n")
      put(
        root,
        "done",
        "y-2.md",
        "---\nstate: done\nrun: r1\nsession: s\nassigned_at: 2026-11-24T10:00:00Z\nfinished_at: 2026-11-24T10:01:00Z\n---\nThe new y.\n"
      )
      linkSync(join(root, "done", "y-2.md"), join(root, "active", "y.md"))
      yield* recover(options)
      expect(files(root, "pending")).toStrictEqual(["x-2.md"])
      expect(files(root, "active")).toStrictEqual([])
      expect(files(root, "done")).toStrictEqual(["x.md", "y-2.md", "y.md"])
      expect(readFileSync(join(root, "done", "x.md"), "utf8")).toContain("The old x.")
      expect(readFileSync(join(root, "done", "y.md"), "utf8")).toContain("The old y.")
    }).pipe(Effect.provide(layer))
  })

  it.effect("two different files with one name are both kept: the less advanced one under a free name", () => {
    const { layer, root } = withQueue()
    return Effect.gen(function*() {
      put(root, "done", "report.md", "---\nstate: done\n---\nThe old report.\n")
      put(root, "pending", "report.md", "The new report.\n")
      yield* recover(options)
      expect(readFileSync(join(root, "done", "report.md"), "utf8")).toContain("The old report.")
      expect(files(root, "pending")).toStrictEqual(["report-2.md"])
      expect(readFileSync(join(root, "pending", "report-2.md"), "utf8")).toBe("The new report.\n")
    }).pipe(Effect.provide(layer))
  })

  it.effect("a state that does not belong in its stage is finished from the file's own state, or undone", () => {
    const { layer, root } = withQueue()
    return Effect.gen(function*() {
      const store = yield* TaskStore
      // Requeue cut short: written as pending, still in active/.
      put(root, "active", "requeued.md", "---\nstate: pending\nattempts: 1\n---\nx")
      // Completion cut short: written as done, still in active/.
      put(
        root,
        "active",
        "completed.md",
        "---\nstate: done\nrun: r1\nsession: s\nassigned_at: 2026-11-24T10:00:00Z\nfinished_at: 2026-11-24T10:01:00Z\n---\nx"
      )
      // The reaper's finish cut short: written as done in pending/, its marker (same run) still there.
      put(
        root,
        "pending",
        "reaped.md",
        "---\nstate: done\nrun: r7\nprovider: gemini\njob_id: j_1\nfinished_at: 2026-11-24T10:01:00Z\n---\nx"
      )
      yield* store.writeMarker(TaskName.make("reaped.md"), {
        task: "reaped.md",
        provider: "gemini",
        run: "r7",
        idempotency_key: "k",
        state: "submitted",
        job_id: "j_1",
        created_at: "2026-11-24T10:00:00Z",
        submitted_at: "2026-11-24T10:00:01Z",
        polls: 3
      })
      // Put back by hand: a finished task in pending/ with no marker runs again.
      put(
        root,
        "pending",
        "again.md",
        "---\nstate: failed\nrun: r3\nsession: s\nassigned_at: 2026-11-24T10:00:00Z\nfinished_at: 2026-11-24T10:01:00Z\n---\nDo it.\n\n\n---\nclaude-failover: failed · 2026-11-24T10:01:00Z · session s\n\nReason: boom\n"
      )
      // An assignment found in pending/ (copied by hand, or cut short before its move): never typed.
      put(root, "pending", "assigned.md", assigned("s", "r4"))
      // Delegated without its marker.
      put(root, "pending", "lost-marker.md", "---\nstate: delegated_to_secutools\nrun: r5\nprovider: gpu\n---\nx")
      // A retry cut short: written as pending, still in failed/.
      put(root, "failed", "retried.md", "---\nstate: pending\n---\nx")
      yield* recover(options)
      // Pending tasks without a marker are the intake's: recovery leaves them as they were, and the intake settles
      // each the same way (settleFile) when it reads it.
      expect(fieldsIn(root, "pending", "assigned.md").state).toBe("assigned")
      for (const name of ["again.md", "assigned.md", "lost-marker.md"].map((n) => TaskName.make(n))) {
        const { task } = yield* readTask("pending", name)
        yield* settleFile("pending", name, task)
      }
      expect(files(root, "active")).toStrictEqual([])
      expect(files(root, "done")).toStrictEqual(["completed.md", "reaped.md"])
      expect(Option.isNone(yield* store.readMarker(TaskName.make("reaped.md")))).toBe(true)
      expect(files(root, "pending")).toStrictEqual([
        "again.md",
        "assigned.md",
        "lost-marker.md",
        "requeued.md",
        "retried.md"
      ])
      expect(fieldsIn(root, "pending", "again.md").history?.at(-1)).toMatchObject({
        event: "retried",
        cause: "put_back",
        run: "r3"
      })
      expect(readFileSync(join(root, "pending", "again.md"), "utf8")).not.toContain("claude-failover: failed")
      expect(fieldsIn(root, "pending", "assigned.md").history?.at(-1)).toMatchObject({
        cause: "never_typed",
        run: "r4"
      })
      expect(fieldsIn(root, "pending", "lost-marker.md").history?.at(-1)).toMatchObject({
        cause: "marker_missing",
        run: "r5"
      })
      for (const name of ["again.md", "assigned.md", "lost-marker.md", "requeued.md", "retried.md"]) {
        expect(fieldsIn(root, "pending", name)).not.toHaveProperty("run")
      }
    }).pipe(Effect.provide(layer))
  })

  it.effect("unparsable files in active/ are quarantined byte-for-byte, pending/ ones left to the intake; orphan markers go", () => {
    const { layer, root } = withQueue()
    return Effect.gen(function*() {
      const store = yield* TaskStore
      put(root, "active", "broken.md", "---\ntitle: *nope\n---\nx")
      put(root, "pending", "bad.md", "---\nallow_delegation: yes please\n---\nx")
      yield* store.writeMarker(TaskName.make("gone.md"), {
        task: "gone.md",
        provider: "gpu",
        run: "r",
        idempotency_key: "k",
        state: "submitting",
        job_id: null,
        created_at: "2026-11-24T10:00:00Z",
        submitted_at: null,
        polls: 0
      })
      yield* recover(options)
      expect(files(root, "failed")).toStrictEqual(["broken.md", "broken.md.error"])
      expect(files(root, "pending")).toStrictEqual(["bad.md"])
      expect(readFileSync(join(root, "failed", "broken.md"), "utf8")).toBe("---\ntitle: *nope\n---\nx")
      expect(readFileSync(join(root, "failed", "broken.md.error"), "utf8")).toContain("alias")
      expect(yield* store.listMarkers()).toStrictEqual([])
    }).pipe(Effect.provide(layer))
  })
})

describe("start-up recovery: active tasks", () => {
  it.effect("gone and exited sessions give their tasks back; a run accepted on a live (or limited) session stays", () => {
    const { layer, root } = withQueue()
    return Effect.gen(function*() {
      const tmux = yield* MemoryTmuxControl
      yield* tmux.setPane("limited", { screen: screen("usage_limited--five-hour-reached.txt") })
      yield* tmux.setPane("exited", { command: "bash", screen: "$ " })
      yield* tmux.setPane("idle", { screen: IDLE })
      yield* tmux.setPane("busy", { screen: BUSY })
      put(root, "active", "gone.md", assigned("nowhere", "r1", STARTED))
      put(root, "active", "limited.md", assigned("limited", "r2", STARTED))
      put(root, "active", "exited.md", assigned("exited", "r3", STARTED))
      put(root, "active", "typed-idle.md", assigned("idle", "r4", STARTED))
      put(root, "active", "working.md", assigned("busy", "r5", STARTED))
      yield* recover(options)
      // A limited session's run is the dispatcher's: its limit policy decides, after cancelling an automatic continue.
      expect(files(root, "active")).toStrictEqual(["limited.md", "typed-idle.md", "working.md"])
      expect(files(root, "pending")).toStrictEqual(["exited.md", "gone.md"])
      const gone = fieldsIn(root, "pending", "gone.md")
      expect(gone).toMatchObject({ state: "pending", attempts: 1 })
      expect(gone.history?.at(-1)).toMatchObject({
        event: "requeued",
        cause: "session_gone",
        run: "r1",
        session: "nowhere",
        reason: "session nowhere is gone (recovered at start-up)"
      })
      expect(fieldsIn(root, "pending", "exited.md").history?.at(-1)?.cause).toBe("session_exited")
    }).pipe(Effect.provide(layer))
  })

  it.effect("without started_at the screen decides: in the input box → cleared and requeued; submitted → started; nowhere → requeued", () => {
    const { layer, root } = withQueue()
    return Effect.gen(function*() {
      const tmux = yield* MemoryTmuxControl
      const header = (name: string, run: string) => promptHeader(TaskName.make(name), run)
      yield* tmux.setPane("pasted", { screen: IDLE, input: `${header("pasted.md", "rP")}\n\nWork.` })
      yield* tmux.setPane("submitted", {
        screen: `${IDLE.replace("> Fix the failing test", `> ${header("submitted.md", "rS")}`)}`
      })
      yield* tmux.setPane("fresh", { screen: IDLE })
      yield* tmux.setPane("other-work", { screen: BUSY })
      put(root, "active", "pasted.md", assigned("pasted", "rP"))
      put(root, "active", "submitted.md", assigned("submitted", "rS"))
      put(root, "active", "never.md", assigned("fresh", "rN"))
      put(root, "active", "unclear.md", assigned("other-work", "rU"))
      yield* recover(options)
      expect(files(root, "pending")).toStrictEqual(["never.md", "pasted.md"])
      expect((yield* tmux.panes).get("pasted")?.typed).toStrictEqual(["^C"])
      expect((yield* tmux.panes).get("pasted")?.input).toBe("")
      expect(fieldsIn(root, "pending", "pasted.md").history?.at(-1)?.cause).toBe("never_typed")
      expect(fieldsIn(root, "active", "submitted.md").started_at).toBeDefined()
      expect(fieldsIn(root, "active", "unclear.md").started_at).toBeUndefined()
      // Nothing was typed into any session.
      for (const session of ["submitted", "fresh", "other-work"])
        expect((yield* tmux.panes).get(session)?.typed).toStrictEqual([])
    }).pipe(Effect.provide(layer))
  })
})

describe("recovery and pending/", () => {
  it.live("pending/ files without a marker are left to the intake, settled or not (it reads them anyway)", () => {
    const { layer, root } = withQueue()
    const half = "---\ntitle: slow\n"
    return Effect.gen(function*() {
      yield* TaskStore
      put(root, "pending", "fresh.md", half)
      put(root, "pending", "old.md", half)
      const longAgo = new Date(Date.now() - 60_000)
      utimesSync(join(root, "pending", "old.md"), longAgo, longAgo)
      const { actions } = yield* recover({ ...options, settleAfterMs: 1_000 })
      expect(actions).toStrictEqual([])
      expect(files(root, "pending")).toStrictEqual(["fresh.md", "old.md"])
    }).pipe(Effect.provide(layer))
  })
})
