/**
 * Hosts and leases on the PostgreSQL queue. A host registers, and its heartbeat extends the leases of the tasks it
 * moved into active/ (the move is the claim: see `./task-store.ts`). A host that stops — kill -9, power, network —
 * stops extending them; once a lease has run out, another host takes the task over and ends its run as the
 * single-host daemon ends a run whose session died, so the run token refuses a late completion from the lost host.
 * Easy to get wrong: taking over is itself a claim — of several hosts seeing the same expired lease, exactly one
 * gets it (one conditional UPDATE) — and the database's clock is the only clock: hosts' clocks may disagree.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import { TaskName } from "../../domain/task.ts"
import {
  type ExpiredLease,
  type Host,
  HostIdInUse,
  type HostSession,
  type Leases,
  type OtherJobs
} from "../../ports/shared-queue.ts"
import { leaseEnd, storeError, where } from "./task-store.ts"

const HostSessions = Schema.Array(Schema.Struct({
  session: Schema.String,
  state: Schema.String,
  task: Schema.NullOr(Schema.String)
}))
const decodeSessions = Schema.decodeUnknownOption(Schema.fromJsonString(HostSessions))

const isTaskName = Schema.is(TaskName)

export interface LeaseOptions {
  /** Identifies this daemon as the host (another daemon with the same HOST_ID has another). */
  readonly instance?: string
  /**
   * Whether this host submits and polls delegated jobs (it has secutools): its heartbeat then renews the jobs it
   * reaps. A host without lets them run out, so that another host takes them on.
   */
  readonly reapsJobs?: boolean
}

