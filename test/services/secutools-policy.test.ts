/** The secutools retry and poll Schedules under TestClock: which failures are retried, when, and how often. */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber, Random } from "effect"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import { type JobView, Secutools, SecutoolsError, type SecutoolsFailure } from "../../src/ports/secutools.ts"
import {
  requestRetry,
  retryDelayMs,
  type RetryPolicy,
  waitForResult,
  withRetries
} from "../../src/services/secutools-policy.ts"
import { RUNS } from "../domain/arbitraries.ts"

const policy = (overrides: Partial<RetryPolicy> = {}): RetryPolicy => ({
  baseDelay: Duration.millis(100),
  maxDelay: Duration.millis(1_000),
  maxAttempts: 6,
  deadline: Duration.minutes(10),
  ...overrides
})

const status = (code: number, retryAfterMs?: number): SecutoolsFailure => ({
  _tag: "Status",
  status: code,
  body: "",
  ...(retryAfterMs === undefined ? {} : { retryAfterMs })
})
const failure = (reason: SecutoolsFailure) => new SecutoolsError({ operation: "submit t.md", reason })

/**
 * Runs a request that fails with `failures` in turn (then succeeds) under `policy`, moving the TestClock until it
 * is done. Returns the virtual time of every try and how it ended.
 */
const tryUnder = (policy: RetryPolicy, failures: ReadonlyArray<SecutoolsFailure>) =>
  Effect.gen(function*() {
    const tries: Array<number> = []
    const request = Effect.gen(function*() {
      tries.push(yield* Clock.currentTimeMillis)
      const next = failures[tries.length - 1]
      return next === undefined ? "ok" : yield* Effect.fail(failure(next))
    })
    const fiber = yield* Effect.forkChild(Effect.result(Effect.retry(request, requestRetry(policy))))
    yield* TestClock.adjust(Duration.hours(1))
    const outcome = yield* Fiber.join(fiber)
    const gaps = tries.slice(1).map((at, i) => at - (tries[i] ?? 0))
    return { tries: tries.length, gaps, succeeded: outcome._tag === "Success" }
  })

describe("retry delay (full jitter)", () => {
  it("lies in [0, min(cap, base·2^(n-1))] and is never below Retry-After", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5_000 }),
        fc.integer({ min: 1, max: 60_000 }),
        fc.integer({ min: 1, max: 40 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.option(fc.integer({ min: 0, max: 120_000 }), { nil: undefined }),
        (base, cap, retry, random, retryAfter) => {
          const p = policy({ baseDelay: Duration.millis(base), maxDelay: Duration.millis(cap) })
          const delay = retryDelayMs(p, retry, random, retryAfter)
          const ceiling = Math.min(cap, base * 2 ** (retry - 1))
          expect(delay).toBeGreaterThanOrEqual(retryAfter ?? 0)
          expect(delay).toBeLessThanOrEqual(Math.max(ceiling, retryAfter ?? 0))
          if (retryAfter === undefined) expect(delay).toBe(Math.floor(ceiling * random))
        }
      ),
      RUNS
    )
  })

  it("spans the whole range: zero at the bottom, the capped delay at the top", () => {
    expect(retryDelayMs(policy(), 4, 0, undefined)).toBe(0)
    expect(retryDelayMs(policy(), 4, 0.999_999, undefined)).toBe(799)
    expect(retryDelayMs(policy(), 12, 0.999_999, undefined)).toBe(999)
  })
})

