/**
 * A cumulative histogram as Prometheus exposes one: per upper bound, how many observations were at most that.
 * Easy to get wrong: counts are cumulative (each bucket includes the ones below it), and `+Inf` is `count`.
 */
export interface Histogram {
  /** Upper bounds, ascending. */
  readonly bounds: ReadonlyArray<number>
  readonly counts: ReadonlyArray<number>
  readonly sum: number
  readonly count: number
}

export const emptyHistogram = (bounds: ReadonlyArray<number>): Histogram => ({
  bounds: [...bounds].sort((a, b) => a - b),
  counts: bounds.map(() => 0),
  sum: 0,
  count: 0
})

export const observe = (histogram: Histogram, value: number): Histogram => ({
  bounds: histogram.bounds,
  counts: histogram.counts.map((count, i) => (value <= (histogram.bounds[i] ?? Infinity) ? count + 1 : count)),
  sum: histogram.sum + value,
  count: histogram.count + 1
})

/** Seconds from a second to six hours: delegated jobs range from instant answers to long GPU runs. */
export const REAP_LATENCY_BOUNDS: ReadonlyArray<number> = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 21600]
