/**
 * Row 6: cold start with a large pending/: time from the daemon's spawn to its first dispatch (a dry-run session's
 * "would type" line), against plain Node listing and reading the same files; and pick-next at each size: from a
 * task's completion (its "done" line) to the next prompt typed into that session, against listing pending/.
 * Easy to get wrong: the files are written long before the start (settled), in mixed priorities, so the daemon must
 * order them; the pick-next gap also holds the completing command's own exit, so it is an upper bound of the pick.
 */
import { numbersField, runScript } from "./child.ts"
import { DaemonProcess, dryRunDaemon, type LogLine } from "./daemon-process.ts"
import { BenchQueue, taskName, taskText } from "./queue-dir.ts"
import type { Sizes } from "./sizes.ts"
import { median } from "./stats.ts"
import { q, type Row } from "./table.ts"
import { nowMs, waitFor } from "./wait.ts"

const TYPED = /^dry run: would type into (\S+): Task (\S+) from/
const DONE = /^(\S+) done \(session (\S+?)[,)]/
const PICKS = 3

export const coldStartRowIds = (sizes: Sizes) =>
  sizes.coldStartSizes.flatMap((size, i) => {
    const n = size.toLocaleString("en-US")
    return [
      { id: `6${"aceg"[i] ?? "x"}`, what: `cold start, ${n} pending: spawn → first prompt typed`, goal: "≤ 2 s" },
      { id: `6${"bdfh"[i] ?? "y"}`, what: `  pick-next, ${n} pending: task done → next prompt typed` }
    ]
  })

/** Gaps from each "done" line to the next "would type" line of the same session. */
const pickGaps = (lines: ReadonlyArray<LogLine>): ReadonlyArray<number> => {
  const gaps: Array<number> = []
  const finished = new Map<string, number>()
  for (const line of lines) {
    const done = DONE.exec(line.message)
    if (done?.[2] !== undefined) finished.set(done[2], line.at)
    const typed = TYPED.exec(line.message)
    const at = typed?.[1] === undefined ? undefined : finished.get(typed[1])
    if (typed?.[1] !== undefined && at !== undefined) {
      gaps.push(line.at - at)
      finished.delete(typed[1])
    }
  }
  return gaps
}

export const coldStart = async (sizes: Sizes): Promise<ReadonlyArray<Row>> => {
  const rows: Array<Row> = []
  const ids = coldStartRowIds(sizes)
  for (const [i, size] of sizes.coldStartSizes.entries()) {
    const queue = new BenchQueue(`cold-${size}`)
    try {
      for (let t = 0; t < size; t++) {
        queue.write("pending", taskName("cold", t), taskText({ priority: (t * 7919) % 13 }, `Step ${t}: do the thing.`))
      }
      const read = await runScript("baselines/read-queue.ts", ["tasks", queue.dir])
      const list = numbersField(
        (await runScript("baselines/read-queue.ts", ["list", queue.dir, "5"])).output,
        "samplesMs"
      )
      const daemon = new DaemonProcess(dryRunDaemon(queue.dir, 2, "100ms"))
      try {
        const deadlineMs = sizes.coldStartDeadlineMs
        const first = await daemon.waitForLine("a first prompt typed", (line) => TYPED.test(line.message), deadlineMs)
          .catch(() => undefined)
        const coldMs = (first?.at ?? nowMs()) - daemon.spawnedAt
        const [cold = ids[0], pick = ids[1]] = ids.slice(i * 2, i * 2 + 2)
        rows.push({
          id: cold?.id ?? "6",
          what: cold?.what ?? "",
          figure: q(coldMs / 1000, "s", first === undefined),
          baseline: q(read.wallMs / 1000, "s"),
          baselineIs: "plain Node listing and reading them, spawn → exit",
          goal: { text: "≤ 2 s", met: first !== undefined && coldMs <= 2000 }
        })
        const gaps = first === undefined
          ? []
          : await waitFor(`${PICKS} completions followed by a next prompt`, () => {
            const found = pickGaps(daemon.lines)
            return found.length >= PICKS ? found : undefined
          }, { timeoutMs: sizes.quick ? 5_000 : 60_000, everyMs: 50 }).catch(() => pickGaps(daemon.lines))
        rows.push({
          id: pick?.id ?? "6",
          what: `${pick?.what ?? ""} (median of ${gaps.length})`,
          ...(gaps.length === 0 ? {} : { figure: q(median(gaps), "ms") }),
          baseline: q(median(list), "ms"),
          baselineIs: "listing and sorting pending/ (median of 5)",
          ...(gaps.length === 0
            ? {
              problem: first === undefined
                ? `skipped: no first dispatch within ${deadlineMs / 1000} s`
                : "error: no completion was followed by a next prompt in time"
            }
            : {}),
          ...(i === 0
            ? { note: "pick-next includes the exit of the session's `task done` command and the dispatcher's wake-up" }
            : {})
        })
      } finally {
        await daemon.stop()
      }
    } finally {
      queue.remove()
    }
  }
  return rows
}
