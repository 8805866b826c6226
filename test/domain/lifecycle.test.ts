import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import { isTerminalJob, JobEvent, type JobState, JobStates, transitionJob } from "../../src/domain/job.ts"
import {
  afterUnfinishedRun,
  isTerminal,
  stateOf,
  TaskEvent,
  transition,
  unfinishedRuns
} from "../../src/domain/lifecycle.ts"
import { Providers } from "../../src/domain/provider.ts"
import {
  makeTask,
  parseTask,
  renderTask,
  type TaskFields,
  TaskName,
  type TaskState,
  TaskStates,
  withFields
} from "../../src/domain/task.ts"
import { RUNS, taskFields } from "./arbitraries.ts"

const at = "2026-11-24T10:00:00.000Z"

const causes = [
  "usage_limit",
  "session_exited",
  "session_gone",
  "not_accepted",
  "stale",
  "never_typed",
  "operator"
] as const

const taskEvent: fc.Arbitrary<TaskEvent> = fc.oneof(
  fc.tuple(fc.string({ minLength: 1, maxLength: 10 }), fc.string({ minLength: 1, maxLength: 8 }))
    .map(([session, run]) => TaskEvent.Assign({ session, at, run })),
  fc.tuple(fc.constantFrom(...Providers), fc.string({ minLength: 1, maxLength: 8 }))
    .map(([provider, run]) => TaskEvent.Delegate({ provider, at, run })),
  fc.record({ costUsd: fc.double({ min: 0, max: 10, noNaN: true }) }).map(({ costUsd }) =>
    TaskEvent.Complete({ at, costUsd })
  ),
  fc.constant(TaskEvent.Fail({ at })),
  fc.constant(TaskEvent.Start({ at })),
  fc.tuple(fc.constantFrom(...causes), fc.string({ maxLength: 20 })).map(([cause, reason]) =>
    TaskEvent.Requeue({ at, cause, reason })
  ),
  fc.tuple(fc.constantFrom(...causes), fc.string({ maxLength: 20 })).map(([cause, reason]) =>
    TaskEvent.Retry({ at, cause, reason })
  ),
  fc.string({ maxLength: 20 }).map((reason) => TaskEvent.Cancel({ at, reason }))
)

/** Applies events in order, skipping the illegal ones; returns every state passed through. */
const run = (start: TaskFields, events: ReadonlyArray<TaskEvent>): ReadonlyArray<TaskFields> =>
  events.reduce<Array<TaskFields>>((trail, event) => {
    const current = trail[trail.length - 1] ?? start
    const next = transition(current, event)
    return Result.isSuccess(next) ? [...trail, next.success] : trail
  }, [start])

const allTaskEvents: ReadonlyArray<TaskEvent> = [
  TaskEvent.Assign({ session: "claude-1", at, run: "r1" }),
  TaskEvent.Delegate({ provider: "gemini", at, run: "r2" }),
  TaskEvent.Complete({ at }),
  TaskEvent.Fail({ at }),
  TaskEvent.Start({ at }),
  TaskEvent.Requeue({ at, cause: "usage_limit", reason: "usage limit" }),
  TaskEvent.Retry({ at, cause: "operator", reason: "retried" }),
  TaskEvent.Cancel({ at, reason: "cancelled by operator" })
]

/** The fields a user writes: no state and no run fields. */
const userFields = taskFields.map((fields): TaskFields => {
  const { assigned_at, cost_usd, finished_at, history, job_id, provider, run, session, started_at, state, ...user } =
    fields
  void [assigned_at, cost_usd, finished_at, history, job_id, provider, run, session, started_at, state]
  return user
})

const RUN_FIELD_NAMES = ["run", "session", "assigned_at", "started_at", "provider", "job_id", "cost_usd", "finished_at"]

/**
 * Restated from the DESIGN, independently of the code: which run fields a file in each state may carry (`required`
 * must be there, `allowed` may be). A finished task keeps the fields of the run that finished it.
 */
const runFieldsAllowed = (
  fields: TaskFields
): { readonly required: ReadonlyArray<string>; readonly allowed: ReadonlyArray<string> } => {
  const local = ["run", "session", "assigned_at"]
  const delegated = ["run", "provider"]
  switch (stateOf(fields)) {
    case "pending":
      return { required: [], allowed: [] }
    case "assigned":
      return { required: local, allowed: [...local, "started_at"] }
    case "delegated_to_secutools":
      return { required: delegated, allowed: [...delegated, "job_id"] }
    case "done":
    case "failed": {
      const ranLocally = fields.session !== undefined
      const ranRemotely = fields.provider !== undefined
      if (ranLocally) return { required: [...local, "finished_at"], allowed: [...local, "started_at", "finished_at"] }
      if (ranRemotely) {
        return { required: [...delegated, "finished_at"], allowed: [...delegated, "job_id", "cost_usd", "finished_at"] }
      }
      return { required: ["finished_at"], allowed: ["finished_at"] } // cancelled while pending
    }
  }
}

