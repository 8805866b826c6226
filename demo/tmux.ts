/**
 * A private tmux server (`tmux -L cf-demo-…`, never the default one) with Claude Code stand-ins in it.
 * Easy to get wrong: a stand-in is started the way an operator starts Claude Code, typed into a shell in the pane,
 * so the daemon sees a pane that falls back to a shell if it exits.
 */
import { execFileSync } from "node:child_process"
import { rmSync } from "node:fs"
import { join } from "node:path"
import { waitFor } from "./wait.ts"

export class PrivateTmux {
  readonly socket = `cf-demo-${process.pid}-${Math.random().toString(36).slice(2, 8)}`

  readonly root: string

  /** `root`: this checkout, where the stand-in lives and the panes start. */
  constructor(root: string) {
    this.root = root
  }

  tmux(...args: ReadonlyArray<string>): string {
    return execFileSync("tmux", ["-L", this.socket, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
  }

  startStandin(session: string, env: Readonly<Record<string, string>>): void {
    this.tmux(
      "new-session",
      "-d",
      "-s",
      session,
      "-x",
      "120",
      "-y",
      "40",
      "-c",
      this.root,
      "bash --norc --noprofile -i"
    )
    const assignments = Object.entries(env).map(([key, value]) => `${key}=${value}`)
    const command = `env ${assignments.join(" ")} ${process.execPath} ${join(this.root, "stand-ins/claude-code.ts")}`
    this.tmux("send-keys", "-t", `=${session}:`, "-l", command)
    this.tmux("send-keys", "-t", `=${session}:`, "Enter")
  }

  /** The stand-in runs (the pane's command is node) and shows its input box. */
  isReady(session: string): boolean {
    try {
      const command = this.tmux("display-message", "-p", "-t", `=${session}:`, "#{pane_current_command}").trim()
      return command === "node" && this.tmux("capture-pane", "-p", "-t", `=${session}:`).includes("? for shortcuts")
    } catch {
      return false
    }
  }

  waitUntilReady(sessions: ReadonlyArray<string>, signal: AbortSignal): Promise<true> {
    return waitFor("the stand-ins to show `? for shortcuts`", () => sessions.every((s) => this.isReady(s)), {
      timeoutMs: 15_000,
      signal
    })
  }

  /** Where the server listens, e.g. `/tmp/tmux-0/cf-demo-…`; undefined when no server runs. */
  socketPath(): string | undefined {
    try {
      return this.tmux("display-message", "-p", "#{socket_path}").trim() || undefined
    } catch {
      return undefined
    }
  }

  /** Stops the server and removes its socket file (tmux 3.3 leaves it behind). Idempotent. */
  kill(): void {
    const path = this.socketPath()
    try {
      execFileSync("tmux", ["-L", this.socket, "kill-server"], { stdio: "ignore" })
    } catch {
      // already gone
    }
    if (path !== undefined) rmSync(path, { force: true })
  }
}
