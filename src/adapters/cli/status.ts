/**
 * `claude-failover status [--watch]`: asks a running daemon's status API and prints a shared queue's hosts, sessions,
 * queue, delegated jobs and watchdog findings as tables (or, with --json, the answers as one object), once or every
 * --interval.
 * Easy to get wrong: API_HOST is where the daemon binds, not where to call it, so 0.0.0.0 / :: mean loopback here;
 * and --watch outlives the daemon: an unreachable daemon is a line in the display, never the end of the watch.
 */
import { formatCost } from "../../domain/footer.ts"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as CliError from "effect/cli/CliError"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import { Config, parseDuration } from "../../config.ts"
import {
  DelegatedStatus,
  HostsStatus,
  Paths,
  SessionsStatus,
  TasksStatus,
  WatchdogStatus
} from "../http-api/contract.ts"
import { EXIT_FAILURE } from "./run-cli.ts"

/** Why the status could not be shown; the message is the whole line after `claude-failover status: `. */
export class StatusError extends Data.TaggedError("StatusError")<{ readonly message: string }> {}

const REQUEST_TIMEOUT = Duration.seconds(5)
const BODY_EXCERPT = 200

/** Where to reach the daemon from this host, given where it binds. */
export const daemonUrl = (host: string, port: number): string => {
  const reachable = host === "0.0.0.0" ? "127.0.0.1" : host === "::" || host === "[::]" ? "::1" : host
  return `http://${reachable.includes(":") && !reachable.startsWith("[") ? `[${reachable}]` : reachable}:${port}`
}

/** The innermost cause's code and message (`ECONNREFUSED`, …): the transport error's own message only names the URL. */
const transportDetail = (error: unknown): string => {
  let current: unknown = error
  let detail = ""
  for (let depth = 0; depth < 8 && typeof current === "object" && current !== null; depth++) {
    const code = "code" in current && typeof current.code === "string" ? current.code : undefined
    const message = "message" in current && typeof current.message === "string" ? current.message : undefined
    if (message !== undefined && message !== "")
      detail = code !== undefined && !message.includes(code)
        ? `${code} ${message}`
        : message
    current = "cause" in current ? current.cause : undefined
  }
  return detail
}

interface Answers {
  readonly sessions: SessionsStatus
  readonly tasks: TasksStatus
  readonly delegated: DelegatedStatus
  readonly watchdog: WatchdogStatus
  readonly hosts: HostsStatus
}

const fetchAnswers = (base: string, token: Option.Option<Redacted.Redacted<string>>) =>
  Effect.gen(function*() {
    const client = (yield* HttpClient.HttpClient).pipe(
      HttpClient.mapRequest((request) =>
        Option.match(token, {
          onNone: () => HttpClientRequest.acceptJson(request),
          onSome: (value) => HttpClientRequest.bearerToken(HttpClientRequest.acceptJson(request), value)
        })
      )
    )
    const unreachable = (detail: string) =>
      new StatusError({ message: `cannot reach the daemon at ${base}: ${detail}` })

    const get = <A>(path: string, schema: Schema.Codec<A, unknown>) =>
      Effect.gen(function*() {
        const response = yield* client.get(`${base}${path}`)
        const body = yield* response.text
        if (response.status === 401) {
          return yield* new StatusError({
            message: Option.isNone(token)
              ? `the daemon at ${base} requires a token: set API_TOKEN to the daemon's API_TOKEN`
              : `the daemon at ${base} rejected the token in API_TOKEN (401): it is not the daemon's API_TOKEN`
          })
        }
        if (response.status !== 200) {
          return yield* new StatusError({
            message: `${base}${path} answered ${response.status}: ${body.slice(0, BODY_EXCERPT)}`
          })
        }
        return yield* Schema.decodeUnknownEffect(Schema.fromJsonString(schema))(body).pipe(
          Effect.mapError((error) =>
            new StatusError({
              message: `${base}${path} is not a claude-failover status answer: ${error.message.slice(0, BODY_EXCERPT)}`
            })
          )
        )
      }).pipe(
        Effect.catchTag("HttpClientError", (error) => Effect.fail(unreachable(transportDetail(error)))),
        Effect.timeoutOrElse({
          duration: REQUEST_TIMEOUT,
          orElse: () => Effect.fail(unreachable(`no answer within ${Duration.format(REQUEST_TIMEOUT)}`))
        })
      )

    return yield* Effect.all({
      sessions: get(Paths.sessions, SessionsStatus),
      tasks: get(Paths.tasks, TasksStatus),
      delegated: get(Paths.delegated, DelegatedStatus),
      watchdog: get(Paths.watchdog, WatchdogStatus),
      hosts: get(Paths.hosts, HostsStatus)
    }, { concurrency: "unbounded" })
  }).pipe(Effect.provide(NodeHttpClient.layerUndici))

