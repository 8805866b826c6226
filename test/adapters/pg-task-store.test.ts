/**
 * The PostgreSQL queue against a real server: the TaskStore contract the filesystem store meets, its migrations
 * applied once however many hosts start at the same moment, and an outage reported as a resource error the daemon
 * waits out.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as PgClient from "@effect/sql-pg/PgClient"
import { expect, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import { LATEST_MIGRATION, migrate, QUEUE_CHANNEL } from "../../src/adapters/pg/schema.ts"
import { PgTaskStoreLayer } from "../../src/adapters/pg/task-store.ts"
import { TaskName } from "../../src/domain/task.ts"
import { isResourceError, TaskStore } from "../../src/ports/task-store.ts"
import { currentSchemaClient, MigratedDatabase, PrivateDatabase } from "./pg-database.ts"
import { taskStoreContract } from "./task-store-contract.ts"

taskStoreContract("PostgreSQL task store", () => PgTaskStoreLayer().pipe(Layer.provide(MigratedDatabase)))

layer(PrivateDatabase, { excludeTestServices: true, timeout: 60_000 })("PostgreSQL queue schema", (it) => {
  it.effect("five hosts starting at once apply the migrations once, and a later start applies none", () =>
    Effect.gen(function*() {
      // Each start is a host of its own: its own pool of connections to the same schema.
      const host = yield* currentSchemaClient
      const applied = yield* Effect.forEach(
        Array.from({ length: 5 }, () => migrate.pipe(Effect.provide(Layer.mergeAll(host, NodeServices.layer)))),
        (start) => start,
        { concurrency: "unbounded" }
      )
      // Exactly one start applied the migrations, in order; the others found them done.
      const ran = applied.filter((migrations) => migrations.length > 0)
      expect(ran.length).toBe(1)
      expect(ran[0]?.map(([id]) => id)).toStrictEqual(Array.from({ length: LATEST_MIGRATION }, (_, i) => i + 1))
      expect(yield* migrate).toStrictEqual([])
      const sql = yield* SqlClient.SqlClient
      const tables = yield* sql<{ readonly name: string }>`
        SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1
      `
      expect(tables.map((t) => t.name)).toStrictEqual([
        "cf_errors",
        "cf_hosts",
        "cf_markers",
        "cf_migrations",
        "cf_tasks"
      ])
    }))

  it.effect("every arrival and move is announced at commit to a listener on another host, as stage/name", () =>
    Effect.gen(function*() {
      yield* migrate
      const other = yield* Layer.build(yield* currentSchemaClient)
      const notes = yield* PgClient.PgClient.use((pg) => pg.listen(QUEUE_CHANNEL)).pipe(Effect.provideContext(other))
      const store = yield* TaskStore.pipe(Effect.provide(PgTaskStoreLayer()))
      yield* store.create("pending", TaskName.make("wake.md"), "Wake up.\n")
      yield* store.move("pending", "active", TaskName.make("wake.md"))
      const first = yield* Queue.take(notes).pipe(Effect.timeout("10 seconds"))
      const second = yield* Queue.take(notes).pipe(Effect.timeout("10 seconds"))
      const third = yield* Queue.take(notes).pipe(Effect.timeout("10 seconds"))
      // A move is announced where the task left and where it arrived.
      expect([first.payload, second.payload, third.payload]).toStrictEqual([
        "pending/wake.md",
        "pending/wake.md",
        "active/wake.md"
      ])
      // Inside a transaction, nothing is announced until it commits (and nothing at all if it rolls back).
      const sql = yield* SqlClient.SqlClient
      yield* sql.withTransaction(Effect.andThen(
        store.create("pending", TaskName.make("undone.md"), "Never.\n"),
        Effect.fail("roll back")
      )).pipe(Effect.ignore)
      yield* store.create("pending", TaskName.make("after.md"), "After.\n")
      const fourth = yield* Queue.take(notes).pipe(Effect.timeout("10 seconds"))
      expect(fourth.payload).toBe("pending/after.md")
      // A task removed is announced where it was.
      yield* store.remove("active", TaskName.make("wake.md"))
      expect((yield* Queue.take(notes).pipe(Effect.timeout("10 seconds"))).payload).toBe("active/wake.md")
    }))

  it.effect("a move is one statement: the row changes stage and name and keeps its identity, or nothing changes", () =>
    Effect.gen(function*() {
      yield* migrate
      const store = yield* TaskStore.pipe(Effect.provide(PgTaskStoreLayer()))
      const name = TaskName.make("one.md")
      yield* store.create("active", name, "text")
      const before = yield* store.stat("active", name)
      yield* store.move("active", "done", name, TaskName.make("one-2.md"))
      expect(yield* store.list("active")).not.toContain(name)
      expect((yield* store.stat("done", TaskName.make("one-2.md"))).identity).toBe(before.identity)
      expect(yield* store.linked("done")).toStrictEqual(new Map())
    }))
})

layer(MigratedDatabase, { excludeTestServices: true, timeout: 60_000 })("PostgreSQL queue text", (it) => {
  it.effect("a text PostgreSQL cannot hold (a NUL byte) is refused as it stands, not waited out as an outage", () =>
    Effect.gen(function*() {
      const store = yield* TaskStore.pipe(Effect.provide(PgTaskStoreLayer()))
      const name = TaskName.make("nul.md")
      const created = yield* Effect.flip(store.create("pending", name, "a\u0000b"))
      expect(created._tag).toBe("StoreError")
      expect(created.message).toContain("NUL byte")
      expect(isResourceError(created)).toBe(false)
      yield* store.create("pending", name, "ab")
      const replaced = yield* Effect.flip(store.replace("pending", name, "a\u0000b"))
      expect(replaced._tag === "StoreError" && !isResourceError(replaced)).toBe(true)
      expect((yield* store.read("pending", name)).text).toBe("ab")
    }))
})

layer(MigratedDatabase, { excludeTestServices: true, timeout: 60_000 })("PostgreSQL queue: finished tasks", (it) => {
  it.effect("a task moved into done/ or failed/ is told once its move is committed, never when it is undone", () =>
    Effect.gen(function*() {
      const told: Array<string> = []
      const store = yield* TaskStore.pipe(Effect.provide(PgTaskStoreLayer({
        onFinished: (task) => Effect.sync(() => void told.push(`${task.stage}/${task.name}: ${task.text}`))
      })))
      for (const name of ["alone.md", "inner.md", "undone.md", "failing.md"])
        yield* store.create("active", TaskName.make(name), `${name} ran`)
      // Outside a transaction: at once.
      yield* store.move("active", "done", TaskName.make("alone.md"))
      expect(told).toStrictEqual(["done/alone.md: alone.md ran"])
      // In one (nested, as a change of stage inside another): when the outermost commits, not before.
      yield* store.atomically(Effect.gen(function*() {
        yield* store.atomically(Effect.andThen(
          store.replace("active", TaskName.make("inner.md"), "inner.md finished"),
          store.move("active", "failed", TaskName.make("inner.md"))
        ))
        expect(told).toHaveLength(1)
      }))
      expect(told).toStrictEqual(["done/alone.md: alone.md ran", "failed/inner.md: inner.md finished"])
      // Undone (the transaction failed after the move): never told, and the task is where it was.
      const undone = yield* Effect.flip(store.atomically(Effect.andThen(
        store.move("active", "done", TaskName.make("undone.md")),
        Effect.fail("then something failed")
      )))
      expect(undone).toBe("then something failed")
      expect(told).toHaveLength(2)
      expect(yield* store.has("active", TaskName.make("undone.md"))).toBe(true)
      // Moves elsewhere are not finishes.
      yield* store.move("active", "pending", TaskName.make("failing.md"))
      expect(told).toHaveLength(2)
    }))
})

it.effect(
  "a database that cannot be reached is a StoreError the daemon waits out (a resource error)",
  () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        TaskStore.use((store) => store.list("pending")).pipe(
          Effect.provide(PgTaskStoreLayer()),
          Effect.provide(
            PgClient.layer({ url: Redacted.make("postgres://postgres@127.0.0.1:1/none"), connectTimeout: "2 seconds" })
          )
        )
      )
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      const failure = error?._tag === "Fail" ? error.error : undefined
      expect(failure?._tag).toBe("StoreError")
      expect(failure !== undefined && failure._tag === "StoreError" && isResourceError(failure)).toBe(true)
    }),
  20_000
)
