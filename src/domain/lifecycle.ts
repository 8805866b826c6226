/**
 * The task state machine: pending → assigned | delegated_to_secutools → done | failed, back to pending on a
 * requeue or retry. Easy to get wrong: every transition writes exactly its state's fields (a requeued task sheds
 * the old run's `run`, `session`, `started_at`, …), and `attempts` counts starts, so only assign/delegate raise it.
 */
import * as Data from "effect/Data"
import * as Result from "effect/Result"
import type { Provider } from "./provider.ts"
import type { HistoryEntry, TaskFields, TaskState } from "./task.ts"

/**
 * Why a run ended without finishing. The attempt limit counts the causes that may lie with the task itself
 * (its session died or hung, or it was never accepted); a usage limit, a restart or an operator's retry does not.
 */
export type RunEndCause =
  | "usage_limit"
  | "session_exited"
  | "session_gone"
  | "not_accepted"
  | "stale"
  | "never_typed"
  | "delegation_rejected"
  | "marker_missing"
  | "operator"
  | "put_back"
  /** The session's turn ended in an API error (overloaded, not logged in, …): another session may do better. */
  | "api_error"
  /** The session shows a dialog a person must answer (trust, API key, onboarding). */
  | "needs_person"
  /** The session's turn ended without the task reporting (IDLE_POLICY requeue). */
  | "turn_ended"
  /** Its headless run was lost with the daemon that started it (stopped at the next start). */
  | "orphaned"

const COUNTED_CAUSES: ReadonlySet<string> = new Set<RunEndCause>([
  "session_exited",
  "session_gone",
  "not_accepted",
  "stale",
  "turn_ended"
])

export type TaskEvent = Data.TaggedEnum<{
  /** Recorded before the prompt is typed into the session. */
  Assign: { readonly session: string; readonly at: string; readonly run: string; readonly host?: string | undefined }
  /** The session accepted the typed prompt. */
  Start: { readonly at: string }
  /** Recorded before the job is submitted. */
  Delegate: { readonly provider: Provider; readonly at: string; readonly run: string }
  Complete: { readonly at: string; readonly jobId?: string; readonly costUsd?: number }
  Fail: { readonly at: string }
  /** Back to the queue: usage limit, dead session, lost assignment, failed submission, a state found in the wrong place. */
  Requeue: { readonly at: string; readonly cause: RunEndCause; readonly reason: string }
  /** A finished task runs again: an operator's retry, or a finished file put back into pending/. */
  Retry: { readonly at: string; readonly cause: RunEndCause; readonly reason: string }
  /** An operator takes a waiting task out of the queue. */
  Cancel: { readonly at: string; readonly reason: string }
}>
export const TaskEvent = Data.taggedEnum<TaskEvent>()

export class IllegalTransition extends Data.TaggedError("IllegalTransition")<{
  readonly from: TaskState
  readonly event: TaskEvent["_tag"]
}> {
  override get message(): string {
    return `a task in state '${this.from}' cannot take '${this.event}'`
  }
}

export const TERMINAL_STATES: ReadonlyArray<TaskState> = ["done", "failed"]

export const stateOf = (fields: TaskFields): TaskState => fields.state ?? "pending"

export const isTerminal = (state: TaskState): boolean => TERMINAL_STATES.includes(state)

/** Which events each state accepts; everything else is an IllegalTransition. */
const accepts: Readonly<Record<TaskState, ReadonlyArray<TaskEvent["_tag"]>>> = {
  pending: ["Assign", "Delegate", "Cancel"],
  assigned: ["Start", "Complete", "Fail", "Requeue"],
  delegated_to_secutools: ["Complete", "Fail", "Requeue"],
  done: ["Retry"],
  failed: ["Retry"]
}

/** The fields that describe one run (or its outcome): a task back in the queue has none of them. */
export const RUN_FIELDS = [
  "run",
  "session",
  "host",
  "assigned_at",
  "started_at",
  "provider",
  "job_id",
  "cost_usd",
  "claude_session",
  "turns",
  "transcript",
  "finished_at"
] as const satisfies ReadonlyArray<keyof TaskFields>