/** Names come from tmux and file names: a control character would drive the terminal, so it prints as `?`. */
const printable = (text: string): string => text.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?")

const table = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): ReadonlyArray<string> => {
  if (rows.length === 0) return ["  none"]
  const cells = [headers, ...rows.map((row) => row.map(printable))]
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? "").length)))
  return cells.map((row) =>
    `  ${row.map((cell, column) => column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)).join("  ")}`
  )
}

const dash = (value: string | null): string => value ?? "-"

/** `42m 10s`, `3h 5m`, `12s`. */
export const formatAge = (seconds: number): string => {
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  const s = seconds % 60
  return h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s}s` : `${s}s`
}

/** Ended headless runs listed by `status`: the newest. */
const HEADLESS_RUNS_SHOWN = 10

/** A host's sessions in a few words: `3 (1 busy, 2 idle)`. */
export const sessionsSummary = (sessions: HostsStatus["hosts"][number]["sessions"]): string => {
  if (sessions.length === 0) return "0"
  const byState = new Map<string, number>()
  for (const s of sessions) byState.set(s.state, (byState.get(s.state) ?? 0) + 1)
  return `${sessions.length} (${[...byState].map(([state, n]) => `${n} ${state.replace(/_/g, " ")}`).join(", ")})`
}

/** The hosts of a shared queue; nothing with the file queue, which has one. */
const hostsSection = (hosts: HostsStatus): ReadonlyArray<string> =>
  hosts.hosts.length === 0 ? [] : [
    "Hosts (shared queue)",
    ...table(
      ["HOST", "HEARTBEAT", "STATE", "RUNNING", "JOBS", "SESSIONS", "STARTED"],
      hosts.hosts.map((h) => [
        h.this ? `${h.host} (this)` : h.host,
        `${formatAge(Math.round(h.heartbeat_age_s))} ago`,
        h.alive ? "alive" : "silent (its runs and jobs go to the others)",
        String(h.leases),
        String(h.jobs),
        sessionsSummary(h.sessions),
        h.started_at
      ])
    ),
    ""
  ]

export const renderStatus = ({ delegated, hosts, sessions, tasks, watchdog }: Answers): string => {
  const c = delegated.counters
  return [
    ...hostsSection(hosts),
    "Sessions",
    ...table(
      ["NAME", "STATE", "FROM", "ACCOUNT", "TASK", "COOLDOWN UNTIL"],
      sessions.sessions.map((
        s
      ) => [s.session, s.state, s.signal ?? "pane", s.account, dash(s.task), dash(s.cooldown_until)])
    ),
    "",
    "Queue",
    ...table(
      ["STAGE", "TASKS"],
      (["pending", "active", "done", "failed"] as const).map((stage) => [stage, String(tasks.counts[stage])])
    ),
    "",
    "Delegated jobs",
    ...table(
      ["TASK", "PROVIDER", "JOB", "STATE", "POLLS", "SUBMITTED"],
      delegated.active.map((
        job
      ) => [job.task, job.provider, dash(job.job_id), job.state, String(job.polls), dash(job.submitted_at)])
    ),
    `  submitted ${c.submitted} · completed ${c.completed} · failed ${c.failed} · retries ${c.retries} · rejected ${c.rejected} · active ${c.active}`,
    "",
    "Stale tasks",
    ...table(
      ["TASK", "SESSION", "UNCHANGED FOR"],
      watchdog.stale.map((s) => [s.task, s.session, formatAge(s.unchanged_for_s)])
    ),
    "",
    "Headless runs (latest)",
    ...table(
      ["TASK", "SLOT", "OUTCOME", "COST", "TURNS", "CLAUDE SESSION", "ENDED"],
      (tasks.headless_runs ?? []).slice(-HEADLESS_RUNS_SHOWN).map((r) => [
        r.task,
        r.slot,
        r.outcome === "finished" ? r.outcome : `${r.outcome}: ${r.detail.slice(0, 60)}`,
        r.cost_usd === null ? "-" : formatCost(r.cost_usd),
        r.turns === null ? "-" : String(r.turns),
        dash(r.claude_session),
        r.ended_at
      ])
    ),
    "",
    "Tasks waiting for a usage limit to reset",
    ...table(
      ["TASK", "SESSION", "UNTIL", "CONTINUED BY"],
      (watchdog.waiting ?? []).map((
        w
      ) => [w.task, w.session, w.until, w.continues === "claude-code" ? "Claude Code" : "the daemon"])
    ),
    "",
    "Sessions needing attention",
    ...table(["SESSION", "REASON"], watchdog.attention.map((a) => [a.session, a.reason]))
  ].join("\n")
}

/** The status API's base URL: --url, else where API_HOST:API_PORT is reached from this host. */
const baseUrl = Effect.fn("status.baseUrl")(function*(url: Option.Option<string>) {
  const config = yield* Config
  if (Option.isNone(url) && config.apiPort === 0) {
    return yield* new StatusError({
      message: "API_PORT is 0 (the daemon picks a free port): give --url with the address the daemon logged"
    })
  }
  return Option.getOrElse(url, () => daemonUrl(config.apiHost, config.apiPort)).replace(/\/+$/, "")
})

const show = Effect.fn("status.show")(function*(base: string, json: boolean) {
  const answers = yield* fetchAnswers(base, (yield* Config).apiToken)
  yield* Console.log(json ? JSON.stringify(answers, null, 2) : renderStatus(answers))
})

/** Clear the screen and put the cursor top left: each draw replaces the last one on a terminal. */
const CLEAR_SCREEN = "\u001b[2J\u001b[H"

/** `claude-failover status · http://127.0.0.1:7878 · 2026-11-24T12:00:00.000Z · every 2s (Ctrl-C to stop)` */
export const watchHeading = (base: string, at: Date, interval: Duration.Duration): string =>
  `claude-failover status · ${base} · ${at.toISOString()} · every ${Duration.format(interval)} (Ctrl-C to stop)`

