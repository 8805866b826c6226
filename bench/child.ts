/**
 * Runs one of the bench's own Node scripts (a baseline, a load generator, a peer) as a separate process and reads the
 * JSON it prints last; also times the process from spawn to exit.
 * Easy to get wrong: the script's own figures come from inside it (its clock, its rusage), the wall time from here;
 * both are returned so a scenario says which one it compares.
 */
import { spawn } from "node:child_process"
import { join } from "node:path"
import { killIfRunning, onCleanup } from "./cleanup.ts"
import { NODE, ROOT } from "./daemon-process.ts"
import { nowMs } from "./wait.ts"

export interface ChildResult {
  readonly output: unknown
  /** Spawn to exit, ms. */
  readonly wallMs: number
}

export const runScript = (
  script: string,
  args: ReadonlyArray<string>,
  options: { readonly timeoutMs?: number; readonly env?: NodeJS.ProcessEnv } = {}
): Promise<ChildResult> =>
  new Promise((resolve, reject) => {
    const started = nowMs()
    const child = spawn(NODE, [join(ROOT, "bench", script), ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      ...(options.env === undefined ? {} : { env: options.env })
    })
    const release = onCleanup(`${script} ${child.pid}`, () => killIfRunning(child.pid))
    let out = ""
    let err = ""
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()))
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 300_000)
    child.on("error", reject)
    child.on("exit", (code, signal) => {
      const wallMs = nowMs() - started
      clearTimeout(timer)
      release()
      const last = out.trim().split("\n").at(-1) ?? ""
      if (code !== 0) return reject(new Error(`${script} exited ${code ?? signal}: ${err.trim().slice(-2000)}`))
      try {
        resolve({ output: JSON.parse(last), wallMs })
      } catch {
        reject(new Error(`${script} printed no JSON result: ${out.slice(-500)} ${err.slice(-500)}`))
      }
    })
  })

/** A number field of a script's JSON result. */
export const numberField = (output: unknown, field: string): number => {
  const value = typeof output === "object" && output !== null ? new Map(Object.entries(output)).get(field) : undefined
  if (typeof value !== "number") throw new Error(`the script's result has no number '${field}'`)
  return value
}

/** An array-of-numbers field of a script's JSON result. */
export const numbersField = (output: unknown, field: string): ReadonlyArray<number> => {
  const value = typeof output === "object" && output !== null ? new Map(Object.entries(output)).get(field) : undefined
  if (!Array.isArray(value) || !value.every((item) => typeof item === "number")) {
    throw new Error(`the script's result has no number list '${field}'`)
  }
  return value
}

export interface ServerScript {
  readonly port: number
  readonly pid: number
  stop(): Promise<void>
}

/** Starts a server script of the bench that prints `{"port":N}` once it listens; stopped with SIGTERM. */
export const startServerScript = (script: string, args: ReadonlyArray<string>): Promise<ServerScript> =>
  new Promise((resolve, reject) => {
    const child = spawn(NODE, [join(ROOT, "bench", script), ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] })
    const pid = child.pid
    if (pid === undefined) return reject(new Error(`${script} could not be started`))
    const release = onCleanup(`${script} ${pid}`, () => killIfRunning(pid))
    const exited = new Promise<void>((done) => child.on("exit", () => done()))
    let out = ""
    let err = ""
    child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()))
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString()
      const first = out.split("\n")[0] ?? ""
      if (!out.includes("\n")) return
      try {
        const port = numberField(JSON.parse(first), "port")
        resolve({
          port,
          pid,
          stop: async () => {
            child.kill("SIGTERM")
            await exited
            release()
          }
        })
      } catch (error) {
        reject(new Error(`${script} did not say its port: ${first} ${err}`, { cause: error }))
      }
    })
    child.on("exit", (code) => reject(new Error(`${script} exited ${code} before it listened: ${err}`)))
  })
