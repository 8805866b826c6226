import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import { isTerminalJob, JobEvent, type JobState, JobStates, transitionJob } from "../../src/domain/job.ts"
import { isTerminal, stateOf, TaskEvent, transition } from "../../src/domain/lifecycle.ts"
import { Providers } from "../../src/domain/provider.ts"
import { type TaskFields, type TaskState, TaskStates } from "../../src/domain/task.ts"
import { RUNS, taskFields } from "./arbitraries.ts"

const at = "2026-11-24T10:00:00.000Z"

const taskEvent: fc.Arbitrary<TaskEvent> = fc.oneof(
  fc.string({ minLength: 1, maxLength: 10 }).map((session) => TaskEvent.Assign({ session, at })),
  fc.constantFrom(...Providers).map((provider) => TaskEvent.Delegate({ provider, at })),
  fc.record({ costUsd: fc.double({ min: 0, max: 10, noNaN: true }) }).map(({ costUsd }) =>
    TaskEvent.Complete({ at, costUsd })
  ),
  fc.constant(TaskEvent.Fail({ at })),
  fc.constant(TaskEvent.Start({ at })),
  fc.string({ maxLength: 20 }).map((note) => TaskEvent.Requeue({ at, note }))
)

/** Applies events in order, skipping the illegal ones; returns every state passed through. */
const run = (start: TaskFields, events: ReadonlyArray<TaskEvent>): ReadonlyArray<TaskFields> =>
  events.reduce<Array<TaskFields>>((trail, event) => {
    const current = trail[trail.length - 1] ?? start
    const next = transition(current, event)
    return Result.isSuccess(next) ? [...trail, next.success] : trail
  }, [start])

const allTaskEvents: ReadonlyArray<TaskEvent> = [
  TaskEvent.Assign({ session: "claude-1", at }),
  TaskEvent.Delegate({ provider: "gemini", at }),
  TaskEvent.Complete({ at }),
  TaskEvent.Fail({ at }),
  TaskEvent.Start({ at }),
  TaskEvent.Requeue({ at, note: "usage limit" })
]

describe("task lifecycle", () => {
  it("terminal states have no exits", () => {
    fc.assert(
      fc.property(taskFields, fc.constantFrom<TaskState>("done", "failed"), taskEvent, (fields, state, event) => {
        expect(Result.isFailure(transition({ ...fields, state }, event))).toBe(true)
      }),
      RUNS
    )
  })

  it("attempts never decreases, and rises by exactly one per start", () => {
    fc.assert(
      fc.property(taskFields, fc.array(taskEvent, { maxLength: 30 }), (fields, events) => {
        const trail = run(fields, events)
        for (let i = 1; i < trail.length; i++) {
          const before = trail[i - 1]?.attempts ?? 0
          const after = trail[i]?.attempts ?? 0
          const running = (fields: TaskFields | undefined) =>
            ["assigned", "delegated_to_secutools"].includes(stateOf(fields ?? {}))
          const started = running(trail[i]) && !running(trail[i - 1])
          expect(after).toBe(started ? before + 1 : before)
        }
      }),
      RUNS
    )
  })

  it("every reachable state can reach a terminal state", () => {
    const canFinish = (fields: TaskFields, depth: number): boolean =>
      isTerminal(stateOf(fields)) ||
      (depth > 0 &&
        allTaskEvents.some((event) => {
          const next = transition(fields, event)
          return Result.isSuccess(next) && canFinish(next.success, depth - 1)
        }))
    fc.assert(
      fc.property(fc.array(taskEvent, { maxLength: 30 }), (events) => {
        const trail = run({}, events)
        for (const fields of trail) expect(canFinish(fields, 2)).toBe(true)
      }),
      RUNS
    )
  })

  it("only the documented transitions are legal", () => {
    const legal = new Set<string>()
    for (const state of TaskStates) {
      for (const event of allTaskEvents) {
        if (Result.isSuccess(transition({ state }, event))) legal.add(`${state} -${event._tag}-> ${stateOf(Result.getOrThrow(transition({ state }, event)))}`)
      }
    }
    expect([...legal].sort()).toStrictEqual([
      "assigned -Complete-> done",
      "assigned -Fail-> failed",
      "assigned -Requeue-> pending",
      "assigned -Start-> assigned",
      "delegated_to_secutools -Complete-> done",
      "delegated_to_secutools -Fail-> failed",
      "delegated_to_secutools -Requeue-> pending",
      "pending -Assign-> assigned",
      "pending -Delegate-> delegated_to_secutools"
    ])
  })

  it("assign records the session and time; requeue sheds them and keeps the note", () => {
    const assigned = Result.getOrThrow(transition({ attempts: 2 }, TaskEvent.Assign({ session: "claude-2", at })))
    expect(assigned).toStrictEqual({ state: "assigned", session: "claude-2", assigned_at: at, attempts: 3 })
    const requeued = Result.getOrThrow(transition(assigned, TaskEvent.Requeue({ at, note: "claude-2 hit its usage limit" })))
    expect(requeued).toStrictEqual({ state: "pending", attempts: 3, last_failover: "claude-2 hit its usage limit" })
  })

  it("an illegal transition says what was refused", () => {
    const refused = transition({ state: "done" }, TaskEvent.Assign({ session: "claude-1", at }))
    expect(Result.isFailure(refused) && refused.failure.message).toBe("a task in state 'done' cannot take 'Assign'")
  })
})

