/**
 * The daemon as a real process: `node bin/claude-failover.js` with settings in its environment, its JSON log lines
 * read as they come, its status API and its /proc figures.
 * Easy to get wrong: the environment is built from nothing (no setting, config file or token of the shell leaks in),
 * and a daemon that exits early fails the wait at once, with its last output, instead of at the deadline.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { request } from "node:http"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { createInterface } from "node:readline"
import { killIfRunning, onCleanup } from "./cleanup.ts"
import { cpuSeconds, rssHighWaterMb, rssMb } from "./proc.ts"
import { nowMs, waitFor } from "./wait.ts"

export const ROOT = resolve(import.meta.dirname, "..")
/** The pinned Node the project runs on. */
export const NODE = join(ROOT, "node_modules/node/bin/node")
export const DAEMON = join(ROOT, "bin/claude-failover.js")
/**
 * The Node flags `npm start` runs the daemon with (read from package.json, so the bench measures what users run), and
 * BENCH_DAEMON_FLAGS (e.g. `--cpu-prof --cpu-prof-dir=DIR`, to see where a row's time goes).
 */
const START_FLAGS: ReadonlyArray<string> = (() => {
  const pkg: unknown = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"))
  const start = typeof pkg === "object" && pkg !== null && "scripts" in pkg && typeof pkg.scripts === "object" &&
      pkg.scripts !== null && "start" in pkg.scripts && typeof pkg.scripts.start === "string"
    ? pkg.scripts.start
    : ""
  const extra = process.env.BENCH_DAEMON_FLAGS?.split(/\s+/).filter((word) => word !== "") ?? []
  return [...start.split(/\s+/).filter((word) => word.startsWith("--")), ...extra]
})()
export const API_TOKEN = "bench-token"

export interface LogLine {
  readonly message: string
  readonly level: string
  /** The daemon's own timestamp of the line, epoch ms. */
  readonly at: number
  readonly annotations: Readonly<Record<string, unknown>>
  /** When the bench read it, epoch ms. */
  readonly receivedAt: number
}

/** A clean environment for a claude-failover process: PATH and HOME, an empty config home, and these settings. */
export const cleanEnv = (configHome: string, settings: Readonly<Record<string, string>>): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: process.env.HOME ?? "/tmp",
  LANG: "C.UTF-8",
  XDG_CONFIG_HOME: configHome,
  ...Object.fromEntries(Object.entries(settings).map(([name, value]) => [`CLAUDE_FAILOVER_${name}`, value]))
})

const parseLine = (text: string, receivedAt: number): LogLine | undefined => {
  try {
    const value: unknown = JSON.parse(text)
    if (typeof value !== "object" || value === null) return undefined
    const field = new Map(Object.entries(value))
    const message = field.get("message")
    const annotations = field.get("annotations")
    return {
      message: typeof message === "string" ? message : JSON.stringify(message),
      level: String(field.get("level") ?? ""),
      at: Date.parse(String(field.get("timestamp") ?? "")),
      annotations: typeof annotations === "object" && annotations !== null
        ? Object.fromEntries(Object.entries(annotations))
        : {},
      receivedAt
    }
  } catch {
    return undefined
  }
}

type Waiter = { readonly match: (line: LogLine) => boolean; readonly resolve: (line: LogLine) => void }

/**
 * A daemon on `queueDir` with dry-run sessions claude-1 … claude-N, each turn taking `turn` (the daemon's default when
 * left out): what every bench scenario without real tmux starts.
 */
export const dryRunDaemon = (queueDir: string, sessions: number, turn?: string): Readonly<Record<string, string>> => ({
  QUEUE_DIR: queueDir,
  SESSIONS_MODE: "dry-run",
  TMUX_SESSIONS: Array.from({ length: sessions }, (_, i) => `claude-${i + 1}`).join(","),
  ...(turn === undefined ? {} : { DRY_RUN_DELAY: turn })
})

export class DaemonProcess {
  readonly child: ChildProcess
  readonly pid: number
  /** When the process was spawned, epoch ms. */
  readonly spawnedAt: number
  readonly lines: Array<LogLine> = []
  #other: Array<string> = []
  #waiters = new Set<Waiter>()
  #exit: Promise<number | string>
  #exited = false
  #release: () => void
  #configHome: string
  apiUrl = ""

