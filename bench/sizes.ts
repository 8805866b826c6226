/**
 * How big each scenario is, for a full run and for `--quick` (same rows, smaller sizes: about a minute on 2 cores).
 * Easy to get wrong: a percentile over few samples is the largest sample; the rows say how many samples they had.
 */

export interface Sizes {
  readonly quick: boolean
  /** Delegated tasks dropped at once into pending/. */
  readonly drainTasks: number
  /** Idle daemon: RSS is read after the first 10 s; CPU is measured over the whole window. */
  readonly idleWindowMs: number
  /** Drops timed per backlog size (at most; no new drop after the budget), and the backlog sizes. */
  readonly latencyDrops: number
  readonly latencyBudgetMs: number
  /** How long a daemon starting on the large backlog may take before a session is free (its start is row 5's). */
  readonly latencyReadyTimeoutMs: number
  readonly latencyBacklogs: ReadonlyArray<number>
  /** Delegation markers the daemon resumes at start; then in flight for the /metrics row. */
  readonly restartMarkers: number
  /** Pending tasks at a cold start; the largest is the goal's size. */
  readonly coldStartSizes: ReadonlyArray<number>
  /** Tasks in the queue while the status API is loaded, clients, and requests per client. */
  readonly statusTasks: number
  readonly statusClients: number
  readonly statusRequests: number
  /** `task done` runs timed. */
  readonly taskDoneSamples: number
  /** How long a daemon may take to resume the markers, and to dispatch after a cold start, before the row says "> …". */
  readonly resumeDeadlineMs: number
  readonly coldStartDeadlineMs: number
  /** Calls per timing batch of the pure functions. */
  readonly microBatch: number
}

export const sizesFor = (quick: boolean): Sizes =>
  quick
    ? {
      quick,
      drainTasks: 300,
      idleWindowMs: 10_000,
      latencyDrops: 2,
      latencyBudgetMs: 3_000,
      latencyReadyTimeoutMs: 30_000,
      latencyBacklogs: [100, 1_000],
      restartMarkers: 1_000,
      coldStartSizes: [10_000],
      statusTasks: 1_000,
      statusClients: 100,
      statusRequests: 2,
      taskDoneSamples: 2,
      resumeDeadlineMs: 8_000,
      coldStartDeadlineMs: 6_000,
      microBatch: 50
    }
    : {
      quick,
      drainTasks: 2_000,
      idleWindowMs: 60_000,
      latencyDrops: 100,
      latencyBudgetMs: 70_000,
      latencyReadyTimeoutMs: 120_000,
      latencyBacklogs: [100, 10_000],
      restartMarkers: 10_000,
      coldStartSizes: [1_000, 10_000, 100_000],
      statusTasks: 5_000,
      statusClients: 100,
      statusRequests: 5,
      taskDoneSamples: 7,
      resumeDeadlineMs: 60_000,
      coldStartDeadlineMs: 120_000,
      microBatch: 200
    }

/** The idle time before the idle daemon's RSS is read. */
export const IDLE_SETTLE_MS = 10_000
