/**
 * End-to-end helpers: a private tmux server with Claude Code stand-ins, a temporary queue, the daemon as a
 * real process, and waits on conditions with deadlines. Everything started here is stopped by `cleanup`.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { Result } from "effect"
import { parseTask, type TaskFields } from "../../src/domain/task.ts"

export const ROOT = resolve(import.meta.dirname, "../..")
const STANDIN = join(ROOT, "stand-ins/claude-code.ts")
const DAEMON = join(ROOT, "bin/claude-failover.js")

/**
 * Polls `check` every `everyMs` until it returns a value other than undefined/false, or fails after `timeoutMs` saying
 * what it waited for.
 */
export const waitFor = async <A>(
  what: string,
  check: () => A | undefined | false | Promise<A | undefined | false>,
  timeoutMs = 30_000,
  everyMs = 100
): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

export class TmuxServer {
  readonly socket = `cf-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`

  tmux(...args: ReadonlyArray<string>): string {
    return execFileSync("tmux", ["-L", this.socket, ...args], { encoding: "utf8" })
  }

  /** Starts the stand-in the way an operator starts Claude Code: typed into an interactive shell. */
  startStandin(session: string, env: Readonly<Record<string, string>> = {}): void {
    this.tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", "bash --norc --noprofile -i")
    const assignments = Object.entries({ STANDIN_WORK_MS: "700", ...env }).map(([k, v]) => `${k}=${v}`)
    this.tmux("send-keys", "-t", `=${session}:`, "-l", `env ${assignments.join(" ")} ${process.execPath} ${STANDIN}`)
    this.tmux("send-keys", "-t", `=${session}:`, "Enter")
  }

  capture(session: string): string {
    return this.tmux("capture-pane", "-p", "-t", `=${session}:`)
  }

  currentCommand(session: string): string {
    return this.tmux("display-message", "-p", "-t", `=${session}:`, "#{pane_current_command}").trim()
  }

  /** Kills the server and removes its socket file, which tmux 3.3 leaves behind. */
  kill(): void {
    let socketPath = ""
    try {
      socketPath = this.tmux("display-message", "-p", "#{socket_path}").trim()
      execFileSync("tmux", ["-L", this.socket, "kill-server"], { stdio: "ignore" })
    } catch {
      // already gone
    }
    if (socketPath !== "") rmSync(socketPath, { force: true })
  }
}

export class Queue {
  readonly root = mkdtempSync(join(tmpdir(), "cf-queue-"))

  constructor() {
    for (const stage of ["pending", "active", "done", "failed"]) mkdirSync(join(this.root, stage), { recursive: true })
  }

  list(stage: string): ReadonlyArray<string> {
    return existsSync(join(this.root, stage)) ? readdirSync(join(this.root, stage)).sort() : []
  }

  tasks(stage: string): ReadonlyArray<string> {
    return this.list(stage).filter((name) => name.endsWith(".md") && !name.startsWith("."))
  }

  read(stage: string, name: string): string {
    return readFileSync(join(this.root, stage, name), "utf8")
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true })
  }
}

export class Daemon {
  readonly process: ChildProcess
  output = ""
  exited: Promise<number | null>

  /** `ownProcessGroup`: the daemon and everything it starts can be killed at once (`killHost`), as a machine dies. */
  constructor(env: Readonly<Record<string, string>>, options: { readonly ownProcessGroup?: boolean } = {}) {
    this.process = spawn(process.execPath, [DAEMON], {
      detached: options.ownProcessGroup === true,
      cwd: ROOT,
      env: {
        ...process.env,
        POLL_INTERVAL: "250ms",
        SCAN_INTERVAL: "1s",
        SETTLE_AFTER: "300ms",
        API_PORT: "0",
        ...env
      },
      stdio: ["ignore", "pipe", "pipe"]
    })
    this.process.stdout?.on("data", (chunk: Buffer) => (this.output += chunk.toString()))
    this.process.stderr?.on("data", (chunk: Buffer) => (this.output += chunk.toString()))
    this.exited = new Promise((resolve) => this.process.on("exit", (code) => resolve(code)))
  }

  /** Resolves once the daemon serves its status API (start-up done: lock, recovery about to run). */
  ready(timeoutMs = 30_000): Promise<true> {
    return waitFor("the daemon to start", () => {
      if (this.output.includes("status API listening on")) return true
      // A daemon that exited will not start: say so now, with what it printed, rather than after the deadline.
      if (this.process.exitCode !== null || this.process.signalCode !== null) {
        throw new Error(
          `the daemon exited (${this.process.exitCode ?? this.process.signalCode}) before it started:\n${this.output}`
        )
      }
      return false
    }, timeoutMs)
  }

  /** SIGKILL to the daemon's process group (see `ownProcessGroup`): it and every process it started die at once. */
  async killHost(): Promise<void> {
    if (this.process.pid !== undefined) process.kill(-this.process.pid, "SIGKILL")
    await this.exited
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill(signal)
    return this.exited
  }
}

/** `key: value` lines of a task file's frontmatter (flat values only, enough for assertions). */
export const frontmatter = (text: string): Record<string, string> => {
  const match = /^---\n([\s\S]*?)\n---\n/.exec(text)
  return Object.fromEntries(
    (match?.[1] ?? "").split("\n").flatMap((line) => {
      const at = line.indexOf(": ")
      return at < 0 ? [] : [[line.slice(0, at), line.slice(at + 2)]]
    })
  )
}

/** A task file's fields as the daemon reads them (nested ones such as `history` included). */
export const taskFields = (name: string, text: string): TaskFields => Result.getOrThrow(parseTask(name, text)).fields

/** Why the task last went back to the queue, if it did. */
export const lastRequeue = (name: string, text: string): string | undefined =>
  taskFields(name, text).history?.filter((entry) => entry.event === "requeued").at(-1)?.reason
