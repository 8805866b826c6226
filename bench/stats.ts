/**
 * Summaries of samples: percentiles by the nearest-rank method.
 * Easy to get wrong: p99 of fewer than 100 samples is the largest sample, and is labelled as what it is by the caller.
 */

export const percentile = (samples: ReadonlyArray<number>, p: number): number => {
  if (samples.length === 0) return Number.NaN
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? Number.NaN
}

export const median = (samples: ReadonlyArray<number>): number => percentile(samples, 50)

export const mean = (samples: ReadonlyArray<number>): number =>
  samples.length === 0 ? Number.NaN : samples.reduce((a, b) => a + b, 0) / samples.length
