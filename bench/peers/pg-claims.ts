/**
 * The shared queue's claims on PostgreSQL, at the store level (the daemon on PostgreSQL comes later: see
 * docs/many-hosts.md). `pg-claims.ts URL COUNT CONCURRENCY`; prints JSON. Three measures on the same fresh schema:
 * one host claiming COUNT pending tasks through the store's move (the claim: one conditional UPDATE, leased to it),
 * three hosts (three pools) claiming COUNT between them, and a plain `FOR UPDATE SKIP LOCKED` loop over a bare table,
 * the textbook queue, as the baseline.
 * Easy to get wrong: the hosts know tasks by name, as the daemon's intake does, so three of them collide on names and
 * a lost race costs a round trip — that is part of what is measured; and the schema is dropped afterwards, whatever.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import { migrate } from "../../src/adapters/pg/schema.ts"
import { makePgTaskStore } from "../../src/adapters/pg/task-store.ts"
import { TaskName } from "../../src/domain/task.ts"

const [url = "", countText = "0", concurrencyText = "16"] = process.argv.slice(2)
const count = Number(countText)
const concurrency = Number(concurrencyText)
const schema = `cf_bench_${process.pid}_${Date.now()}`

const client = (searchPath?: string) =>
  PgClient.layer({
    url: Redacted.make(url),
    applicationName: "claude-failover-bench",
    ...(searchPath === undefined ? {} : { startupParameters: { search_path: searchPath } })
  })

const names = Array.from({ length: count }, (_, i) => TaskName.make(`claim-${String(i).padStart(6, "0")}.md`))

const seed = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DELETE FROM cf_tasks`
  yield* sql`
    INSERT INTO cf_tasks (stage, name, text)
    SELECT 'pending', 'claim-' || lpad(i::text, 6, '0') || '.md', 'Task ' || i || E'.\\n'
    FROM generate_series(0, ${count - 1}) AS i
  `
})

/** `hosts` hosts, each with its own pool, claiming every task by name; claims per second and lost races. */
const storeClaims = (hosts: number) =>
  Effect.gen(function*() {
    yield* seed
    const stores = yield* Effect.forEach(Array.from({ length: hosts }, (_, i) => i), (i) =>
      Effect.gen(function*() {
        const context = yield* Layer.build(client(schema))
        return yield* makePgTaskStore({ host: `bench-${i}`, leaseTtl: Duration.minutes(5) }).pipe(
          Effect.provideContext(context)
        )
      }))
    let lost = 0
    const started = performance.now()
    yield* Effect.forEach(stores, (store, i) => {
      // Each host starts at its own place in the list, as hosts whose intakes saw the files at different times.
      const order = [...names.slice((i * count) / hosts), ...names.slice(0, (i * count) / hosts)]
      return Effect.forEach(order, (name) =>
        store.move("pending", "active", name).pipe(
          Effect.catchTag("TaskNotFound", () => Effect.sync(() => void lost++))
        ), { concurrency, discard: true })
    }, { concurrency: "unbounded", discard: true })
    const seconds = (performance.now() - started) / 1000
    return { perSecond: count / seconds, lost }
  })

/** The baseline: workers taking any pending row with SKIP LOCKED, one pool. */
const skipLocked = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE bare_queue (id bigserial PRIMARY KEY, state text NOT NULL, body text NOT NULL)`
  yield* sql`INSERT INTO bare_queue (state, body) SELECT 'pending', 'Task ' || i FROM generate_series(1, ${count}) AS i`
  const started = performance.now()
  const worker = Effect.gen(function*() {
    for (;;) {
      const rows = yield* sql`
        UPDATE bare_queue SET state = 'active'
        WHERE id = (SELECT id FROM bare_queue WHERE state = 'pending' LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING id
      `
      if (rows.length === 0) return
    }
  })
  yield* Effect.all(Array.from({ length: concurrency }, () => worker), { concurrency: "unbounded", discard: true })
  return count / ((performance.now() - started) / 1000)
})

const program = Effect.gen(function*() {
  const admin = yield* Layer.build(client())
  yield* SqlClient.SqlClient.use((sql) => sql`CREATE SCHEMA ${sql(schema)}`).pipe(Effect.provideContext(admin))
  const run = Effect.gen(function*() {
    const context = yield* Layer.build(Layer.mergeAll(client(schema), NodeServices.layer))
    yield* migrate.pipe(Effect.provideContext(context))
    const one = yield* storeClaims(1).pipe(Effect.provideContext(context))
    const three = yield* storeClaims(3).pipe(Effect.provideContext(context))
    const baseline = yield* skipLocked.pipe(Effect.provideContext(context))
    return { oneHost: one.perSecond, threeHosts: three.perSecond, lostRaces: three.lost, skipLocked: baseline }
  })
  return yield* run.pipe(
    Effect.ensuring(
      SqlClient.SqlClient.use((sql) => sql`DROP SCHEMA ${sql(schema)} CASCADE`).pipe(
        Effect.provideContext(admin),
        Effect.ignore
      )
    )
  )
})

const result = await Effect.runPromise(Effect.scoped(program))
console.log(JSON.stringify(result))
process.exit(0)
