/**
 * A private tmux server (`tmux -L bench-<pid>`) for the latency scenario: Claude Code stand-ins in sessions, a tap
 * on each pane's output, and the raw cost of one `send-keys`. Killed at the end, whatever happens.
 * Easy to get wrong: tmux 3.3 leaves its socket file behind after kill-server, so it is removed too; and the
 * stand-ins are given a wide window, so a prompt's first line is drawn whole in the input box.
 */
import { execFileSync, spawn } from "node:child_process"
import { existsSync, readFileSync, rmSync } from "node:fs"
import { join } from "node:path"
import { onCleanup } from "./cleanup.ts"
import { NODE, ROOT } from "./daemon-process.ts"
import { nowMs, waitFor } from "./wait.ts"

export const STANDIN = join(ROOT, "stand-ins/claude-code.ts")
const TAP = join(ROOT, "bench/pane-tap.ts")

export interface TapEvent {
  readonly session: string
  readonly task?: string
  readonly ready?: boolean
  readonly at: number
}

/** JSON lines of a file that others append to; missing file = none yet. */
export const readJsonLines = (file: string): ReadonlyArray<Record<string, unknown>> =>
  existsSync(file)
    ? readFileSync(file, "utf8").split("\n").filter((line) => line.trim() !== "").flatMap((line) => {
      try {
        const value: unknown = JSON.parse(line)
        return typeof value === "object" && value !== null ? [Object.fromEntries(Object.entries(value))] : []
      } catch {
        return []
      }
    })
    : []

export class PrivateTmux {
  readonly socket = `bench-${process.pid}`
  readonly #release: () => void

  constructor() {
    this.#release = onCleanup(`tmux server ${this.socket}`, () => this.#kill())
  }

  tmux(...args: ReadonlyArray<string>): string {
    return execFileSync("tmux", ["-L", this.socket, ...args], { encoding: "utf8" })
  }

  /** A detached session running `command` directly (no shell), with `env` set. */
  startSession(session: string, command: ReadonlyArray<string>, env: Readonly<Record<string, string>> = {}): void {
    const vars = Object.entries(env).flatMap(([name, value]) => ["-e", `${name}=${value}`])
    this.tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "50", ...vars, ...command)
  }

  /** Starts a tap on the session's pane output, writing to `logFile`; resolves once the tap runs. */
  async tap(session: string, logFile: string): Promise<void> {
    this.tmux("pipe-pane", "-O", "-t", `=${session}:`, `exec ${NODE} ${TAP} ${session} ${logFile}`)
    await waitFor(
      `the pane tap of ${session}`,
      () => readJsonLines(logFile).some((e) => e.session === session && e.ready === true),
      {
        timeoutMs: 15_000
      }
    )
  }

  /** Wall time of one `tmux -L … send-keys -l x` to `session`, spawn to exit, ms. */
  sendKeysOnce(session: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const started = nowMs()
      const child = spawn("tmux", ["-L", this.socket, "send-keys", "-t", `=${session}:`, "-l", "x"], {
        stdio: "ignore"
      })
      child.on("error", reject)
      child.on(
        "exit",
        (code) => (code === 0 ? resolve(nowMs() - started) : reject(new Error(`send-keys exited ${code}`)))
      )
    })
  }

  #kill(): void {
    try {
      execFileSync("tmux", ["-L", this.socket, "kill-server"], { stdio: "ignore" })
    } catch {
      // already gone
    }
    const uid = process.getuid?.() ?? 0
    rmSync(join(process.env.TMUX_TMPDIR ?? "/tmp", `tmux-${uid}`, this.socket), { force: true })
  }

  kill(): void {
    this.#kill()
    this.#release()
  }
}
