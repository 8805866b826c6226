/**
 * The PostgreSQL queue's tables, created by numbered migrations applied at start-up.
 * Easy to get wrong: several hosts start at once, so the migrations run under one transaction-scoped advisory lock
 * (the migrator's own table lock cannot guard the creation of that very table); and a migration, once shipped, is
 * never edited — a change is a new one.
 */
import * as Effect from "effect/Effect"
import * as Migrator from "effect/sql/Migrator"
import * as SqlClient from "effect/sql/SqlClient"
import * as PgMigrator from "@effect/sql-pg/PgMigrator"

/** Any 64-bit number the project owns: the advisory lock that makes concurrent start-ups apply migrations once. */
const MIGRATION_LOCK = 7_271_512_034

/** Each migration, keyed `NNNN_name`: applied once, in order. */
const steps = {
  "0001_queue": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    // A task is a row per (stage, name), as a file is a name in a stage directory. `file_id` is the file's identity:
    // a move keeps it, a rewrite takes a new one (as a rename into place makes a new inode).
    yield* sql`CREATE SEQUENCE cf_file_ids`
    yield* sql`
      CREATE TABLE cf_tasks (
        stage text NOT NULL CHECK (stage IN ('pending', 'active', 'done', 'failed')),
        name text NOT NULL,
        text text NOT NULL,
        file_id bigint NOT NULL DEFAULT nextval('cf_file_ids'),
        changed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (stage, name)
      )
    `
    // The delegation marker of a pending task: the write-ahead record of its secutools job.
    yield* sql`CREATE TABLE cf_markers (name text PRIMARY KEY, marker text NOT NULL)`
    // Why a quarantined task failed (failed/NAME.error on disk).
    yield* sql`CREATE TABLE cf_errors (name text PRIMARY KEY, reason text NOT NULL)`
  }),
  "0002_leases": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    // Every daemon on the database, with its last heartbeat.
    yield* sql`
      CREATE TABLE cf_hosts (
        host text PRIMARY KEY,
        started_at timestamptz NOT NULL,
        heartbeat_at timestamptz NOT NULL
      )
    `
    // An active task is leased by the host that moved it there, until `lease_until`; its heartbeat extends it.
    yield* sql`ALTER TABLE cf_tasks ADD COLUMN lease_host text, ADD COLUMN lease_until timestamptz`
    yield* sql`CREATE INDEX cf_tasks_leases ON cf_tasks (lease_until) WHERE stage = 'active'`
  }),
  "0003_wake_ups": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    // Every task that arrives in (or changes in) a stage is announced on QUEUE_CHANNEL as `stage/name`, at commit:
    // any host's dispatcher wakes at once, the periodic scan being only the safety net.
    yield* sql`
      CREATE FUNCTION cf_announce() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('cf_queue', NEW.stage || '/' || NEW.name);
        RETURN NULL;
      END
      $$
    `
    yield* sql`
      CREATE TRIGGER cf_tasks_announce AFTER INSERT OR UPDATE OF stage, name, text ON cf_tasks
      FOR EACH ROW EXECUTE FUNCTION cf_announce()
    `
  }),
  "0004_jobs": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    // One marker per idempotency key, whichever host writes it; and the host reaping the job, until when.
    yield* sql`
      ALTER TABLE cf_markers
        ADD COLUMN idempotency_key text,
        ADD COLUMN reaper_host text,
        ADD COLUMN reap_until timestamptz
    `
    yield* sql`UPDATE cf_markers SET idempotency_key = (marker::jsonb) ->> 'idempotency_key'`
    yield* sql`ALTER TABLE cf_markers ALTER COLUMN idempotency_key SET NOT NULL`
    yield* sql`CREATE UNIQUE INDEX cf_markers_key ON cf_markers (idempotency_key)`
  }),
  "0005_announce_departures": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    // A task leaving a stage (moved on, renamed, removed) is announced at its old place too: another host's intake
    // then forgets a pending task at once instead of offering it to a session until its next scan.
    yield* sql`
      CREATE OR REPLACE FUNCTION cf_announce() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP <> 'INSERT' AND (TG_OP = 'DELETE' OR OLD.stage <> NEW.stage OR OLD.name <> NEW.name) THEN
          PERFORM pg_notify('cf_queue', OLD.stage || '/' || OLD.name);
        END IF;
        IF TG_OP <> 'DELETE' THEN
          PERFORM pg_notify('cf_queue', NEW.stage || '/' || NEW.name);
        END IF;
        RETURN NULL;
      END
      $$
    `
    yield* sql`
      CREATE TRIGGER cf_tasks_announce_removal AFTER DELETE ON cf_tasks
      FOR EACH ROW EXECUTE FUNCTION cf_announce()
    `
  }),
  "0006_host_instances": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    // Which daemon runs as the host: two daemons given the same HOST_ID would each supervise the other's runs.
    yield* sql`ALTER TABLE cf_hosts ADD COLUMN instance text`
  }),
  "0007_host_sessions": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    // Each host's sessions as its last heartbeat saw them (JSON): any host's status shows the whole cluster's.
    yield* sql`ALTER TABLE cf_hosts ADD COLUMN sessions text`
  })
}

export const migrations = Migrator.fromRecord(steps)
/** The id of the newest migration. */
export const LATEST_MIGRATION = Object.keys(steps).length

/** The channel on which every change to a task is announced as `stage/name`. */
export const QUEUE_CHANNEL = "cf_queue"

/** Applies the migrations not applied yet; safe to run from several hosts at once. */
export const migrate = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return yield* sql.withTransaction(
    Effect.andThen(
      sql`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`,
      PgMigrator.run({ loader: migrations, table: "cf_migrations" })
    )
  )
})