const jobEvent: fc.Arbitrary<JobEvent> = fc.oneof(
  fc.string({ minLength: 1, maxLength: 8 }).map((jobId) => JobEvent.Submitted({ jobId })),
  fc.constantFrom("queued", "running", "completed", "failed", "cancelled" as const).map((status) =>
    JobEvent.Observed({ status })
  ),
  fc.string({ maxLength: 10 }).map((reason) => JobEvent.Rejected({ reason }))
)

const allJobEvents: ReadonlyArray<JobEvent> = [
  JobEvent.Submitted({ jobId: "j_1" }),
  JobEvent.Rejected({ reason: "400" }),
  ...(["queued", "running", "completed", "failed", "cancelled"] as const).map((status) => JobEvent.Observed({ status }))
]

describe("delegated job lifecycle", () => {
  const runJob = (events: ReadonlyArray<JobEvent>): ReadonlyArray<JobState> =>
    events.reduce<Array<JobState>>((trail, event) => {
      const next = transitionJob(trail[trail.length - 1] ?? "submitting", event)
      return Result.isSuccess(next) ? [...trail, next.success] : trail
    }, ["submitting"])

  it("terminal states have no exits", () => {
    fc.assert(
      fc.property(fc.constantFrom(...JobStates.filter(isTerminalJob)), jobEvent, (state, event) => {
        expect(Result.isFailure(transitionJob(state, event))).toBe(true)
      }),
      RUNS
    )
  })

  it("every reachable state can reach a terminal state", () => {
    const canFinish = (state: JobState, depth: number): boolean =>
      isTerminalJob(state) ||
      (depth > 0 && allJobEvents.some((event) => {
        const next = transitionJob(state, event)
        return Result.isSuccess(next) && canFinish(next.success, depth - 1)
      }))
    fc.assert(
      fc.property(fc.array(jobEvent, { maxLength: 20 }), (events) => {
        for (const state of runJob(events)) expect(canFinish(state, 2)).toBe(true)
      }),
      RUNS
    )
  })

  it("a job is polled only after it was submitted", () => {
    fc.assert(
      fc.property(fc.array(jobEvent, { maxLength: 20 }), (events) => {
        const trail = runJob(events)
        const firstObserved = trail.findIndex((state) => ["queued", "running", "completed", "failed", "cancelled"].includes(state))
        if (firstObserved > 0) expect(trail.slice(0, firstObserved)).toContain("submitted")
      }),
      RUNS
    )
  })

  it("submitting resolves only by a submission or a rejection", () => {
    expect(Result.getOrThrow(transitionJob("submitting", JobEvent.Submitted({ jobId: "j" })))).toBe("submitted")
    expect(Result.getOrThrow(transitionJob("submitting", JobEvent.Rejected({ reason: "400" })))).toBe("rejected")
    expect(Result.isFailure(transitionJob("submitting", JobEvent.Observed({ status: "completed" })))).toBe(true)
    expect(Result.getOrThrow(transitionJob("running", JobEvent.Observed({ status: "queued" })))).toBe("queued")
  })
})
