/**
 * Row 1: a burst of delegated tasks through the daemon as a process, against the secutools stand-in with instant
 * jobs: tasks/s from the first drop until every task is in done/, the daemon's CPU per task and its RSS high-water;
 * against plain Node doing the same durable file work, one task at a time and REAP_CONCURRENCY at a time.
 * Easy to get wrong: the daemon's CPU is read from /proc before the first drop and after the last task lands, so its
 * start-up is not charged to the tasks; the baselines run after the daemon has stopped, on the same filesystem.
 */
import { join } from "node:path"
import { numberField, runScript } from "./child.ts"
import { DaemonProcess, dryRunDaemon } from "./daemon-process.ts"
import { BenchQueue, taskName, taskText } from "./queue-dir.ts"
import { SECUTOOLS_KEY, startSecutools } from "./secutools.ts"
import type { Sizes } from "./sizes.ts"
import { q, type Row } from "./table.ts"
import { nowMs, waitFor } from "./wait.ts"

export interface DrainResult {
  readonly rows: ReadonlyArray<Row>
  /** The daemon's figure, for the peer row. */
  readonly tasksPerSecond: number
}

export const DRAIN_ROWS = [
  { id: "1a", what: "delegated drain: tasks/s, first drop → all in done/", goal: "≥ 0.5× baseline" },
  { id: "1b", what: "  the same, against one task at a time" },
  { id: "1c", what: "  daemon CPU per task (utime+stime)", goal: "≤ 1 ms" },
  { id: "1d", what: "  daemon RSS high-water (VmHWM)" }
] as const

export const delegatedDrain = async (
  sizes: Sizes,
  settings: { readonly reapConcurrency: number; readonly reapInterval: string }
): Promise<DrainResult> => {
  const count = sizes.drainTasks
  const secutools = await startSecutools({ jobMs: 0 })
  const queue = new BenchQueue("drain")
  const names = Array.from({ length: count }, (_, i) => taskName("drain", i))
  names.forEach((name, i) => queue.stage(name, taskText({ preferred_ai: "gemini" }, `Summarise item ${i}.`)))
  const daemon = new DaemonProcess({
    ...dryRunDaemon(queue.dir, 1),
    SECUTOOLS_URL: secutools.url,
    SECUTOOLS_API_KEY: SECUTOOLS_KEY
  })
  let elapsedMs: number
  let cpuPerTaskMs: number
  let highWaterMb: number
  let failed: number
  try {
    await daemon.started()
    const cpuBefore = daemon.cpuSeconds()
    const firstDrop = queue.drop(names[0] ?? "")
    for (const name of names.slice(1)) queue.drop(name)
    await waitFor(
      `${count} drained tasks in done/ or failed/`,
      () => queue.count("done") + queue.count("failed") >= count,
      {
        timeoutMs: 60_000 + count * 50,
        everyMs: 10
      }
    ).catch((error: unknown) => {
      // Say where the tasks are, so a stuck drain can be told from a slow one.
      throw new Error(
        `${error instanceof Error ? error.message : String(error)}: ${queue.count("done")} done, ` +
          `${queue.count("failed")} failed, ${queue.count("pending")} still pending; the stand-in answered ` +
          `${secutools.submits()} submits and ${secutools.polls()} polls; the daemon said: ${
            daemon.lastOutput.slice(-300)
          }`,
        { cause: error }
      )
    })
    elapsedMs = nowMs() - firstDrop
    cpuPerTaskMs = ((daemon.cpuSeconds() - cpuBefore) * 1000) / count
    highWaterMb = daemon.rssHighWaterMb()
    failed = queue.count("failed")
  } finally {
    await daemon.stop()
    await secutools.close()
    queue.remove()
  }

  const baseline = async (concurrency: number) => {
    const scratch = new BenchQueue("durable")
    try {
      return (await runScript("baselines/durable-work.ts", [
        join(scratch.root, "work"),
        String(count),
        String(concurrency)
      ]))
        .output
    } finally {
      scratch.remove()
    }
  }
  const serial = await baseline(1)
  const concurrent = await baseline(settings.reapConcurrency)
  const tasksPerSecond = count / (elapsedMs / 1000)
  const concurrentRate = numberField(concurrent, "tasksPerSecond")
  const c = settings.reapConcurrency
  const [rate, serialRow, cpu, rss] = DRAIN_ROWS
  return {
    tasksPerSecond,
    rows: [
      {
        ...rate,
        what: `delegated drain, ${count.toLocaleString("en-US")} tasks: tasks/s, first drop → all in done/`,
        figure: q(tasksPerSecond, "tasks/s"),
        baseline: q(concurrentRate, "tasks/s"),
        baselineIs: `plain Node, same durable file work, ${c} at a time`,
        goal: { text: rate.goal, met: tasksPerSecond >= 0.5 * concurrentRate },
        note: `drained in ${(elapsedMs / 1000).toFixed(2)} s with REAP_INTERVAL ${settings.reapInterval} and ` +
          `REAP_CONCURRENCY ${c} (defaults): a finished job waits for the reaper's next round` +
          (failed > 0 ? `; ${failed} tasks ended in failed/` : "")
      },
      {
        ...serialRow,
        figure: q(tasksPerSecond, "tasks/s"),
        baseline: q(numberField(serial, "tasksPerSecond"), "tasks/s"),
        baselineIs: "plain Node, same durable file work, 1 at a time"
      },
      {
        ...cpu,
        figure: q(cpuPerTaskMs, "ms"),
        baseline: q(numberField(concurrent, "cpuMsPerTask"), "ms"),
        baselineIs: `plain Node's CPU per task, ${c} at a time`,
        goal: { text: cpu.goal, met: cpuPerTaskMs <= 1 }
      },
      {
        ...rss,
        figure: q(highWaterMb, "MB"),
        baseline: q(numberField(concurrent, "maxRssMb"), "MB"),
        baselineIs: `plain Node's max RSS, ${c} at a time`
      }
    ]
  }
}