describe("requestRetry under TestClock", () => {
  it.effect("retries 503s with gaps inside the jitter bounds, then succeeds", () =>
    Effect.gen(function*() {
      const result = yield* tryUnder(policy(), [status(503), status(503), status(503), status(503)])
      expect(result).toMatchObject({ tries: 5, succeeded: true })
      result.gaps.forEach((gap, i) => {
        expect(gap).toBeGreaterThanOrEqual(0)
        expect(gap).toBeLessThanOrEqual(Math.min(1_000, 100 * 2 ** i))
      })
    }))

  it.effect("caps every delay at maxDelay", () =>
    Effect.gen(function*() {
      const p = policy({ maxAttempts: 12, maxDelay: Duration.millis(300) })
      const result = yield* tryUnder(p, Array.from({ length: 11 }, () => status(502)))
      expect(result.tries).toBe(12)
      for (const gap of result.gaps) expect(gap).toBeLessThanOrEqual(300)
      // With full jitter the gaps differ; a fixed delay would make them all equal.
      expect(new Set(result.gaps).size).toBeGreaterThan(1)
    }).pipe(Random.withSeed("cap")))

  it.effect("waits at least Retry-After, even past the cap", () =>
    Effect.gen(function*() {
      const result = yield* tryUnder(policy(), [status(429, 5_000), status(429, 2_500)])
      expect(result.tries).toBe(3)
      expect(result.gaps[0]).toBeGreaterThanOrEqual(5_000)
      expect(result.gaps[1]).toBeGreaterThanOrEqual(2_500)
      expect(result.gaps[1]).toBeLessThan(5_000)
    }))

  it.effect("stops after maxAttempts tries", () =>
    Effect.gen(function*() {
      const result = yield* tryUnder(policy({ maxAttempts: 4 }), Array.from({ length: 10 }, () => status(500)))
      expect(result).toMatchObject({ tries: 4, succeeded: false })
    }))

  it.effect("starts no retry past the deadline", () =>
    Effect.gen(function*() {
      const result = yield* tryUnder(policy({ deadline: Duration.seconds(1) }), [status(429, 2_000), status(429, 0)])
      expect(result).toMatchObject({ tries: 1, succeeded: false })
    }))

  const retried = [408, 429, 500, 502, 503, 504, 599]
  const notRetried = [400, 401, 403, 404, 409, 422, 501]
  for (const code of retried) {
    it.effect(`retries HTTP ${code}`, () =>
      Effect.map(
        tryUnder(policy(), [status(code)]),
        (result) => expect(result).toMatchObject({ tries: 2, succeeded: true })
      ))
  }
  for (const code of notRetried) {
    it.effect(`never retries HTTP ${code}`, () =>
      Effect.map(
        tryUnder(policy(), [status(code)]),
        (result) => expect(result).toMatchObject({ tries: 1, succeeded: false })
      ))
  }
  it.effect("retries network errors and timeouts, not undecodable answers", () =>
    Effect.gen(function*() {
      const transport = yield* tryUnder(policy(), [{ _tag: "Transport", detail: "ECONNRESET" }])
      const timeout = yield* tryUnder(policy(), [{ _tag: "Timeout", afterMs: 10_000 }])
      const decode = yield* tryUnder(policy(), [{ _tag: "Decode", detail: "Expected string" }])
      expect([transport.tries, timeout.tries, decode.tries]).toStrictEqual([2, 2, 1])
    }))
})

const job = (status: JobView["status"]): JobView => ({
  job_id: "j_1",
  status,
  provider: "gemini",
  created_at: "2026-11-25T00:00:00Z"
})

/** A Secutools whose `get` answers from `script` in turn (the last answer repeats), recording when it was asked. */
const scripted = (script: ReadonlyArray<JobView["status"] | SecutoolsFailure>, asked: Array<number>) =>
  Secutools.of({
    submit: () => Effect.succeed({ job_id: "j_1", status: "queued" }),
    get: () =>
      Effect.gen(function*() {
        asked.push(yield* Clock.currentTimeMillis)
        const next = script[Math.min(asked.length, script.length) - 1] ?? "queued"
        return typeof next === "string" ? job(next) : yield* Effect.fail(failure(next))
      })
  })

describe("waitForResult under TestClock", () => {
  it.effect("polls quickly at first, then every interval, until a terminal status", () =>
    Effect.gen(function*() {
      const asked: Array<number> = []
      const fiber = yield* waitForResult("j_1", { interval: Duration.seconds(2), timeout: Duration.minutes(5) }).pipe(
        Effect.provideService(
          Secutools,
          scripted(["queued", "running", "running", "running", "running", "completed"], asked)
        ),
        Effect.forkChild
      )
      yield* TestClock.adjust(Duration.minutes(1))
      const result = yield* Fiber.join(fiber)
      expect(result.status).toBe("completed")
      expect(asked.slice(1).map((at, i) => at - (asked[i] ?? 0))).toStrictEqual([250, 500, 1_000, 2_000, 2_000])
    }))

  it.effect("fails with JobWaitTimeout naming the last status at the deadline", () =>
    Effect.gen(function*() {
      const asked: Array<number> = []
      const fiber = yield* waitForResult("j_1", { interval: Duration.seconds(1), timeout: Duration.seconds(10) }).pipe(
        Effect.provideService(Secutools, scripted(["running"], asked)),
        Effect.flip,
        Effect.forkChild
      )
      yield* TestClock.adjust(Duration.seconds(11))
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("JobWaitTimeout")
      expect(error.message).toBe("job j_1 was still running after 10000ms")
    }))

  it.effect("with withRetries, a 503 while polling is retried instead of ending the wait", () =>
    Effect.gen(function*() {
      const asked: Array<number> = []
      const retries: Array<number> = []
      const service = withRetries(
        scripted(["running", status(503), "completed"], asked),
        policy(),
        (error) => Effect.sync(() => retries.push(error.reason._tag === "Status" ? error.reason.status : 0))
      )
      const fiber = yield* waitForResult("j_1", { interval: Duration.seconds(1), timeout: Duration.minutes(1) }).pipe(
        Effect.provideService(Secutools, service),
        Effect.forkChild
      )
      yield* TestClock.adjust(Duration.minutes(1))
      expect((yield* Fiber.join(fiber)).status).toBe("completed")
      expect(retries).toStrictEqual([503])
    }))
})