/** The line shown while the daemon cannot be asked, saying since when, so a restart is easy to spot. */
export const unreachableLine = (message: string, since: Date, interval: Duration.Duration): string =>
  `${message} (since ${since.toISOString()}; trying again every ${Duration.format(interval)})`

/**
 * Draws the status every `interval` until the process is stopped (Ctrl-C, SIGTERM: exit 0). On a terminal each draw
 * clears the screen first; elsewhere draws follow each other, each under its heading line. With --json each draw is
 * one JSON line and problems go to stderr, so the output stays a stream of objects.
 */
const watch = Effect.fn("status.watch")(function*(base: string, json: boolean, interval: Duration.Duration) {
  const token = (yield* Config).apiToken
  const onTerminal = process.stdout.isTTY === true && !json
  let failingSince: Date | undefined
  const draw = Effect.gen(function*() {
    const answers = yield* Effect.result(fetchAnswers(base, token))
    const now = new Date()
    if (Result.isFailure(answers)) failingSince ??= now
    else failingSince = undefined
    if (json) {
      return yield* Result.isSuccess(answers)
        ? Console.log(JSON.stringify(answers.success))
        : Console.error(
          `claude-failover status: ${unreachableLine(answers.failure.message, failingSince ?? now, interval)}`
        )
    }
    const body = Result.isSuccess(answers)
      ? renderStatus(answers.success)
      : unreachableLine(answers.failure.message, failingSince ?? now, interval)
    const frame = `${watchHeading(base, now, interval)}\n\n${body}\n`
    yield* Effect.sync(() => process.stdout.write(onTerminal ? `${CLEAR_SCREEN}${frame}` : `${frame}\n`))
  })
  return yield* Effect.raceFirst(draw.pipe(Effect.repeat(Schedule.spaced(interval)), Effect.asVoid), stdoutClosed)
})

