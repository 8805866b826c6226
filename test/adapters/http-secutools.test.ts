/** The live secutools adapter against the stand-in server over real loopback HTTP. */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Redacted, Result } from "effect"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import {
  type FakeSecutools,
  type FakeSecutoolsOptions,
  startFakeSecutools
} from "../../src/adapters/fake-secutools/server.ts"
import { HttpSecutoolsLayer, makeHttpSecutools, parseRetryAfter } from "../../src/adapters/http-secutools.ts"
import { Secutools, type SecutoolsError } from "../../src/ports/secutools.ts"
import type { RetryPolicy } from "../../src/services/secutools-policy.ts"

const KEY = "sk-live-7f3a9c0d-never-print-me"
const request = { task_id: "fix-login", provider: "gemini", prompt: "Fix the login redirect." } as const

const servers: Array<FakeSecutools> = []
const rawServers: Array<Server> = []
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close()
  for (const server of rawServers.splice(0)) {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})
const serve = async (options: Partial<FakeSecutoolsOptions> = {}) => {
  const server = await startFakeSecutools({ apiKey: KEY, durationMs: 200, ...options })
  servers.push(server)
  return server
}

const quickRetries: RetryPolicy = {
  baseDelay: Duration.millis(10),
  maxDelay: Duration.millis(50),
  maxAttempts: 8,
  deadline: Duration.seconds(20)
}

/** The adapter without retries, so a single answer is seen as it is. */
const single = (url: string, apiKey = KEY) =>
  Layer.effect(
    Secutools,
    makeHttpSecutools({ baseUrl: url, apiKey: Redacted.make(apiKey), requestTimeout: Duration.seconds(2) })
  )
    .pipe(Layer.provide(NodeHttpClient.layerUndici))
const retrying = (url: string, retries: Array<string>) =>
  HttpSecutoolsLayer(
    { baseUrl: url, apiKey: Redacted.make(KEY), requestTimeout: Duration.seconds(2) },
    quickRetries,
    (error) => Effect.sync(() => retries.push(error.message))
  ).pipe(Layer.provide(NodeHttpClient.layerUndici))

const failureOf = <A, R>(effect: Effect.Effect<A, SecutoolsError, R>) =>
  Effect.map(Effect.result(effect), (result) => (Result.isFailure(result) ? result.failure : undefined))

