/** Delegation and the reaper on in-memory ports: marker first, submit, poll, finish; resume after a crash. */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Option, Result } from "effect"
import { TestClock } from "effect/testing"
import { MemorySecutoolsControl } from "../../src/adapters/memory-secutools.ts"
import { MemoryTaskStoreLayer } from "../../src/adapters/memory-task-store.ts"
import type { DelegationMarker } from "../../src/domain/marker.ts"
import { parseTask, TaskName } from "../../src/domain/task.ts"
import { Secutools, SecutoolsError } from "../../src/ports/secutools.ts"
import { type Stage, TaskStore } from "../../src/ports/task-store.ts"
import {
  Delegation,
  DelegationCountersRef,
  DelegationLayer,
  type DelegationSettings
} from "../../src/services/delegation.ts"
import { TaskLocks } from "../../src/services/task-locks.ts"
import { delegationSettings, memoryDelegation } from "./delegation-layers.ts"

const START = Date.parse("2026-11-25T08:00:00Z")
const name = TaskName.make("job.md")

const testLayer = (overrides: Partial<DelegationSettings> = {}) =>
  memoryDelegation(overrides).pipe(Layer.provideMerge(MemoryTaskStoreLayer))

const taskIn = (stage: Stage) =>
  Effect.gen(function*() {
    const stored = yield* (yield* TaskStore).read(stage, name)
    return Result.getOrThrow(parseTask(name, stored.text))
  })

const markerOf = TaskStore.use((store) => store.readMarker(name))

/** Writes job.md, delegates it to gemini and lets the submitter run. */
const delegated = (text = "---\ncomplexity_hint: high\nowner: ops\n---\nSummarise the logs.\n") =>
  Effect.gen(function*() {
    yield* TestClock.setTime(START)
    const store = yield* TaskStore
    const delegation = yield* Delegation
    yield* store.create("pending", name, text)
    yield* delegation.start(Result.getOrThrow(parseTask(name, text)), "gemini", "preferred_provider")
    yield* Effect.forkChild(delegation.run)
    yield* TestClock.adjust(Duration.millis(10))
    return delegation
  })

