/**
 * Delegated tasks as the daemon leaves them in pending/: the task file (state delegated_to_secutools, provider, run,
 * attempts, job_id once submitted) and its marker `NAME.md.delegated` beside it, in the format of DESIGN.md's
 * "Delegation marker" section.
 * Easy to get wrong: the marker goes down before the task file, as the daemon writes them, so a running daemon can
 * never see the task without its marker and route it.
 */
import type { BenchQueue } from "./queue-dir.ts"
import { taskText } from "./queue-dir.ts"

export interface DelegatedTask {
  readonly name: string
  readonly state: "submitting" | "submitted"
  readonly key: string
  readonly run: string
  readonly jobId?: string
}

/** A run token as the daemon makes them: `r` and 12 hex digits. */
export const runToken = (i: number): string => `r${i.toString(16).padStart(12, "0")}`

export const writeDelegated = (queue: BenchQueue, task: DelegatedTask): void => {
  const created = new Date(Date.now() - 60_000).toISOString()
  const marker = {
    task: task.name,
    provider: "gemini",
    run: task.run,
    idempotency_key: task.key,
    state: task.state,
    job_id: task.jobId ?? null,
    created_at: created,
    submitted_at: task.jobId === undefined ? null : created,
    polls: 0
  }
  queue.write("pending", `${task.name}.delegated`, `${JSON.stringify(marker)}\n`)
  queue.write(
    "pending",
    task.name,
    taskText({
      preferred_ai: "gemini",
      state: "delegated_to_secutools",
      provider: "gemini",
      run: task.run,
      attempts: 1,
      ...(task.jobId === undefined ? {} : { job_id: task.jobId })
    }, `Summarise ${task.name}.`)
  )
}
