/** The live secutools adapter against the stand-in server over real loopback HTTP. */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Redacted, Result } from "effect"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { startFakeSecutools, type FakeSecutools, type FakeSecutoolsOptions } from "../../src/adapters/fake-secutools/server.ts"
import { HttpSecutoolsLayer, makeHttpSecutools, parseRetryAfter } from "../../src/adapters/http-secutools.ts"
import { Secutools, type SecutoolsError } from "../../src/ports/secutools.ts"
import type { RetryPolicy } from "../../src/services/secutools-policy.ts"

const KEY = "sk-live-7f3a9c0d-never-print-me"
const request = { task_id: "fix-login", provider: "gemini", prompt: "Fix the login redirect." } as const

const servers: Array<FakeSecutools> = []
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close()
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
  Layer.effect(Secutools, makeHttpSecutools({ baseUrl: url, apiKey: Redacted.make(apiKey), requestTimeout: Duration.seconds(2) }))
    .pipe(Layer.provide(NodeHttpClient.layerUndici))
const retrying = (url: string, retries: Array<string>) =>
  HttpSecutoolsLayer(
    { baseUrl: url, apiKey: Redacted.make(KEY), requestTimeout: Duration.seconds(2) },
    quickRetries,
    (error) => Effect.sync(() => retries.push(error.message))
  ).pipe(Layer.provide(NodeHttpClient.layerUndici))

const failureOf = <A, R>(effect: Effect.Effect<A, SecutoolsError, R>) =>
  Effect.map(Effect.result(effect), (result) => (Result.isFailure(result) ? result.failure : undefined))

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
      const error = yield* failureOf(Secutools.use((s) => s.submit(request, "key-1")).pipe(Effect.provide(retrying(server.url, retries))))
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
      const error = yield* failureOf(Secutools.use((s) => s.submit(request, "k")).pipe(Effect.provide(single(server.url))))
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
