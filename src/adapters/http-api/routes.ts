/**
 * The status API's routes: health, queue, sessions, delegated jobs, watchdog and Prometheus metrics, all read-only;
 * the status page at `/`; when a receiver is given, `POST /api/hooks` for Claude Code's hook events (see
 * hooks-route.ts); and when actions are given, the page's `POST /api/tasks/NAME/ACTION` (see actions-route.ts).
 * Easy to get wrong: every request, /healthz included, first passes the Host check (421 otherwise); then with API_TOKEN
 * set every route but /healthz and the page (which holds no data) answers 401 without the bearer token, compared in
 * constant time and never echoed; and each request reads the status snapshot exactly once.
 */
import { createHash, timingSafeEqual } from "node:crypto"
import { Effect, Option, Redacted, Result } from "effect"
import { Headers, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import type { Stage } from "../../ports/task-store.ts"
import { taskNameFrom } from "../../domain/task.ts"
import type { HookReceiver } from "../../services/hook-receiver.ts"
import { type Snapshot, StatusReport, type TaskView } from "../../services/status.ts"
import {
  type DelegatedStatus,
  HOOKS_PATH,
  Paths,
  type SessionsStatus,
  TASK_ACTION_PATH,
  TASKS_PAGE_DEFAULT,
  TasksQuery,
  type TasksStatus,
  type WatchdogStatus
} from "./contract.ts"
import { hostPolicy, type HostRule } from "./host-header.ts"
import { hooksRoute } from "./hooks-route.ts"
import { METRICS_CONTENT_TYPE, renderMetrics } from "./metrics.ts"
import { actionsRoute, type ApplyOperation } from "./actions-route.ts"
import type { FinishedReader, RecentFirst } from "./finished-tasks.ts"
import { statusPage } from "./page.ts"

export interface ApiRoutesOptions {
  /** When set, every route but /healthz requires `Authorization: Bearer <token>`. */
  readonly token: Option.Option<Redacted.Redacted<string>>
  /** Which Host headers are answered (see `hostPolicy`). */
  readonly host: HostRule
  /** When set, `POST /api/hooks` records Claude Code's hook events through it (same token rule); else that path is 404. */
  readonly hooks?: HookReceiver["Service"]
  /** When set, the status page's actions (`POST /api/tasks/NAME/retry|cancel|requeue`) go through it; else 404. */
  readonly actions?: ApplyOperation
  /** When set, done/ and failed/ entries of `GET /api/tasks` carry `reason` and `finished_at`. */
  readonly finished?: FinishedReader
  /** When set, `GET /api/tasks?stage=done|failed&order=recent` lists the latest finished first. */
  readonly recentFirst?: RecentFirst
}

const counters = (snapshot: Snapshot): DelegatedStatus["counters"] => {
  const c = snapshot.delegation.counters
  return {
    submitted: c.submitted,
    completed: c.completed,
    failed: c.failed,
    retries: c.retries,
    rejected: c.rejected,
    active: c.active
  }
}

export const delegatedBody = (snapshot: Snapshot): DelegatedStatus => ({
  active: snapshot.delegation.active.map((job) => ({
    task: job.task,
    provider: job.provider,
    state: job.state,
    job_id: job.job_id,
    submitted_at: job.submitted_at,
    created_at: job.created_at,
    polls: job.polls
  })),
  counters: counters(snapshot)
})

export const watchdogBody = (snapshot: Snapshot): WatchdogStatus => ({
  stale: snapshot.stale.map((s) => ({ task: s.task, session: s.session, unchanged_for_s: s.unchanged_for_s })),
  waiting: snapshot.waiting.map((w) => ({ task: w.task, session: w.session, until: w.until, continues: w.continues })),
  attention: snapshot.attention.map((a) => ({ session: a.session, reason: a.reason })),
  delegation: counters(snapshot)
})

interface Page {
  readonly views: ReadonlyArray<TaskView>
  readonly next: string | null
}

/** At most `limit` of `views` (in name order) whose name sorts after `after`; `next` names the last when more follow. */
export const page = (views: ReadonlyArray<TaskView>, limit: number, after?: string): Page => {
  const found = after === undefined ? 0 : views.findIndex((view) => view.name > after)
  const start = found === -1 ? views.length : found
  const taken = views.slice(start, start + limit)
  return { views: taken, next: start + limit < views.length ? taken.at(-1)?.name ?? null : null }
}

const whole = (views: ReadonlyArray<TaskView>): Page => ({ views, next: null })
const none: Page = { views: [], next: null }

const taskBody = (task: TaskView): TasksStatus["pending"][number] => ({
  name: task.name,
  state: task.state,
  ...(task.session === undefined ? {} : { session: task.session }),
  ...(task.provider === undefined ? {} : { provider: task.provider }),
  ...(task.job_id === undefined ? {} : { job_id: task.job_id }),
  ...(task.attempts === undefined ? {} : { attempts: task.attempts })
})

/**
 * Without `stage`: pending and active whole, done and failed their first `limit` names (name order: the archive has
 * no other order the API could page through). With `stage`: that stage's page after `after`, the others empty.
 */
export const tasksBody = (snapshot: Snapshot, query: TasksQuery = {}): TasksStatus => {
  const { tasks } = snapshot
  const limit = query.limit ?? TASKS_PAGE_DEFAULT
  const pages: Record<Stage, Page> = query.stage === undefined
    ? {
      pending: whole(tasks.pending),
      active: whole(tasks.active),
      done: page(tasks.done, limit),
      failed: page(tasks.failed, limit)
    }
    : {
      pending: none,
      active: none,
      done: none,
      failed: none,
      [query.stage]: page(tasks[query.stage], limit, query.after)
    }
  return {
    pending: pages.pending.views.map(taskBody),
    active: pages.active.views.map(taskBody),
    done: pages.done.views.map(taskBody),
    failed: pages.failed.views.map(taskBody),
    counts: {
      pending: tasks.pending.length,
      active: tasks.active.length,
      done: tasks.done.length,
      failed: tasks.failed.length
    },
    next: { pending: pages.pending.next, active: pages.active.next, done: pages.done.next, failed: pages.failed.next },
    headless_runs: snapshot.headless.recent
  }
}

export const sessionsBody = (snapshot: Snapshot): SessionsStatus => ({
  sessions: snapshot.sessions.map((s) => ({
    session: s.session,
    state: s.state,
    account: s.account,
    task: s.task,
    cooldown_until: s.cooldown_until,
    signal: s.signal
  }))
})

const errorResponse = (status: number, error: string, headers: Record<string, string> = {}) =>
  HttpServerResponse.jsonUnsafe({ error }, { status, headers })

const unauthorized = errorResponse(401, "missing or wrong bearer token (Authorization: Bearer API_TOKEN)", {
  "www-authenticate": "Bearer"
})

const digest = (text: string): Buffer => createHash("sha256").update(text, "utf8").digest()

/** Digests first: equal-length buffers for timingSafeEqual, so neither the token nor its length leaks through timing. */
const matches = (given: string, expected: Redacted.Redacted<string>): boolean =>
  timingSafeEqual(digest(given), digest(Redacted.value(expected)))

const BEARER = /^bearer +(.+)$/i

/** Runs `handler` only for a request that carries the token (always, when none is configured); else 401. */
const authorized =
  (token: Option.Option<Redacted.Redacted<string>>) =>
  <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    Option.match(token, {
      onNone: () => handler,
      onSome: (expected) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
          const given = Option.flatMap(
            Headers.get(request.headers, "authorization"),
            (value) => Option.fromNullishOr(BEARER.exec(value.trim())?.[1])
          )
          return Option.isSome(given) && matches(given.value, expected) ? handler : Effect.succeed(unauthorized)
        })
    })

