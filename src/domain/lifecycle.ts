/**
 * The task state machine: pending → assigned | delegated_to_secutools → done | failed, and requeue on failover.
 * Easy to get wrong: `attempts` counts starts, so a requeue keeps it and only assign/delegate raise it.
 */
import { Data, Result } from "effect"
import type { Provider } from "./provider.ts"
import type { TaskFields, TaskState } from "./task.ts"

export type TaskEvent = Data.TaggedEnum<{
  /** Recorded before the prompt is typed into the session. */
  Assign: { readonly session: string; readonly at: string }
  /** The session accepted the typed prompt. */
  Start: { readonly at: string }
  /** Recorded before the job is submitted. */
  Delegate: { readonly provider: Provider; readonly at: string }
  Complete: {
    readonly at: string
    readonly provider?: string
    readonly jobId?: string
    readonly costUsd?: number
  }
  Fail: { readonly at: string }
  /** Back to the queue: usage limit, dead session, lost assignment or failed submission. */
  Requeue: { readonly at: string; readonly note: string }
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
  pending: ["Assign", "Delegate"],
  assigned: ["Start", "Complete", "Fail", "Requeue"],
  delegated_to_secutools: ["Complete", "Fail", "Requeue"],
  done: [],
  failed: []
}

const startedOnce = (fields: TaskFields) => (fields.attempts ?? 0) + 1

/** Fields that describe one run; a requeued task sheds them so the next run starts clean. */
const withoutRun = (fields: TaskFields): TaskFields => {
  const {
    assigned_at: _assignedAt,
    job_id: _jobId,
    provider: _provider,
    session: _session,
    started_at: _startedAt,
    ...rest
  } = fields
  return rest
}

export const transition = (fields: TaskFields, event: TaskEvent): Result.Result<TaskFields, IllegalTransition> => {
  const from = stateOf(fields)
  if (!accepts[from].includes(event._tag)) return Result.fail(new IllegalTransition({ from, event: event._tag }))
  return Result.succeed(TaskEvent.$match(event, {
    Assign: ({ at, session }): TaskFields => ({
      ...withoutRun(fields),
      state: "assigned",
      session,
      assigned_at: at,
      attempts: startedOnce(fields)
    }),
    Start: ({ at }): TaskFields => ({ ...fields, started_at: at }),
    Delegate: ({ provider }): TaskFields => ({
      ...withoutRun(fields),
      state: "delegated_to_secutools",
      provider,
      attempts: startedOnce(fields)
    }),
    Complete: ({ at, costUsd, jobId, provider }): TaskFields => ({
      ...fields,
      state: "done",
      finished_at: at,
      ...(provider === undefined ? {} : { provider }),
      ...(jobId === undefined ? {} : { job_id: jobId }),
      ...(costUsd === undefined ? {} : { cost_usd: costUsd })
    }),
    Fail: ({ at }): TaskFields => ({ ...fields, state: "failed", finished_at: at }),
    Requeue: ({ note }): TaskFields => ({ ...withoutRun(fields), state: "pending", last_failover: note })
  }))
}
