/**
 * The machine a run was measured on: CPU model, cores, memory, Node, load, date; recorded with the results.
 * Easy to get wrong: figures from different machines (or a busy one) do not compare, so the load average at the
 * start and end of the run is kept beside them.
 */
import { cpus, freemem, loadavg, totalmem } from "node:os"
import { readFileSync } from "node:fs"

const cpuModel = (): string => {
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))
    if (match?.[1] !== undefined) return match[1].trim()
  } catch {
    // not Linux
  }
  return cpus()[0]?.model ?? "unknown"
}

export interface Machine {
  readonly cpu: string
  readonly cores: number
  readonly memoryGb: number
  readonly freeMemoryGb: number
  readonly node: string
  readonly platform: string
  readonly date: string
  readonly loadAverage: ReadonlyArray<number>
}

export const describeMachine = (): Machine => ({
  cpu: cpuModel(),
  cores: cpus().length,
  memoryGb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
  freeMemoryGb: Math.round((freemem() / 2 ** 30) * 10) / 10,
  node: process.version,
  platform: `${process.platform} ${process.arch}`,
  date: new Date().toISOString(),
  loadAverage: loadavg().map((load) => Math.round(load * 100) / 100)
})

export const machineLine = (machine: Machine): string =>
  `${machine.cpu}, ${machine.cores} cores, ${machine.memoryGb} GB; Node ${machine.node}; ${machine.date}; ` +
  `load ${machine.loadAverage.join(" ")}`