describe("task lifecycle", () => {
  it("after any sequence of transitions, the written file carries exactly its state's run fields", () => {
    fc.assert(
      fc.property(userFields, fc.array(taskEvent, { maxLength: 30 }), (fields, events) => {
        for (const step of run(fields, events)) {
          // On the written bytes: render the task, read it back, and look at the frontmatter keys.
          const written = Result.getOrThrow(
            parseTask("t.md", renderTask(withFields(makeTask({ name: TaskName.make("t.md") }), step)))
          )
          const keys = written.order.filter((key) => RUN_FIELD_NAMES.includes(key))
          const { allowed, required } = runFieldsAllowed(written.fields)
          for (const key of keys) expect(allowed).toContain(key)
          for (const key of required) expect(keys).toContain(key)
        }
      }),
      RUNS
    )
  })

  it("a run that ends unfinished leaves one history line naming its run, session or provider, cause and reason", () => {
    fc.assert(
      fc.property(userFields, fc.array(taskEvent, { maxLength: 30 }), (fields, events) => {
        const trail = run(fields, events)
        for (let i = 1; i < trail.length; i++) {
          const before = trail[i - 1] ?? {}
          const after = trail[i] ?? {}
          const grew = (after.history?.length ?? 0) - (before.history?.length ?? 0)
          const backToQueueOrCancelled = stateOf(after) === "pending" && stateOf(before) !== "pending" ||
            (stateOf(before) === "pending" && stateOf(after) === "failed")
          expect(grew).toBe(backToQueueOrCancelled ? 1 : 0)
          if (grew === 1) {
            const line = after.history?.at(-1)
            expect(line?.run).toBe(before.run)
            expect(line?.session).toBe(before.session)
            expect(line?.provider).toBe(before.provider)
            expect(line?.reason).toBeDefined()
          }
          // History is only ever appended to.
          expect(after.history?.slice(0, before.history?.length ?? 0) ?? []).toStrictEqual(before.history ?? [])
        }
      }),
      RUNS
    )
  })

  it("terminal states accept only a retry", () => {
    fc.assert(
      fc.property(taskFields, fc.constantFrom<TaskState>("done", "failed"), taskEvent, (fields, state, event) => {
        expect(Result.isSuccess(transition({ ...fields, state }, event))).toBe(event._tag === "Retry")
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
        const next = transition({ state }, event)
        if (Result.isSuccess(next)) legal.add(`${state} -${event._tag}-> ${stateOf(next.success)}`)
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
      "done -Retry-> pending",
      "failed -Retry-> pending",
      "pending -Assign-> assigned",
      "pending -Cancel-> failed",
      "pending -Delegate-> delegated_to_secutools"
    ])
  })

  it("assign records the session, run and time; requeue sheds them into a history line", () => {
    const assigned = Result.getOrThrow(
      transition({ attempts: 2 }, TaskEvent.Assign({ session: "claude-2", at, run: "r1" }))
    )
    expect(assigned).toStrictEqual({ state: "assigned", run: "r1", session: "claude-2", assigned_at: at, attempts: 3 })
    const started = Result.getOrThrow(transition(assigned, TaskEvent.Start({ at })))
    const requeued = Result.getOrThrow(
      transition(started, TaskEvent.Requeue({ at, cause: "usage_limit", reason: "claude-2 hit its usage limit" }))
    )
    expect(requeued).toStrictEqual({
      state: "pending",
      attempts: 3,
      history: [{
        at,
        event: "requeued",
        cause: "usage_limit",
        run: "r1",
        session: "claude-2",
        reason: "claude-2 hit its usage limit"
      }]
    })
  })

  it("the attempt limit counts runs that may have failed because of the task, since the last retry", () => {
    const requeue = (fields: TaskFields, cause: (typeof causes)[number]) =>
      Result.getOrThrow(transition(
        Result.getOrThrow(transition(fields, TaskEvent.Assign({ session: "s", at, run: "r" }))),
        TaskEvent.Requeue({ at, cause, reason: cause })
      ))
    let fields: TaskFields = {}
    for (const cause of ["session_exited", "usage_limit", "stale", "never_typed", "session_gone"] as const)
      fields = requeue(fields, cause)
    expect(unfinishedRuns(fields)).toBe(3)
    expect(afterUnfinishedRun(fields, "session_exited", 4)).toBe("fail")
    expect(afterUnfinishedRun(fields, "usage_limit", 4)).toBe("requeue")
    expect(afterUnfinishedRun(fields, "session_exited", 5)).toBe("requeue")
    const failed = Result.getOrThrow(
      transition(
        Result.getOrThrow(transition(fields, TaskEvent.Assign({ session: "s", at, run: "r" }))),
        TaskEvent.Fail({ at })
      )
    )
    const retried = Result.getOrThrow(transition(failed, TaskEvent.Retry({ at, cause: "operator", reason: "again" })))
    expect(unfinishedRuns(retried)).toBe(0)
  })

  it("an illegal transition says what was refused", () => {
    const refused = transition({ state: "done" }, TaskEvent.Assign({ session: "claude-1", at, run: "r" }))
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
        const firstObserved = trail.findIndex((state) =>
          ["queued", "running", "completed", "failed", "cancelled"].includes(state)
        )
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
