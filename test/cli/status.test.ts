/** `claude-failover status` as a real process against the real status API serving a fixture snapshot. */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { createServer, type Server } from "node:http"
import { join } from "node:path"
import { daemonUrl, formatAge } from "../../src/adapters/cli/status.ts"
import { emptySnapshot, expectedBodies, type FixtureServer, startFixtureServer } from "../fixtures/status-snapshot.ts"
import { freePort } from "../free-port.ts"

const BIN = join(import.meta.dirname, "../../bin/claude-failover.js")
const TOKEN = "cli-test-token"

let open: FixtureServer
let guarded: FixtureServer
let empty: FixtureServer
beforeAll(async () => {
  ;[open, guarded, empty] = await Promise.all([
    startFixtureServer(),
    startFixtureServer({ token: TOKEN }),
    startFixtureServer({ snapshot: emptySnapshot })
  ])
})
afterAll(async () => {
  await Promise.all([open.close(), guarded.close(), empty.close()])
})

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Async, because the server answering the CLI runs in this very process. Only PATH and HOME are inherited. */
const cli = (args: ReadonlyArray<string>, env: Readonly<Record<string, string>> = {}) =>
  new Promise<Run>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, "status", ...args], {
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.once("error", reject)
    child.once("close", (code) => resolve({ code, stdout, stderr }))
  })

/** The rows of the table under `heading`, cells split where the columns are (two or more spaces). */
const section = (stdout: string, heading: string): ReadonlyArray<ReadonlyArray<string>> => {
  const lines = stdout.split("\n")
  const start = lines.indexOf(heading)
  if (start < 0) throw new Error(`no section ${heading} in:\n${stdout}`)
  const end = lines.findIndex((line, i) => i > start && line === "")
  return lines.slice(start + 1, end < 0 ? undefined : end).map((line) => line.trim().split(/ {2,}/))
}

