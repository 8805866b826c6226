/**
 * Row 8: `claude-failover task done NAME --run RUN --queue-dir Q` through a running daemon, as an agent runs it:
 * wall time from spawn to exit and peak RSS; against `node -e ''` under the same wrapper.
 * Easy to get wrong: each run needs a task that is really active, so a task is dropped, the dry-run session's
 * "would type" line gives its name and run (DRY_RUN_DELAY is long, so the session never finishes it by itself), and
 * the first run only warms Node's compile cache and is not counted; and each run waits for the task to record its prompt
 * submitted, as an agent can only answer a prompt it was given.
 */
import { readFileSync } from "node:fs"
import { bareNodeRun, timedRun } from "./bare-node.ts"
import { DAEMON, type DaemonProcess, NODE } from "./daemon-process.ts"
import type { BenchQueue } from "./queue-dir.ts"
import { taskName, taskText } from "./queue-dir.ts"
import type { Sizes } from "./sizes.ts"
import { median } from "./stats.ts"
import { q, type Row } from "./table.ts"
import { waitFor } from "./wait.ts"

export const TASK_DONE_ROWS = [
  { id: "8a", what: "task done through a running daemon: wall", goal: "≤ 150 ms" },
  { id: "8b", what: "  task done: peak RSS", goal: "≤ 60 MB" }
] as const

const TYPED = /^dry run: would type into (\S+): Task (\S+) from the claude-failover queue \(run (\S+?)\):/

export const taskDone = async (
  daemon: DaemonProcess,
  queue: BenchQueue,
  sizes: Sizes,
  sessions: number
): Promise<ReadonlyArray<Row>> => {
  const runs = Math.min(sizes.taskDoneSamples + 1, sessions)
  const walls: Array<number> = []
  const peaks: Array<number> = []
  for (let i = 0; i < runs; i++) {
    const name = taskName("done-probe", i)
    queue.stage(name, taskText({}, `Say hello (${i}).`))
    queue.drop(name)
    const typed = await daemon.waitForLine(
      `${name} typed into a session`,
      (line) => TYPED.exec(line.message)?.[2] === name,
      30_000
    )
    const run = TYPED.exec(typed.message)?.[3] ?? ""
    // An agent runs the command only once its prompt was submitted; until the daemon records that (`started_at`), it
    // holds the task's lock, and a completion would measure the wait for the Enter.
    await waitFor(`${name} recorded as started`, () => {
      try {
        return /^started_at: /m.test(readFileSync(queue.path("active", name), "utf8"))
      } catch {
        return false
      }
    }, { timeoutMs: 30_000, everyMs: 5 })
    const result = await timedRun([NODE, DAEMON, "task", "done", name, "--run", run, "--queue-dir", queue.dir])
    if (result.exitCode !== 0)
      throw new Error(`task done ${name} --run ${run} exited ${result.exitCode}: ${result.output}`)
    if (i === 0) continue
    walls.push(result.wallMs)
    peaks.push(result.peakRssMb)
  }
  const bareWalls: Array<number> = []
  const barePeaks: Array<number> = []
  for (let i = 0; i < runs; i++) {
    const result = await bareNodeRun()
    if (i === 0) continue
    bareWalls.push(result.wallMs)
    barePeaks.push(result.peakRssMb)
  }
  const wall = median(walls)
  const peak = Math.max(...peaks)
  const [wallRow, rssRow] = TASK_DONE_ROWS
  return [
    {
      ...wallRow,
      what: `${wallRow.what} (median of ${walls.length})`,
      figure: q(wall, "ms"),
      baseline: q(median(bareWalls), "ms"),
      baselineIs: "node -e '' (median), same wrapper",
      goal: { text: wallRow.goal, met: wall <= 150 },
      note: `task done runs: ${
        walls.map((ms) => ms.toFixed(0)).join(", ")
      } ms; started by /usr/bin/time, after a warm-up run`
    },
    {
      ...rssRow,
      what: `${rssRow.what} (largest of ${peaks.length})`,
      figure: q(peak, "MB"),
      baseline: q(Math.max(...barePeaks), "MB"),
      baselineIs: "node -e '' (largest)",
      goal: { text: rssRow.goal, met: peak <= 60 }
    }
  ]
}
