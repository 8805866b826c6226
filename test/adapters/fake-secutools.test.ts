import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Result, Schema } from "effect"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { JobBook } from "../../src/adapters/fake-secutools/jobs.ts"
import {
  type FakeSecutools,
  type FakeSecutoolsOptions,
  startFakeSecutools
} from "../../src/adapters/fake-secutools/server.ts"
import { fakeStateFile, SecutoolsFromConfig } from "../../src/adapters/secutools-layer.ts"
import { resolveConfig } from "../../src/config.ts"
import { JobView, Secutools, SubmitResponse } from "../../src/ports/secutools.ts"

const API_KEY = "test-key"
const body = (overrides: Record<string, unknown> = {}) => ({
  task_id: "t1",
  provider: "gemini",
  prompt: "summarise",
  ...overrides
})

// Answers are decoded with the daemon's own port schemas, so these tests also hold the fake to the client's contract.
const ErrorBody = Schema.Struct({ error: Schema.String })
const CountsBody = Schema.Struct({
  jobsByKey: Schema.Record(Schema.String, Schema.Number),
  jobsByTask: Schema.Record(Schema.String, Schema.Number)
})
const read = async <S extends Schema.ConstraintDecoder<unknown>>(schema: S, response: Response): Promise<S["Type"]> =>
  Schema.decodeUnknownSync(schema)(await response.json())
const errorOf = async (response: Response) => (await read(ErrorBody, response)).error

const withFake = async (options: Partial<FakeSecutoolsOptions>, use: (fake: FakeSecutools) => Promise<void>) => {
  const fake = await startFakeSecutools({ apiKey: API_KEY, ...options })
  try {
    await use(fake)
  } finally {
    await fake.close()
  }
}

const post = (fake: FakeSecutools, key: string | undefined, payload: unknown, token = API_KEY) =>
  fetch(`${fake.url}/v1/jobs`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      ...(key === undefined ? {} : { "idempotency-key": key })
    },
    body: JSON.stringify(payload)
  })

const get = (fake: FakeSecutools, jobId: string) =>
  fetch(`${fake.url}/v1/jobs/${jobId}`, { headers: { authorization: `Bearer ${API_KEY}` } })

/** Polls until the job is terminal; the deadline turns a hang into a failure. */
const settle = async (fake: FakeSecutools, jobId: string, deadlineMs = 3000): Promise<JobView> => {
  const deadline = Date.now() + deadlineMs
  while (Date.now() < deadline) {
    const job = await read(JobView, await get(fake, jobId))
    if (job.status !== "queued" && job.status !== "running") return job
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`job ${jobId} not terminal within ${deadlineMs}ms`)
}

describe("fake secutools job book", () => {
  const request = { task_id: "t1", provider: "gpu" as const, prompt: "do it" }

  it("moves queued → running → terminal with elapsed time", () => {
    let now = 1_000
    const book = new JobBook({ durationMs: 1000, failureRatio: 0, seed: 1, now: () => now })
    const { job } = book.submit("k", request)
    const statusAt = (at: number) => {
      now = 1_000 + at
      return book.get(job.job_id)?.status
    }
    expect([statusAt(0), statusAt(199), statusAt(200), statusAt(999), statusAt(1000)])
      .toEqual(["queued", "queued", "running", "running", "completed"])
    expect(book.get(job.job_id)).toMatchObject({
      result: "gpu says: do it",
      cost_usd: 0.001,
      created_at: new Date(1_000).toISOString(),
      finished_at: new Date(2_000).toISOString()
    })
  })

  it("the same key yields the same job, even with another body", () => {
    const book = new JobBook({ durationMs: 0, failureRatio: 0, seed: 1, now: () => 0 })
    const first = book.submit("k", request)
    const again = book.submit("k", { ...request, task_id: "other", prompt: "[fail]" })
    expect(first.created).toBe(true)
    expect(again).toEqual({ job: first.job, created: false })
    expect(book.counters()).toMatchObject({
      jobsCreated: 1,
      duplicateSubmits: 1,
      jobsByKey: { k: 1 },
      jobsByTask: { t1: 1 }
    })
  })

  it("draws the same outcomes for the same seed", () => {
    const outcomes = (seed: number) => {
      const book = new JobBook({ durationMs: 0, failureRatio: 0.5, seed, now: () => 0 })
      return Array.from({ length: 20 }, (_, i) => book.submit(`k${i}`, request).job.status)
    }
    expect(outcomes(7)).toEqual(outcomes(7))
    expect(outcomes(7)).not.toEqual(outcomes(8))
    expect(new Set(outcomes(7))).toEqual(new Set(["completed", "failed"]))
  })

  it("[fail] always fails and [cancel] always cancels", () => {
    const book = new JobBook({ durationMs: 0, failureRatio: 0, seed: 1, now: () => 0 })
    expect(book.submit("a", { ...request, prompt: "x [fail]" }).job).toMatchObject({
      status: "failed",
      error: "gpu: model refused the task"
    })
    expect(book.submit("b", { ...request, prompt: "x [cancel]" }).job.status).toBe("cancelled")
  })
})

