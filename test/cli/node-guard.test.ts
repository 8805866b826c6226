/**
 * The Node check of the entry points, run as a person or a service manager would: the machine's old Node
 * (/usr/bin/node, Node 20) starting `bin/claude-failover.js` hands over to the pinned Node, or says what to install.
 * Easy to get wrong: a copy of bin/ in a temporary directory is a real package layout (its own package.json, its own
 * node_modules), so a missing or too-old pinned Node is tested as it happens, with no switch in the code.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Schema } from "effect"
import { ROOT, waitFor } from "../e2e/support.ts"

const PACKAGE = Schema.decodeUnknownSync(Schema.fromJsonString(Schema.Struct({
  version: Schema.String,
  engines: Schema.Struct({ node: Schema.String })
})))(readFileSync(join(ROOT, "package.json"), "utf8"))
const MINIMUM = PACKAGE.engines.node.replace(/^>=\s*/, "")
const ENTRY_POINTS = ["claude-failover", "ccl-delegate"] as const

/** The machine's own Node, older than the minimum: what `#!/usr/bin/env node` finds on this host and in CI. */
const OLD_NODE = "/usr/bin/node"

const versionOf = (node: string): string =>
  spawnSync(node, ["--version"], { encoding: "utf8" }).stdout.trim().replace(/^v/, "")

const isOlder = (version: string, minimum: string): boolean => {
  const have = version.split(".").map(Number)
  const need = minimum.split(".").map(Number)
  for (let i = 0; i < 3; i++) {
    if ((have[i] ?? 0) !== (need[i] ?? 0)) return (have[i] ?? 0) < (need[i] ?? 0)
  }
  return false
}

/** The old Node these tests start the entry points with; its absence is a broken machine, said as such. */
const oldNode = (): { readonly path: string; readonly version: string } => {
  const version = existsSync(OLD_NODE) ? versionOf(OLD_NODE) : ""
  if (version === "" || !isOlder(version, MINIMUM)) {
    throw new Error(
      `these tests need a Node older than ${MINIMUM} at ${OLD_NODE} (found ${version === "" ? "none" : version}); ` +
        "the refusal cases below cover a too-old Node without it"
    )
  }
  return { path: OLD_NODE, version }
}

const temps: Array<string> = []
const running: Array<ChildProcess> = []
afterEach(() => {
  for (const child of running.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true })
})

const tempDir = (prefix: string): string => {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  temps.push(dir)
  return dir
}

// test/isolated-env.ts (run before every file) keeps the home directory's configuration out of these runs.
const envWith = (extra: Readonly<Record<string, string>> = {}) => ({ ...process.env, ...extra })

const run = (node: string, script: string, args: ReadonlyArray<string>) => {
  const result = spawnSync(node, [script, ...args], {
    cwd: tmpdir(),
    env: envWith(),
    encoding: "utf8",
    timeout: 60_000
  })
  return { code: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr }
}

/**
 * A package made of this checkout's bin/ and a package.json (with `engines.node` as given), and a pinned Node at
 * node_modules/node/bin/node only when one is given. The TypeScript sources are absent: these runs never reach them.
 */
const packageCopy = (options: { readonly engines?: string; readonly pinnedNode?: string }): string => {
  const root = tempDir("cf-guard-package-")
  mkdirSync(join(root, "bin"))
  for (const file of ["claude-failover.js", "ccl-delegate.js", "node-guard.js"]) {
    copyFileSync(join(ROOT, "bin", file), join(root, "bin", file))
  }
  const pkg = Schema.decodeUnknownSync(Schema.fromJsonString(Schema.Record(Schema.String, Schema.Unknown)))(
    readFileSync(join(ROOT, "package.json"), "utf8")
  )
  const engines = { node: options.engines ?? PACKAGE.engines.node }
  writeFileSync(join(root, "package.json"), JSON.stringify({ ...pkg, engines }, null, 2))
  if (options.pinnedNode !== undefined) {
    mkdirSync(join(root, "node_modules/node/bin"), { recursive: true })
    symlinkSync(options.pinnedNode, join(root, "node_modules/node/bin/node"))
  }
  return root
}

