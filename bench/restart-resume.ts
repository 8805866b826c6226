/**
 * Row 5, then rows 7c and 7d on the same daemon. A daemon starts on a queue holding N delegation markers (half
 * `submitting`, half `submitted` with their jobs at the stand-in): the time from its spawn until every marker is
 * resumed — each submitting one submitted again (its POST answered) and each submitted job polled (its GET
 * answered), as the stand-in saw them; against plain Node reading the same marker files. Then, with the N jobs in
 * flight (they take an hour), /metrics under load, and whether every job is polled on its REAP_INTERVAL.
 * Easy to get wrong: jobs the bench created itself before the start are not counted as resumed; and the cadence
 * is judged on the gaps between a job's consecutive polls, so a reaper round that takes longer than its interval shows.
 */
import { loadNote, loadRoute } from "./api-load.ts"
import { runScript } from "./child.ts"
import { DaemonProcess, dryRunDaemon } from "./daemon-process.ts"
import { runToken, writeDelegated } from "./markers.ts"
import { BenchQueue, taskName } from "./queue-dir.ts"
import { SECUTOOLS_KEY, startSecutools } from "./secutools.ts"
import type { Sizes } from "./sizes.ts"
import { percentile } from "./stats.ts"
import { q, type Row, rowsOrFailure } from "./table.ts"
import { nowMs, waitFor } from "./wait.ts"

export const restartRowIds = (sizes: Sizes) => {
  const n = sizes.restartMarkers.toLocaleString("en-US")
  return {
    resume: { id: "5", what: `restart with ${n} markers: spawn → all resumed`, goal: "≤ 1 s" },
    metrics: { id: "7c", what: `/metrics p99, ${sizes.statusClients} clients, ${n} jobs in flight`, goal: "≤ 50 ms" },
    cadence: {
      id: "7d",
      what: `  longest gap between two polls of a job (the ${
        (sizes.restartMarkers / 2).toLocaleString("en-US")
      } resumed submitted)`,
      goal: "≤ 1.2× interval"
    }
  } as const
}

/** `5s` → 5000. */
const millis = (duration: string): number => {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/.exec(duration.trim())
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match?.[2] ?? "s"] ?? 1000
  return Number(match?.[1] ?? Number.NaN) * unit
}

/** Runs `work` over `items`, `concurrency` at a time. */
const pool = async <A>(items: ReadonlyArray<A>, concurrency: number, work: (item: A) => Promise<void>) => {
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) {
      const item = items[next++]
      if (item !== undefined) await work(item)
    }
  }))
}

