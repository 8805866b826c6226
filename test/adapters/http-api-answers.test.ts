/**
 * The status API's answers over a real queue directory: each built once per snapshot and question (concurrent
 * requests share the build and each finished file is read once), finished files' reasons kept while their names stay
 * listed and checked again after RECHECK_AFTER, and `order=recent` picking the latest without sorting the archive.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Option, Schema, Scope } from "effect"
import fc from "fast-check"
import { mkdirSync, mkdtempSync, renameSync, rmSync, utimesSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { FsTaskStoreLayer } from "../../src/adapters/fs-task-store.ts"
import { TasksStatus } from "../../src/adapters/http-api/contract.ts"
import { latestFirst } from "../../src/adapters/http-api/finished-tasks.ts"
import { serveHttpApi } from "../../src/adapters/http-api/server.ts"
import { TaskName } from "../../src/domain/task.ts"
import { TaskStore } from "../../src/ports/task-store.ts"
import { type Snapshot, StatusReport, type TaskView } from "../../src/services/status.ts"
import { RUNS } from "../domain/arbitraries.ts"
import { emptySnapshot } from "../fixtures/status-snapshot.ts"

const AT = "2026-11-24T12:00:00.000Z"
const failedFile = (reason: string) =>
  `---\nstate: failed\nattempts: 1\nfinished_at: ${AT}\n---\nFix it.\n\n---\nclaude-failover: failed · ${AT} · session claude-2\n\nReason: ${reason}\n`
const doneFile = (session: string) =>
  `---\nstate: done\nattempts: 1\nfinished_at: ${AT}\n---\nDone it.\n\n---\nclaude-failover: done · ${AT} · session ${session} · took 41s\n`

const views = (stage: "done" | "failed", names: ReadonlyArray<string>): ReadonlyArray<TaskView> =>
  names.map((name) => ({ name: TaskName.make(name), state: stage }))

interface Served {
  readonly url: string
  readonly root: string
  /** Files read from done/ and failed/ so far. */
  readonly reads: () => number
  /** What the next snapshots list (each request's snapshot is a new object, as the live layer's are per take). */
  show(snapshot: Snapshot): void
  write(stage: string, name: string, text: string): void
  close(): Promise<void>
}

const opened: Array<Served> = []
afterEach(async () => {
  for (const served of opened.splice(0)) await served.close()
})

/** The API over a queue directory whose done/ and failed/ reads are counted, serving the snapshot `show` sets. */
const serve = async (options: { readonly fresh?: boolean } = {}): Promise<Served> => {
  const root = mkdtempSync(join(tmpdir(), "cf-answers-"))
  for (const stage of ["pending", "active", "done", "failed"]) mkdirSync(join(root, stage))
  let reads = 0
  let current: Snapshot = emptySnapshot
  const counted = Layer.effect(
    TaskStore,
    Effect.map(TaskStore, (store) =>
      TaskStore.of({
        ...store,
        read: (stage, name) => {
          if (stage === "done" || stage === "failed") reads++
          return store.read(stage, name)
        }
      }))
  ).pipe(Layer.provide(FsTaskStoreLayer({ root })))
  const status = Layer.succeed(StatusReport, {
    snapshot: Effect.sync(() => options.fresh === true ? { ...current } : current)
  })
  const scope = await Effect.runPromise(Scope.make())
  const url = await Effect.runPromise(
    serveHttpApi({ host: "127.0.0.1", port: 0, token: Option.none() }).pipe(
      Scope.provide(scope),
      Effect.provide(Layer.merge(status, counted))
    )
  )
  const served: Served = {
    url,
    root,
    reads: () => reads,
    show: (snapshot) => {
      current = snapshot
    },
    write: (stage, name, text) => {
      // As the daemon writes: a temporary file renamed into place.
      const temporary = join(root, stage, `.${name}.tmp`)
      writeFileSync(temporary, text)
      renameSync(temporary, join(root, stage, name))
    },
    close: async () => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      rmSync(root, { recursive: true, force: true })
    }
  }
  opened.push(served)
  return served
}

const decode = Schema.decodeUnknownSync(TasksStatus)
const tasks = async (served: Served, query = "") =>
  decode(await (await fetch(`${served.url}/api/tasks${query}`)).json())