describe("delegation", () => {
  it.effect("writes the marker and the task's state before submitting, then records the job", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* TaskStore
      const delegation = yield* Delegation
      const secutools = yield* MemorySecutoolsControl
      yield* store.create("pending", name, "Summarise the logs.\n")
      yield* delegation.start(
        Result.getOrThrow(parseTask(name, "Summarise the logs.\n")),
        "gemini",
        "preferred_provider"
      )

      // Nothing has been sent yet, and everything needed to resume is on disk.
      expect(yield* secutools.jobs).toStrictEqual([])
      const written = Option.getOrThrow(yield* markerOf)
      expect(written).toMatchObject({ task: "job.md", provider: "gemini", state: "submitting", job_id: null, polls: 0 })
      expect((yield* taskIn("pending")).fields).toMatchObject({
        state: "delegated_to_secutools",
        provider: "gemini",
        attempts: 1
      })

      yield* Effect.forkChild(delegation.run)
      yield* TestClock.adjust(Duration.millis(10))
      const jobs = yield* secutools.jobs
      expect(jobs.map((job) => job.request)).toStrictEqual([
        {
          task_id: "job",
          provider: "gemini",
          prompt: "Summarise the logs.\n",
          metadata: { task: "job.md", attempt: "1", run: written.run }
        }
      ])
      expect((yield* taskIn("pending")).fields.run).toBe(written.run)
      const submitted = Option.getOrThrow(yield* markerOf)
      expect(submitted).toMatchObject({
        state: "submitted",
        job_id: jobs[0]?.job_id,
        idempotency_key: written.idempotency_key
      })
      // The file learns its job id when the job ends; until then the marker holds it (one write fewer per task).
      expect((yield* taskIn("pending")).fields.job_id).toBeUndefined()
      expect((yield* delegation.status).counters).toMatchObject({ submitted: 1, active: 1 })
    }).pipe(Effect.provide(testLayer())))

  it.effect("a completed job ends in done/ with provider, cost and job in frontmatter, the result and a footer", () =>
    Effect.gen(function*() {
      const delegation = yield* delegated()
      const secutools = yield* MemorySecutoolsControl
      // The reaper polled once at start and again every REAP_INTERVAL (5s): 0, 5, …, 35s.
      yield* TestClock.adjust(Duration.seconds(36))
      // Counted in memory (a poll writes nothing to disk); the marker on disk keeps the count of its last write.
      expect((yield* delegation.status).active.map((job) => job.polls)).toStrictEqual([8])
      expect(Option.getOrThrow(yield* markerOf).polls).toBe(0)

      yield* secutools.finish("j_1", "completed", { result: "All quiet.\n", cost_usd: 0.0042 })
      yield* TestClock.adjust(Duration.seconds(5))
      const store = yield* TaskStore
      expect(yield* store.list("pending")).toStrictEqual([])
      expect(Option.isNone(yield* markerOf)).toBe(true)
      const done = yield* taskIn("done")
      expect(done.fields).toMatchObject({
        state: "done",
        provider: "gemini",
        job_id: "j_1",
        cost_usd: 0.0042,
        complexity_hint: "high"
      })
      expect(done.extra).toStrictEqual([["owner", "ops"]])
      expect(done.body).toMatch(/^Summarise the logs.\n\n+## Result \(gemini\)\n\nAll quiet.\n/)
      expect(done.body).toMatch(/claude-failover: done · \S+ · provider gemini · job j_1 · cost \$0\.0042 · took 40s/)
      expect((yield* delegation.status).counters).toMatchObject({ submitted: 1, completed: 1, active: 0 })
    }).pipe(Effect.provide(testLayer())))

  it.effect("a failed or cancelled job ends in failed/ with the provider's error", () =>
    Effect.gen(function*() {
      const delegation = yield* delegated()
      yield* (yield* MemorySecutoolsControl).finish("j_1", "failed", { error: "gemini: model refused the task" })
      yield* TestClock.adjust(Duration.seconds(5))
      const failed = yield* taskIn("failed")
      expect(failed.fields).toMatchObject({ state: "failed", provider: "gemini", job_id: "j_1" })
      expect(failed.body).toContain("Reason: gemini: model refused the task")
      expect(Option.isNone(yield* markerOf)).toBe(true)
      expect((yield* delegation.status).counters).toMatchObject({ failed: 1, active: 0 })
    }).pipe(Effect.provide(testLayer())))

  it.effect("a job still running after SECUTOOLS_JOB_TIMEOUT fails, saying so", () =>
    Effect.gen(function*() {
      yield* delegated()
      yield* TestClock.adjust(Duration.minutes(59))
      expect(Option.isSome(yield* markerOf)).toBe(true)
      yield* TestClock.adjust(Duration.minutes(2))
      expect((yield* taskIn("failed")).body).toContain("Reason: job j_1 was still queued after 1h")
    }).pipe(Effect.provide(testLayer({ jobTimeout: Duration.hours(1) }))))

  it.effect("a task removed from pending/ while its job ran: once the job ends, the reaper drops the marker", () =>
    Effect.gen(function*() {
      yield* delegated()
      yield* (yield* TaskStore).remove("pending", name)
      yield* (yield* MemorySecutoolsControl).finish("j_1", "completed", { result: "ok" })
      yield* TestClock.adjust(Duration.seconds(5))
      expect(Option.isNone(yield* markerOf)).toBe(true)
    }).pipe(Effect.provide(testLayer())))

  it.effect("a job secutools no longer knows (HTTP 404) fails the task, saying so", () =>
    Effect.gen(function*() {
      yield* delegated()
      const store = yield* TaskStore
      const marker = Option.getOrThrow(yield* markerOf)
      yield* store.writeMarker(name, { ...marker, job_id: "j_gone" })
      // Markers are read from disk at start-up: the one written here is what a restarted daemon would find.
      yield* (yield* Delegation).load
      yield* TestClock.adjust(Duration.seconds(5))
      expect((yield* taskIn("failed")).body).toContain("Reason: secutools no longer knows job j_gone (HTTP 404)")
    }).pipe(Effect.provide(testLayer())))

  it.effect("resuming a `submitting` marker sends the same key: secutools returns the job it already has", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* TaskStore
      const delegation = yield* Delegation
      const secutools = yield* Secutools
      yield* store.create("pending", name, "Summarise the logs.\n")
      // The crash came after secutools accepted the job but before the marker said so.
      const marker: DelegationMarker = {
        task: name,
        provider: "gpu",
        idempotency_key: "job-key-1",
        state: "submitting",
        job_id: null,
        created_at: "2026-11-25T07:59:00Z",
        submitted_at: null,
        polls: 0
      }
      yield* store.writeMarker(name, marker)
      const first = yield* secutools.submit(
        { task_id: "job", provider: "gpu", prompt: "Summarise the logs.\n" },
        "job-key-1"
      )

      yield* delegation.resume
      yield* Effect.forkChild(delegation.run)
      yield* TestClock.adjust(Duration.millis(10))
      expect((yield* (yield* MemorySecutoolsControl).jobs).map((job) => job.job_id)).toStrictEqual([first.job_id])
      expect(Option.getOrThrow(yield* markerOf)).toMatchObject({ state: "submitted", job_id: first.job_id })
      // The state the crash kept from being written is written now, attempts counted once.
      expect((yield* taskIn("pending")).fields).toMatchObject({
        state: "delegated_to_secutools",
        provider: "gpu",
        attempts: 1
      })
    }).pipe(Effect.provide(testLayer())))
})

