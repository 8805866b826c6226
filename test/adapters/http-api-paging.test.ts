/**
 * `GET /api/tasks` paging on a real socket, over 250 done tasks: `stage`, `limit`, `after` and the `next` cursor;
 * and `page` (property): following the cursors lists a stage whole, in name order, each name once.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import fc from "fast-check"
import { TASKS_PAGE_DEFAULT, TASKS_PAGE_MAX, TasksStatus } from "../../src/adapters/http-api/contract.ts"
import { page } from "../../src/adapters/http-api/routes.ts"
import { TaskName } from "../../src/domain/task.ts"
import type { Snapshot } from "../../src/services/status.ts"
import { RUNS } from "../domain/arbitraries.ts"
import { fixture, type FixtureServer, startFixtureServer } from "../fixtures/status-snapshot.ts"

const DONE = 250
const doneName = (i: number) => `done-${String(i).padStart(3, "0")}.md`
const allDone = Array.from({ length: DONE }, (_, i) => doneName(i))

/** The fixture with 250 done tasks and 120 failed ones. */
const archive: Snapshot = {
  ...fixture,
  tasks: {
    ...fixture.tasks,
    done: allDone.map((name) => ({ name: TaskName.make(name), state: "done" })),
    failed: Array.from(
      { length: 120 },
      (_, i) => ({ name: TaskName.make(`failed-${String(i).padStart(3, "0")}.md`), state: "failed" })
    )
  }
}

let server: FixtureServer
beforeAll(async () => {
  server = await startFixtureServer({ snapshot: archive })
})
afterAll(() => server.close())

const decode = Schema.decodeUnknownSync(TasksStatus)
const tasks = async (query: string) => {
  const response = await fetch(`${server.url}/api/tasks${query}`)
  const body: unknown = await response.json()
  return { status: response.status, body }
}
const ok = async (query: string) => {
  const { body, status } = await tasks(query)
  expect(status, query).toBe(200)
  return decode(body)
}
const names = (list: ReadonlyArray<{ readonly name: string }>) => list.map((task) => task.name)
const counts = { pending: 3, active: 2, done: DONE, failed: 120 }

describe("GET /api/tasks paging", () => {
  it("without parameters: pending and active whole, done and failed their first 100 names, counts exact", async () => {
    const body = await ok("")
    expect(names(body.pending)).toStrictEqual(["refactor.md", "summarise.md", "translate.md"])
    expect(body.active).toHaveLength(2)
    expect(names(body.done)).toStrictEqual(allDone.slice(0, TASKS_PAGE_DEFAULT))
    expect(body.failed).toHaveLength(TASKS_PAGE_DEFAULT)
    expect(body.counts).toStrictEqual(counts)
    expect(body.next).toStrictEqual({ pending: null, active: null, done: "done-099.md", failed: "failed-099.md" })
  })

  it("limit without stage bounds done and failed only", async () => {
    const body = await ok("?limit=2")
    expect(body.pending).toHaveLength(3)
    expect(names(body.done)).toStrictEqual(["done-000.md", "done-001.md"])
    expect(names(body.failed)).toStrictEqual(["failed-000.md", "failed-001.md"])
    expect(body.next).toStrictEqual({ pending: null, active: null, done: "done-001.md", failed: "failed-001.md" })
  })

  it("stage=done&limit=100, then after=next until next is null: 100, 100, 50, every name once, in order", async () => {
    const pages: Array<ReadonlyArray<string>> = []
    let after: string | null = null
    do {
      const body = await ok(`?stage=done&limit=100${after === null ? "" : `&after=${encodeURIComponent(after)}`}`)
      expect(body.counts).toStrictEqual(counts)
      expect([body.pending, body.active, body.failed]).toStrictEqual([[], [], []])
      pages.push(names(body.done))
      after = body.next?.done ?? null
    } while (after !== null && pages.length < 10)
    expect(pages.map((p) => p.length)).toStrictEqual([100, 100, 50])
    expect(pages.flat()).toStrictEqual(allDone)
  })

  it("after a name that is not in the list starts at the next name after it; after the last, an empty page", async () => {
    expect(names((await ok("?stage=done&limit=3&after=done-041")).done)).toStrictEqual([
      "done-041.md",
      "done-042.md",
      "done-043.md"
    ])
    const last = await ok("?stage=done&after=done-249.md")
    expect([last.done, last.next?.done]).toStrictEqual([[], null])
  })

  it("limit=1000 lists the whole stage with no cursor; a stage with fewer names than limit has none either", async () => {
    const body = await ok(`?stage=done&limit=${TASKS_PAGE_MAX}`)
    expect([body.done.length, body.next?.done]).toStrictEqual([DONE, null])
    const pending = await ok("?stage=pending&limit=2")
    expect([names(pending.pending), pending.next?.pending]).toStrictEqual([
      ["refactor.md", "summarise.md"],
      "summarise.md"
    ])
  })

  it("a bad query → 400 with a JSON error, and the snapshot is not read", async () => {
    const before = server.reads()
    for (
      const query of [
        "?limit=0",
        "?limit=1001",
        "?limit=abc",
        "?limit=1.5",
        "?stage=archive",
        "?after=x",
        "?stage=done&stage=failed"
      ]
    ) {
      const { body, status } = await tasks(query)
      expect(status, query).toBe(400)
      expect(Schema.decodeUnknownSync(Schema.Struct({ error: Schema.String }))(body).error, query).toMatch(
        /^bad query: /
      )
    }
    expect((await tasks("?after=x")).body).toStrictEqual({
      error: "bad query: after needs stage (e.g. ?stage=done&after=NAME)"
    })
    expect(server.reads()).toBe(before)
  })
})

describe("page (property)", () => {
  const sortedNames = fc.uniqueArray(fc.string({ maxLength: 6 }), { maxLength: 60 }).map((list) => [...list].sort())

  it("following next from the start lists every name once, in order, each page at most limit long", () => {
    fc.assert(
      fc.property(sortedNames, fc.integer({ min: 1, max: 25 }), (list, limit) => {
        const views = list.map((name) => ({ name, state: "done" }))
        const seen: Array<string> = []
        let after: string | undefined
        for (let guard = 0; guard <= list.length + 1; guard++) {
          const { next, views: taken } = page(views, limit, after)
          expect(taken.length).toBeLessThanOrEqual(limit)
          seen.push(...taken.map((v) => v.name))
          if (next === null) break
          expect(next).toBe(taken.at(-1)?.name)
          after = next
        }
        expect(seen).toStrictEqual(list)
      }),
      RUNS
    )
  })

  it("a page starts at the first name greater than after, whether or not after is in the list", () => {
    fc.assert(
      fc.property(sortedNames, fc.string({ maxLength: 6 }), fc.integer({ min: 1, max: 25 }), (list, after, limit) => {
        const views = list.map((name) => ({ name, state: "done" }))
        const expected = list.filter((name) => name > after)
        const result = page(views, limit, after)
        expect(result.views.map((v) => v.name)).toStrictEqual(expected.slice(0, limit))
        expect(result.next).toBe(expected.length > limit ? expected[limit - 1] : null)
      }),
      RUNS
    )
  })
})
