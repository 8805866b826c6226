/**
 * The status API on a real socket: every endpoint's JSON, 404/405, the Host rule, the bearer-token rule, the shared
 * snapshot, and /metrics as Prometheus reads it.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Layer, Option, Schema, Scope } from "effect"
import fc from "fast-check"
import { request } from "node:http"
import { connect } from "node:net"
import { networkInterfaces } from "node:os"
import { isLoopbackHost } from "../../src/config.ts"
import { TasksStatus } from "../../src/adapters/http-api/contract.ts"
import { boundedServer, defaultConnectionLimits, HttpApiLayer } from "../../src/adapters/http-api/server.ts"
import { renderMetrics, SessionStates } from "../../src/adapters/http-api/metrics.ts"
import { emptyHistogram, observe } from "../../src/domain/histogram.ts"
import { Stages } from "../../src/ports/task-store.ts"
import { sharedSnapshot, type Snapshot, SNAPSHOT_TTL, StatusReport } from "../../src/services/status.ts"
import { RUNS, taskName } from "../domain/arbitraries.ts"
import {
  captureLogs,
  emptySnapshot,
  expectedBodies,
  fixture,
  type FixtureServer,
  startFixtureServer,
  statusOf
} from "../fixtures/status-snapshot.ts"
import { type Family, parsePrometheusText, PrometheusTextError, valueOf } from "./prometheus-text.ts"
import { freePort } from "../free-port.ts"

const TOKEN = "s3cret-token-\"quoted\""
const API_ROUTES = ["/api/delegated/status", "/watchdog/status", "/api/tasks", "/api/sessions", "/metrics"] as const

let open: FixtureServer
let guarded: FixtureServer
beforeAll(async () => {
  ;[open, guarded] = await Promise.all([startFixtureServer(), startFixtureServer({ token: TOKEN })])
})
afterAll(async () => {
  await Promise.all([open.close(), guarded.close()])
})

const get = async (server: FixtureServer, path: string, init: RequestInit = {}) => {
  const response = await fetch(`${server.url}${path}`, init)
  const text = await response.text()
  return { status: response.status, headers: response.headers, text }
}
const getJson = async (server: FixtureServer, path: string, init: RequestInit = {}) => {
  const { headers, status, text } = await get(server, path, init)
  const body: unknown = JSON.parse(text)
  return { status, headers, body }
}
const bearer = (token: string): RequestInit => ({ headers: { authorization: `Bearer ${token}` } })

describe("status API endpoints", () => {
  it("logs the port it actually bound, not the 0 it was given", () => {
    const port = new URL(open.url).port
    expect(Number(port)).toBeGreaterThan(0)
    expect(open.logs).toStrictEqual([`status API listening on http://127.0.0.1:${port}`])
  })

  it("GET /healthz → 200 {status: ok}", async () => {
    const { body, headers, status } = await getJson(open, "/healthz")
    expect(status).toBe(200)
    expect(headers.get("content-type")).toBe("application/json")
    expect(body).toStrictEqual({ status: "ok" })
  })

  it("GET /api/delegated/status → active jobs and counters", async () => {
    const { body, status } = await getJson(open, "/api/delegated/status")
    expect(status).toBe(200)
    expect(body).toStrictEqual(expectedBodies.delegated)
  })

  it("GET /watchdog/status → stale tasks, sessions needing attention, delegation counters", async () => {
    const { body, status } = await getJson(open, "/watchdog/status")
    expect(status).toBe(200)
    expect(body).toStrictEqual(expectedBodies.watchdog)
  })

  it("GET /api/tasks → tasks per stage and counts", async () => {
    const { body, status } = await getJson(open, "/api/tasks")
    expect(status).toBe(200)
    expect(body).toStrictEqual(expectedBodies.tasks)
  })

  it("GET /api/sessions → every session with state, account, task and cooldown", async () => {
    const { body, status } = await getJson(open, "/api/sessions")
    expect(status).toBe(200)
    expect(body).toStrictEqual(expectedBodies.sessions)
  })

  it("an empty daemon answers empty lists and zero counts, not missing fields", async () => {
    const empty = await startFixtureServer({ snapshot: emptySnapshot })
    try {
      const zero = { submitted: 0, completed: 0, failed: 0, retries: 0, rejected: 0, active: 0 }
      expect((await getJson(empty, "/api/sessions")).body).toStrictEqual({ sessions: [] })
      expect((await getJson(empty, "/api/delegated/status")).body).toStrictEqual({ active: [], counters: zero })
      expect((await getJson(empty, "/watchdog/status")).body).toStrictEqual({
        stale: [],
        waiting: [],
        attention: [],
        delegation: zero
      })
      expect((await getJson(empty, "/api/tasks")).body).toStrictEqual({
        pending: [],
        active: [],
        done: [],
        failed: [],
        counts: { pending: 0, active: 0, done: 0, failed: 0 },
        next: { pending: null, active: null, done: null, failed: null },
        headless_runs: []
      })
      const metrics = parsePrometheusText((await get(empty, "/metrics")).text)
      expect(valueOf(metrics, "claude_failover_headless_cost_usd_total", "claude_failover_headless_cost_usd_total"))
        .toBe(0)
      expect(valueOf(metrics, "claude_failover_reap_latency_seconds", "claude_failover_reap_latency_seconds_count"))
        .toBe(0)
      expect(metrics.get("claude_failover_session_state")?.samples).toStrictEqual([])
    } finally {
      await empty.close()
    }
  })

  it("an unknown route → 404 JSON; a known path with another method → 405 with Allow: GET", async () => {
    const missing = await getJson(open, "/api/nope?x=1")
    expect(missing.status).toBe(404)
    expect(missing.headers.get("content-type")).toBe("application/json")
    expect(missing.body).toStrictEqual({ error: "no route GET /api/nope" })
    const post = await getJson(open, "/api/tasks", { method: "POST" })
    expect(post.status).toBe(405)
    expect(post.headers.get("allow")).toBe("GET")
    expect(post.body).toStrictEqual({ error: "POST is not allowed on /api/tasks; use GET" })
  })
})

describe("GET /metrics", () => {
  const scrape = async () => {
    const { headers, status, text } = await get(open, "/metrics")
    expect(status).toBe(200)
    expect(headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8")
    return parsePrometheusText(text)
  }

  it("parses as Prometheus text, every family with HELP and TYPE", async () => {
    const families = await scrape()
    const types = Object.fromEntries([...families.values()].map((f) => [f.name, f.type]))
    expect(types).toStrictEqual({
      claude_failover_tasks: "gauge",
      claude_failover_dispatches_total: "counter",
      claude_failover_headless_runs_total: "counter",
      claude_failover_headless_cost_usd_total: "counter",
      claude_failover_headless_turns_total: "counter",
      claude_failover_failovers_total: "counter",
      claude_failover_malformed_tasks_total: "counter",
      claude_failover_delegation_submitted_total: "counter",
      claude_failover_delegation_completed_total: "counter",
      claude_failover_delegation_failed_total: "counter",
      claude_failover_delegation_retries_total: "counter",
      claude_failover_delegation_rejected_total: "counter",
      claude_failover_delegation_active: "gauge",
      claude_failover_reap_latency_seconds: "histogram",
      claude_failover_sessions: "gauge",
      claude_failover_session_state: "gauge",
      claude_failover_host_heartbeat_age_seconds: "gauge",
      claude_failover_host_leases: "gauge",
      claude_failover_host_jobs: "gauge",
      claude_failover_host_sessions: "gauge",
      claude_failover_stale_tasks: "gauge"
    })
    for (const family of families.values()) expect(family.help, family.name).toMatch(/\S/)
  })

  it("carries the snapshot's numbers", async () => {
    const families = await scrape()
    const single = (name: string) => valueOf(families, name, name)
    expect(
      Object.fromEntries(
        Stages.map((stage) => [stage, valueOf(families, "claude_failover_tasks", "claude_failover_tasks", { stage })])
      )
    )
      .toStrictEqual({ pending: fixture.tasks.pending.length, active: 2, done: 2, failed: 1 })
    expect([
      single("claude_failover_dispatches_total"),
      single("claude_failover_failovers_total"),
      single("claude_failover_malformed_tasks_total")
    ]).toStrictEqual([17, 3, 1])
    expect(
      ["submitted", "completed", "failed", "retries", "rejected"].map((c) =>
        single(`claude_failover_delegation_${c}_total`)
      )
    )
      .toStrictEqual([9, 6, 1, 4, 2])
    expect(single("claude_failover_delegation_active")).toBe(2)
    expect(single("claude_failover_stale_tasks")).toBe(1)
    // The hosts of a shared queue: each one's heartbeat age and running tasks.
    expect(
      ["box-1", "box-2"].map((host) => [
        valueOf(families, "claude_failover_host_heartbeat_age_seconds", "claude_failover_host_heartbeat_age_seconds", {
          host
        }),
        valueOf(families, "claude_failover_host_leases", "claude_failover_host_leases", { host }),
        valueOf(families, "claude_failover_host_jobs", "claude_failover_host_jobs", { host }),
        valueOf(families, "claude_failover_host_sessions", "claude_failover_host_sessions", { host })
      ])
    ).toStrictEqual([[2, 2, 1, 3], [120, 1, 0, 1]])
    expect(
      ["finished", "limited", "needs_person", "api_error", "fault"].map((outcome) =>
        valueOf(families, "claude_failover_headless_runs_total", "claude_failover_headless_runs_total", { outcome })
      )
    ).toStrictEqual([1, 2, 0, 0, 1])
    expect([single("claude_failover_headless_cost_usd_total"), single("claude_failover_headless_turns_total")])
      .toStrictEqual([0.0123, 2])
    const sessions = Object.fromEntries(
      SessionStates.map((
        state
      ) => [state, valueOf(families, "claude_failover_sessions", "claude_failover_sessions", { state })])
    )
    expect(sessions).toStrictEqual({
      idle: 0,
      busy: 1,
      permission_prompt: 1,
      usage_limited: 1,
      exited: 0,
      unknown: 0,
      missing: 1
    })
    expect(
      valueOf(families, "claude_failover_session_state", "claude_failover_session_state", {
        session: "claude-2",
        state: "usage_limited"
      })
    )
      .toBe(1)
    expect(
      valueOf(families, "claude_failover_session_state", "claude_failover_session_state", {
        session: "claude-2",
        state: "idle"
      })
    )
      .toBe(0)
  })

  it("the reap latency histogram: cumulative buckets, +Inf = _count, _sum of the observations", async () => {
    const families = await scrape()
    const name = "claude_failover_reap_latency_seconds"
    const buckets = families.get(name)?.samples.filter((s) => s.name === `${name}_bucket`).map((
      s
    ) => [s.labels.le, s.value])
    // Observations 0.5, 3, 40 and 7200 seconds.
    expect(buckets).toStrictEqual([
      ["1", 1],
      ["5", 2],
      ["15", 2],
      ["30", 2],
      ["60", 3],
      ["120", 3],
      ["300", 3],
      ["600", 3],
      ["1800", 3],
      ["3600", 3],
      ["21600", 4],
      ["+Inf", 4]
    ])
    expect(valueOf(families, name, `${name}_sum`)).toBe(7243.5)
    expect(valueOf(families, name, `${name}_count`)).toBe(4)
  })
})

describe("bearer token (API_TOKEN set)", () => {
  it("no token → 401 with WWW-Authenticate: Bearer on every route but /healthz", async () => {
    for (const path of [...API_ROUTES, "/unknown"]) {
      const { body, headers, status } = await getJson(guarded, path)
      expect(status, path).toBe(401)
      expect(headers.get("www-authenticate"), path).toBe("Bearer")
      expect(body, path).toStrictEqual({ error: "missing or wrong bearer token (Authorization: Bearer API_TOKEN)" })
    }
  })

  it("a wrong token, a token of another length, another scheme → 401, and the answer never echoes a token", async () => {
    const attempts: ReadonlyArray<RequestInit> = [
      bearer("s3cret-token-\"quoteX\""),
      bearer(`${TOKEN}x`),
      bearer(TOKEN.slice(0, -1)),
      bearer(""),
      { headers: { authorization: TOKEN } },
      { headers: { authorization: `Basic ${TOKEN}` } }
    ]
    for (const init of attempts) {
      for (const path of API_ROUTES) {
        const { status, text } = await get(guarded, path, init)
        expect(status, path).toBe(401)
        expect(text).not.toContain("s3cret")
      }
    }
  })

  it("the right token → 200 on every route; the scheme is case-insensitive", async () => {
    for (const path of API_ROUTES) expect((await get(guarded, path, bearer(TOKEN))).status, path).toBe(200)
    expect((await get(guarded, "/api/tasks", { headers: { authorization: `bearer ${TOKEN}` } })).status).toBe(200)
    expect((await getJson(guarded, "/api/sessions", bearer(TOKEN))).body).toStrictEqual(expectedBodies.sessions)
    expect((await get(guarded, "/unknown", bearer(TOKEN))).status).toBe(404)
  })

  it("/healthz never needs the token", async () => {
    expect((await getJson(guarded, "/healthz")).body).toStrictEqual({ status: "ok" })
    expect((await get(guarded, "/healthz", bearer("wrong"))).status).toBe(200)
  })
})

describe("snapshot reads", () => {
  it("each route reads the snapshot exactly once; /healthz, 404 and a refused request read nothing", async () => {
    const server = await startFixtureServer({ token: TOKEN })
    try {
      for (const path of API_ROUTES) {
        const before = server.reads()
        expect((await get(server, path, bearer(TOKEN))).status).toBe(200)
        expect(server.reads() - before, path).toBe(1)
      }
      const before = server.reads()
      await get(server, "/healthz")
      await get(server, "/nope", bearer(TOKEN))
      await get(server, "/api/tasks")
      expect(server.reads()).toBe(before)
    } finally {
      await server.close()
    }
  })
})

/** GET `path` with exactly the Host header given (none when undefined), on a connection of its own. */
const withHost = (server: FixtureServer, path: string, host: string | undefined, token?: string) =>
  new Promise<{ status: number; body: unknown }>((resolve, reject) => {
    const url = new URL(server.url)
    const headers: Record<string, string> = {
      ...(host === undefined ? {} : { host }),
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` })
    }
    const req = request(
      { host: url.hostname.replace(/^\[|\]$/g, ""), port: url.port, path, headers, setHost: false, agent: false },
      (response) => {
        let text = ""
        response.setEncoding("utf8")
        response.on("data", (chunk: string) => (text += chunk))
        response.on(
          "end",
          () => resolve({ status: response.statusCode ?? 0, body: text === "" ? undefined : JSON.parse(text) })
        )
      }
    )
    req.on("error", reject)
    req.end()
  })

/** An HTTP/1.0 request with no Host header (HTTP/1.1 without one is answered 400 by Node itself). */
const http10 = (server: FixtureServer, path: string) =>
  new Promise<{ status: number; body: unknown }>((resolve, reject) => {
    const url = new URL(server.url)
    const socket = connect(Number(url.port), url.hostname)
    let text = ""
    socket.setEncoding("utf8")
    socket.on("data", (chunk: string) => (text += chunk))
    socket.on("error", reject)
    socket.on("end", () => {
      const [head = "", body = ""] = text.split("\r\n\r\n")
      resolve({ status: Number(head.split(" ")[1]), body: JSON.parse(body) })
    })
    socket.write(`GET ${path} HTTP/1.0\r\n\r\n`)
  })

describe("Host header (DNS rebinding)", () => {
  const port = () => new URL(open.url).port
  const refusedFor = (host: string) => ({
    error: `Host ${
      JSON.stringify(host)
    } is not served here: this API answers only requests for localhost, 127.x.y.z or [::1]`
  })

  it("bound to 127.0.0.1: localhost:PORT, 127.0.0.1 and [::1] are answered on every route", async () => {
    for (const host of [`localhost:${port()}`, "localhost", "127.0.0.1", `127.0.0.1:${port()}`, `[::1]:${port()}`]) {
      expect(await withHost(open, "/healthz", host), host).toStrictEqual({ status: 200, body: { status: "ok" } })
      expect((await withHost(open, "/api/sessions", host)).body, host).toStrictEqual(expectedBodies.sessions)
    }
  })

  it("evil.example, with or without the port → 421 with a JSON error, /healthz and unknown paths included", async () => {
    for (const host of ["evil.example", `evil.example:${port()}`, "localhost.evil.example"]) {
      for (const path of ["/healthz", ...API_ROUTES, "/nope"]) {
        expect(await withHost(open, path, host), `${host} ${path}`).toStrictEqual({
          status: 421,
          body: refusedFor(host)
        })
      }
    }
  })

  it("a refused Host is refused before the token is asked for, and reads no snapshot", async () => {
    const before = guarded.reads()
    expect((await withHost(guarded, "/api/tasks", "evil.example")).status).toBe(421)
    expect((await withHost(guarded, "/api/tasks", "evil.example", TOKEN)).status).toBe(421)
    expect(guarded.reads()).toBe(before)
    expect((await withHost(guarded, "/api/tasks", "localhost", TOKEN)).status).toBe(200)
  })

  it("no Host: HTTP/1.1 → 400 from Node; HTTP/1.0 → 421, as there is no name to check", async () => {
    expect((await withHost(open, "/healthz", undefined)).status).toBe(400)
    expect(await http10(open, "/healthz")).toStrictEqual({
      status: 421,
      body: { error: "no Host header: this API answers only requests for localhost, 127.x.y.z or [::1]" }
    })
  })

  it("bound to ::1: [::1]:PORT is answered, evil.example is not", async () => {
    const v6 = await startFixtureServer({ host: "::1" })
    try {
      const v6port = new URL(v6.url).port
      expect(v6.url).toBe(`http://[::1]:${v6port}`)
      expect((await withHost(v6, "/healthz", `[::1]:${v6port}`)).status).toBe(200)
      expect((await withHost(v6, "/healthz", `localhost:${v6port}`)).status).toBe(200)
      expect((await withHost(v6, "/healthz", "evil.example")).status).toBe(421)
    } finally {
      await v6.close()
    }
  })

  it("bound to 0.0.0.0: any Host is answered (the token protects it)", async () => {
    const wild = await startFixtureServer({ host: "0.0.0.0", token: TOKEN })
    try {
      expect((await withHost(wild, "/healthz", "evil.example")).status).toBe(200)
      expect((await withHost(wild, "/api/tasks", "evil.example")).status).toBe(401)
      expect((await withHost(wild, "/api/tasks", "evil.example", TOKEN)).status).toBe(200)
      expect((await http10(wild, "/healthz")).status).toBe(200)
    } finally {
      await wild.close()
    }
  })

  it("bound to a non-loopback address: that address or an allowed name", async () => {
    // Any IPv4 address of this host outside 127/8; .ci/run adds one to `lo` on a host that has none.
    const external = Object.values(networkInterfaces()).flat().find((a) =>
      a !== undefined && a.family === "IPv4" && !isLoopbackHost(a.address)
    )
    if (external === undefined)
      throw new Error("this test needs an IPv4 address outside 127/8 on this host: .ci/run adds 192.0.2.10 to lo")
    const address = external.address
    const lan = await startFixtureServer({ host: address, allowedHosts: ["status.lan"] })
    try {
      const lanPort = new URL(lan.url).port
      expect((await withHost(lan, "/healthz", `${address}:${lanPort}`)).status).toBe(200)
      expect((await withHost(lan, "/healthz", "status.lan")).status).toBe(200)
      expect(await withHost(lan, "/healthz", "localhost")).toStrictEqual({
        status: 421,
        body: {
          error:
            `Host "localhost" is not served here: this API answers only requests for ${address} or an allowed host name`
        }
      })
    } finally {
      await lan.close()
    }
  })
})