/** Reads the snapshot once and answers with what `render` makes of it. */
const fromSnapshot = <E>(render: (snapshot: Snapshot) => Effect.Effect<HttpServerResponse.HttpServerResponse, E>) =>
  StatusReport.use((status) => Effect.flatMap(status.snapshot, render))

const json = <A>(body: (snapshot: Snapshot) => A) => fromSnapshot((snapshot) => HttpServerResponse.json(body(snapshot)))

/** Adds `reason` and `finished_at` to the done/ and failed/ entries of a page (only those: never the whole archive). */
const withFinished = (body: TasksStatus, reader: FinishedReader | undefined): Effect.Effect<TasksStatus> => {
  if (reader === undefined) return Effect.succeed(body)
  const add = (stage: "done" | "failed") =>
    Effect.forEach(body[stage], (entry) =>
      Option.match(taskNameFrom(entry.name), {
        onNone: () => Effect.succeed(entry),
        onSome: (name) =>
          Effect.map(
            reader(stage, name),
            Option.match({ onNone: () => entry, onSome: (more) => ({ ...entry, ...more }) })
          )
      }), { concurrency: 8 })
  return Effect.map(Effect.all([add("done"), add("failed")]), ([done, failed]) => ({ ...body, done, failed }))
}

/** The snapshot with a finished stage's views latest first (`order=recent`); name order where times are unknown. */
const recentOrder = (
  snapshot: Snapshot,
  query: TasksQuery,
  recentFirst: RecentFirst | undefined
): Effect.Effect<Snapshot> => {
  const stage = query.stage
  if (query.order !== "recent" || recentFirst === undefined || (stage !== "done" && stage !== "failed")) {
    return Effect.succeed(snapshot)
  }
  const views = snapshot.tasks[stage]
  const byName = new Map(views.map((view) => [view.name, view]))
  return Effect.map(recentFirst(stage, views.flatMap((view) => Option.toArray(taskNameFrom(view.name)))), (names) => ({
    ...snapshot,
    tasks: {
      ...snapshot.tasks,
      [stage]: names.flatMap((name) => Option.toArray(Option.fromUndefinedOr(byName.get(name))))
    }
  }))
}