describe("an entry point started by a Node older than the minimum", () => {
  for (const program of ENTRY_POINTS) {
    it(`${program} --version runs on the pinned Node and prints package.json's version`, () => {
      const result = run(oldNode().path, join(ROOT, "bin", `${program}.js`), ["--version"])
      expect(result.stderr).toBe("")
      expect(result.stdout.trim()).toBe(`${program} v${PACKAGE.version}`)
      expect(result.code).toBe(0)
    })
  }

  it("the command's own exit codes come back unchanged: 1 for a failure, 2 for a usage error", () => {
    const queue = tempDir("cf-guard-noqueue-")
    const failed = run(oldNode().path, join(ROOT, "bin/claude-failover.js"), [
      "task",
      "done",
      "x",
      "--queue-dir",
      queue
    ])
    expect(failed.stderr).toContain(`no queue at ${queue}`)
    expect(failed.code).toBe(1)
    const usage = run(oldNode().path, join(ROOT, "bin/claude-failover.js"), ["--no-such-flag"])
    expect(usage.code).toBe(2)
  })

  for (const program of ENTRY_POINTS) {
    it(`${program} without a pinned Node prints one line naming both versions and the fix, and exits 2`, () => {
      const node = oldNode()
      const root = packageCopy({})
      const result = run(node.path, join(root, "bin", `${program}.js`), ["--version"])
      expect(result.stdout).toBe("")
      expect(result.stderr).toBe(
        `${program} needs Node.js >= ${MINIMUM} (this is ${node.version} at ${node.path}); ` +
          `run \`npm ci\` in ${root} to install the pinned Node 24, or install Node ${MINIMUM}+\n`
      )
      expect(result.code).toBe(2)
    })
  }
})

describe("the minimum comes from package.json alone", () => {
  // The running Node (new) is too old for this copy's engines: the refusal does not depend on /usr/bin/node.
  it("a Node below engines.node is refused in one line, exit 2, with no pinned Node to hand over to", () => {
    const root = packageCopy({ engines: ">=99.1" })
    const result = run(process.execPath, join(root, "bin/claude-failover.js"), ["--version"])
    expect(result.stderr).toBe(
      `claude-failover needs Node.js >= 99.1 (this is ${process.versions.node} at ${process.execPath}); ` +
        `run \`npm ci\` in ${root} to install the pinned Node 24, or install Node 99.1+\n`
    )
    expect(result.code).toBe(2)
  })

  it("a pinned Node that is itself too old is reported once, not handed over to again", () => {
    const root = packageCopy({ engines: ">=99.1", pinnedNode: process.execPath })
    const result = run(process.execPath, join(root, "bin/ccl-delegate.js"), ["--version"])
    // One line: the pinned Node's own refusal, passed on with its exit code by the first process.
    expect(result.stderr).toBe(
      `ccl-delegate needs Node.js >= 99.1 (this is ${process.versions.node} at ${process.execPath}, the pinned one); ` +
        "raise the `node` package's version in package.json, or install Node 99.1+\n"
    )
    expect(result.code).toBe(2)
  })

  it("engines.node in a form the check cannot read stops with the file and field named", () => {
    const root = packageCopy({ engines: "^22" })
    const result = run(process.execPath, join(root, "bin/claude-failover.js"), ["--version"])
    expect(result.stderr).toContain(`${join(root, "package.json")}: engines.node must read ">=MAJOR.MINOR[.PATCH]"`)
    expect(result.code).not.toBe(0)
  })
})

describe("a daemon started through the hand-over", () => {
  /** The daemon under the old Node, on a fresh queue, once it serves its API; its pid is the lock label's. */
  const startDaemon = async () => {
    const queue = tempDir("cf-guard-queue-")
    const guard = spawn(oldNode().path, [join(ROOT, "bin/claude-failover.js")], {
      cwd: queue,
      env: envWith({ QUEUE_DIR: queue, SESSIONS_MODE: "dry-run", API_PORT: "0" }),
      stdio: ["ignore", "pipe", "pipe"]
    })
    running.push(guard)
    let output = ""
    guard.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
    guard.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      guard.on("exit", (code, signal) => resolve({ code, signal }))
    )
    await waitFor("the daemon to serve its status API", () => {
      if (guard.exitCode !== null)
        throw new Error(`the daemon exited (${guard.exitCode}) before it started:\n${output}`)
      return output.includes("status API listening on")
    })
    const label = Schema.decodeUnknownSync(Schema.fromJsonString(Schema.Struct({ pid: Schema.Int })))(
      readFileSync(join(queue, ".lock.json"), "utf8")
    )
    return { guard, daemonPid: label.pid, exited, output: () => output }
  }

  const isAlive = (pid: number): boolean => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }

  it("SIGTERM to the first process stops the daemon cleanly: exit 0, no process left", async () => {
    const { guard, daemonPid, exited, output } = await startDaemon()
    // The daemon is the pinned Node's process, not the one the signal is sent to.
    expect(daemonPid).not.toBe(guard.pid)
    expect(isAlive(daemonPid)).toBe(true)
    guard.kill("SIGTERM")
    const { code, signal } = await exited
    expect({ code, signal, output: code === 0 ? "" : output() }).toStrictEqual({ code: 0, signal: null, output: "" })
    expect(isAlive(daemonPid)).toBe(false)
  })

  it("a daemon killed by a signal makes the first process die of the same signal, as a service manager expects", async () => {
    const { daemonPid, exited } = await startDaemon()
    process.kill(daemonPid, "SIGKILL")
    expect(await exited).toStrictEqual({ code: null, signal: "SIGKILL" })
    expect(isAlive(daemonPid)).toBe(false)
  })
})
