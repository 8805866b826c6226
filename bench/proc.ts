/**
 * What Linux says about a process: CPU seconds (utime + stime from /proc/PID/stat) and resident memory (VmRSS, VmHWM).
 * Easy to get wrong: stat's second field is the command in parentheses and may hold spaces, so fields are counted
 * after the last ')'; the times are in clock ticks (getconf CLK_TCK), not milliseconds.
 */
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"

const ticksPerSecond = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100
  } catch {
    return 100
  }
})()

/** User + system CPU seconds the process has used so far (its own, not its children's). */
export const cpuSeconds = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  // After the command: state is field 3, so utime (14) and stime (15) are at offsets 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond
}

const statusKb = (pid: number, key: "VmRSS" | "VmHWM"): number => {
  const match = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"))
  if (match === null) throw new Error(`/proc/${pid}/status has no ${key}`)
  return Number(match[1])
}

/** Resident set size now, in MB (1024²). */
export const rssMb = (pid: number): number => statusKb(pid, "VmRSS") / 1024

/** The resident set's high-water mark over the process's life, in MB. */
export const rssHighWaterMb = (pid: number): number => statusKb(pid, "VmHWM") / 1024

/** The clock tick, in seconds: the resolution of `cpuSeconds`. */
export const cpuTick = 1 / ticksPerSecond
