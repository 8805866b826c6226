/**
 * What happens to a task whose session hits its usage limit mid-task: `requeue` (back to the queue, to run
 * elsewhere; the session's own automatic continue is cancelled first so the old turn cannot resume beside the new
 * run), `wait` (the task stays with its session, which goes on after the reset: by itself where Claude Code does
 * that, else the daemon types "continue" then), or `delegate` (to FAILOVER_PROVIDER right away: routing rule 7 without
 * waiting for every local session to be limited). Set for all tasks by LIMIT_POLICY, per task by `on_limit`.
 */
import type { TaskFields } from "./task.ts"

export const LimitPolicies = ["requeue", "wait", "delegate"] as const
export type LimitPolicy = typeof LimitPolicies[number]

export const DEFAULT_LIMIT_POLICY: LimitPolicy = "requeue"

/** The task's own `on_limit`, else the daemon's LIMIT_POLICY. */
export const limitPolicyOf = (fields: Pick<TaskFields, "on_limit">, fallback: LimitPolicy): LimitPolicy =>
  fields.on_limit ?? fallback

/**
 * What happens to a task whose session's turn ended (idle again) while the task reported neither `task done` nor
 * `task fail`: `attention` (it stays active and is listed for a person: the agent may have asked a question) or
 * `requeue` (back to the queue after IDLE_GRACE, to run again from the start). Set by IDLE_POLICY, per task by `on_idle`.
 */
export const IdlePolicies = ["attention", "requeue"] as const
export type IdlePolicy = typeof IdlePolicies[number]

export const idlePolicyOf = (fields: Pick<TaskFields, "on_idle">, fallback: IdlePolicy): IdlePolicy =>
  fields.on_idle ?? fallback

/** The task's last run ended in a usage limit (and nothing happened to it since). */
export const lastRunHitLimit = (fields: Pick<TaskFields, "history" | "state">): boolean => {
  const last = fields.history?.at(-1)
  return (fields.state ?? "pending") === "pending" && last?.event === "requeued" && last.cause === "usage_limit"
}
