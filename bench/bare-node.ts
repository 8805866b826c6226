/**
 * Bare Node as a baseline: an idle `node -e` kept running (its RSS and CPU), and `node -e ''` run to the end under
 * /usr/bin/time (wall and peak RSS), exactly as the daemon's commands are run.
 * Easy to get wrong: the same pinned Node binary and the same measuring wrapper are used for both sides.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { killIfRunning, onCleanup } from "./cleanup.ts"
import { NODE, ROOT } from "./daemon-process.ts"
import { cpuSeconds, rssMb } from "./proc.ts"
import { nowMs } from "./wait.ts"

export interface IdleNode {
  readonly pid: number
  cpuSeconds(): number
  rssMb(): number
  stop(): Promise<void>
}

/** A bare Node that does nothing but stay alive (one timer), once it has started. */
export const startIdleNode = (): Promise<IdleNode> =>
  new Promise((resolve, reject) => {
    const child = spawn(NODE, ["-e", "console.log('ready'); setInterval(() => {}, 60_000)"], {
      stdio: ["ignore", "pipe", "ignore"]
    })
    const pid = child.pid
    if (pid === undefined) return reject(new Error("bare node could not be started"))
    const release = onCleanup(`bare node ${pid}`, () => killIfRunning(pid))
    const exited = new Promise<void>((done) => child.on("exit", () => done()))
    child.stdout.once("data", () =>
      resolve({
        pid,
        cpuSeconds: () => cpuSeconds(pid),
        rssMb: () => rssMb(pid),
        stop: async () => {
          child.kill("SIGTERM")
          await exited
          release()
        }
      }))
    child.on("exit", (code) => reject(new Error(`bare node exited (${code}) before it was ready`)))
  })

export interface TimedRun {
  readonly wallMs: number
  readonly peakRssMb: number
  readonly exitCode: number
  readonly output: string
}

/** Runs a command under `/usr/bin/time -f %M` (peak RSS in KB) and times it from spawn to exit. */
export const timedRun = (command: ReadonlyArray<string>, env?: NodeJS.ProcessEnv): Promise<TimedRun> =>
  new Promise((resolve, reject) => {
    const scratch = mkdtempSync(join(tmpdir(), "cf-bench-time-"))
    const report = join(scratch, "time.txt")
    const started = nowMs()
    const child = spawn("/usr/bin/time", ["-f", "%M", "-o", report, ...command], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      ...(env === undefined ? {} : { env })
    })
    const release = onCleanup(`${command.join(" ")}`, () => {
      killIfRunning(child.pid)
      rmSync(scratch, { recursive: true, force: true })
    })
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.on("error", reject)
    child.on("exit", (code) => {
      const wallMs = nowMs() - started
      try {
        const kb = Number(readFileSync(report, "utf8").trim().split("\n").at(-1))
        resolve({ wallMs, peakRssMb: kb / 1024, exitCode: code ?? -1, output })
      } catch (error) {
        reject(new Error(`/usr/bin/time wrote no report for ${command.join(" ")}: ${output}`, { cause: error }))
      } finally {
        rmSync(scratch, { recursive: true, force: true })
        release()
      }
    })
  })

/** `node -e ''` under the same wrapper. */
export const bareNodeRun = (): Promise<TimedRun> => timedRun([NODE, "-e", ""])