const rejecting = Layer.succeed(Secutools, {
  submit: (request) =>
    Effect.fail(
      new SecutoolsError({
        operation: `submit ${request.task_id}`,
        reason: { _tag: "Status", status: 422, body: "unknown model" }
      })
    ),
  get: () => Effect.die("not submitted")
})

describe("a submission that fails for good", () => {
  it.effect("returns the task to local routing, pinned there, with the reason; the marker goes", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* TaskStore
      const delegation = yield* Delegation
      const text = "---\npreferred_ai: gemini\n---\nSummarise the logs.\n"
      yield* store.create("pending", name, text)
      yield* delegation.start(Result.getOrThrow(parseTask(name, text)), "gemini", "preferred_provider")
      yield* Effect.forkChild(delegation.run)
      yield* TestClock.adjust(Duration.millis(10))

      expect(yield* store.listMarkers()).toStrictEqual([])
      const task = yield* taskIn("pending")
      expect(task.fields).toMatchObject({
        state: "pending",
        allow_delegation: false,
        attempts: 1,
        preferred_ai: "gemini"
      })
      expect(task.fields.provider).toBeUndefined()
      expect(task.fields.history?.at(-1)).toMatchObject({
        event: "requeued",
        cause: "delegation_rejected",
        provider: "gemini",
        reason: "delegation to gemini failed: submit job: HTTP 422: unknown model; runs locally"
      })
      expect((yield* delegation.status).counters).toMatchObject({ rejected: 1, submitted: 0, active: 0 })
    }).pipe(
      Effect.provide(
        DelegationLayer(delegationSettings()).pipe(
          Layer.provideMerge(
            Layer.mergeAll(rejecting, DelegationCountersRef.layer, MemoryTaskStoreLayer, TaskLocks.layer)
          )
        )
      )
    ))
})

