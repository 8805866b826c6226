/**
 * The queue's TaskStore on PostgreSQL: a row per task in a stage, a marker row per delegated task, the same contract
 * as the filesystem store (`test/adapters/task-store-contract.ts` runs against both).
 * Easy to get wrong: create and move never overwrite — the primary key (stage, name) refuses, and that refusal is
 * NameTaken, not an error; a move is one UPDATE, so it cannot be cut in half as a link and an unlink can — and of
 * several hosts moving the same pending task, exactly one finds the row (the claim), and the task is leased to it;
 * every database failure is a StoreError with code EIO, so the daemon waits an outage out as it waits out a full disk.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import { isSqlError, type SqlError } from "effect/sql/SqlError"
import { MarkerJson } from "../../domain/marker.ts"
import { TaskName } from "../../domain/task.ts"
import {
  NameTaken,
  type Stage,
  type StoredTask,
  StoreError,
  TaskNotFound,
  TaskStore,
  Unreadable
} from "../../ports/task-store.ts"

const DEFAULT_MAX_TASK_BYTES = 1024 * 1024

interface TaskRow {
  readonly text: string
  readonly file_id: string | number | bigint
  readonly changed_ms: string | number
}

/** Where a database error happened, as a StoreError's path: the table, and the stage and name when there is one. */
export const where = (table: string, stage?: Stage, name?: string) =>
  `postgres:${table}${stage === undefined ? "" : `/${stage}`}${name === undefined ? "" : `/${name}`}`

/** When a lease taken or renewed now runs out, by the database's clock (hosts' clocks may disagree). */
export const leaseEnd = (sql: SqlClient.SqlClient, seconds: number) =>
  sql`clock_timestamp() + make_interval(secs => ${seconds})`

/** Every database failure as a StoreError the daemon waits out (EIO), like a full disk. */
export const storeError = (operation: string, path: string) => (error: SqlError) =>
  new StoreError({ operation, path, problem: error.message, code: "EIO" })

const isUniqueViolation = (error: SqlError) => error.reason._tag === "UniqueViolation"

/** PostgreSQL's text cannot hold a NUL: such a write is refused as it stands (not a resource error to wait out). */
const storable = (operation: string, stage: Stage, name: string, text: string) =>
  text.includes("\u0000")
    ? Effect.fail(
      new StoreError({
        operation,
        path: where("cf_tasks", stage, name),
        problem: "the text holds a NUL byte, which PostgreSQL cannot store",
        code: "EINVAL"
      })
    )
    : Effect.void

const decodeMarker = (name: TaskName, text: string | undefined) =>
  text === undefined ? Effect.succeedNone : Schema.decodeUnknownEffect(MarkerJson)(text).pipe(
    Effect.map(Option.some),
    Effect.mapError((error) =>
      new StoreError({ operation: "decode", path: where("cf_markers", undefined, name), problem: error.message })
    )
  )

const storedOf = (stage: Stage, name: TaskName, row: TaskRow): StoredTask => ({
  stage,
  name,
  text: row.text,
  mtimeMs: Number(row.changed_ms),
  size: Buffer.byteLength(row.text, "utf8"),
  identity: `postgres:${String(row.file_id)}`
})

export interface PgQueueOptions {
  readonly maxTaskBytes?: number
  /**
   * This daemon's host id: a task it moves into active/ is leased to it (see `./leases.ts`), and its list of active/
   * is the tasks leased to it — the runs it supervises; another host's running tasks are that host's.
   */
  readonly host?: string
  /** How long a lease lasts without a heartbeat. */
  readonly leaseTtl?: Duration.Duration
  /**
   * Told of each task this store moves into done/ or failed/, as it arrived there, once the move is committed (at the
   * end of the outermost `atomically`, or at once outside one); its failures are its own to report.
   */
  readonly onFinished?: (task: StoredTask) => Effect.Effect<void>
}

/** The tasks moved into done/ or failed/ by the transaction under way: told to `onFinished` once it commits. */
class FinishedInTransaction extends Context.Service<FinishedInTransaction, Array<StoredTask>>()(
  "claude-failover/adapters/pg/FinishedInTransaction"
) {}

const DEFAULT_LEASE_TTL = Duration.seconds(30)