describe("fake secutools server", () => {
  it("wants the bearer token and an Idempotency-Key", () =>
    withFake({}, async (fake) => {
      const unauthorised = await post(fake, "k", body(), "wrong")
      expect(unauthorised.status).toBe(401)
      expect(await errorOf(unauthorised)).toContain("bearer")
      expect((await fetch(`${fake.url}/v1/jobs/j_000001`)).status).toBe(401)
      const keyless = await post(fake, undefined, body())
      expect(keyless.status).toBe(400)
      expect(await errorOf(keyless)).toContain("Idempotency-Key")
      expect(fake.counters().submits).toBe(0)
    }))

  it("names the invalid field; an unknown provider is 422", async () =>
    withFake({}, async (fake) => {
      const missing = await post(fake, "k1", { provider: "gpu", prompt: "p" })
      expect(missing.status).toBe(400)
      expect(await errorOf(missing)).toContain("task_id")
      const badPrompt = await post(fake, "k2", body({ prompt: 3 }))
      expect(await errorOf(badPrompt)).toContain("prompt")
      const provider = await post(fake, "k3", body({ provider: "openai" }))
      expect(provider.status).toBe(422)
      expect(await errorOf(provider)).toContain("provider")
      expect(fake.counters().jobsCreated).toBe(0)
    }))

  it("the same key yields the same job: 202 then 200", () =>
    withFake({}, async (fake) => {
      const first = await post(fake, "k", body())
      const again = await post(fake, "k", body({ prompt: "something else" }))
      expect(first.status).toBe(202)
      expect(again.status).toBe(200)
      const created = await read(SubmitResponse, first)
      expect(created).toEqual({ job_id: "j_000001", status: "queued" })
      expect((await read(SubmitResponse, again)).job_id).toBe(created.job_id)
      expect(fake.counters()).toMatchObject({ submits: 2, jobsCreated: 1, duplicateSubmits: 1, jobsByKey: { k: 1 } })
    }))

  it("jobs reach completed, failed or cancelled", () =>
    withFake({ durationMs: 200 }, async (fake) => {
      const ids = await Promise.all(["write a poem", "[fail] this", "[cancel] that"].map(async (prompt, i) =>
        (await read(SubmitResponse, await post(fake, `k${i}`, body({ prompt })))).job_id
      ))
      const [completed, failed, cancelled] = await Promise.all(ids.map((id) =>
        settle(fake, id)
      ))
      expect(completed).toMatchObject({ status: "completed", provider: "gemini", result: "gemini says: write a poem" })
      expect(completed?.cost_usd).toBeGreaterThan(0)
      expect(completed?.finished_at).toMatch(/^\d{4}-\d\d-\d\dT/)
      expect(failed).toMatchObject({ status: "failed", error: "gemini: model refused the task" })
      expect(failed?.result).toBeUndefined()
      expect(cancelled?.status).toBe("cancelled")
    }))

  it("unknown jobs are 404", () =>
    withFake({}, async (fake) => {
      const missing = await get(fake, "j_999999")
      expect(missing.status).toBe(404)
      expect(await errorOf(missing)).toContain("j_999999")
      expect(fake.counters().gets).toBe(1)
    }))

  it("counts distinct jobs per task", () =>
    withFake({}, async (fake) => {
      await post(fake, "a", body({ task_id: "t1" }))
      await post(fake, "b", body({ task_id: "t1" }))
      await post(fake, "b", body({ task_id: "t1" }))
      await post(fake, "c", body({ task_id: "t2" }))
      const counters = await read(CountsBody, await fetch(`${fake.url}/_fake/counters`))
      expect(counters).toMatchObject({ jobsByTask: { t1: 2, t2: 1 }, jobsByKey: { a: 1, b: 1, c: 1 } })
    }))

  it("answers 429 with Retry-After", () =>
    withFake({ ratio429: 1, retryAfter: 7 }, async (fake) => {
      const limited = await post(fake, "k", body())
      expect(limited.status).toBe(429)
      expect(limited.headers.get("retry-after")).toBe("7")
      expect(fake.counters()).toMatchObject({ jobsCreated: 0, injected: { status429: 1 } })
    }))

  it("a burst of 503s hits the first requests of every window", () =>
    withFake({ burst5xx: { every: 3, length: 1 } }, async (fake) => {
      const statuses: Array<number> = []
      for (let i = 0; i < 6; i++) statuses.push((await get(fake, "j_000001")).status)
      expect(statuses).toEqual([503, 404, 404, 503, 404, 404])
      expect(fake.counters().injected.status5xx).toBe(2)
    }))

  it("a dropped connection makes fetch reject and creates nothing", () =>
    withFake({ dropRatio: 1 }, async (fake) => {
      await expect(post(fake, "k", body())).rejects.toThrow()
      expect(fake.counters()).toMatchObject({ submits: 0, jobsCreated: 0, injected: { dropped: 1 } })
    }))

  it("a lost answer leaves the job behind; a retry with the same key finds it", () =>
    // With seed 1 the first two answers are lost and the third arrives.
    withFake({ lostAnswerRatio: 0.5, seed: 1 }, async (fake) => {
      let lost = 0
      let answer: Response | undefined
      for (let attempt = 0; attempt < 5 && answer === undefined; attempt++) {
        answer = await post(fake, "k", body()).catch(() => {
          lost++
          return undefined
        })
      }
      expect(lost).toBeGreaterThan(0)
      expect(answer?.status).toBe(200)
      if (answer !== undefined) expect((await read(SubmitResponse, answer)).job_id).toBe("j_000001")
      expect(fake.counters()).toMatchObject({ jobsCreated: 1, duplicateSubmits: lost, injected: { lostAnswer: lost } })
    }))

  it("a malformed answer is not JSON", () =>
    withFake({ malformedRatio: 1 }, async (fake) => {
      const answer = await post(fake, "k", body())
      expect(answer.status).toBe(200)
      const text = await answer.text()
      expect(() => JSON.parse(text)).toThrow()
    }))

  it("a slow answer arrives after slowMs", () =>
    withFake({ slowRatio: 1, slowMs: 150 }, async (fake) => {
      const started = Date.now()
      expect((await post(fake, "k", body())).status).toBe(202)
      expect(Date.now() - started).toBeGreaterThanOrEqual(140)
      expect(fake.counters().injected.slow).toBe(1)
    }))

  it("never injects faults on /_fake routes; reset starts over", () =>
    withFake({ dropRatio: 1 }, async (fake) => {
      expect((await fetch(`${fake.url}/_fake/counters`)).status).toBe(200)
      await expect(get(fake, "j_000001")).rejects.toThrow()
      expect((await fetch(`${fake.url}/_fake/reset`, { method: "POST" })).status).toBe(200)
      expect(fake.counters().injected.dropped).toBe(0)
    }))
})