describe.concurrent("claude-failover status", () => {
  it("prints sessions, queue, delegated jobs, stale tasks and sessions needing attention as tables", async () => {
    const { code, stderr, stdout } = await cli(["--url", open.url])
    expect(stderr).toBe("")
    expect(code).toBe(0)
    expect(section(stdout, "Sessions")).toStrictEqual([
      ["NAME", "STATE", "FROM", "ACCOUNT", "TASK", "COOLDOWN UNTIL"],
      ["claude-1", "busy", "hook", "acct1", "fix-login.md", "-"],
      ["claude-2", "usage_limited", "pane", "acct1", "-", "2026-11-24T15:00:00.000Z"],
      ["claude-3", "permission_prompt", "pane", "acct2", "write-docs.md", "-"],
      ["claude-4", "missing", "pane", "acct2", "-", "-"]
    ])
    expect(section(stdout, "Queue")).toStrictEqual([
      ["STAGE", "TASKS"],
      ["pending", "3"],
      ["active", "2"],
      ["done", "2"],
      ["failed", "1"]
    ])
    expect(section(stdout, "Delegated jobs")).toStrictEqual([
      ["TASK", "PROVIDER", "JOB", "STATE", "POLLS", "SUBMITTED"],
      ["summarise.md", "gemini", "j_42", "submitted", "7", "2026-11-24T11:58:01.000Z"],
      ["translate.md", "gpu", "-", "submitting", "0", "-"],
      ["submitted 9 · completed 6 · failed 1 · retries 4 · rejected 2 · active 2"]
    ])
    expect(section(stdout, "Stale tasks")).toStrictEqual([
      ["TASK", "SESSION", "UNCHANGED FOR"],
      ["write-docs.md", "claude-3", "42m 10s"]
    ])
    expect(section(stdout, "Tasks waiting for a usage limit to reset")).toStrictEqual([
      ["TASK", "SESSION", "UNTIL", "CONTINUED BY"],
      ["long-refactor.md", "claude-2", "2026-11-24T15:00:00.000Z", "the daemon"]
    ])
    expect(section(stdout, "Headless runs (latest)")).toStrictEqual([
      ["TASK", "SLOT", "OUTCOME", "COST", "TURNS", "CLAUDE SESSION", "ENDED"],
      [
        "old-2.md",
        "headless-1",
        "finished",
        "$0.012",
        "2",
        "43878ddd-e32b-40a7-af7b-a6d59153e47f",
        "2026-11-24T11:50:00.000Z"
      ]
    ])
    expect(section(stdout, "Sessions needing attention")).toStrictEqual([
      ["SESSION", "REASON"],
      ["claude-3", "permission prompt waiting for an answer"]
    ])
  })

  it("says none where a section is empty", async () => {
    const { code, stdout } = await cli(["--url", empty.url])
    expect(code).toBe(0)
    for (
      const heading of [
        "Sessions",
        "Stale tasks",
        "Headless runs (latest)",
        "Tasks waiting for a usage limit to reset",
        "Sessions needing attention"
      ]
    ) {
      expect(section(stdout, heading), heading).toStrictEqual([["none"]])
    }
    expect(section(stdout, "Delegated jobs")).toStrictEqual([
      ["none"],
      ["submitted 0 · completed 0 · failed 0 · retries 0 · rejected 0 · active 0"]
    ])
    expect(section(stdout, "Queue").slice(1)).toStrictEqual([["pending", "0"], ["active", "0"], ["done", "0"], [
      "failed",
      "0"
    ]])
  })

  it("lists the hosts of a shared queue, this one marked, a silent one said to be losing its runs", async () => {
    const { code, stdout } = await cli(["--url", open.url])
    expect(code).toBe(0)
    expect(section(stdout, "Hosts (shared queue)")).toStrictEqual([
      ["HOST", "HEARTBEAT", "STATE", "RUNNING", "JOBS", "SESSIONS", "STARTED"],
      ["box-1 (this)", "2s ago", "alive", "2", "1", "3 (2 busy, 1 idle)", "2026-11-24T08:00:00.000Z"],
      [
        "box-2",
        "2m 0s ago",
        "silent (its runs and jobs go to the others)",
        "1",
        "0",
        "1 (1 usage limited)",
        "2026-11-24T09:00:00.000Z"
      ]
    ])
    // With the file queue there is one host: no such section.
    expect((await cli(["--url", empty.url])).stdout).not.toContain("Hosts")
  })

  it("--json prints the answers as one object", async () => {
    const { code, stdout } = await cli(["--url", `${open.url}/`, "--json"])
    expect(code).toBe(0)
    const printed: unknown = JSON.parse(stdout)
    expect(printed).toStrictEqual(expectedBodies)
  })

  it("without --url it calls API_HOST:API_PORT, and a daemon bound to 0.0.0.0 is called on 127.0.0.1", async () => {
    const port = new URL(open.url).port
    const { code, stdout } = await cli(["--json"], { API_HOST: "0.0.0.0", API_PORT: port })
    expect(code).toBe(0)
    expect(JSON.parse(stdout)).toStrictEqual(expectedBodies)
  })

  it("an unreachable daemon → exit 1 and one line naming the URL", async () => {
    const url = `http://127.0.0.1:${await freePort()}`
    const { code, stderr, stdout } = await cli(["--url", url])
    expect(code).toBe(1)
    expect(stdout).toBe("")
    expect(stderr).toMatch(
      new RegExp(`^claude-failover status: cannot reach the daemon at ${url}: .*ECONNREFUSED.*\\n$`)
    )
  })

  it("a daemon that requires a token → exit 1 without API_TOKEN or with a wrong one; works with the right one", async () => {
    const missing = await cli(["--url", guarded.url])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toBe(
      `claude-failover status: the daemon at ${guarded.url} requires a token: set API_TOKEN to the daemon's API_TOKEN\n`
    )
    const wrong = await cli(["--url", guarded.url], { API_TOKEN: "not-the-token" })
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toBe(
      `claude-failover status: the daemon at ${guarded.url} rejected the token in API_TOKEN (401): it is not the daemon's API_TOKEN\n`
    )
    expect(wrong.stderr).not.toContain("not-the-token")
    const right = await cli(["--url", guarded.url, "--json"], { API_TOKEN: TOKEN })
    expect(right.code).toBe(0)
    expect(JSON.parse(right.stdout)).toStrictEqual(expectedBodies)
  })

  it("API_PORT=0 without --url → exit 1 asking for --url; a --url that is not a URL is a usage error (exit 2)", async () => {
    const zero = await cli([], { API_PORT: "0" })
    expect(zero.code).toBe(1)
    expect(zero.stderr).toContain("claude-failover status: API_PORT is 0")
    expect((await cli(["--url", "not a url"])).code).toBe(2)
    const intervalAlone = await cli(["--url", open.url, "--interval", "1s"])
    expect(intervalAlone.code).toBe(2)
    expect(intervalAlone.stderr).toContain("--interval applies only with --watch")
  })
})

