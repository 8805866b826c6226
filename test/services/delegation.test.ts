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
    yield* store.write("pending", name, text)
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
      yield* store.write("pending", name, "Summarise the logs.\n")
      yield* delegation.start(Result.getOrThrow(parseTask(name, "Summarise the logs.\n")), "gemini", "preferred_provider")

      // Nothing has been sent yet, and everything needed to resume is on disk.
      expect(yield* secutools.jobs).toStrictEqual([])
      const written = Option.getOrThrow(yield* markerOf)
      expect(written).toMatchObject({ task: "job.md", provider: "gemini", state: "submitting", job_id: null, polls: 0 })
      expect((yield* taskIn("pending")).fields).toMatchObject({ state: "delegated_to_secutools", provider: "gemini", attempts: 1 })

      yield* Effect.forkChild(delegation.run)
      yield* TestClock.adjust(Duration.millis(10))
      const jobs = yield* secutools.jobs
      expect(jobs.map((job) => job.request)).toStrictEqual([
        { task_id: "job", provider: "gemini", prompt: "Summarise the logs.\n", metadata: { task: "job.md", attempt: "1" } }
      ])
      const submitted = Option.getOrThrow(yield* markerOf)
      expect(submitted).toMatchObject({ state: "submitted", job_id: jobs[0]?.job_id, idempotency_key: written.idempotency_key })
      expect((yield* taskIn("pending")).fields.job_id).toBe(jobs[0]?.job_id)
      expect((yield* delegation.status).counters).toMatchObject({ submitted: 1, active: 1 })
    }).pipe(Effect.provide(testLayer())))

  it.effect("a completed job ends in done/ with provider, cost and job in frontmatter, the result and a footer", () =>
    Effect.gen(function*() {
      const delegation = yield* delegated()
      const secutools = yield* MemorySecutoolsControl
      // The reaper polled once at start and again every REAP_INTERVAL (5s): 0, 5, …, 35s.
      yield* TestClock.adjust(Duration.seconds(36))
      expect(Option.getOrThrow(yield* markerOf).polls).toBe(8)

      yield* secutools.finish("j_1", "completed", { result: "All quiet.\n", cost_usd: 0.0042 })
      yield* TestClock.adjust(Duration.seconds(5))
      const store = yield* TaskStore
      expect(yield* store.list("pending")).toStrictEqual([])
      expect(Option.isNone(yield* markerOf)).toBe(true)
      const done = yield* taskIn("done")
      expect(done.fields).toMatchObject({ state: "done", provider: "gemini", job_id: "j_1", cost_usd: 0.0042, complexity_hint: "high" })
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
      yield* TestClock.adjust(Duration.seconds(5))
      expect((yield* taskIn("failed")).body).toContain("Reason: secutools no longer knows job j_gone (HTTP 404)")
    }).pipe(Effect.provide(testLayer())))

  it.effect("resuming a `submitting` marker sends the same key: secutools returns the job it already has", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* TaskStore
      const delegation = yield* Delegation
      const secutools = yield* Secutools
      yield* store.write("pending", name, "Summarise the logs.\n")
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
      const first = yield* secutools.submit({ task_id: "job", provider: "gpu", prompt: "Summarise the logs.\n" }, "job-key-1")

      yield* delegation.resume
      yield* Effect.forkChild(delegation.run)
      yield* TestClock.adjust(Duration.millis(10))
      expect((yield* (yield* MemorySecutoolsControl).jobs).map((job) => job.job_id)).toStrictEqual([first.job_id])
      expect(Option.getOrThrow(yield* markerOf)).toMatchObject({ state: "submitted", job_id: first.job_id })
      // The state the crash kept from being written is written now, attempts counted once.
      expect((yield* taskIn("pending")).fields).toMatchObject({ state: "delegated_to_secutools", provider: "gpu", attempts: 1 })
    }).pipe(Effect.provide(testLayer())))

  it.effect("resume removes a marker whose task is no longer pending", () =>
    Effect.gen(function*() {
      const store = yield* TaskStore
      yield* store.write("done", name, "Finished.\n")
      yield* store.writeMarker(name, {
        task: name,
        provider: "gpu",
        idempotency_key: "k",
        state: "submitted",
        job_id: "j_9",
        created_at: "2026-11-25T07:59:00Z",
        submitted_at: "2026-11-25T07:59:01Z",
        polls: 3
      })
      yield* (yield* Delegation).resume
      expect(yield* store.listMarkers()).toStrictEqual([])
      expect(yield* store.list("done")).toStrictEqual(["job.md"])
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
      yield* store.write("pending", name, text)
      yield* delegation.start(Result.getOrThrow(parseTask(name, text)), "gemini", "preferred_provider")
      yield* Effect.forkChild(delegation.run)
      yield* TestClock.adjust(Duration.millis(10))

      expect(yield* store.listMarkers()).toStrictEqual([])
      const task = yield* taskIn("pending")
      expect(task.fields).toMatchObject({ state: "pending", allow_delegation: false, attempts: 1, preferred_ai: "gemini" })
      expect(task.fields.provider).toBeUndefined()
      expect(task.fields.last_failover).toBe("delegation to gemini failed: submit job: HTTP 422: unknown model; runs locally")
      expect((yield* delegation.status).counters).toMatchObject({ rejected: 1, submitted: 0, active: 0 })
    }).pipe(
      Effect.provide(
        DelegationLayer(delegationSettings()).pipe(
          Layer.provideMerge(Layer.mergeAll(rejecting, DelegationCountersRef.layer, MemoryTaskStoreLayer))
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
        : Effect.succeed({ job_id: jobId, status: "completed", provider: "gpu", created_at: "2026-11-25T08:00:00Z", result: "ok" })
  })

  it.effect("a job whose poll hangs holds back no job submitted later, and is not polled twice at once", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* TaskStore
      const delegation = yield* Delegation
      const submit = (stem: string) =>
        Effect.gen(function*() {
          const taskName = TaskName.make(`${stem}.md`)
          yield* store.write("pending", taskName, "Work.\n")
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
      expect(Option.getOrThrow(yield* store.readMarker(TaskName.make("slow.md"))).polls).toBe(0)
    }).pipe(
      Effect.provide(
        DelegationLayer(delegationSettings({ reapConcurrency: 2 })).pipe(
          Layer.provideMerge(Layer.mergeAll(slowAndFast, DelegationCountersRef.layer, MemoryTaskStoreLayer))
        )
      )
    ))
})
