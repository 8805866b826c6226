/**
 * The JSON bodies of the status API, as Schemas: the routes build them, `claude-failover status` decodes them.
 * Easy to get wrong: these shapes are the public contract (the README quotes them), so a field is renamed here or
 * nowhere, and the `Snapshot` of the status service is mapped onto them field by field, never passed through whole.
 */
import * as Schema from "effect/Schema"
import { Stages } from "../../ports/task-store.ts"

const Count = Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(0)))

export const Health = Schema.Struct({ status: Schema.Literal("ok") })

export const ErrorBody = Schema.Struct({ error: Schema.String })

export const DelegationCountersBody = Schema.Struct({
  submitted: Count,
  completed: Count,
  failed: Count,
  retries: Count,
  rejected: Count,
  active: Count
})

export const ActiveJobBody = Schema.Struct({
  task: Schema.String,
  provider: Schema.String,
  /** `submitting` until secutools accepted the job, then `submitted`. */
  state: Schema.String,
  job_id: Schema.NullOr(Schema.String),
  submitted_at: Schema.NullOr(Schema.String),
  created_at: Schema.String,
  polls: Count
})

/** `GET /api/delegated/status` */
export const DelegatedStatus = Schema.Struct({
  active: Schema.Array(ActiveJobBody),
  counters: DelegationCountersBody
})
export type DelegatedStatus = typeof DelegatedStatus.Type

/** `GET /watchdog/status` */
export const WatchdogStatus = Schema.Struct({
  stale: Schema.Array(Schema.Struct({ task: Schema.String, session: Schema.String, unchanged_for_s: Count })),
  /** Tasks waiting in their session for its usage limit to reset (LIMIT_POLICY / on_limit `wait`); older daemons omit it. */
  waiting: Schema.optionalKey(Schema.Array(Schema.Struct({
    task: Schema.String,
    session: Schema.String,
    until: Schema.String,
    continues: Schema.Literals(["claude-code", "daemon"])
  }))),
  attention: Schema.Array(Schema.Struct({ session: Schema.String, reason: Schema.String })),
  delegation: DelegationCountersBody
})
export type WatchdogStatus = typeof WatchdogStatus.Type

export const TaskBody = Schema.Struct({
  name: Schema.String,
  state: Schema.String,
  session: Schema.optionalKey(Schema.String),
  provider: Schema.optionalKey(Schema.String),
  job_id: Schema.optionalKey(Schema.String),
  attempts: Schema.optionalKey(Count),
  /**
   * done/ and failed/ entries (when the daemon can read them): for failed/, why it failed (its footer's `Reason:`,
   * else its last history entry); for done/, its footer's line on who ran it (`session claude-1 · took 41s`).
   */
  reason: Schema.optionalKey(Schema.String),
  /** done/ and failed/ entries: when the task finished (its `finished_at`, ISO), if recorded. */
  finished_at: Schema.optionalKey(Schema.String)
})

/** The name to pass as `after` for the entries past this page, or null when the page ends the list. */
const Cursor = Schema.NullOr(Schema.String)

/**
 * `GET /api/tasks`: done/ and failed/ entries carry their name and stage only. Lists are in name order and
 * `counts` are always whole. Without `stage`, pending and active are whole, and done and failed are their first
 * page. With `stage`, only that stage's list is filled.
 */
/** An ended headless run (`GET /api/tasks`, `headless_runs`: the latest 50, newest last). */
export const HeadlessRunBody = Schema.Struct({
  task: Schema.String,
  run: Schema.String,
  slot: Schema.String,
  outcome: Schema.Literals(["finished", "limited", "needs_person", "api_error", "fault"]),
  detail: Schema.String,
  ended_at: Schema.String,
  claude_session: Schema.NullOr(Schema.String),
  cost_usd: Schema.NullOr(Schema.Number),
  turns: Schema.NullOr(Schema.Number),
  duration_ms: Schema.NullOr(Schema.Number),
  transcript: Schema.String
})

export const TasksStatus = Schema.Struct({
  pending: Schema.Array(TaskBody),
  active: Schema.Array(TaskBody),
  done: Schema.Array(TaskBody),
  failed: Schema.Array(TaskBody),
  counts: Schema.Struct({ pending: Count, active: Count, done: Count, failed: Count }),
  /** Optional only so that `claude-failover status` still reads a daemon older than paging. */
  next: Schema.optionalKey(Schema.Struct({ pending: Cursor, active: Cursor, done: Cursor, failed: Cursor })),
  /** Optional for daemons older than headless slots. */
  headless_runs: Schema.optionalKey(Schema.Array(HeadlessRunBody))
})
export type TasksStatus = typeof TasksStatus.Type