describe("shared snapshot on a real socket", () => {
  it("500 concurrent requests while a snapshot is being taken: it is taken once, and all answer the same", async () => {
    const N = 500
    const gate = Effect.runSync(Deferred.make<void>())
    let asked = 0
    let taken = 0
    const inner = StatusReport.of({
      snapshot: Effect.andThen(Effect.sync(() => taken++), Effect.as(Deferred.await(gate), fixture))
    })
    const status = Layer.effect(
      StatusReport,
      Effect.map(
        sharedSnapshot(SNAPSHOT_TTL)(inner),
        (shared) => StatusReport.of({ snapshot: Effect.andThen(Effect.sync(() => asked++), shared.snapshot) })
      )
    )
    // 500 connections at once: more than the API's default connection limit, so this server allows more.
    const server = await startFixtureServer({
      status,
      server: boundedServer({ ...defaultConnectionLimits, maxConnections: 1024 })
    })
    try {
      const answers = Array.from(
        { length: N },
        () => fetch(`${server.url}/api/tasks`).then(async (r) => [r.status, await r.text()] as const)
      )
      const deadline = Date.now() + 20_000
      while (asked < N && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
      expect([asked, taken]).toStrictEqual([N, 1])
      Effect.runSync(Deferred.succeed(gate, undefined))
      const done = await Promise.all(answers)
      expect(new Set(done.map(([code]) => code))).toStrictEqual(new Set([200]))
      expect(new Set(done.map(([, text]) => text)).size).toBe(1)
      expect(taken).toBe(1)
    } finally {
      await server.close()
    }
  })
})

describe("the /api/tasks contract across versions", () => {
  const decode = Schema.decodeUnknownSync(TasksStatus)
  it("an answer without `next` (a daemon older than paging) still decodes, so `claude-failover status` reads it", () => {
    const { next: _, ...old } = expectedBodies.tasks
    expect(decode(old).counts).toStrictEqual({ pending: 3, active: 2, done: 2, failed: 1 })
  })

  it("today's answer decodes with the schema a CLI older than paging had (extra fields are ignored)", () => {
    const Old = TasksStatus.mapFields(({ next: _, ...fields }) => fields)
    expect(Schema.decodeUnknownSync(Old)(expectedBodies.tasks).counts).toStrictEqual({
      pending: 3,
      active: 2,
      done: 2,
      failed: 1
    })
  })
})

describe("HttpApiLayer", () => {
  it("serves on the configured host:port and logs where", async () => {
    const port = await freePort()
    const logs: Array<string> = []
    const scope = await Effect.runPromise(Scope.make())
    try {
      await Effect.runPromise(
        Layer.buildWithScope(
          HttpApiLayer({ host: "127.0.0.1", port, token: Option.none() }).pipe(
            Layer.provide(Layer.merge(statusOf(fixture), captureLogs(logs)))
          ),
          scope
        )
      )
      expect(logs).toStrictEqual([`status API listening on http://127.0.0.1:${port}`])
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200)
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  })

  it("fails to build when the port is taken", async () => {
    const port = Number(new URL(open.url).port)
    const exit = await Effect.runPromiseExit(
      Effect.scoped(Layer.build(
        HttpApiLayer({ host: "127.0.0.1", port, token: Option.none() }).pipe(
          Layer.provide(Layer.merge(statusOf(fixture), captureLogs([])))
        )
      ))
    )
    expect(Exit.isFailure(exit)).toBe(true)
    const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
    expect(error instanceof Error ? error.message : "").toBe(
      `cannot serve the status API on 127.0.0.1:${port}: listen EADDRINUSE: address already in use 127.0.0.1:${port} ` +
        "(set API_HOST / API_PORT; 0 = any free port)"
    )
  })
})

/** Strings that break naive label escaping. */
const nasty = fc.string({
  unit: fc.oneof(
    fc.constantFrom("\"", "\\", "\n", "{", "}", ",", "=", " ", "\t", "#"),
    fc.string({ unit: "grapheme", maxLength: 1 })
  ),
  maxLength: 12
})
const count = fc.nat({ max: 1_000_000 })

const snapshotArb: fc.Arbitrary<Snapshot> = fc.record({
  sessions: fc.array(
    fc.record({
      session: nasty,
      state: fc.oneof(fc.constantFrom(...SessionStates), nasty),
      account: nasty,
      task: fc.constant(null),
      cooldown_until: fc.constant(null),
      signal: fc.constantFrom("hook" as const, "pane" as const)
    }),
    { maxLength: 6 }
  ),
  stale: fc.array(fc.record({ task: nasty, session: nasty, unchanged_for_s: count }), { maxLength: 3 }),
  stages: fc.tuple(...Stages.map(() => fc.array(taskName, { maxLength: 4 }))),
  dispatcher: fc.record({ dispatched: count, failovers: count, malformed: count }),
  counters: fc.record({
    submitted: count,
    completed: count,
    failed: count,
    retries: count,
    rejected: count,
    active: count
  }),
  bounds: fc.uniqueArray(fc.double({ min: 1e-9, max: 1e9, noNaN: true }), { maxLength: 12 }),
  observations: fc.array(fc.double({ min: 0, max: 1e12, noNaN: true }), { maxLength: 20 })
}).map(({ bounds, counters, dispatcher, observations, sessions, stages, stale }): Snapshot => {
  const [pending = [], active = [], done = [], failed = []] = stages.map((names) =>
    names.map((name) => ({ name, state: "x" }))
  )
  return {
    ...emptySnapshot,
    sessions,
    stale,
    tasks: { pending, active, done, failed },
    dispatcher,
    delegation: { active: [], counters },
    reapLatency: observations.reduce(observe, emptyHistogram(bounds))
  }
})

const samplesOf = (family: Family | undefined) => family?.samples ?? []

describe("renderMetrics (property)", () => {
  it("whatever the snapshot, the output parses; buckets are monotone with +Inf = _count; label values round-trip", () => {
    fc.assert(
      fc.property(snapshotArb, (snapshot) => {
        const families = parsePrometheusText(renderMetrics(snapshot))
        const name = "claude_failover_reap_latency_seconds"
        const buckets = samplesOf(families.get(name)).filter((s) => s.name === `${name}_bucket`)
        const counts = buckets.map((s) => s.value)
        expect(counts).toStrictEqual([...counts].sort((a, b) => a - b))
        expect(buckets.at(-1)?.labels).toStrictEqual({ le: "+Inf" })
        expect(buckets.at(-1)?.value).toBe(valueOf(families, name, `${name}_count`))
        expect(valueOf(families, name, `${name}_count`)).toBe(snapshot.reapLatency.count)
        for (const stage of Stages) {
          expect(valueOf(families, "claude_failover_tasks", "claude_failover_tasks", { stage })).toBe(
            snapshot.tasks[stage].length
          )
        }
        const bySession = samplesOf(families.get("claude_failover_sessions")).reduce((sum, s) => sum + s.value, 0)
        expect(bySession).toBe(snapshot.sessions.length)
        // The first session of each name is the one reported; its name and state come back unescaped.
        const first = new Map(snapshot.sessions.map((s) => [s.session, s.state] as const).reverse())
        for (const [session, state] of first) {
          expect(
            valueOf(families, "claude_failover_session_state", "claude_failover_session_state", { session, state })
          ).toBe(1)
        }
        expect(samplesOf(families.get("claude_failover_session_state")).filter((s) => s.value === 1)).toHaveLength(
          first.size
        )
      }),
      RUNS
    )
  })
})

describe("the Prometheus text parser used above is strict", () => {
  const rejects = (text: string) =>
    expect(() => parsePrometheusText(text), JSON.stringify(text)).toThrow(PrometheusTextError)

  it("rejects bad syntax", () => {
    rejects("m 1") // no final line feed
    rejects("9m 1\n")
    rejects("m{a=\"1\" 1\n")
    rejects("m{a=\"x\\q\"} 1\n")
    rejects("m{a=\"1\",a=\"2\"} 1\n")
    rejects("m{__a=\"1\"} 1\n")
    rejects("m one\n")
    rejects("m{a=\"1\"}1\n")
    rejects("# TYPE m bogus\nm 1\n")
    rejects("m 1\n# TYPE m gauge\n")
    rejects("m 1\nm 2\n")
    rejects("a 1\nb 1\na 2\n")
    rejects("# TYPE c counter\nc -1\n")
  })

  it("rejects broken histograms", () => {
    const h = (lines: ReadonlyArray<string>) => `# TYPE h histogram\n${lines.join("\n")}\n`
    rejects(h(["h_bucket{le=\"1\"} 2", "h_bucket{le=\"+Inf\"} 1", "h_sum 1", "h_count 1"]))
    rejects(h(["h_bucket{le=\"1\"} 1", "h_sum 1", "h_count 1"]))
    rejects(h(["h_bucket{le=\"+Inf\"} 2", "h_sum 1", "h_count 3"]))
    rejects(h(["h_bucket{le=\"5\"} 1", "h_bucket{le=\"1\"} 1", "h_bucket{le=\"+Inf\"} 1", "h_sum 1", "h_count 1"]))
    rejects(h(["h_bucket 1", "h_sum 1", "h_count 1"]))
  })

  it("accepts the format's corners: escapes, trailing comma, timestamps, comments, specials", () => {
    const families = parsePrometheusText(
      "# a comment\n# HELP m a \\\\ help\\nline\n# TYPE m gauge\nm{a=\"q\\\"b\\\\n\\n\",} +Inf 1700000000000\nm{a=\"\"} NaN\n"
    )
    expect(families.get("m")?.help).toBe("a \\ help\nline")
    expect(valueOf(families, "m", "m", { a: "q\"b\\n\n" })).toBe(Infinity)
  })
})