/** `GET /api/tasks`: the query is checked before the snapshot is read, so a bad one costs nothing. */
const tasksRoute = (finished: FinishedReader | undefined, recentFirst: RecentFirst | undefined) =>
  Effect.flatMap(
    Effect.result(HttpServerRequest.schemaSearchParams(TasksQuery)),
    (query) => {
      if (Result.isFailure(query)) return Effect.succeed(errorResponse(400, `bad query: ${query.failure.message}`))
      if (query.success.after !== undefined && query.success.stage === undefined) {
        return Effect.succeed(errorResponse(400, "bad query: after needs stage (e.g. ?stage=done&after=NAME)"))
      }
      if (
        query.success.order === "recent" &&
        (query.success.stage !== "done" && query.success.stage !== "failed" || query.success.after !== undefined)
      ) {
        return Effect.succeed(
          errorResponse(400, "bad query: order=recent needs stage=done or stage=failed, and takes no after")
        )
      }
      return fromSnapshot((snapshot) =>
        recentOrder(snapshot, query.success, recentFirst).pipe(
          Effect.flatMap((ordered) => withFinished(tasksBody(ordered, query.success), finished)),
          Effect.flatMap((body) => HttpServerResponse.json(body))
        )
      )
    }
  )

/** Refuses, before routing, a request whose Host the policy does not accept (DNS rebinding): 421 Misdirected Request. */
const checkHost = (rule: HostRule) => {
  const verdict = hostPolicy(rule)
  return <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const decision = verdict(Option.getOrUndefined(Headers.get(request.headers, "host")))
      return decision._tag === "Accepted" ? app : Effect.succeed(errorResponse(421, decision.reason))
    })
}

const KnownPaths: ReadonlyArray<string> = Object.values(Paths)

/** A known path asked with another method is 405 (nothing is served, so no token is needed); anything else is 404. */
const fallback = (guard: ReturnType<typeof authorized>) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const path = new URL(request.url, "http://localhost").pathname
    return KnownPaths.includes(path)
      ? Effect.succeed(errorResponse(405, `${request.method} is not allowed on ${path}; use GET`, { allow: "GET" }))
      : guard(Effect.succeed(errorResponse(404, `no route ${request.method} ${path}`)))
  })

/** The routes as a Layer for `HttpRouter.serve`; handlers need `StatusReport`. */
export const ApiRoutes = (options: ApiRoutesOptions) =>
  HttpRouter.use(
    Effect.fn("HttpApi.routes")(function*(router) {
      const guard = authorized(options.token)
      yield* router.addGlobalMiddleware(checkHost(options.host))
      yield* router.add("GET", Paths.health, HttpServerResponse.jsonUnsafe({ status: "ok" }))
      yield* router.add("GET", Paths.delegated, guard(json(delegatedBody)))
      yield* router.add("GET", Paths.watchdog, guard(json(watchdogBody)))
      yield* router.add("GET", Paths.tasks, guard(tasksRoute(options.finished, options.recentFirst)))
      // The page holds no data (it asks for the token and sends it with every fetch), so it needs no token itself.
      yield* router.add("GET", Paths.page, statusPage)
      yield* router.add("GET", Paths.sessions, guard(json(sessionsBody)))
      yield* router.add(
        "GET",
        Paths.metrics,
        guard(
          fromSnapshot((snapshot) =>
            Effect.succeed(HttpServerResponse.text(renderMetrics(snapshot), { contentType: METRICS_CONTENT_TYPE }))
          )
        )
      )
      if (options.hooks !== undefined) yield* router.add("*", HOOKS_PATH, hooksRoute(options.hooks, guard))
      if (options.actions !== undefined) yield* router.add("*", TASK_ACTION_PATH, actionsRoute(options.actions, guard))
      // The router matches static paths before the wildcard, so this only sees what no route above took.
      yield* router.add("*", "*", fallback(guard))
    })
  )