/** Entries per page of `GET /api/tasks` when `limit` is not given, and the most a request may ask for. */
export const TASKS_PAGE_DEFAULT = 100
export const TASKS_PAGE_MAX = 1000

/** `GET /api/tasks?stage=done&limit=100&after=NAME`: every parameter optional; `after` needs `stage`. */
export const TasksQuery = Schema.Struct({
  stage: Schema.optionalKey(Schema.Literals(Stages)),
  limit: Schema.optionalKey(
    Schema.NumberFromString.pipe(
      Schema.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: TASKS_PAGE_MAX }))
    )
  ),
  after: Schema.optionalKey(Schema.String),
  /** `recent` (with `stage=done|failed`, without `after`): the latest finished first, by the file's time, not by name. */
  order: Schema.optionalKey(Schema.Literals(["name", "recent"]))
})
export type TasksQuery = typeof TasksQuery.Type

/** `GET /api/sessions` */
export const SessionsStatus = Schema.Struct({
  sessions: Schema.Array(Schema.Struct({
    session: Schema.String,
    state: Schema.String,
    /** Where the state came from: `hook` (the session's Claude Code hooks) or `pane` (its screen). */
    signal: Schema.optionalKey(Schema.Literals(["hook", "pane", "process"])),
    account: Schema.String,
    task: Schema.NullOr(Schema.String),
    cooldown_until: Schema.NullOr(Schema.String)
  }))
})
export type SessionsStatus = typeof SessionsStatus.Type

/** `GET /api/hosts`: the hosts of a queue shared on PostgreSQL (none with the file queue). */
export const HostsStatus = Schema.Struct({
  hosts: Schema.Array(Schema.Struct({
    host: Schema.String,
    /** The host answering. */
    this: Schema.Boolean,
    started_at: Schema.String,
    heartbeat_at: Schema.String,
    heartbeat_age_s: Schema.Number,
    /** Its heartbeat is younger than LEASE_TTL: its leases hold. */
    alive: Schema.Boolean,
    /** Running tasks leased to it. */
    leases: Schema.Number,
    /** Delegated jobs it submits and polls. */
    jobs: Schema.Number,
    /** Its sessions as its last heartbeat saw them. */
    sessions: Schema.Array(
      Schema.Struct({ session: Schema.String, state: Schema.String, task: Schema.NullOr(Schema.String) })
    )
  }))
})
export type HostsStatus = typeof HostsStatus.Type

/** The paths, so the router, the CLI and the tests name each endpoint once. */
export const Paths = {
  health: "/healthz",
  delegated: "/api/delegated/status",
  watchdog: "/watchdog/status",
  tasks: "/api/tasks",
  sessions: "/api/sessions",
  hosts: "/api/hosts",
  metrics: "/metrics",
  /** The status page (HTML; served without the token: it holds no data, and asks for the token itself). */
  page: "/"
} as const

/** Where Claude Code's hooks deliver their events (POST; see hooks-route.ts). Not in `Paths`: those are GET routes. */
export const HOOKS_PATH = "/api/hooks"

/** What an operator may do to a task from the status page (`POST /api/tasks/NAME/ACTION`; see actions-route.ts). */
export const TaskActions = ["retry", "cancel", "requeue"] as const
export type TaskAction = (typeof TaskActions)[number]

/** The action route, NAME URL-encoded (a task name may hold spaces and any Unicode). */
export const TASK_ACTION_PATH = "/api/tasks/:name/:action"
export const taskActionPath = (name: string, action: TaskAction): string =>
  `/api/tasks/${encodeURIComponent(name)}/${action}`

/** The header an action must carry: a cross-site form cannot send it, and a cross-site fetch with it needs a preflight. */
export const ACTION_HEADER = "x-claude-failover-action"

/** `POST /api/tasks/NAME/ACTION` → 200; refusals are 400/401/403/404/409 with `ErrorBody`. */
export const ActionResult = Schema.Struct({ ok: Schema.Literal(true), message: Schema.String })
export type ActionResult = typeof ActionResult.Type
