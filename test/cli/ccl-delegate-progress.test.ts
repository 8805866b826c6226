/**
 * `ccl-delegate result --wait` on a terminal: one progress line on stderr, rewritten in place and erased at the end.
 * The terminal is a pane of a private tmux server; the fake secutools server runs in this process.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { formatWaitProgress } from "../../src/adapters/cli/wait-progress.ts"
import { type FakeSecutools, startFakeSecutools } from "../../src/adapters/fake-secutools/server.ts"

const BIN = join(import.meta.dirname, "../../bin/ccl-delegate.js")
const API_KEY = "sk-progress-test-3c2b1a"
const SOCKET = `cf-progress-${process.pid}`
const dir = mkdtempSync(join(tmpdir(), "ccl-progress-"))

let server: FakeSecutools
beforeAll(async () => {
  server = await startFakeSecutools({ apiKey: API_KEY, durationMs: 5_000 })
})
afterAll(async () => {
  try {
    execFileSync("tmux", ["-L", SOCKET, "kill-server"], { stdio: "ignore" })
  } catch {
    // No server left to kill.
  }
  await server.close()
  rmSync(dir, { recursive: true, force: true })
})

const tmux = (...args: Array<string>) => execFileSync("tmux", ["-L", SOCKET, ...args], { encoding: "utf8" })
const pane = () => tmux("capture-pane", "-p", "-t", "progress")

/** Polls `check` until it returns a value, or fails with what was last seen. */
const until = async <A>(what: string, check: () => A | undefined, ms = 20_000): Promise<A> => {
  const deadline = Date.now() + ms
  for (;;) {
    const value = check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; pane:\n${pane()}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

describe("formatWaitProgress", () => {
  const base = { jobId: "j_000042", startedAtMs: 0 }

  it("says the status, whole seconds waited and when the next poll is", () => {
    expect(formatWaitProgress({ ...base, status: "running", nextPollAtMs: 14_200 }, 12_400))
      .toBe("job j_000042: running · waited 12s · next poll in 2s")
    expect(formatWaitProgress({ ...base, status: "queued", nextPollAtMs: 200_000 }, 65_000))
      .toBe("job j_000042: queued · waited 1m 5s · next poll in 2m 15s")
  })

  it("before the first answer, and while a poll is out, says so", () => {
    expect(formatWaitProgress({ ...base, status: undefined, nextPollAtMs: undefined }, 300))
      .toBe("job j_000042: asking secutools · waited 0s · polling")
    expect(formatWaitProgress({ ...base, status: "running", nextPollAtMs: 1_000 }, 1_500))
      .toBe("job j_000042: running · waited 1s · polling")
  })
})

describe("ccl-delegate result --wait on a terminal", () => {
  it("rewrites one progress line while it waits, erases it at the end, and prints the JSON on stdout", async () => {
    const submitted = await fetch(`${server.url}/v1/jobs`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${API_KEY}`,
        "content-type": "application/json",
        "idempotency-key": "k-progress"
      },
      body: JSON.stringify({ task_id: "progress", provider: "gpu", prompt: "take your time" })
    })
    const { job_id: jobId } = (await submitted.json()) as { job_id: string }
    const out = join(dir, "out.json")
    const exit = join(dir, "exit")
    const script = join(dir, "wait.sh")
    writeFileSync(
      script,
      [
        "#!/bin/sh",
        `export SECUTOOLS_API_KEY='${API_KEY}' SECUTOOLS_URL='${server.url}'`,
        `'${process.execPath}' '${BIN}' result '${jobId}' --wait --interval 500ms > '${out}'`,
        `echo $? > '${exit}'`,
        "sleep 60"
      ].join("\n")
    )
    chmodSync(script, 0o755)
    tmux("new-session", "-d", "-s", "progress", "-x", "160", "-y", "10", script)

    // A later redraw of the same line: more than a second waited, and still one progress line on the screen.
    const line = await until(
      "a progress line that has been rewritten",
      () =>
        pane().split("\n").find((l) =>
          /^job j_\d+: (queued|running) · waited [1-9]\d*s · (next poll in \d+s|polling)$/.test(l.trim())
        )
    )
    expect(line).toContain(jobId)
    expect(pane().split("\n").filter((l) => l.includes(`job ${jobId}:`))).toHaveLength(1)

    await until(
      "the command to end",
      () => existsSync(exit) && readFileSync(exit, "utf8").trim() !== "" ? true : undefined
    )
    expect(readFileSync(exit, "utf8").trim()).toBe("0")
    expect(JSON.parse(readFileSync(out, "utf8"))).toMatchObject({ job_id: jobId, status: "completed" })
    expect(pane()).not.toContain(`job ${jobId}:`)
  })
})