/** A `status --watch` process left running: its output so far, and its end. */
interface Watching {
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exited: Promise<number | null>
}

const watching: Array<Watching> = []
afterAll(() => {
  for (const w of watching) w.child.kill("SIGKILL")
})

const startWatch = (args: ReadonlyArray<string>): Watching => {
  const child = spawn(process.execPath, [BIN, "status", "--watch", ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  const exited = new Promise<number | null>((resolve) => child.once("close", resolve))
  const w = { child, stdout: () => stdout, stderr: () => stderr, exited }
  watching.push(w)
  return w
}

/** Polls `check` until it holds, or fails naming what was awaited and the output so far. */
const waitFor = async (what: string, check: () => boolean, output: () => string, ms = 20_000) => {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; output so far:\n${output()}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const HEADING = /^claude-failover status · (\S+) · (\d{4}-\d\d-\d\dT[\d:.]+Z) · every 200ms \(Ctrl-C to stop\)$/gm
const headings = (stdout: string) => [...stdout.matchAll(HEADING)]

/** A stand-in for a daemon that can go away and come back on the same port: it forwards to a fixture server. */
const forwarder = (target: string, port: number) =>
  new Promise<Server>((resolve, reject) => {
    const server = createServer((req, res) => {
      fetch(`${target}${req.url ?? "/"}`, { headers: { accept: "application/json" } })
        .then(async (answer) =>
          res.writeHead(answer.status, { "content-type": "application/json" }).end(await answer.text())
        )
        .catch(() => res.writeHead(502).end())
    })
    server.once("error", reject)
    server.listen(port, "127.0.0.1", () => resolve(server))
  })
const stop = (server: Server) =>
  new Promise<void>((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })

describe.concurrent("claude-failover status --watch", () => {
  it("redraws every --interval, each draw under a heading with its time; SIGTERM ends it with exit 0", async () => {
    const readsBefore = open.reads()
    const w = startWatch(["--url", open.url, "--interval", "200ms"])
    await waitFor("three draws", () => headings(w.stdout()).length >= 3, w.stdout)
    w.child.kill("SIGTERM")
    expect(await w.exited).toBe(0)
    expect(w.stderr()).toBe("")
    const stdout = w.stdout()
    const times = headings(stdout).map((m) => Date.parse(m[2] ?? ""))
    expect(times.slice(1).every((t, i) => t > (times[i] ?? Infinity))).toBe(true)
    // Every draw is a whole status, and nothing clears a screen that is not a terminal.
    expect(stdout.split("\nSessions\n").length - 1).toBeGreaterThanOrEqual(3)
    expect(stdout).not.toContain("\u001b[")
    expect(open.reads() - readsBefore).toBeGreaterThanOrEqual(3)
  })

  it("a daemon that goes away is shown as unreachable, and the watch goes on until it is back", async () => {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    let daemon = await forwarder(open.url, port)
    const w = startWatch(["--url", url, "--interval", "200ms"])
    await waitFor("a first draw", () => w.stdout().includes("\nSessions\n"), w.stdout)

    await stop(daemon)
    const unreachable = new RegExp(
      `^cannot reach the daemon at ${url}: .*ECONNREFUSED.* \\(since \\S+; trying again every 200ms\\)$`,
      "gm"
    )
    await waitFor(
      "two draws saying the daemon cannot be reached",
      () => [...w.stdout().matchAll(unreachable)].length >= 2,
      w.stdout
    )
    expect(w.child.exitCode).toBe(null)

    daemon = await forwarder(open.url, port)
    const seen = w.stdout().length
    await waitFor("the tables again", () => w.stdout().slice(seen).includes("\nSessions\n"), w.stdout)
    await stop(daemon)
    w.child.kill("SIGTERM")
    expect(await w.exited).toBe(0)
  })

  it("--watch --json: one JSON object per line", async () => {
    const w = startWatch(["--url", empty.url, "--interval", "200ms", "--json"])
    await waitFor("two lines", () => w.stdout().split("\n").length >= 3, w.stdout)
    w.child.kill("SIGTERM")
    expect(await w.exited).toBe(0)
    const lines = w.stdout().trimEnd().split("\n")
    for (const line of lines)
      expect(Object.keys(JSON.parse(line))).toStrictEqual(["sessions", "tasks", "delegated", "watchdog", "hosts"])
  })

  it("on a terminal each draw clears the screen first: one status on screen at a time", async () => {
    const socket = `cf-status-watch-${process.pid}`
    const tmux = (...args: Array<string>) => execFileSync("tmux", ["-L", socket, ...args], { encoding: "utf8" })
    try {
      tmux(
        // Tall enough for several draws: without the clearing they would show one under the other.
        "new-session",
        "-d",
        "-x",
        "160",
        "-y",
        "150",
        "env",
        `PATH=${process.env.PATH ?? ""}`,
        process.execPath,
        BIN,
        "status",
        "--watch",
        "--url",
        empty.url,
        "--interval",
        "200ms"
      )
      const screen = () => tmux("capture-pane", "-p")
      let first = ""
      await waitFor("a draw", () => (first = headings(screen())[0]?.[2] ?? "") !== "", screen)
      // A later draw has replaced the first one, not been written under it.
      await waitFor("a later draw in its place", () => {
        const now = headings(screen())
        return now.length === 1 && now[0]?.[2] !== first
      }, screen)
      const lines = screen().split("\n")
      expect(lines[0]).toMatch(new RegExp(HEADING.source))
      expect(lines.filter((line) => line.trim() === "Sessions")).toHaveLength(1)
    } finally {
      execFileSync("tmux", ["-L", socket, "kill-server"], { stdio: "ignore" })
    }
  })
})

describe("status helpers", () => {
  it("daemonUrl: wildcard binds become loopback, IPv6 gets brackets", () => {
    expect(daemonUrl("127.0.0.1", 7878)).toBe("http://127.0.0.1:7878")
    expect(daemonUrl("0.0.0.0", 7878)).toBe("http://127.0.0.1:7878")
    expect(daemonUrl("::", 7878)).toBe("http://[::1]:7878")
    expect(daemonUrl("::1", 9000)).toBe("http://[::1]:9000")
    expect(daemonUrl("status.local", 80)).toBe("http://status.local:80")
  })

  it("formatAge", () => {
    expect([formatAge(0), formatAge(59), formatAge(61), formatAge(2530), formatAge(3600 * 5 + 120)])
      .toStrictEqual(["0s", "59s", "1m 1s", "42m 10s", "5h 2m"])
  })
})