/**
 * Completes when stdout fails (EPIPE: the reader, say `| head`, went away): the watch then ends quietly, as a
 * pipeline expects, instead of dying on an unhandled stream error.
 */
const stdoutClosed = Effect.callback<void>((resume) => {
  const onError = () => resume(Effect.void)
  process.stdout.once("error", onError)
  return Effect.sync(() => process.stdout.off("error", onError))
})

const DEFAULT_WATCH_INTERVAL = Duration.seconds(2)
const MIN_WATCH_INTERVAL = Duration.millis(50)

export const statusCommand = Command.make("status", {
  url: Flag.String("url").pipe(
    Flag.withDescription("The daemon's status API (default: http://API_HOST:API_PORT, i.e. http://127.0.0.1:7878)"),
    Flag.filter((raw) => URL.canParse(raw), () => "a URL such as http://127.0.0.1:7878"),
    Flag.optional
  ),
  json: Flag.Boolean("json").pipe(
    Flag.withDescription(
      "Print the answers as one JSON object: {sessions, tasks, delegated, watchdog, hosts} (with --watch: one per line)"
    ),
    Flag.withDefault(false)
  ),
  watch: Flag.Boolean("watch").pipe(
    Flag.withDescription(
      "Redraw every --interval until Ctrl-C; a daemon that stops answering is shown as such, and the watch goes on"
    ),
    Flag.withDefault(false)
  ),
  interval: Flag.String("interval").pipe(
    Flag.withDescription("With --watch: time between draws (default 2s)"),
    // A floor, so a typo such as 1ms cannot turn the watch into a flood of requests to the daemon.
    Flag.filterMap(
      (raw) =>
        Option.filter(
          Result.getSuccess(parseDuration(raw)),
          (d) => Duration.isGreaterThanOrEqualTo(d, MIN_WATCH_INTERVAL)
        ),
      () => "a duration of at least 50ms, such as 500ms, 2s or 1m"
    ),
    Flag.optional
  )
}, ({ interval, json, url, watch: watching }) =>
  baseUrl(url).pipe(
    Effect.flatMap((base) =>
      watching ? watch(base, json, Option.getOrElse(interval, () => DEFAULT_WATCH_INTERVAL)) : show(base, json)
    ),
    // Printed here rather than by the runner so the line names the subcommand: `claude-failover status: …`.
    Effect.catchTag("StatusError", (error) =>
      Effect.andThen(
        Console.error(`claude-failover status: ${error.message}`),
        Effect.sync(() => {
          process.exitCode = EXIT_FAILURE
        })
      ))
  )).pipe(
    (command) =>
      Command.validate(command, ({ interval, watch: watching }) =>
        !watching && Option.isSome(interval)
          ? Effect.fail(new CliError.ValidationError({ message: "--interval applies only with --watch" }))
          : Effect.void),
    Command.withDescription(
      "Show a running daemon's sessions, queue, delegated jobs and stale tasks, once or with --watch until Ctrl-C " +
        "(API_TOKEN from the settings)"
    )
  )