  constructor(settings: Readonly<Record<string, string>>) {
    this.#configHome = mkdtempSync(join(tmpdir(), "cf-bench-config-"))
    const env = cleanEnv(this.#configHome, { API_PORT: "0", API_TOKEN, LOG_FORMAT: "json", ...settings })
    this.spawnedAt = nowMs()
    this.child = spawn(NODE, [...START_FLAGS, DAEMON], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] })
    if (this.child.pid === undefined) throw new Error("the daemon could not be started")
    this.pid = this.child.pid
    const pid = this.pid
    const configHome = this.#configHome
    this.#release = onCleanup(`daemon ${pid}`, () => {
      killIfRunning(pid)
      rmSync(configHome, { recursive: true, force: true })
    })
    this.#exit = new Promise((done) =>
      this.child.on("exit", (code, signal) => {
        this.#exited = true
        done(code ?? signal ?? "unknown")
      })
    )
    if (this.child.stdout !== null) {
      createInterface({ input: this.child.stdout }).on("line", (text) => this.#take(text))
    }
    if (this.child.stderr !== null) createInterface({ input: this.child.stderr }).on("line", (text) => this.#keep(text))
  }

  #keep(text: string) {
    this.#other.push(text)
    if (this.#other.length > 40) this.#other.shift()
  }

  #take(text: string) {
    const line = parseLine(text, nowMs())
    if (line === undefined) return this.#keep(text)
    this.lines.push(line)
    if (line.level === "ERROR" || line.level === "FATAL" || line.level === "WARN")
      this.#keep(`${line.level} ${line.message}`)
    const listening = /^status API listening on (http:\/\/\S+)/.exec(line.message)
    if (listening?.[1] !== undefined) this.apiUrl = listening[1]
    for (const waiter of this.#waiters) {
      if (!waiter.match(line)) continue
      this.#waiters.delete(waiter)
      waiter.resolve(line)
    }
  }

  get running(): boolean {
    return !this.#exited
  }

  /** The last lines the daemon printed that were not ordinary log lines, and its warnings: for error messages. */
  get lastOutput(): string {
    return this.#other.join("\n")
  }

  /** The first log line (already read or still to come) that `match` accepts. */
  waitForLine(what: string, match: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine> {
    const seen = this.lines.find(match)
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise((resolvePromise, reject) => {
      const waiter: Waiter = {
        match,
        resolve: (line) => {
          clearTimeout(timer)
          resolvePromise(line)
        }
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter)
        reject(new Error(`timed out after ${timeoutMs} ms waiting for the daemon to log ${what}\n${this.lastOutput}`))
      }, timeoutMs)
      this.#waiters.add(waiter)
      void this.#exit.then((code) => {
        if (!this.#waiters.has(waiter)) return
        this.#waiters.delete(waiter)
        clearTimeout(timer)
        const said = this.lastOutput.split("\n").find((text) => text.trim() !== "" && !text.startsWith("WARN "))
          ?.slice(0, 300) ?? "nothing"
        reject(new Error(`the daemon exited (${code}) before it logged ${what}; it said: ${said}\n${this.lastOutput}`))
      })
    })
  }

  /** Resolves with the start line once the daemon has started (lock taken, status API up). */
  async started(timeoutMs = 60_000): Promise<LogLine> {
    const line = await this.waitForLine(
      "its start line",
      (l) => /^claude-failover \S+ started (?:on|as host) /.test(l.message),
      timeoutMs
    )
    await waitFor("the status API address", () => this.apiUrl !== "", { timeoutMs: 5_000 })
    return line
  }

  cpuSeconds(): number {
    return cpuSeconds(this.pid)
  }

  /**
   * Resolves once the daemon has used less than `maxShare` of a core over a window of `windowMs`: it has digested what
   * it was given. A condition read from /proc, so the bench need not ask the daemon (and so load it).
   */
  async settled(
    what: string,
    options: { readonly windowMs?: number; readonly maxShare?: number; readonly timeoutMs: number }
  ) {
    const windowMs = options.windowMs ?? 1000
    const maxShare = options.maxShare ?? 0.05
    const deadline = nowMs() + options.timeoutMs
    for (;;) {
      const before = this.cpuSeconds()
      await new Promise((resolve) => setTimeout(resolve, windowMs))
      if (!this.running) throw new Error(`the daemon exited while ${what}: ${this.lastOutput}`)
      if ((this.cpuSeconds() - before) * 1000 < windowMs * maxShare) return
      if (nowMs() > deadline) throw new Error(`the daemon was still busy ${options.timeoutMs} ms after ${what}`)
    }
  }

  rssMb(): number {
    return rssMb(this.pid)
  }

  rssHighWaterMb(): number {
    return rssHighWaterMb(this.pid)
  }

  /** GET a path of the status API with the token; the body as text. */
  get(path: string): Promise<{ readonly status: number; readonly body: string }> {
    return httpGet(`${this.apiUrl}${path}`, API_TOKEN)
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`; resolves with the exit code or signal. */
  async stop(graceMs = 20_000): Promise<number | string> {
    if (!this.#exited) this.child.kill("SIGTERM")
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs)
    const code = await this.#exit
    clearTimeout(timer)
    rmSync(this.#configHome, { recursive: true, force: true })
    this.#release()
    return code
  }
}

export const httpGet = (url: string, token?: string): Promise<{ readonly status: number; readonly body: string }> =>
  new Promise((resolvePromise, reject) => {
    // A fresh connection each time: a kept-alive one may be closed by the server just as it is reused.
    const headers = token === undefined ? {} : { authorization: `Bearer ${token}` }
    const req = request(url, { agent: false, headers }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("end", () => resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }))
      res.on("error", reject)
    })
    req.on("error", reject)
    req.setTimeout(30_000, () => req.destroy(new Error(`GET ${url}: no answer within 30 s`)))
    req.end()
  })

/** The daemon's resolved settings, as `claude-failover config` prints them. */
export const resolvedSettings = (
  settings: Readonly<Record<string, string>>
): Promise<Readonly<Record<string, unknown>>> =>
  new Promise((resolvePromise, reject) => {
    const configHome = mkdtempSync(join(tmpdir(), "cf-bench-config-"))
    const child = spawn(NODE, [DAEMON, "config"], {
      cwd: ROOT,
      env: cleanEnv(configHome, settings),
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()))
    child.on("error", reject)
    child.on("exit", (code) => {
      rmSync(configHome, { recursive: true, force: true })
      try {
        const value: unknown = JSON.parse(out)
        if (code !== 0 || typeof value !== "object" || value === null) throw new Error(`exit ${code}`)
        resolvePromise(Object.fromEntries(Object.entries(value)))
      } catch (error) {
        reject(new Error(`claude-failover config failed: ${String(error)}`, { cause: error }))
      }
    })
  })