describe("the reaper", () => {
  const slowAndFast = Layer.succeed(Secutools, {
    submit: (request) => Effect.succeed({ job_id: request.task_id, status: "queued" }),
    get: (jobId) =>
      jobId === "slow"
        ? Effect.never
        : Effect.succeed({
          job_id: jobId,
          status: "completed",
          provider: "gpu",
          created_at: "2026-11-25T08:00:00Z",
          result: "ok"
        })
  })

  it.effect("a job whose poll hangs holds back no job submitted later, and is not polled twice at once", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* TaskStore
      const delegation = yield* Delegation
      const submit = (stem: string) =>
        Effect.gen(function*() {
          const taskName = TaskName.make(`${stem}.md`)
          yield* store.create("pending", taskName, "Work.\n")
          yield* delegation.start(Result.getOrThrow(parseTask(taskName, "Work.\n")), "gpu", "preferred_provider")
        })
      yield* Effect.forkChild(delegation.run)
      yield* submit("slow")
      yield* TestClock.adjust(Duration.seconds(10))
      yield* submit("fast")
      yield* TestClock.adjust(Duration.seconds(10))
      expect(yield* store.list("done")).toStrictEqual(["fast.md"])
      expect(yield* store.listMarkers()).toStrictEqual(["slow.md"])
      // Four rounds went by; the hanging poll was never started again beside itself, so it counted no poll.
      const slow = (yield* (yield* Delegation).status).active.find((job) => job.task === "slow.md")
      expect(slow?.polls).toBe(0)
    }).pipe(
      Effect.provide(
        DelegationLayer(delegationSettings({ reapConcurrency: 2 })).pipe(
          Layer.provideMerge(
            Layer.mergeAll(slowAndFast, DelegationCountersRef.layer, MemoryTaskStoreLayer, TaskLocks.layer)
          )
        )
      )
    ))
})

/** A secutools whose submissions get no definite answer while `down`, then behaves; counts the jobs it made. */
const flaky = (state: { down: boolean; jobs: Map<string, string>; polls: number; poll: "ok" | "401" | "huge" }) =>
  Layer.succeed(Secutools, {
    submit: (request, key) => {
      if (state.down) {
        return Effect.fail(
          new SecutoolsError({ operation: `submit ${request.task_id}`, reason: { _tag: "Timeout", afterMs: 10_000 } })
        )
      }
      const jobId = state.jobs.get(key) ?? `j_${state.jobs.size + 1}`
      state.jobs.set(key, jobId)
      return Effect.succeed({ job_id: jobId, status: "queued" as const })
    },
    get: (jobId) => {
      state.polls++
      if (state.poll === "401") {
        return Effect.fail(
          new SecutoolsError({ operation: `get ${jobId}`, reason: { _tag: "Status", status: 401, body: "bad key" } })
        )
      }
      if (state.poll === "huge") {
        return Effect.fail(
          new SecutoolsError({ operation: `get ${jobId}`, reason: { _tag: "TooLarge", limitBytes: 8 * 1024 * 1024 } })
        )
      }
      return Effect.succeed({
        job_id: jobId,
        status: "running" as const,
        provider: "gpu",
        created_at: "2026-11-25T08:00:00Z"
      })
    }
  })

const flakyLayer = (state: Parameters<typeof flaky>[0], overrides: Partial<DelegationSettings> = {}) =>
  DelegationLayer(delegationSettings(overrides)).pipe(
    Layer.provideMerge(Layer.mergeAll(flaky(state), DelegationCountersRef.layer, MemoryTaskStoreLayer, TaskLocks.layer))
  )