const withoutRun = (fields: TaskFields): TaskFields => {
  const rest: Record<string, unknown> = { ...fields }
  for (const key of RUN_FIELDS) delete rest[key]
  return rest as TaskFields
}

const startedOnce = (fields: TaskFields) => (fields.attempts ?? 0) + 1

/** The history entry for a run that ends here, naming the run and where it ran. */
const ended = (
  fields: TaskFields,
  entry: Pick<HistoryEntry, "at" | "event" | "reason"> & { readonly cause?: string }
) => {
  const line: HistoryEntry = {
    at: entry.at,
    event: entry.event,
    ...(entry.cause === undefined ? {} : { cause: entry.cause }),
    ...(fields.run === undefined ? {} : { run: fields.run }),
    ...(fields.session === undefined ? {} : { session: fields.session }),
    ...(fields.host === undefined ? {} : { host: fields.host }),
    ...(fields.provider === undefined ? {} : { provider: fields.provider }),
    ...(fields.job_id === undefined ? {} : { job_id: fields.job_id }),
    reason: entry.reason
  }
  return [...(fields.history ?? []), line]
}

export const transition = (fields: TaskFields, event: TaskEvent): Result.Result<TaskFields, IllegalTransition> => {
  const from = stateOf(fields)
  if (!accepts[from].includes(event._tag)) return Result.fail(new IllegalTransition({ from, event: event._tag }))
  return Result.succeed(TaskEvent.$match(event, {
    Assign: ({ at, host, run, session }): TaskFields => ({
      ...withoutRun(fields),
      state: "assigned",
      run,
      session,
      ...(host === undefined ? {} : { host }),
      assigned_at: at,
      attempts: startedOnce(fields)
    }),
    Start: ({ at }): TaskFields => ({ ...fields, started_at: at }),
    Delegate: ({ provider, run }): TaskFields => ({
      ...withoutRun(fields),
      state: "delegated_to_secutools",
      run,
      provider,
      attempts: startedOnce(fields)
    }),
    // A job id and a cost describe a delegated run only; a local run that completes carries neither.
    Complete: ({ at, costUsd, jobId }): TaskFields => ({
      ...fields,
      state: "done",
      finished_at: at,
      ...(jobId === undefined || from !== "delegated_to_secutools" ? {} : { job_id: jobId }),
      ...(costUsd === undefined || from !== "delegated_to_secutools" ? {} : { cost_usd: costUsd })
    }),
    Fail: ({ at }): TaskFields => ({ ...fields, state: "failed", finished_at: at }),
    Requeue: ({ at, cause, reason }): TaskFields => ({
      ...withoutRun(fields),
      state: "pending",
      history: ended(fields, { at, event: "requeued", cause, reason })
    }),
    Retry: ({ at, cause, reason }): TaskFields => ({
      ...withoutRun(fields),
      state: "pending",
      history: ended(fields, { at, event: "retried", cause, reason })
    }),
    Cancel: ({ at, reason }): TaskFields => ({
      ...withoutRun(fields),
      state: "failed",
      finished_at: at,
      history: ended(fields, { at, event: "cancelled", cause: "operator", reason })
    })
  }))
}

/** Runs since the last retry that ended for a reason that may lie with the task (see RunEndCause). */
export const unfinishedRuns = (fields: TaskFields): number => {
  const history = fields.history ?? []
  let count = 0
  for (let i = history.length - 1; i >= 0; i--) {
    const entry = history[i]
    if (entry === undefined || entry.event === "retried") break
    if (entry.event === "requeued" && entry.cause !== undefined && COUNTED_CAUSES.has(entry.cause)) count++
  }
  return count
}

/**
 * After a run ended without finishing for `cause`: back to the queue, or — when this is the `maxAttempts`-th such
 * run — to failed/, so a task that kills its session cannot do so forever.
 */
export const afterUnfinishedRun = (fields: TaskFields, cause: RunEndCause, maxAttempts: number): "requeue" | "fail" =>
  COUNTED_CAUSES.has(cause) && unfinishedRuns(fields) + 1 >= maxAttempts ? "fail" : "requeue"

/** A fresh run token: short, unguessable, safe in a shell word and a file. */
export const newRunId = (random: () => string = () => crypto.randomUUID()): string =>
  `r${random().replace(/-/g, "").slice(0, 12)}`
