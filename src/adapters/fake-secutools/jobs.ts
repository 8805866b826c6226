/**
 * The fake secutools' job book: jobs keyed by id, deduplicated by idempotency key, their status a function of elapsed time.
 * Easy to get wrong: a job's outcome is drawn once, when it is created, so a repeated key or a later poll never changes it.
 */

/** The platform's providers, kept here rather than imported: the fake mirrors the external contract, not the daemon. */
export const Providers = ["gpu", "gemini", "claude-api"] as const
export type Provider = typeof Providers[number]

export type JobStatus = "queued" | "running" | "completed" | "failed" | "cancelled"
type Outcome = "completed" | "failed" | "cancelled"

export interface SubmitBody {
  readonly task_id: string
  readonly provider: Provider
  readonly prompt: string
  readonly complexity_hint?: string
  readonly metadata?: Readonly<Record<string, string>>
}

/** What `GET /v1/jobs/{job_id}` answers. */
export interface JobView {
  readonly job_id: string
  readonly status: JobStatus
  readonly provider: Provider
  readonly result?: string
  readonly error?: string
  readonly cost_usd?: number
  readonly created_at: string
  readonly finished_at?: string
}

export type FaultKind = "status5xx" | "status429" | "dropped" | "lostAnswer" | "malformed" | "slow"

export interface Counters {
  /** POSTs that passed the bearer check and carried an Idempotency-Key (whatever their body). */
  readonly submits: number
  readonly jobsCreated: number
  readonly duplicateSubmits: number
  /** GETs of a job that passed the bearer check, found or not. */
  readonly gets: number
  readonly injected: Readonly<Record<FaultKind, number>>
  /** Idempotency key → jobs created for it: never more than 1. */
  readonly jobsByKey: Readonly<Record<string, number>>
  /** task_id → distinct jobs created for it. */
  readonly jobsByTask: Readonly<Record<string, number>>
}

export interface JobBookOptions {
  /** From creation to a terminal status; the first 20% of it the job is `queued`. */
  readonly durationMs: number
  /** Share of jobs that end `failed`, drawn from a PRNG seeded with `seed`. */
  readonly failureRatio: number
  readonly seed: number
  readonly now: () => number
}

interface Job {
  readonly id: string
  readonly body: SubmitBody
  readonly outcome: Outcome
  readonly createdAt: number
}

/** mulberry32: a tiny seeded PRNG, so a run with the same seed makes the same choices. */
export const mulberry32 = (seed: number): () => number => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const QUEUED_SHARE = 0.2
const COST_PER_JOB: Readonly<Record<Provider, number>> = { gpu: 0.001, gemini: 0.0042, "claude-api": 0.015 }

/** One job's price per started thousand characters of prompt. */
export const costOf = (provider: Provider, prompt: string): number =>
  Math.round(COST_PER_JOB[provider] * Math.max(1, Math.ceil(prompt.length / 1000)) * 1e6) / 1e6

const emptyInjected = (): Record<FaultKind, number> => ({
  status5xx: 0,
  status429: 0,
  dropped: 0,
  lostAnswer: 0,
  malformed: 0,
  slow: 0
})

export class JobBook {
  readonly #options: JobBookOptions
  readonly #random: () => number
  readonly #jobs = new Map<string, Job>()
  readonly #jobIdByKey = new Map<string, string>()
  readonly #jobsByKey = new Map<string, number>()
  readonly #jobsByTask = new Map<string, number>()
  readonly #injected = emptyInjected()
  #submits = 0
  #duplicateSubmits = 0
  #gets = 0

  constructor(options: JobBookOptions) {
    this.#options = options
    this.#random = mulberry32(options.seed)
  }

  /** Counts a submit that reached the handler, before its body is looked at. */
  countSubmit(): void {
    this.#submits++
  }

  countInjected(kind: FaultKind): void {
    this.#injected[kind]++
  }

  /** The job already made for this key, if any; counted as a duplicate submit. */
  resubmit(idempotencyKey: string): JobView | undefined {
    const id = this.#jobIdByKey.get(idempotencyKey)
    const job = id === undefined ? undefined : this.#jobs.get(id)
    if (job === undefined) return undefined
    this.#duplicateSubmits++
    return this.#view(job)
  }

  /** The same key always yields the same job, even when the body differs. */
  submit(idempotencyKey: string, body: SubmitBody): { readonly job: JobView; readonly created: boolean } {
    const known = this.resubmit(idempotencyKey)
    if (known !== undefined) return { job: known, created: false }
    // Drawn for every job, [fail]/[cancel] or not, so one job's prompt does not shift the next job's outcome.
    const unlucky = this.#random() < this.#options.failureRatio
    const outcome: Outcome = body.prompt.includes("[cancel]")
      ? "cancelled"
      : body.prompt.includes("[fail]") || unlucky
      ? "failed"
      : "completed"
    const job: Job = {
      id: `j_${String(this.#jobs.size + 1).padStart(6, "0")}`,
      body,
      outcome,
      createdAt: this.#options.now()
    }
    this.#jobs.set(job.id, job)
    this.#jobIdByKey.set(idempotencyKey, job.id)
    this.#jobsByKey.set(idempotencyKey, (this.#jobsByKey.get(idempotencyKey) ?? 0) + 1)
    this.#jobsByTask.set(body.task_id, (this.#jobsByTask.get(body.task_id) ?? 0) + 1)
    return { job: this.#view(job), created: true }
  }

  get(jobId: string): JobView | undefined {
    this.#gets++
    const job = this.#jobs.get(jobId)
    return job === undefined ? undefined : this.#view(job)
  }

  counters(): Counters {
    return {
      submits: this.#submits,
      jobsCreated: this.#jobs.size,
      duplicateSubmits: this.#duplicateSubmits,
      gets: this.#gets,
      injected: { ...this.#injected },
      jobsByKey: Object.fromEntries(this.#jobsByKey),
      jobsByTask: Object.fromEntries(this.#jobsByTask)
    }
  }

  #view(job: Job): JobView {
    const { durationMs } = this.#options
    const elapsed = this.#options.now() - job.createdAt
    const { provider, prompt } = job.body
    const base = { job_id: job.id, provider, created_at: new Date(job.createdAt).toISOString() }
    if (elapsed < durationMs * QUEUED_SHARE) return { ...base, status: "queued" }
    if (elapsed < durationMs) return { ...base, status: "running" }
    const finished_at = new Date(job.createdAt + durationMs).toISOString()
    switch (job.outcome) {
      case "completed":
        return {
          ...base,
          status: "completed",
          result: `${provider} says: ${prompt.slice(0, 200)}`,
          cost_usd: costOf(provider, prompt),
          finished_at
        }
      case "failed":
        return { ...base, status: "failed", error: `${provider}: model refused the task`, finished_at }
      case "cancelled":
        return { ...base, status: "cancelled", error: `${provider}: job cancelled`, finished_at }
    }
  }
}