describe("a submission whose answer may have been lost", () => {
  it.effect("keeps its marker and key, never runs locally, and is asked again later with the same key", () => {
    const state = { down: true, jobs: new Map<string, string>(), polls: 0, poll: "ok" as const }
    return Effect.gen(function*() {
      const delegation = yield* delegated("Summarise the logs.\n")
      const first = Option.getOrThrow(yield* markerOf)
      expect(first).toMatchObject({
        state: "submitting",
        submit_attempts: 1,
        last_error: "submit job: no answer within 10000ms"
      })
      expect((yield* taskIn("pending")).fields).toMatchObject({ state: "delegated_to_secutools", provider: "gemini" })
      // Still unreachable at the second try (30 s later); the third (60 s after that) finds it back.
      yield* TestClock.adjust(Duration.seconds(31))
      expect(Option.getOrThrow(yield* markerOf).submit_attempts).toBe(2)
      state.down = false
      yield* TestClock.adjust(Duration.seconds(61))
      const submitted = Option.getOrThrow(yield* markerOf)
      expect(submitted).toMatchObject({ state: "submitted", job_id: "j_1", idempotency_key: first.idempotency_key })
      expect([...state.jobs.keys()]).toStrictEqual([first.idempotency_key])
      expect((yield* delegation.status).counters).toMatchObject({ rejected: 0, submitted: 1 })
    }).pipe(Effect.provide(flakyLayer(state)))
  })

  it.effect("with no definite answer by SECUTOOLS_JOB_TIMEOUT it fails, naming the key, and still never runs locally", () => {
    const state = { down: true, jobs: new Map<string, string>(), polls: 0, poll: "ok" as const }
    return Effect.gen(function*() {
      yield* delegated("Summarise the logs.\n")
      const key = Option.getOrThrow(yield* markerOf).idempotency_key
      yield* TestClock.adjust(Duration.hours(2))
      const failed = yield* taskIn("failed")
      expect(failed.body).toContain(`a job may exist under idempotency key ${key}, so it does not run locally`)
      expect(Option.isNone(yield* markerOf)).toBe(true)
      expect(yield* (yield* TaskStore).list("pending")).toStrictEqual([])
    }).pipe(Effect.provide(flakyLayer(state, { jobTimeout: Duration.hours(1) })))
  })
})

describe("the reaper's bounds", () => {
  it.effect("a job every poll of which fails (401) ends at SECUTOOLS_JOB_TIMEOUT instead of being polled forever", () => {
    const state = { down: false, jobs: new Map<string, string>(), polls: 0, poll: "401" as "ok" | "401" | "huge" }
    return Effect.gen(function*() {
      yield* delegated("Summarise the logs.\n")
      yield* TestClock.adjust(Duration.minutes(59))
      expect(Option.isSome(yield* markerOf)).toBe(true)
      yield* TestClock.adjust(Duration.minutes(2))
      expect((yield* taskIn("failed")).body).toContain("could not be polled for 1h (last: get j_1: HTTP 401: bad key)")
    }).pipe(Effect.provide(flakyLayer(state, { jobTimeout: Duration.hours(1) })))
  })

  it.effect("an answer larger than SECUTOOLS_MAX_ANSWER fails the task at once", () => {
    const state = { down: false, jobs: new Map<string, string>(), polls: 0, poll: "huge" as "ok" | "401" | "huge" }
    return Effect.gen(function*() {
      yield* delegated("Summarise the logs.\n")
      yield* TestClock.adjust(Duration.seconds(1))
      expect((yield* taskIn("failed")).body).toContain("larger than")
      expect(state.polls).toBe(1)
    }).pipe(Effect.provide(flakyLayer(state)))
  })

  it.effect("a result for a run the task no longer has is refused: logged, marker dropped, the task untouched", () =>
    Effect.gen(function*() {
      yield* delegated()
      const store = yield* TaskStore
      const marker = Option.getOrThrow(yield* markerOf)
      yield* store.writeMarker(name, { ...marker, run: "r-an-older-run" })
      // Markers are read from disk at start-up: the one written here is what a restarted daemon would find.
      yield* (yield* Delegation).load
      const before = (yield* store.read("pending", name)).text
      yield* (yield* MemorySecutoolsControl).finish("j_1", "completed", { result: "stale" })
      yield* TestClock.adjust(Duration.seconds(5))
      expect(yield* store.list("done")).toStrictEqual([])
      expect((yield* store.read("pending", name)).text).toBe(before)
      expect(Option.isNone(yield* markerOf)).toBe(true)
    }).pipe(Effect.provide(testLayer())))
})