describe("fake secutools state file", () => {
  const withDir = async (use: (dir: string) => Promise<void>) => {
    const dir = mkdtempSync(join(tmpdir(), "fake-secutools-state-"))
    try {
      await use(dir)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }

  it("a restarted stand-in answers for the jobs of the one before: same job, ids counting on, end times kept", () =>
    withDir(async (dir) => {
      const stateFile = join(dir, "state.json")
      let now = Date.parse("2026-11-25T08:00:00Z")
      const clock = () => now
      let jobId = ""
      await withFake({ durationMs: 1000, stateFile, now: clock }, async (fake) => {
        jobId = (await read(SubmitResponse, await post(fake, "k1", body({ prompt: "write a poem" })))).job_id
        expect(jobId).toBe("j_000001")
        expect(existsSync(stateFile)).toBe(true)
      })
      now += 400
      // Another duration and another seed: a job made before keeps its own end time and outcome.
      await withFake({ durationMs: 60_000, seed: 99, stateFile, now: clock }, async (fake) => {
        expect(await read(JobView, await get(fake, jobId))).toMatchObject({ job_id: jobId, status: "running" })
        const again = await post(fake, "k1", body({ prompt: "another body" }))
        expect(again.status).toBe(200)
        expect((await read(SubmitResponse, again)).job_id).toBe(jobId)
        const next = await read(SubmitResponse, await post(fake, "k2", body({ task_id: "t2" })))
        expect(next.job_id).toBe("j_000002")
        now += 1000
        expect(await read(JobView, await get(fake, jobId))).toMatchObject({
          status: "completed",
          result: "gemini says: write a poem",
          created_at: "2026-11-25T08:00:00.000Z",
          finished_at: "2026-11-25T08:00:01.000Z"
        })
        expect(fake.counters()).toMatchObject({ jobsCreated: 2, jobsByKey: { k1: 1, k2: 1 } })
      })
      // Replaced by rename: no temporary file stays behind.
      expect(readdirSync(dir)).toStrictEqual(["state.json"])
      expect(JSON.parse(readFileSync(stateFile, "utf8")).jobs).toHaveLength(2)
    }))

  it("a job created on a real clock completes after the restart", () =>
    withDir(async (dir) => {
      const stateFile = join(dir, "state.json")
      let jobId = ""
      await withFake({ durationMs: 300, stateFile }, async (fake) => {
        jobId = (await read(SubmitResponse, await post(fake, "k", body()))).job_id
      })
      await withFake({ durationMs: 300, stateFile }, async (fake) => {
        expect((await settle(fake, jobId)).status).toBe("completed")
      })
    }))

  it("a state file that cannot be used stops the start, naming the file", () =>
    withDir(async (dir) => {
      const stateFile = join(dir, "state.json")
      writeFileSync(stateFile, "{\"version\": 1, \"jobs\": [{\"id\": 3}]}")
      await expect(startFakeSecutools({ apiKey: API_KEY, stateFile })).rejects.toThrow(stateFile)
    }))

  it("reset empties the file too", () =>
    withDir(async (dir) => {
      const stateFile = join(dir, "state.json")
      await withFake({ stateFile }, async (fake) => {
        await post(fake, "k", body())
        await fetch(`${fake.url}/_fake/reset`, { method: "POST" })
      })
      expect(JSON.parse(readFileSync(stateFile, "utf8")).jobs).toStrictEqual([])
    }))

  it.live("SECUTOOLS_MODE=fake keeps its jobs in <QUEUE_DIR>/.fake-secutools.json across a daemon restart", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "fake-secutools-queue-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      const config = Result.getOrThrow(resolveConfig({ QUEUE_DIR: dir, SECUTOOLS_MODE: "fake" }))
      expect(fakeStateFile(config)).toBe(join(dir, ".fake-secutools.json"))
      // Each provide builds the layer afresh and closes it afterwards: a new stand-in on a new port, as after a restart.
      const standIn = () => SecutoolsFromConfig(config).pipe(Layer.fresh, Layer.provide(Logger.layer([])))
      const submitted = yield* Secutools.use((s) => s.submit({ task_id: "t", provider: "gpu", prompt: "p" }, "key-1"))
        .pipe(
          Effect.provide(standIn())
        )
      expect(existsSync(fakeStateFile(config))).toBe(true)
      const job = yield* Secutools.use((s) => s.get(submitted.job_id)).pipe(Effect.provide(standIn()))
      expect(job.job_id).toBe(submitted.job_id)
      const again = yield* Secutools.use((s) => s.submit({ task_id: "t", provider: "gpu", prompt: "p" }, "key-1")).pipe(
        Effect.provide(standIn())
      )
      expect(again.job_id).toBe(submitted.job_id)
    }))
})
