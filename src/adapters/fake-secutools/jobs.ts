/**
 * The fake secutools' job book: jobs keyed by id, deduplicated by idempotency key, their status a function of elapsed time.
 * Easy to get wrong: a job's outcome and its end time are fixed once, when it is created, so a repeated key, a later poll
 * or a book restored from its `BookState` (another process, another `durationMs`) never changes them.
 */

/** The platform's providers, kept here rather than imported: the fake mirrors the external contract, not the daemon. */
export const Providers = ["gpu", "gemini", "claude-api"] as const
export type Provider = typeof Providers[number]

export type JobStatus = "queued" | "running" | "completed" | "failed" | "cancelled"
export const Outcomes = ["completed", "failed", "cancelled"] as const
export type Outcome = typeof Outcomes[number]

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

/** A job as the book keeps it, and as a state file stores it. */
export interface StoredJob {
  readonly id: string
  readonly idempotencyKey: string
  readonly body: SubmitBody
  readonly outcome: Outcome
  /** ms since the epoch. */
  readonly createdAt: number
  readonly finishesAt: number
}

/** Everything needed to answer for every job as before: jobs in the order they were created. */
export interface BookState {
  readonly jobs: ReadonlyArray<StoredJob>
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
  readonly #jobs = new Map<string, StoredJob>()
  readonly #jobIdByKey = new Map<string, string>()
  readonly #jobsByKey = new Map<string, number>()
  readonly #jobsByTask = new Map<string, number>()
  readonly #injected = emptyInjected()
  #submits = 0
  #duplicateSubmits = 0
  #gets = 0

  /** Starts empty, or with the jobs of `state`; the PRNG goes on as if this book had created them. */
  constructor(options: JobBookOptions, state?: BookState) {
    this.#options = options
    this.#random = mulberry32(options.seed)
    for (const job of state?.jobs ?? []) {
      this.#random()
      this.#add(job)
    }
  }

  /** The jobs, for a state file. */
  state(): BookState {
    return { jobs: [...this.#jobs.values()] }
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
    const createdAt = this.#options.now()
    const job: StoredJob = {
      id: `j_${String(this.#jobs.size + 1).padStart(6, "0")}`,
      idempotencyKey,
      body,
      outcome,
      createdAt,
      finishesAt: createdAt + this.#options.durationMs
    }
    this.#add(job)
    return { job: this.#view(job), created: true }
  }

  #add(job: StoredJob): void {
    this.#jobs.set(job.id, job)
    this.#jobIdByKey.set(job.idempotencyKey, job.id)
    this.#jobsByKey.set(job.idempotencyKey, (this.#jobsByKey.get(job.idempotencyKey) ?? 0) + 1)
    this.#jobsByTask.set(job.body.task_id, (this.#jobsByTask.get(job.body.task_id) ?? 0) + 1)
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

  #view(job: StoredJob): JobView {
    const durationMs = job.finishesAt - job.createdAt
    const elapsed = this.#options.now() - job.createdAt
    const { provider, prompt } = job.body
    const base = { job_id: job.id, provider, created_at: new Date(job.createdAt).toISOString() }
    if (elapsed < durationMs * QUEUED_SHARE) return { ...base, status: "queued" }
    if (elapsed < durationMs) return { ...base, status: "running" }
    const finished_at = new Date(job.finishesAt).toISOString()
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