export const restartResume = async (
  sizes: Sizes,
  settings: { readonly reapInterval: string }
): Promise<ReadonlyArray<Row>> => {
  const ids = restartRowIds(sizes)
  const count = sizes.restartMarkers
  const intervalMs = millis(settings.reapInterval)
  const secutools = await startSecutools({ jobMs: 3_600_000 })
  const queue = new BenchQueue("restart")
  let daemon: DaemonProcess | undefined
  try {
    const submittedJobs = new Set<string>()
    await pool(Array.from({ length: count }, (_, i) => i), 16, async (i) => {
      const name = taskName("resume", i)
      const key = `resume-${i}`
      if (i % 2 === 0) return writeDelegated(queue, { name, state: "submitting", key, run: runToken(i) })
      const jobId = await secutools.submit(key, {
        task_id: name.slice(0, -3),
        provider: "gemini",
        prompt: `Summarise ${name}.`
      })
      submittedJobs.add(jobId)
      writeDelegated(queue, { name, state: "submitted", key, run: runToken(i), jobId })
    })
    const baseline = await runScript("baselines/read-queue.ts", ["markers", queue.dir])

    const resubmitsWanted = count - submittedJobs.size
    let resubmits = 0
    const polled = new Set<string>()
    let resumedAt: number | undefined
    secutools.onRequest((method, path) => {
      if (method === "POST") resubmits++
      const job = /^\/v1\/jobs\/([^/]+)$/.exec(path)?.[1]
      if (method === "GET" && job !== undefined && submittedJobs.has(job)) polled.add(job)
      if (resumedAt === undefined && resubmits >= resubmitsWanted && polled.size >= submittedJobs.size)
        resumedAt = nowMs()
    })
    const started = new DaemonProcess({
      ...dryRunDaemon(queue.dir, 1),
      SECUTOOLS_URL: secutools.url,
      SECUTOOLS_API_KEY: SECUTOOLS_KEY
    })
    daemon = started
    const deadlineMs = sizes.resumeDeadlineMs
    const resumed = await waitFor(
      "every marker resumed",
      () => resumedAt !== undefined || nowMs() - started.spawnedAt > deadlineMs,
      {
        timeoutMs: deadlineMs + 5_000
      }
    ).then(() => resumedAt)
    const resumeMs = (resumed ?? nowMs()) - started.spawnedAt
    const resumeRow: Row = {
      ...ids.resume,
      figure: q(resumeMs, "ms", resumed === undefined),
      baseline: q(baseline.wallMs, "ms"),
      baselineIs: "plain Node reading the markers, spawn → exit",
      goal: { text: "≤ 1 s", met: resumed !== undefined && resumeMs <= 1000 },
      note: `${resubmitsWanted} submitted again, ${submittedJobs.size} polled` +
        (resumed === undefined
          ? `; not all resumed within ${deadlineMs / 1000} s (${resubmits} submits, ${polled.size} polls)`
          : "")
    }
    const later = [ids.metrics, ids.cadence]

    const metricsRows = await rowsOrFailure(later, async () => {
      await started.started()
      const load = await loadRoute(started, "/metrics", queue.root, {
        clients: sizes.statusClients,
        requests: sizes.statusRequests
      })
      // The jobs the daemon found submitted are polled from its start: each one's consecutive polls, until every one
      // has two of them or the window closes.
      const windowEnd = (resumed ?? nowMs()) + intervalMs + (sizes.quick ? 2_000 : 10_000)
      const pollsOf = (job: string) => secutools.pollTimes.get(job) ?? []
      const jobsPolledTwice = () => [...submittedJobs].filter((job) => pollsOf(job).length >= 2).length
      await waitFor("every job polled twice", () => jobsPolledTwice() >= submittedJobs.size || nowMs() > windowEnd, {
        timeoutMs: windowEnd - nowMs() + 5_000,
        everyMs: 100
      })
      const gaps: Array<number> = []
      let once = 0
      // A job not polled twice has waited at least since its one poll (or since the daemon's spawn) for its next.
      let open = 0
      const closed = nowMs()
      for (const job of submittedJobs) {
        const times = pollsOf(job)
        if (times.length < 2) {
          once++
          open = Math.max(open, closed - (times[0] ?? started.spawnedAt))
        }
        for (let i = 1; i < times.length; i++) gaps.push((times[i] ?? 0) - (times[i - 1] ?? 0))
      }
      const longest = Math.max(open, ...gaps)
      const { cadence, metrics } = ids
      return [
        {
          ...metrics,
          figure: q(load.daemon.p99, "ms"),
          baseline: q(load.baseline.p99, "ms"),
          baselineIs: "plain node:http, same bytes, same load",
          goal: { text: metrics.goal, met: load.daemon.p99 <= 50 && load.daemon.errors === 0 },
          note: loadNote(load) + (resumed === undefined ? "; measured while the daemon was still resuming" : "")
        },
        {
          ...cadence,
          figure: q(longest / 1000, "s", open > 0 && open >= longest),
          baseline: q(intervalMs / 1000, "s"),
          baselineIs: `REAP_INTERVAL (default ${settings.reapInterval})`,
          goal: { text: cadence.goal, met: once === 0 && longest <= 1.2 * intervalMs },
          note: `gaps between consecutive polls: p50 ${(percentile(gaps, 50) / 1000).toFixed(2)} s, ` +
            `p99 ${(percentile(gaps, 99) / 1000).toFixed(2)} s over ${gaps.length} gaps` +
            (once > 0 ? `; ${once} of ${submittedJobs.size} jobs were not polled twice within the window` : "")
        }
      ]
    })
    return [resumeRow, ...metricsRows]
  } finally {
    await daemon?.stop()
    await secutools.close()
    queue.remove()
  }
}
