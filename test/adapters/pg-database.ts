/**
 * A private schema on the test PostgreSQL (TEST_DATABASE_URL, by default the local server's `test` database), made
 * for one layer and dropped when the layer is released, so tests never see each other's rows.
 * Easy to get wrong: every connection of the pool must use the schema, so it is set as the connection's own
 * `search_path` at start-up, not with a SET on whichever connection runs first.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as PgClient from "@effect/sql-pg/PgClient"
import { layer } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import { makeLeases } from "../../src/adapters/pg/leases.ts"
import { migrate } from "../../src/adapters/pg/schema.ts"
import { makePgTaskStore } from "../../src/adapters/pg/task-store.ts"

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

const client = (schema?: string) =>
  PgClient.layer({
    url: Redacted.make(TEST_DATABASE_URL),
    applicationName: "claude-failover-tests",
    ...(schema === undefined ? {} : { startupParameters: { search_path: schema } })
  })

/** A new, empty schema; dropped with everything in it when the scope closes. */
const privateSchema = Effect.acquireRelease(
  Effect.gen(function*() {
    const name = `cf_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE SCHEMA ${sql(name)}`
    return name
  }).pipe(Effect.provide(client())),
  (name) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`DROP SCHEMA ${sql(name)} CASCADE`
    }).pipe(Effect.provide(client()), Effect.orDie)
)

/** A SqlClient (and PgClient) on a private schema of its own, with the services migrations need. */
export const PrivateDatabase = Layer.unwrap(Effect.map(privateSchema, client)).pipe(
  Layer.provideMerge(NodeServices.layer)
)

/** A second client on the schema of `PrivateDatabase`: another host on the same database. */
export const currentSchemaClient = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly schema: string }>`SELECT current_schema() AS schema`
  return client(rows[0]?.schema ?? "public")
})

/** PrivateDatabase with the queue's migrations applied. */
export const MigratedDatabase = Layer.effectDiscard(migrate).pipe(Layer.provideMerge(PrivateDatabase))

/** How the shared-queue tests run: one migrated private schema per `describe`, a minute at most per test. */
export const onSharedQueue = layer(MigratedDatabase, { excludeTestServices: true, timeout: 60_000 })

/** A host on the private schema: its own pool, its store (leasing what it moves into active/), its leases. */
export const hostOn = (host: string, leaseTtl: Duration.Duration) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(Layer.mergeAll(yield* currentSchemaClient, NodeServices.layer))
    const store = yield* makePgTaskStore({ host, leaseTtl }).pipe(Effect.provideContext(context))
    const leases = yield* makeLeases(host, leaseTtl).pipe(Effect.provideContext(context))
    yield* leases.register
    return { host, store, leases }
  })
