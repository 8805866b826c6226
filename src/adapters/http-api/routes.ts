/**
 * The status API's routes: health, queue, sessions, delegated jobs, watchdog and Prometheus metrics, all read-only;
 * the status page at `/`; when a receiver is given, `POST /api/hooks` for Claude Code's hook events (see
 * hooks-route.ts); and when actions are given, the page's `POST /api/tasks/NAME/ACTION` (see actions-route.ts).
 * Easy to get wrong: every request, /healthz included, first passes the Host check (421 otherwise); then with API_TOKEN
 * set every route but /healthz and the page (which holds no data) answers 401 without the bearer token, compared in
 * constant time and never echoed; and each request reads the status snapshot exactly once, its answer built once per
 * snapshot (see snapshot-answers.ts).
 */
import { createHash, timingSafeEqual } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Headers from "effect/http/Headers"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import type { Stage } from "../../ports/task-store.ts"
import type { HookReceiver } from "../../services/hook-receiver.ts"
import { type Snapshot, StatusReport, type TaskView } from "../../services/status.ts"
import {
  type DelegatedStatus,
  HOOKS_PATH,
  type HostsStatus,
  Paths,
  type SessionsStatus,
  TASK_ACTION_PATH,
  TASKS_PAGE_DEFAULT,
  TasksQuery,
  type TasksStatus,
  type WatchdogStatus
} from "./contract.ts"
import { hostPolicy, type HostRule, type HostVerdict } from "./host-header.ts"
import { hooksRoute } from "./hooks-route.ts"
import { METRICS_CONTENT_TYPE, renderMetrics } from "./metrics.ts"
import { actionsRoute, type ApplyOperation } from "./actions-route.ts"
import type { Finished, FinishedStage, FinishedTasks } from "./finished-tasks.ts"
import {
  type Answer,
  jsonAnswer,
  makeSnapshotAnswers,
  respond,
  type SnapshotAnswers,
  textAnswer
} from "./snapshot-answers.ts"
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
  /**
   * When set, done/ and failed/ entries of `GET /api/tasks` carry `reason` and `finished_at`, and
   * `?stage=done|failed&order=recent` lists the latest finished first.
   */
  readonly finished?: FinishedTasks
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

/** The index of the first of `views` (in name order) whose name sorts after `after`; its length when none does. */
const firstAfter = (views: ReadonlyArray<TaskView>, after: string): number => {
  let low = 0
  let high = views.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if ((views[middle]?.name ?? "") > after) high = middle
    else low = middle + 1
  }
  return low
}

/** At most `limit` of `views` (in name order) whose name sorts after `after`; `next` names the last when more follow. */
export const page = (views: ReadonlyArray<TaskView>, limit: number, after?: string): Page => {
  const start = after === undefined ? 0 : firstAfter(views, after)
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

export const hostsBody = (snapshot: Snapshot): HostsStatus => ({ hosts: snapshot.hosts })

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

/**
 * Digests first: equal-length buffers for timingSafeEqual, so neither the token nor its length leaks through timing.
 * The token's own digest is taken once.
 */
const matcher = (expected: Redacted.Redacted<string>) => {
  const wanted = digest(Redacted.value(expected))
  return (given: string): boolean => timingSafeEqual(digest(given), wanted)
}

const BEARER = /^bearer +(.+)$/i

/** Runs `handler` only for a request that carries the token (always, when none is configured); else 401. */
const authorized = (token: Option.Option<Redacted.Redacted<string>>) => {
  const matches = Option.map(token, matcher)
  return <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    Option.match(matches, {
      onNone: () => handler,
      onSome: (matches) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
          const given = Option.flatMap(
            Headers.get(request.headers, "authorization"),
            (value) => Option.fromNullishOr(BEARER.exec(value.trim())?.[1])
          )
          return Option.isSome(given) && matches(given.value) ? handler : Effect.succeed(unauthorized)
        })
    })
}

/**
 * Reads the snapshot once and answers with what `build` makes of it for `question`, built once per snapshot and
 * question (`build` must depend on nothing else that changes faster).
 */
const fromSnapshot = (
  answers: SnapshotAnswers,
  question: string,
  build: (snapshot: Snapshot) => Effect.Effect<Answer>
) =>
  StatusReport.use((status) =>
    Effect.flatMap(
      status.snapshot,
      // Suspended: a request served from an answer already built does none of the building's work.
      (snapshot) => Effect.map(answers(snapshot, question, Effect.suspend(() => build(snapshot))), respond)
    )
  )

const json = <A>(answers: SnapshotAnswers, question: string, body: (snapshot: Snapshot) => A) =>
  fromSnapshot(answers, question, (snapshot) => Effect.sync(() => jsonAnswer(body(snapshot))))

const FinishedStages: ReadonlyArray<FinishedStage> = ["done", "failed"]

/** Adds `reason` and `finished_at` to the done/ and failed/ entries of a page (only those: never the whole archive). */
const withFinished = (
  snapshot: Snapshot,
  body: TasksStatus,
  finished: FinishedTasks | undefined
): Effect.Effect<TasksStatus> => {
  if (finished === undefined) return Effect.succeed(body)
  const add = (stage: FinishedStage) => {
    const entries = body[stage]
    // Names that left the listing are forgotten even when this page shows none: one back later is a new file.
    return finished.forgetUnlisted(stage, snapshot.tasks[stage]).pipe(
      Effect.andThen(
        entries.length === 0
          ? Effect.succeed(new Map<string, Finished>())
          : finished.read(stage, entries.map((entry) => entry.name))
      ),
      Effect.map((said) =>
        entries.map((entry) => {
          const more: Finished | undefined = said.get(entry.name)
          return more === undefined ? entry : { ...entry, ...more }
        })
      )
    )
  }
  return Effect.map(Effect.forEach(FinishedStages, add), ([done = [], failed = []]) => ({ ...body, done, failed }))
}