/** Polls `condition` until it holds; the deadline turns a hang into a failure. */
const waitFor = async (condition: () => boolean, deadlineMs = 5_000) => {
  const deadline = Date.now() + deadlineMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${deadlineMs}ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe("http secutools", () => {
  it.live("submits with the bearer key and Idempotency-Key; the same key gives the same job", () =>
    Effect.gen(function*() {
      const server = yield* Effect.promise(() => serve())
      yield* Effect.gen(function*() {
        const secutools = yield* Secutools
        const first = yield* secutools.submit(request, "key-1")
        const again = yield* secutools.submit(request, "key-1")
        expect(again.job_id).toBe(first.job_id)
        expect(server.counters()).toMatchObject({ jobsCreated: 1, duplicateSubmits: 1, jobsByTask: { "fix-login": 1 } })
        const job = yield* secutools.get(first.job_id)
        expect(job).toMatchObject({ job_id: first.job_id, provider: "gemini" })
      }).pipe(Effect.provide(single(server.url)))
    }))

  it.live("a wrong key is HTTP 401, not retried, and the key is in no message", () =>
    Effect.gen(function*() {
      const server = yield* Effect.promise(() => serve({ apiKey: "the-right-one" }))
      const retries: Array<string> = []
      const error = yield* failureOf(
        Secutools.use((s) => s.submit(request, "key-1")).pipe(Effect.provide(retrying(server.url, retries)))
      )
      expect(error?.reason).toMatchObject({ _tag: "Status", status: 401 })
      expect(error?.retryable).toBe(false)
      expect(retries).toStrictEqual([])
      expect(JSON.stringify(error)).not.toContain(KEY)
      expect(error?.message).not.toContain(KEY)
    }))

  it.live("an answer that is not the contract's JSON is a typed decode error", () =>
    Effect.gen(function*() {
      const server = yield* Effect.promise(() => serve({ malformedRatio: 1 }))
      const error = yield* failureOf(Secutools.use((s) => s.get("j_000001")).pipe(Effect.provide(single(server.url))))
      expect(error?.reason._tag).toBe("Decode")
      expect(error?.message).toMatch(/^get j_000001: unexpected answer: /)
    }))

  it.live("an unknown job is HTTP 404 with the server's words", () =>
    Effect.gen(function*() {
      const server = yield* Effect.promise(() => serve())
      const error = yield* failureOf(Secutools.use((s) => s.get("j_404")).pipe(Effect.provide(single(server.url))))
      expect(error?.reason).toMatchObject({ _tag: "Status", status: 404 })
    }))

  it.live("a 429 carries Retry-After in milliseconds", () =>
    Effect.gen(function*() {
      const server = yield* Effect.promise(() => serve({ ratio429: 1, retryAfter: 7 }))
      const error = yield* failureOf(
        Secutools.use((s) => s.submit(request, "k")).pipe(Effect.provide(single(server.url)))
      )
      expect(error?.reason).toMatchObject({ _tag: "Status", status: 429, retryAfterMs: 7_000 })
    }))

  it.live("nobody listening is a retryable network error", () =>
    Effect.gen(function*() {
      const server = yield* Effect.promise(() => startFakeSecutools({ apiKey: KEY }))
      yield* Effect.promise(() => server.close())
      const error = yield* failureOf(Secutools.use((s) => s.get("j_1")).pipe(Effect.provide(single(server.url))))
      expect(error?.reason._tag).toBe("Transport")
      expect(error?.retryable).toBe(true)
    }))

  it.live("a slow answer is cut at the request timeout", () =>
    Effect.gen(function*() {
      const server = yield* Effect.promise(() => serve({ slowRatio: 1, slowMs: 3_000 }))
      const layer = Layer.effect(
        Secutools,
        makeHttpSecutools({ baseUrl: server.url, apiKey: Redacted.make(KEY), requestTimeout: Duration.millis(200) })
      ).pipe(Layer.provide(NodeHttpClient.layerUndici))
      const error = yield* failureOf(Secutools.use((s) => s.get("j_1")).pipe(Effect.provide(layer)))
      expect(error?.reason).toStrictEqual({ _tag: "Timeout", afterMs: 200 })
    }))

  it.live("with retries: 5xx, 429, dropped connections and lost answers still give exactly one job per key", () =>
    Effect.gen(function*() {
      const server = yield* Effect.promise(() =>
        serve({ seed: 7, ratio5xx: 0.2, ratio429: 0.1, retryAfter: 0, dropRatio: 0.1, lostAnswerRatio: 0.2 })
      )
      const retries: Array<string> = []
      const jobs = yield* Effect.forEach(
        Array.from({ length: 12 }, (_, i) => i),
        (i) => Secutools.use((secutools) => secutools.submit({ ...request, task_id: `t-${i}` }, `key-${i}`)),
        { concurrency: 4 }
      ).pipe(Effect.provide(retrying(server.url, retries)))
      expect(new Set(jobs.map((job) => job.job_id)).size).toBe(12)
      const counters = server.counters()
      expect(Object.values(counters.jobsByKey).every((n) => n === 1)).toBe(true)
      expect(counters.jobsCreated).toBe(12)
      expect(retries.length).toBeGreaterThan(0)
      expect(counters.injected.lostAnswer + counters.injected.status5xx + counters.injected.dropped).toBeGreaterThan(0)
    }))
})

/** A loopback server answering every request with `answer`; `requests` counts what reached it. */
const rawServe = async (answer: (req: IncomingMessage, res: ServerResponse) => void) => {
  const seen = { requests: 0, paths: new Array<string>() }
  const server = createServer((req, res) => {
    seen.requests++
    seen.paths.push(req.url ?? "")
    answer(req, res)
  })
  rawServers.push(server)
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  return { url: `http://127.0.0.1:${port}`, seen }
}

/** Writes `chunk` for as long as the client reads; counts what it wrote and whether the client hung up. */
const endless =
  (status: number, stats: { sent: number; closed: boolean }, headers: Record<string, string> = {}) =>
  (_req: IncomingMessage, res: ServerResponse) => {
    const chunk = Buffer.alloc(64 * 1024, "a")
    res.writeHead(status, { "content-type": "application/json", ...headers })
    res.write("{\"job_id\":\"j_1\",\"status\":\"running\",\"provider\":\"gpu\",\"created_at\":\"x\",\"result\":\"")
    res.on("close", () => (stats.closed = true))
    const pump = () => {
      while (!res.destroyed) {
        stats.sent += chunk.length
        if (!res.write(chunk)) return void res.once("drain", pump)
      }
    }
    pump()
  }

const capped = (url: string, maxAnswerBytes: number, apiKey = KEY) =>
  Layer.effect(
    Secutools,
    makeHttpSecutools({
      baseUrl: url,
      apiKey: Redacted.make(apiKey),
      requestTimeout: Duration.seconds(20),
      maxAnswerBytes
    })
  ).pipe(Layer.provide(NodeHttpClient.layerUndici))

describe("http secutools: answer size", () => {
  it.live("an endless answer stops at SECUTOOLS_MAX_ANSWER: TooLarge, the connection dropped, memory bounded", () =>
    Effect.gen(function*() {
      const stats = { sent: 0, closed: false }
      const server = yield* Effect.promise(() => rawServe(endless(200, stats)))
      const before = process.memoryUsage().rss
      const error = yield* failureOf(
        Secutools.use((s) => s.get("j_1")).pipe(Effect.provide(capped(server.url, 1024 * 1024)))
      )
      expect(error?.reason).toStrictEqual({ _tag: "TooLarge", limitBytes: 1024 * 1024 })
      expect(error?.retryable).toBe(false)
      expect(error?.message).toBe("get j_1: answer larger than 1 MB (SECUTOOLS_MAX_ANSWER)")
      // The server stops because the client hung up, not because a timeout fired: it wrote a few socket buffers at most.
      yield* Effect.promise(() => waitFor(() => stats.closed))
      expect(stats.sent).toBeLessThan(64 * 1024 * 1024)
      expect(process.memoryUsage().rss - before).toBeLessThan(256 * 1024 * 1024)
    }))

  it.live("an answer that declares a Content-Length over the cap is refused before it is read", () =>
    Effect.gen(function*() {
      const stats = { sent: 0, closed: false }
      const server = yield* Effect.promise(() => rawServe(endless(200, stats, { "content-length": String(2 ** 40) })))
      const error = yield* failureOf(
        Secutools.use((s) => s.get("j_1")).pipe(Effect.provide(capped(server.url, 8 * 1024 * 1024)))
      )
      expect(error?.reason).toStrictEqual({ _tag: "TooLarge", limitBytes: 8 * 1024 * 1024 })
      expect(error?.message).toBe("get j_1: answer larger than 8 MB (SECUTOOLS_MAX_ANSWER)")
      yield* Effect.promise(() => waitFor(() => stats.closed))
    }))

  it.live("an endless error answer is quoted, not read to its end: still a retryable 503", () =>
    Effect.gen(function*() {
      const stats = { sent: 0, closed: false }
      const server = yield* Effect.promise(() => rawServe(endless(503, stats)))
      const error = yield* failureOf(
        Secutools.use((s) => s.get("j_1")).pipe(Effect.provide(capped(server.url, 8 * 1024 * 1024)))
      )
      expect(error?.reason).toMatchObject({ _tag: "Status", status: 503 })
      expect(error?.retryable).toBe(true)
      yield* Effect.promise(() => waitFor(() => stats.closed))
    }))

  it.live("an answer just under the cap is read and decoded", () =>
    Effect.gen(function*() {
      const job = {
        job_id: "j_1",
        status: "completed",
        provider: "gpu",
        created_at: "2026-01-01T00:00:00Z",
        result: "x".repeat(5000)
      }
      const server = yield* Effect.promise(() => rawServe((_req, res) => res.end(JSON.stringify(job))))
      const view = yield* Secutools.use((s) => s.get("j_1")).pipe(
        Effect.provide(capped(server.url, JSON.stringify(job).length))
      )
      expect(view.result).toHaveLength(5000)
    }))
})

describe("http secutools: job ids", () => {
  const invalid = ["..", "", "a/b", "x".repeat(200), ".", "/x", "j 1", "%2e%2e"]

  it.live("an id that is not a JobId is refused at once, never retried, and no request is sent", () =>
    Effect.gen(function*() {
      const server = yield* Effect.promise(() => rawServe((_req, res) => res.end("{}")))
      const retries: Array<string> = []
      for (const jobId of invalid) {
        const error = yield* failureOf(
          Secutools.use((s) => s.get(jobId)).pipe(Effect.provide(retrying(server.url, retries)))
        )
        expect(error?.reason).toStrictEqual({ _tag: "InvalidJobId", jobId })
        expect(error?.retryable).toBe(false)
        expect(error?.message).toContain("is not a secutools job id")
      }
      expect(server.seen.requests).toBe(0)
      expect(retries).toStrictEqual([])
    }))

  it.live("ids of every allowed character reach the server as one path segment", () =>
    Effect.gen(function*() {
      const server = yield* Effect.promise(() => rawServe((_req, res) => res.writeHead(404).end()))
      for (const jobId of ["j_000001", "A.b-c:d_9", "x".repeat(128)]) {
        const error = yield* failureOf(Secutools.use((s) => s.get(jobId)).pipe(Effect.provide(single(server.url))))
        expect(error?.reason).toMatchObject({ _tag: "Status", status: 404 })
      }
      expect(server.seen.paths).toStrictEqual([
        "/v1/jobs/j_000001",
        "/v1/jobs/A.b-c%3Ad_9",
        `/v1/jobs/${"x".repeat(128)}`
      ])
    }))

  it.live("an answer naming a job id that is not a JobId is a decode error", () =>
    Effect.gen(function*() {
      const server = yield* Effect.promise(() =>
        rawServe((_req, res) => res.writeHead(202).end("{\"job_id\":\"..\",\"status\":\"queued\"}"))
      )
      const error = yield* failureOf(
        Secutools.use((s) => s.submit(request, "k")).pipe(Effect.provide(single(server.url)))
      )
      expect(error?.reason._tag).toBe("Decode")
      expect(error?.retryable).toBe(false)
    }))
})

describe("http secutools: the key in no error", () => {
  /** Answers `status` with the request's own Authorization header in the body, as a careless server would. */
  const echoing = (status: number) => (req: IncomingMessage, res: ServerResponse) =>
    res.writeHead(status, { "content-type": "application/json" }).end(
      JSON.stringify({ error: "bad request", received: { authorization: req.headers.authorization } })
    )
  const leaks = (error: SecutoolsError | undefined, secret: string) =>
    [error?.message, String(error), JSON.stringify(error), error?.stack].filter((text) => text?.includes(secret))

  it.live("a 400 echoing Authorization: Bearer <key>", () =>
    Effect.gen(function*() {
      const server = yield* Effect.promise(() => rawServe(echoing(400)))
      const error = yield* failureOf(
        Secutools.use((s) => s.submit(request, "k")).pipe(Effect.provide(single(server.url)))
      )
      expect(error?.reason).toMatchObject({ _tag: "Status", status: 400 })
      expect(error?.message).toContain("Bearer <redacted>")
      expect(leaks(error, KEY)).toStrictEqual([])
    }))

  it.live("a 500 echoing it, after every retry", () =>
    Effect.gen(function*() {
      const server = yield* Effect.promise(() => rawServe(echoing(500)))
      const retries: Array<string> = []
      const error = yield* failureOf(
        Secutools.use((s) => s.get("j_1")).pipe(Effect.provide(retrying(server.url, retries)))
      )
      expect(error?.reason).toMatchObject({ _tag: "Status", status: 500 })
      expect(server.seen.requests).toBe(quickRetries.maxAttempts)
      expect(error?.message).toContain("Bearer <redacted>")
      expect(leaks(error, KEY)).toStrictEqual([])
      expect(retries.filter((message) => message.includes(KEY))).toStrictEqual([])
    }))

  it.live("a 200 whose body echoes the key into a field that fails to decode", () =>
    Effect.gen(function*() {
      const server = yield* Effect.promise(() =>
        rawServe((req, res) => res.end(JSON.stringify({ job_id: `x/${req.headers.authorization}`, status: "queued" })))
      )
      const error = yield* failureOf(
        Secutools.use((s) => s.submit(request, "k")).pipe(Effect.provide(single(server.url)))
      )
      expect(error?.reason._tag).toBe("Decode")
      expect(leaks(error, KEY)).toStrictEqual([])
    }))

  it.live("credentials in SECUTOOLS_URL are in no transport error", () =>
    Effect.gen(function*() {
      const server = yield* Effect.promise(() => startFakeSecutools({ apiKey: KEY }))
      yield* Effect.promise(() => server.close())
      const url = server.url.replace("http://", "http://alice:s3cret@")
      const error = yield* failureOf(Secutools.use((s) => s.get("j_1")).pipe(Effect.provide(single(url))))
      expect(error?.reason._tag).toBe("Transport")
      expect(leaks(error, "s3cret")).toStrictEqual([])
    }))
})

describe("Retry-After", () => {
  const now = Date.parse("2026-11-25T08:00:00Z")
  it("reads seconds and HTTP dates; ignores the rest", () => {
    expect(parseRetryAfter("120", now)).toBe(120_000)
    expect(parseRetryAfter(" 0 ", now)).toBe(0)
    expect(parseRetryAfter("Wed, 25 Nov 2026 08:00:30 GMT", now)).toBe(30_000)
    expect(parseRetryAfter("Wed, 25 Nov 2026 07:00:00 GMT", now)).toBe(0)
    expect(parseRetryAfter("soon", now)).toBeUndefined()
    expect(parseRetryAfter("-5", now)).toBeUndefined()
    expect(parseRetryAfter(undefined, now)).toBeUndefined()
  })
})
