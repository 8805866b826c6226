/**
 * Whether a process still runs, by its pid.
 * Easy to get wrong: signal 0 succeeds for a zombie (a process that ended and that its parent has not reaped — an
 * orphan under a PID 1 that is slow to reap, in some containers), and fails with EPERM for another user's process.
 */
import { readFileSync } from "node:fs"

/** Running: not gone, and not a zombie waiting for a parent that may never reap it (PID 1 in some containers). */
export const isRunning = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch (error) {
    if (!(typeof error === "object" && error !== null && "code" in error && error.code === "EPERM")) return false
  }
  try {
    // /proc/PID/stat: "pid (comm) S …"; the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z"
  } catch {
    return true
  }
}