/**
 * The snapshot with a finished stage's views latest first (`order=recent`); name order where times are unknown. Only
 * the first `limit` are ordered, the rest follow as they were: the page takes no more (`order=recent` takes no
 * `after`), and the rest only count.
 */
const recentOrder = (
  snapshot: Snapshot,
  query: TasksQuery,
  finished: FinishedTasks | undefined
): Effect.Effect<Snapshot> => {
  const stage = query.stage
  if (query.order !== "recent" || finished === undefined || (stage !== "done" && stage !== "failed")) {
    return Effect.succeed(snapshot)
  }
  const views = snapshot.tasks[stage]
  return finished.forgetUnlisted(stage, views).pipe(
    Effect.andThen(finished.recentFirst(stage, views.map((view) => view.name), query.limit ?? TASKS_PAGE_DEFAULT)),
    Effect.map((names) => {
      const latest = new Set(names)
      const byName = new Map(views.filter((view) => latest.has(view.name)).map((view) => [view.name, view]))
      const ordered = names.flatMap((name) => Option.toArray(Option.fromUndefinedOr(byName.get(name))))
      return {
        ...snapshot,
        tasks: { ...snapshot.tasks, [stage]: [...ordered, ...views.filter((view) => !latest.has(view.name))] }
      }
    })
  )
}

/** One key per question `GET /api/tasks` can be asked: the same answer for the same key and snapshot. */
const tasksQuestion = (query: TasksQuery): string =>
  JSON.stringify([
    "tasks",
    query.stage ?? null,
    query.limit ?? TASKS_PAGE_DEFAULT,
    query.after ?? null,
    query.order ?? "name"
  ])

/** Decisions remembered per request line or Host header; past this many the memory starts again. */
const REMEMBERED = 64

/** `decide` for a request, remembered by `key` (the same key always gets the same decision). */
const remembering = <A, E, R>(
  key: (request: HttpServerRequest.HttpServerRequest) => string,
  decide: Effect.Effect<A, E, R>
) => {
  const known = new Map<string, A>()
  return Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const at = key(request)
    const decided = known.get(at)
    if (decided !== undefined) return Effect.succeed(decided)
    return Effect.map(decide, (decision) => {
      if (known.size >= REMEMBERED) known.clear()
      known.set(at, decision)
      return decision
    })
  })
}

/** `GET /api/tasks`: the query is checked before the snapshot is read, so a bad one costs nothing. */
const tasksRoute = (answers: SnapshotAnswers, finished: FinishedTasks | undefined) =>
  Effect.flatMap(
    // The status page asks the same few questions over and over: each is decoded once.
    remembering((request) => request.url, Effect.result(HttpServerRequest.schemaSearchParams(TasksQuery))),
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
      return fromSnapshot(answers, tasksQuestion(query.success), (snapshot) =>
        recentOrder(snapshot, query.success, finished).pipe(
          Effect.flatMap((ordered) =>
            withFinished(snapshot, tasksBody(ordered, query.success), finished)
          ),
          Effect.map(jsonAnswer)
        ))
    }
  )

/** Refuses, before routing, a request whose Host the policy does not accept (DNS rebinding): 421 Misdirected Request. */
const checkHost = (rule: HostRule) => {
  const verdict = hostPolicy(rule)
  const known = new Map<string | undefined, HostVerdict>()
  const decide = (host: string | undefined): HostVerdict => {
    const decided = known.get(host)
    if (decided !== undefined) return decided
    const decision = verdict(host)
    if (known.size >= REMEMBERED) known.clear()
    known.set(host, decision)
    return decision
  }
  return <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const decision = decide(Option.getOrUndefined(Headers.get(request.headers, "host")))
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
      const answers = makeSnapshotAnswers()
      yield* router.addGlobalMiddleware(checkHost(options.host))
      yield* router.add("GET", Paths.health, HttpServerResponse.jsonUnsafe({ status: "ok" }))
      yield* router.add("GET", Paths.delegated, guard(json(answers, "delegated", delegatedBody)))
      yield* router.add("GET", Paths.watchdog, guard(json(answers, "watchdog", watchdogBody)))
      yield* router.add("GET", Paths.tasks, guard(tasksRoute(answers, options.finished)))
      // The page holds no data (it asks for the token and sends it with every fetch), so it needs no token itself.
      yield* router.add("GET", Paths.page, statusPage)
      yield* router.add("GET", Paths.sessions, guard(json(answers, "sessions", sessionsBody)))
      yield* router.add("GET", Paths.hosts, guard(json(answers, "hosts", hostsBody)))
      yield* router.add(
        "GET",
        Paths.metrics,
        guard(
          fromSnapshot(
            answers,
            "metrics",
            (snapshot) => Effect.sync(() => textAnswer(renderMetrics(snapshot), METRICS_CONTENT_TYPE))
          )
        )
      )
      if (options.hooks !== undefined) yield* router.add("*", HOOKS_PATH, hooksRoute(options.hooks, guard))
      if (options.actions !== undefined) yield* router.add("*", TASK_ACTION_PATH, actionsRoute(options.actions, guard))
      // The router matches static paths before the wildcard, so this only sees what no route above took.
      yield* router.add("*", "*", fallback(guard))
    })
  )
