/** `claude-failover status` as a real process against the real status API serving a fixture snapshot. */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
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
      ["old-2.md", "headless-1", "finished", "$0.012", "2", "43878ddd-e32b-40a7-af7b-a6d59153e47f", "2026-11-24T11:50:00.000Z"]
    ])
    expect(section(stdout, "Sessions needing attention")).toStrictEqual([
      ["SESSION", "REASON"],
      ["claude-3", "permission prompt waiting for an answer"]
    ])
  })

  it("says none where a section is empty", async () => {
    const { code, stdout } = await cli(["--url", empty.url])
    expect(code).toBe(0)
    for (const heading of ["Sessions", "Stale tasks", "Headless runs (latest)", "Tasks waiting for a usage limit to reset", "Sessions needing attention"]) {
      expect(section(stdout, heading), heading).toStrictEqual([["none"]])
    }
    expect(section(stdout, "Delegated jobs")).toStrictEqual([
      ["none"],
      ["submitted 0 · completed 0 · failed 0 · retries 0 · rejected 0 · active 0"]
    ])
    expect(section(stdout, "Queue").slice(1)).toStrictEqual([["pending", "0"], ["active", "0"], ["done", "0"], ["failed", "0"]])
  })

  it("--json prints the four answers as one object", async () => {
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
    expect(stderr).toMatch(new RegExp(`^claude-failover status: cannot reach the daemon at ${url}: .*ECONNREFUSED.*\\n$`))
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