/** Asks `ask` until `done` holds of its answer, for at most `ms`; the last answer. */
const eventually = async <A>(ask: () => Promise<A>, done: (answer: A) => boolean, ms = 15_000): Promise<A> => {
  const deadline = Date.now() + ms
  for (;;) {
    const answer = await ask()
    if (done(answer) || Date.now() > deadline) return answer
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe("answers built once per snapshot", () => {
  it("100 concurrent requests for the same page: the same answer, each finished file read once", async () => {
    const served = await serve()
    served.write("failed", "f.md", failedFile("the tests do not pass"))
    served.write("done", "d.md", doneFile("claude-1"))
    served.show({
      ...emptySnapshot,
      tasks: { ...emptySnapshot.tasks, done: views("done", ["d.md"]), failed: views("failed", ["f.md"]) }
    })
    const answers = await Promise.all(
      Array.from({ length: 100 }, async () => {
        const response = await fetch(`${served.url}/api/tasks`)
        return [response.status, await response.text()] as const
      })
    )
    expect(new Set(answers.map(([status]) => status))).toStrictEqual(new Set([200]))
    expect(new Set(answers.map(([, text]) => text)).size).toBe(1)
    const body = decode(JSON.parse(answers[0]?.[1] ?? "{}"))
    expect(body.failed).toStrictEqual([{
      name: "f.md",
      state: "failed",
      reason: "the tests do not pass",
      finished_at: AT
    }])
    expect(body.done).toStrictEqual([{
      name: "d.md",
      state: "done",
      reason: "session claude-1 · took 41s",
      finished_at: AT
    }])
    expect(served.reads()).toBe(2)
  })

  it("different questions about one snapshot get their own answers", async () => {
    const served = await serve()
    const names = ["a.md", "b.md", "c.md"]
    for (const name of names) served.write("done", name, doneFile("claude-1"))
    served.show({ ...emptySnapshot, tasks: { ...emptySnapshot.tasks, done: views("done", names) } })
    expect((await tasks(served, "?stage=done&limit=1")).done.map((t) => t.name)).toStrictEqual(["a.md"])
    expect((await tasks(served, "?stage=done&limit=1&after=a.md")).done.map((t) => t.name)).toStrictEqual(["b.md"])
    expect((await tasks(served, "?stage=done&limit=2&after=a.md")).done.map((t) => t.name)).toStrictEqual([
      "b.md",
      "c.md"
    ])
    expect((await tasks(served, "?stage=done")).done.map((t) => t.name)).toStrictEqual(names)
  })
})

describe("finished files' reasons", () => {
  it("a failed task retried and failed again, its name missing from a listing in between, shows its new reason at once", async () => {
    const served = await serve({ fresh: true })
    const listed = { ...emptySnapshot, tasks: { ...emptySnapshot.tasks, failed: views("failed", ["f.md"]) } }
    served.write("failed", "f.md", failedFile("first reason"))
    served.show(listed)
    expect((await tasks(served)).failed[0]?.reason).toBe("first reason")
    rmSync(join(served.root, "failed", "f.md"))
    served.show(emptySnapshot)
    expect((await tasks(served)).failed).toStrictEqual([])
    served.write("failed", "f.md", failedFile("second reason"))
    served.show(listed)
    expect((await tasks(served)).failed[0]?.reason).toBe("second reason")
  })

  it("a finished file rewritten under the same name shows its new reason soon after (RECHECK_AFTER)", async () => {
    const served = await serve({ fresh: true })
    served.write("failed", "f.md", failedFile("first reason"))
    served.show({ ...emptySnapshot, tasks: { ...emptySnapshot.tasks, failed: views("failed", ["f.md"]) } })
    expect((await tasks(served)).failed[0]?.reason).toBe("first reason")
    served.write("failed", "f.md", failedFile("second reason"))
    const later = await eventually(() => tasks(served), (body) => body.failed[0]?.reason === "second reason")
    expect(later.failed[0]?.reason).toBe("second reason")
  })

  it("a file that is gone has no reason, and one that comes back is read", async () => {
    const served = await serve({ fresh: true })
    served.show({ ...emptySnapshot, tasks: { ...emptySnapshot.tasks, done: views("done", ["d.md"]) } })
    expect((await tasks(served)).done).toStrictEqual([{ name: "d.md", state: "done" }])
    served.write("done", "d.md", doneFile("claude-3"))
    const later = await eventually(() => tasks(served), (body) => body.done[0]?.reason !== undefined)
    expect(later.done).toStrictEqual([{
      name: "d.md",
      state: "done",
      reason: "session claude-3 · took 41s",
      finished_at: AT
    }])
  })
})

describe("latestFirst (property)", () => {
  it("is the whole list sorted latest first (name order between equal times), cut at limit", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(fc.string({ maxLength: 4 }), fc.integer({ min: 0, max: 6 })), {
          selector: ([name]) => name,
          maxLength: 80
        }),
        fc.integer({ min: 1, max: 100 }),
        (entries, limit) => {
          const time = new Map(entries)
          const names = entries.map(([name]) => name)
          const sorted = [...names].sort((a, b) =>
            (time.get(b) ?? 0) - (time.get(a) ?? 0) || (a < b ? -1 : a > b ? 1 : 0)
          )
          expect(latestFirst(names, (name) => time.get(name) ?? 0, limit)).toStrictEqual(sorted.slice(0, limit))
        }
      ),
      RUNS
    )
  })

  it("over a long archive in either order, the page is its latest names", () => {
    const names = Array.from({ length: 5000 }, (_, i) => `done-${String(i).padStart(5, "0")}.md`)
    const ascending = (name: string) => Number(name.slice(5, 10))
    expect(latestFirst(names, ascending, 3)).toStrictEqual(["done-04999.md", "done-04998.md", "done-04997.md"])
    expect(latestFirst(names, (name) => -ascending(name), 2)).toStrictEqual(["done-00000.md", "done-00001.md"])
  })
})

describe("order=recent over a real archive", () => {
  it("the latest `limit` files first, counts whole, next as with name order", async () => {
    const served = await serve()
    const names = Array.from({ length: 30 }, (_, i) => `d-${String(i).padStart(2, "0")}.md`)
    for (const [i, name] of names.entries()) {
      served.write("done", name, doneFile("claude-1"))
      // Written in an order unlike the names': d-17 last, then d-04, d-21, …
      const at = new Date(Date.parse(AT) + ((i * 7) % 30) * 1000)
      utimesSync(join(served.root, "done", name), at, at)
    }
    served.show({ ...emptySnapshot, tasks: { ...emptySnapshot.tasks, done: views("done", names) } })
    const body = await tasks(served, "?stage=done&order=recent&limit=3")
    expect(body.done.map((t) => t.name)).toStrictEqual(["d-17.md", "d-04.md", "d-21.md"])
    expect(body.counts.done).toBe(30)
    expect(body.next?.done).toBe("d-21.md")
    const all = await tasks(served, "?stage=done&order=recent&limit=1000")
    expect(all.done).toHaveLength(30)
    expect(new Set(all.done.map((t) => t.name))).toStrictEqual(new Set(names))
    expect(all.next?.done).toBeNull()
  })
})