export const makeLeases = (
  host: string,
  leaseTtl: Duration.Duration,
  options: LeaseOptions = {}
): Effect.Effect<Leases, never, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const instance = options.instance ?? crypto.randomUUID()
    const reapsJobs = options.reapsJobs ?? true
    const sql = yield* SqlClient.SqlClient
    const ttlSeconds = Duration.toSeconds(leaseTtl)
    const until = leaseEnd(sql, ttlSeconds)

    return {
      host,
      /**
       * Announces this daemon as the host (again, after a restart: its start time is reset, its leases are kept);
       * refused while another daemon's heartbeat as the same host is younger than a lease — the other's last
       * heartbeat (epoch ms, database clock) is returned then.
       */
      register: sql<{ readonly heartbeat_ms: string | number | null; readonly ours: boolean }>`
        WITH claimed AS (
          INSERT INTO cf_hosts (host, started_at, heartbeat_at, instance)
          VALUES (${host}, clock_timestamp(), clock_timestamp(), ${instance})
          ON CONFLICT (host) DO UPDATE
            SET started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, instance = excluded.instance
            WHERE cf_hosts.instance IS NULL OR cf_hosts.instance = excluded.instance
              OR cf_hosts.heartbeat_at < clock_timestamp() - make_interval(secs => ${ttlSeconds})
          RETURNING host
        )
        SELECT true AS ours, NULL AS heartbeat_ms FROM claimed
        UNION ALL
        SELECT false, (extract(epoch FROM heartbeat_at) * 1000)::float8 FROM cf_hosts
        WHERE host = ${host} AND NOT EXISTS (SELECT 1 FROM claimed)
      `.pipe(
        Effect.map((rows) => {
          const row = rows[0]
          return row === undefined || row.ours ? Option.none<number>() : Option.some(Number(row.heartbeat_ms))
        }),
        Effect.mapError(storeError("register", where("cf_hosts")))
      ),

      /**
       * The host is alive: its heartbeat and every lease it holds are renewed; returns how many leases it holds.
       * Fails with HostIdInUse when another daemon has taken the host over (this one's heartbeat had lapsed).
       */
      heartbeat: sql.withTransaction(Effect.gen(function*() {
        const beat = yield* sql`
          UPDATE cf_hosts SET heartbeat_at = clock_timestamp() WHERE host = ${host} AND instance = ${instance}
          RETURNING host
        `
        if (beat.length === 0) return yield* new HostIdInUse({ host, renewed: true })
        const renewed = yield* sql<{ readonly name: string }>`
          UPDATE cf_tasks SET lease_until = ${until} WHERE stage = 'active' AND lease_host = ${host} RETURNING name
        `
        if (reapsJobs) yield* sql`UPDATE cf_markers SET reap_until = ${until} WHERE reaper_host = ${host}`
        return renewed.length
      })).pipe(Effect.catchTag("SqlError", (error) => Effect.fail(storeError("heartbeat", where("cf_hosts"))(error)))),

      /**
       * Active tasks whose lease has run out (another host's, or this host's from before a restart), and those no host
       * holds (put in active/ by hand): no host would ever supervise them otherwise.
       */
      expired: sql<{ readonly name: string; readonly lease_host: string | null; readonly ago_ms: string | number }>`
        SELECT name, lease_host,
          coalesce(extract(epoch FROM clock_timestamp() - lease_until) * 1000, 0)::float8 AS ago_ms
        FROM cf_tasks WHERE stage = 'active' AND (lease_until IS NULL OR lease_until < clock_timestamp())
        ORDER BY name
      `.pipe(
        Effect.map((rows) =>
          rows.flatMap((row): Array<ExpiredLease> =>
            isTaskName(row.name)
              ? [{ task: row.name, host: row.lease_host ?? "", expiredForMs: Number(row.ago_ms) }]
              : []
          )
        ),
        Effect.mapError(storeError("expired", where("cf_tasks")))
      ),

      /**
       * Takes an expired lease over for this host; true for exactly one of several hosts asking at once (and false
       * when the lease was renewed meanwhile: its host came back). The row gets a new version, so a write the lost
       * host prepared from what it read before is refused (see the store's `seen`).
       */
      takeOver: (task: TaskName) =>
        sql<{ readonly name: string }>`
          UPDATE cf_tasks SET lease_host = ${host}, lease_until = ${until}, file_id = nextval('cf_file_ids')
          WHERE stage = 'active' AND name = ${task} AND (lease_until IS NULL OR lease_until < clock_timestamp())
          RETURNING name
        `.pipe(Effect.map((rows) => rows.length === 1), Effect.mapError(storeError("take over", where("cf_tasks")))),

      /** Other hosts' delegated jobs: those a live host reaps, and those nobody does (see `OtherJobs`). */
      otherJobs: sql<{ readonly name: string; readonly free: boolean }>`
        SELECT name, (reaper_host IS NULL OR reap_until IS NULL OR reap_until < clock_timestamp()) AS free
        FROM cf_markers WHERE reaper_host IS DISTINCT FROM ${host}
        ORDER BY name
      `.pipe(
        Effect.map((rows): OtherJobs => ({
          reaped: rows.filter((row) => !row.free).map((row) => row.name).filter(isTaskName),
          free: rows.filter((row) => row.free).map((row) => row.name).filter(isTaskName)
        })),
        Effect.mapError(storeError("jobs", where("cf_markers")))
      ),

      /** This host's sessions as they are now, for every host's status (written by this daemon only). */
      reportSessions: (sessions: ReadonlyArray<HostSession>) =>
        sql`UPDATE cf_hosts SET sessions = ${JSON.stringify(sessions)} WHERE host = ${host} AND instance = ${instance}`
          .pipe(Effect.asVoid, Effect.mapError(storeError("report sessions", where("cf_hosts")))),

      /** Every host, with its heartbeat, the leases and jobs it holds and its sessions, for the status API. */
      hosts: sql<{
        readonly host: string
        readonly started_ms: string | number
        readonly heartbeat_ms: string | number
        readonly leases: string | number
        readonly jobs: string | number
        readonly sessions: string | null
      }>`
        SELECT h.host,
          (extract(epoch FROM h.started_at) * 1000)::float8 AS started_ms,
          (extract(epoch FROM h.heartbeat_at) * 1000)::float8 AS heartbeat_ms,
          (SELECT count(*) FROM cf_tasks t WHERE t.stage = 'active' AND t.lease_host = h.host) AS leases,
          (SELECT count(*) FROM cf_markers m WHERE m.reaper_host = h.host) AS jobs,
          h.sessions
        FROM cf_hosts h ORDER BY h.host
      `.pipe(
        Effect.map((rows) =>
          rows.map((row): Host => ({
            host: row.host,
            startedAt: Number(row.started_ms),
            heartbeatAt: Number(row.heartbeat_ms),
            leases: Number(row.leases),
            jobs: Number(row.jobs),
            // Written by another version of the daemon, perhaps: what cannot be read is shown as none.
            sessions: row.sessions === null ? [] : Option.getOrElse(decodeSessions(row.sessions), () => [])
          }))
        ),
        Effect.mapError(storeError("hosts", where("cf_hosts")))
      )
    }
  })
