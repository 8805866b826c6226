/**
 * The daemon as a real process (`bin/claude-failover.js`), its stdout read line by line as it comes.
 * Easy to get wrong: `stop` must end it even when it hangs, and a process that already exited is not signalled.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { Settings } from "../src/config.ts"

const DAEMON_KEYS = new Set([...Object.values(Settings).map((setting) => setting.env), "CLAUDE_FAILOVER_FAILPOINT"])

/**
 * This environment without any of the daemon's settings or the stand-ins' (`STANDIN_*`), then `settings`: a QUEUE_DIR
 * or STANDIN_MODES exported in the operator's shell must not steer the demo (headless runs inherit the daemon's).
 */
export const daemonEnv = (settings: Readonly<Record<string, string>>): NodeJS.ProcessEnv => ({
  ...Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !DAEMON_KEYS.has(key) && !key.startsWith("STANDIN_"))
  ),
  ...settings
})

export class DaemonProcess {
  readonly child: ChildProcess
  /** Everything it wrote to stderr, for the report when something goes wrong. */
  stderr = ""
  readonly exited: Promise<number | null>

  /** `env`: every setting the daemon gets; the rest of this process's environment is passed on. */
  constructor(root: string, env: Readonly<Record<string, string>>, onLine: (line: string) => void) {
    this.child = spawn(process.execPath, [join(root, "bin/claude-failover.js")], {
      cwd: root,
      env: daemonEnv(env),
      stdio: ["ignore", "pipe", "pipe"]
    })
    this.exited = new Promise((resolve) => this.child.once("exit", (code) => resolve(code)))
    if (this.child.stdout !== null) createInterface({ input: this.child.stdout }).on("line", onLine)
    this.child.stderr?.on("data", (chunk: Buffer) => (this.stderr += chunk.toString()))
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`; resolves to the exit code (null when killed). */
  async stop(graceMs = 10_000): Promise<number | null> {
    if (!this.running) return this.exited
    this.child.kill("SIGTERM")
    let timer: NodeJS.Timeout | undefined
    const forced = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), graceMs)))
    const outcome = await Promise.race([this.exited, forced])
    clearTimeout(timer)
    if (outcome !== "timeout") return outcome
    this.child.kill("SIGKILL")
    await this.exited
    return null
  }
}