export const makePgTaskStore = (options: PgQueueOptions = {}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const maxTaskBytes = options.maxTaskBytes ?? DEFAULT_MAX_TASK_BYTES
    const host = options.host ?? null
    const leaseSeconds = Duration.toSeconds(options.leaseTtl ?? DEFAULT_LEASE_TTL)
    /** The lease a row gets in `stage`: this host's, from now, in active/; none elsewhere. */
    const leaseHost = (stage: Stage) => (stage === "active" ? host : null)
    const leaseUntil = (stage: Stage) => stage === "active" && host !== null ? leaseEnd(sql, leaseSeconds) : sql`NULL`

    /**
     * The version (file_id) of each pending and active row as this host last read or wrote it. A write to a row this
     * host has seen applies only if the row is still that version: of two hosts acting on what each read of the same
     * task, the second finds it changed (TaskNotFound) instead of writing over the first's change — what the queue's
     * lock guarantees on one host, per row. Rows never seen here are written as the filesystem store writes files.
     */
    const seen = new Map<string, { readonly fileId: string; readonly step: number }>()
    /** Counts versions noted, so a list forgets only versions noted before it was asked for. */
    let steps = 0
    const key = (stage: Stage, name: string) => `${stage}/${name}`
    const see = (stage: Stage, name: string, fileId: string | number | bigint | undefined) => {
      if (stage !== "pending" && stage !== "active") return
      if (fileId === undefined) seen.delete(key(stage, name))
      else seen.set(key(stage, name), { fileId: String(fileId), step: ++steps })
    }
    /** `AND file_id = <seen>` when this host has seen the row. */
    const unchanged = (stage: Stage, name: string) => {
      const known = seen.get(key(stage, name))
      return known === undefined ? sql`` : sql`AND file_id = ${known.fileId}`
    }

    /** A job's reaper holds it until `reap_until`, renewed by its heartbeat (see `./leases.ts`). */
    const reapUntil = host === null ? sql`NULL` : leaseEnd(sql, leaseSeconds)
    /** A marker this host may write or take on: its own, no host's, or one whose reaper stopped renewing it. */
    const self = host ?? ""
    const reapable = sql`(
      cf_markers.reaper_host IS NULL OR cf_markers.reaper_host = ${self} OR cf_markers.reap_until < clock_timestamp()
    )`

    const row = (stage: Stage, name: TaskName) =>
      sql<TaskRow>`
        SELECT text, file_id, (extract(epoch FROM changed_at) * 1000)::float8 AS changed_ms
        FROM cf_tasks WHERE stage = ${stage} AND name = ${name}
      `.pipe(
        Effect.map((rows) => Option.fromNullishOr(rows[0])),
        Effect.tap((found) => Effect.sync(() => see(stage, name, Option.getOrUndefined(found)?.file_id))),
        Effect.mapError(storeError("read", where("cf_tasks", stage, name)))
      )

    const found = (stage: Stage, name: TaskName) =>
      Effect.flatMap(
        row(stage, name),
        Option.match({
          onNone: () => Effect.fail(new TaskNotFound({ stage, name })),
          onSome: (found) => Effect.succeed(storedOf(stage, name, found))
        })
      )

    const tellFinished = (task: StoredTask) => options.onFinished === undefined ? Effect.void : options.onFinished(task)
    /** A task this store just moved into done/ or failed/: told at once, or when its transaction commits. */
    const finished = (stage: Stage, name: TaskName) =>
      Effect.gen(function*() {
        const task = Option.getOrUndefined(yield* row(stage, name))
        if (task === undefined) return
        const stored = storedOf(stage, name, task)
        const transaction = yield* Effect.serviceOption(FinishedInTransaction)
        if (Option.isSome(transaction)) transaction.value.push(stored)
        else yield* tellFinished(stored)
      })

    return TaskStore.of({
      list: (stage) =>
        Effect.suspend(() => {
          const asked = steps
          return sql<{ readonly name: string }>`
            SELECT name FROM cf_tasks WHERE stage = ${stage}
            ${stage === "active" && host !== null ? sql`AND lease_host = ${host}` : sql``}
          `.pipe(
            // Sorted here, as the filesystem store sorts: the database's collation is not JavaScript's order.
            Effect.map((rows) => rows.map((r) => r.name).filter(Schema.is(TaskName)).sort()),
            Effect.tap((names) =>
              Effect.sync(() => {
                // Versions of rows gone from the stage are forgotten (other hosts move rows without telling this one);
                // a version noted while the list was asked for may be of a row the list was too early to see.
                const listed = new Set(names.map((name) => key(stage, name)))
                for (const [known, { step }] of seen) {
                  if (step <= asked && known.startsWith(`${stage}/`) && !listed.has(known)) seen.delete(known)
                }
              })
            ),
            Effect.mapError(storeError("list", where("cf_tasks", stage)))
          )
        }),
      // Rows are written only through this store, which takes task names only: nothing can be a stray.
      strays: () => Effect.succeed([]),
      has: (stage, name) => Effect.map(row(stage, name), Option.isSome),
      stat: (stage, name) =>
        Effect.map(found(stage, name), (stored) => ({
          identity: stored.identity,
          links: 1,
          mtimeMs: stored.mtimeMs,
          size: stored.size
        })),
      // A row has one name: no move is ever left half done.
      linked: () => Effect.succeed(new Map()),
      read: (stage, name) =>
        Effect.flatMap(found(stage, name), (stored) =>
          stored.size > maxTaskBytes
            ? Effect.fail(
              new Unreadable({
                stage,
                name,
                problem: `is ${stored.size} bytes; task files may have at most ${maxTaskBytes} (MAX_TASK_SIZE)`,
                quarantine: true
              })
            )
            : Effect.succeed(stored)),
      create: (stage, name, text) =>
        Effect.andThen(
          storable("create", stage, name, text),
          sql<{ readonly file_id: string }>`
          INSERT INTO cf_tasks (stage, name, text, lease_host, lease_until)
          VALUES (${stage}, ${name}, ${text}, ${leaseHost(stage)}, ${leaseUntil(stage)})
          RETURNING file_id
        `.pipe(
            Effect.tap((rows) => Effect.sync(() => see(stage, name, rows[0]?.file_id))),
            Effect.asVoid,
            Effect.catch((error): Effect.Effect<never, NameTaken | StoreError> =>
              isUniqueViolation(error)
                ? Effect.fail(new NameTaken({ stage, name }))
                : Effect.fail(storeError("create", where("cf_tasks", stage, name))(error))
            )
          )
        ),
      replace: (stage, name, text) =>
        Effect.andThen(
          storable("write", stage, name, text),
          (seen.has(key(stage, name))
            ? sql<{ readonly file_id: string }>`
            UPDATE cf_tasks SET text = ${text}, file_id = nextval('cf_file_ids'), changed_at = clock_timestamp()
            WHERE stage = ${stage} AND name = ${name} ${unchanged(stage, name)}
            RETURNING file_id
          `
            : sql<{ readonly file_id: string }>`
            INSERT INTO cf_tasks (stage, name, text, lease_host, lease_until)
            VALUES (${stage}, ${name}, ${text}, ${leaseHost(stage)}, ${leaseUntil(stage)})
            ON CONFLICT (stage, name) DO UPDATE
              SET text = excluded.text, file_id = nextval('cf_file_ids'), changed_at = clock_timestamp()
            RETURNING file_id
          `).pipe(
              Effect.mapError(storeError("write", where("cf_tasks", stage, name))),
              Effect.flatMap((rows) => {
                const fileId = rows[0]?.file_id
                // Gone from the stage, or changed by another host since this one read it: not this host's to write (and
                // the version seen stays, so every later write is refused too until the task is read again).
                if (fileId === undefined) return Effect.fail(new TaskNotFound({ stage, name }))
                see(stage, name, fileId)
                return Effect.void
              })
            )
        ),
      move: (from, to, name, toName = name) =>
        Effect.gen(function*() {
          const rows = yield* sql<{ readonly file_id: string }>`
            UPDATE cf_tasks
            SET stage = ${to}, name = ${toName},
              lease_host = ${from === to ? sql`lease_host` : sql`${leaseHost(to)}`},
              lease_until = ${from === to ? sql`lease_until` : leaseUntil(to)}
            WHERE stage = ${from} AND name = ${name} ${unchanged(from, name)}
              AND NOT EXISTS (SELECT 1 FROM cf_tasks WHERE stage = ${to} AND name = ${toName})
            RETURNING file_id
          `.pipe(
            Effect.catch((error): Effect.Effect<never, NameTaken | StoreError> =>
              isUniqueViolation(error)
                // (Taken between the check and the update, by another host's move.)
                ? Effect.fail(new NameTaken({ stage: to, name: toName }))
                : Effect.fail(storeError("move", where("cf_tasks", from, name))(error))
            )
          )
          const fileId = rows[0]?.file_id
          if (fileId !== undefined) {
            see(from, name, undefined)
            see(to, toName, fileId)
            if (options.onFinished !== undefined && (to === "done" || to === "failed")) yield* finished(to, toName)
            return
          }
          // Nothing moved: the name is taken there, or the task is gone or changed by another host (see `seen`).
          // Found out by a query, not from a unique violation, which would abort a transaction the move is part of.
          const [found] = yield* sql<{ readonly here: boolean; readonly taken: boolean }>`
            SELECT
              EXISTS (SELECT 1 FROM cf_tasks WHERE stage = ${from} AND name = ${name} ${unchanged(from, name)}) AS here,
              EXISTS (SELECT 1 FROM cf_tasks WHERE stage = ${to} AND name = ${toName}) AS taken
          `.pipe(Effect.mapError(storeError("move", where("cf_tasks", from, name))))
          if (found?.here === true && found.taken) return yield* new NameTaken({ stage: to, name: toName })
          return yield* new TaskNotFound({ stage: from, name })
        }),
      remove: (stage, name) =>
        sql`DELETE FROM cf_tasks WHERE stage = ${stage} AND name = ${name}`.pipe(
          Effect.tap(() => Effect.sync(() => see(stage, name, undefined))),
          Effect.asVoid,
          Effect.mapError(storeError("remove", where("cf_tasks", stage, name)))
        ),
      quarantineStray: (stray) =>
        Effect.fail(
          new StoreError({
            operation: "quarantine",
            path: where("cf_tasks", stray.stage, stray.display),
            problem: "the PostgreSQL queue has no strays"
          })
        ),
      writeError: (name, reason) =>
        sql`
          INSERT INTO cf_errors (name, reason) VALUES (${name}, ${reason.endsWith("\n") ? reason : `${reason}\n`})
          ON CONFLICT (name) DO UPDATE SET reason = excluded.reason
        `.pipe(Effect.asVoid, Effect.mapError(storeError("write", where("cf_errors", undefined, name)))),
      readMarker: (name) =>
        sql<{ readonly marker: string }>`SELECT marker FROM cf_markers WHERE name = ${name}`.pipe(
          Effect.mapError(storeError("read", where("cf_markers", undefined, name))),
          Effect.flatMap((rows) => decodeMarker(name, rows[0]?.marker))
        ),
      // The key has a unique index: a second marker with a key already used (another task's) is refused. A marker
      // another live host reaps is not written over: of two hosts delegating the same task, the second finds it taken.
      writeMarker: (name, marker) =>
        sql<{ readonly name: string }>`
          INSERT INTO cf_markers (name, marker, idempotency_key, reaper_host, reap_until)
          VALUES (${name}, ${JSON.stringify(marker)}, ${marker.idempotency_key}, ${host}, ${reapUntil})
          ON CONFLICT (name) DO UPDATE
            SET marker = excluded.marker, idempotency_key = excluded.idempotency_key,
              reaper_host = excluded.reaper_host, reap_until = excluded.reap_until
            WHERE ${reapable}
          RETURNING name
        `.pipe(
          Effect.mapError(storeError("write", where("cf_markers", undefined, name))),
          Effect.flatMap((rows) =>
            rows.length === 1 ? Effect.void : Effect.fail(new TaskNotFound({ stage: "pending", name }))
          )
        ),
      claimMarker: (name) =>
        (host === null
          ? sql<{ readonly marker: string }>`SELECT marker FROM cf_markers WHERE name = ${name}`
          : sql<{ readonly marker: string }>`
            UPDATE cf_markers SET reaper_host = ${host}, reap_until = ${reapUntil}
            WHERE name = ${name} AND ${reapable}
            RETURNING marker
          `).pipe(
            Effect.mapError(storeError("claim", where("cf_markers", undefined, name))),
            Effect.flatMap((rows) => decodeMarker(name, rows[0]?.marker))
          ),
      // Only a marker this host may take on: a host whose hold lapsed cannot remove the job another host now reaps (a
      // delegated task without its marker would be routed again).
      removeMarker: (name) =>
        sql`DELETE FROM cf_markers WHERE name = ${name} AND ${reapable}`.pipe(
          Effect.asVoid,
          Effect.mapError(storeError("remove", where("cf_markers", undefined, name)))
        ),
      atomically: (effect) =>
        Effect.gen(function*() {
          const outer = Option.isNone(yield* Effect.serviceOption(FinishedInTransaction))
          const arrived: Array<StoredTask> = []
          const result = yield* sql.withTransaction(
            outer ? Effect.provideService(effect, FinishedInTransaction, arrived) : effect
          ).pipe(
            // Only the transaction's own failures (begin, commit) are the database's; the effect's errors stay its own.
            Effect.mapError((error) => isSqlError(error) ? storeError("commit", where("cf_tasks"))(error) : error)
          )
          // Committed: only now are the tasks it finished there for anyone to see.
          for (const task of arrived) yield* tellFinished(task)
          return result
        }),
      // On a shared queue, the markers this host reaps: another host's jobs are that host's to submit and poll.
      listMarkers: () =>
        sql<{ readonly name: string }>`
          SELECT name FROM cf_markers ${host === null ? sql`` : sql`WHERE reaper_host = ${host}`}
        `.pipe(
          Effect.map((rows) => rows.map((r) => r.name).filter(Schema.is(TaskName)).sort()),
          Effect.mapError(storeError("list", where("cf_markers")))
        )
    })
  })

/** The store on the SqlClient it is given (migrated first: see `./schema.ts`). */
export const PgTaskStoreLayer = (options: PgQueueOptions = {}) => Layer.effect(TaskStore, makePgTaskStore(options))
