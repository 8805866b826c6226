/**
 * Row 3: the daemon at rest, with 8 dry-run sessions, delegation on and an empty queue: its RSS after 10 s and its
 * CPU over a window; against a bare Node measured over the same window beside it.
 * Easy to get wrong: the window starts only once the daemon has logged its start (its start-up is not idle), and the
 * sleeps here are the measurement itself, not a wait for something to happen.
 */
import { startIdleNode } from "./bare-node.ts"
import type { DaemonProcess } from "./daemon-process.ts"
import { cpuTick } from "./proc.ts"
import { IDLE_SETTLE_MS, type Sizes } from "./sizes.ts"
import { q, type Row } from "./table.ts"
import { measurementWindow, nowMs } from "./wait.ts"

export const IDLE_ROWS = [
  { id: "3a", what: "idle daemon, 8 dry-run sessions: RSS after 10 s", goal: "≤ 100 MB" },
  { id: "3b", what: "  idle daemon: CPU, % of one core", goal: "≤ 0.5 %" }
] as const

export const idleDaemon = async (daemon: DaemonProcess, sizes: Sizes): Promise<ReadonlyArray<Row>> => {
  const bare = await startIdleNode()
  try {
    const start = nowMs()
    const daemonCpu = daemon.cpuSeconds()
    const bareCpu = bare.cpuSeconds()
    await measurementWindow(IDLE_SETTLE_MS)
    const daemonRss = daemon.rssMb()
    const bareRss = bare.rssMb()
    await measurementWindow(Math.max(0, start + sizes.idleWindowMs - nowMs()))
    const seconds = (nowMs() - start) / 1000
    const daemonPercent = ((daemon.cpuSeconds() - daemonCpu) / seconds) * 100
    const barePercent = ((bare.cpuSeconds() - bareCpu) / seconds) * 100
    const [rss, cpu] = IDLE_ROWS
    return [
      {
        ...rss,
        figure: q(daemonRss, "MB"),
        baseline: q(bareRss, "MB"),
        baselineIs: "bare node -e, idle, same moment",
        goal: { text: rss.goal, met: daemonRss <= 100 }
      },
      {
        ...cpu,
        what: `  idle daemon: CPU over ${seconds.toFixed(0)} s, % of one core`,
        figure: q(daemonPercent, "%"),
        baseline: q(barePercent, "%"),
        baselineIs: "bare node -e, same window",
        goal: { text: cpu.goal, met: daemonPercent <= 0.5 },
        note: `CPU time is counted in ticks of ${cpuTick * 1000} ms: over ${seconds.toFixed(0)} s one tick is ` +
          `${((cpuTick / seconds) * 100).toFixed(3)} %`
      }
    ]
  } finally {
    await bare.stop()
  }
}
