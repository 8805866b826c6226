/**
 * A private schema on the test PostgreSQL (TEST_DATABASE_URL, by default the local server's `test` database), made
 * for one layer and dropped when the layer is released, so tests never see each other's rows.
 * Easy to get wrong: every connection of the pool must use the schema, so it is set as the connection's own
 * `search_path` at start-up, not with a SET on whichever connection runs first.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"

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
