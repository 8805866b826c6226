/**
 * `ccl-delegate submit | get | result` as a shell script runs them: real processes against the fake secutools server,
 * which runs in this process (so the CLI is spawned asynchronously, never with a blocking spawnSync).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  type FakeSecutools,
  type FakeSecutoolsOptions,
  startFakeSecutools
} from "../../src/adapters/fake-secutools/server.ts"

const BIN = join(import.meta.dirname, "../../bin/ccl-delegate.js")
/** Distinctive, so an echo of it anywhere in the output is caught. */
const API_KEY = "sk-ccl-jobs-test-9f8e7d6c5b4a"
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

const dir = mkdtempSync(join(tmpdir(), "ccl-jobs-"))
const servers: Array<FakeSecutools> = []
const fake = async (options: Partial<FakeSecutoolsOptions> = {}) => {
  const server = await startFakeSecutools({ apiKey: API_KEY, durationMs: 300, ...options })
  servers.push(server)
  return server
}
let shared: FakeSecutools
beforeAll(async () => {
  shared = await fake()
})
afterAll(async () => {
  await Promise.all(servers.map((server) => server.close()))
  rmSync(dir, { recursive: true, force: true })
})

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

/** Env without the caller's secutools settings, retries fast, then the test's own; `undefined` unsets a variable. */
const run = (
  server: FakeSecutools | string,
  args: ReadonlyArray<string>,
  env: Record<string, string | undefined> = {}
): Promise<Run> => {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("SECUTOOLS_")))
  const merged: Record<string, string | undefined> = {
    ...clean,
    SECUTOOLS_API_KEY: API_KEY,
    SECUTOOLS_URL: typeof server === "string" ? server : server.url,
    SECUTOOLS_RETRY_BASE: "20ms",
    SECUTOOLS_RETRY_MAX_DELAY: "200ms",
    SECUTOOLS_RETRY_ATTEMPTS: "8",
    SECUTOOLS_TIMEOUT: "2s",
    ...env
  }
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: Object.fromEntries(Object.entries(merged).filter(([, value]) => value !== undefined)),
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    // A hung CLI fails the test instead of stalling the file.
    const deadline = setTimeout(() => child.kill("SIGKILL"), 20_000)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(deadline)
      // Whatever happened, the key never shows up.
      expect(stdout + stderr).not.toContain(API_KEY)
      resolve({ code, stdout, stderr, ms: Date.now() - started })
    })
  })
}

/** stdout is exactly one JSON line. */
const json = (result: Run): Record<string, unknown> => {
  const lines = result.stdout.trim().split("\n")
  expect(lines, result.stderr).toHaveLength(1)
  return JSON.parse(lines[0] ?? "")
}
const jobIdOf = (result: Run): string => {
  const jobId = json(result).job_id
  if (typeof jobId !== "string") throw new Error(`no job_id in ${result.stdout}`)
  return jobId
}

const task = (name: string, text: string): string => {
  const file = join(dir, name)
  writeFileSync(file, text)
  return file
}

describe("ccl-delegate submit | get | result", () => {
  it.concurrent("submit --prompt prints job_id, status and a fresh key; get and result follow the job to completed", async () => {
    const submitted = await run(shared, [
      "submit",
      "--provider",
      "GPU",
      "--prompt",
      "count the lines",
      "--task-id",
      "lines"
    ])
    expect(submitted.code, submitted.stderr).toBe(0)
    expect(submitted.stderr).toBe("")
    const { idempotency_key, job_id, status } = json(submitted)
    expect(job_id).toMatch(/^j_\d+$/)
    expect(status).toBe("queued")
    expect(idempotency_key).toMatch(UUID)
    const jobId = jobIdOf(submitted)
    expect(shared.counters().jobsByTask["lines"]).toBe(1)

    const got = await run(shared, ["get", jobId])
    expect(got.code).toBe(0)
    expect(json(got)).toMatchObject({
      job_id: jobId,
      provider: "gpu",
      status: expect.stringMatching(/^(queued|running|completed)$/)
    })

    const done = await run(shared, ["result", jobId, "--wait", "--interval", "50ms", "--timeout", "10s"])
    expect(done.code, done.stderr).toBe(0)
    expect(json(done)).toStrictEqual({
      job_id: jobId,
      status: "completed",
      result: "gpu says: count the lines",
      cost_usd: 0.001
    })
    // stderr is not a terminal here: no progress line, nothing at all.
    expect(done.stderr).toBe("")
  })

  it.concurrent("an unfinished job exits 4, without --wait or when --wait runs out of time, printing what is known", async () => {
    const server = await fake({ durationMs: 60_000 })
    const jobId = jobIdOf(await run(server, ["submit", "--provider", "gemini", "--prompt", "slow"]))
    const [now, waited] = await Promise.all([
      run(server, ["result", jobId]),
      run(server, ["result", jobId, "--wait", "--timeout", "1s", "--interval", "50ms"])
    ])
    // The fake moves a job from queued to running after a while; either way it is not finished.
    expect(now.code).toBe(4)
    const nowStatus = json(now).status
    expect(json(now)).toStrictEqual({ job_id: jobId, status: expect.stringMatching(/^(queued|running)$/) })
    expect(now.stderr.trim()).toBe(`ccl-delegate: job ${jobId} is still ${nowStatus} (use --wait)`)

    expect(waited.code).toBe(4)
    const waitedStatus = json(waited).status
    expect(json(waited)).toStrictEqual({ job_id: jobId, status: expect.stringMatching(/^(queued|running)$/) })
    expect(waited.stderr.trim()).toBe(`ccl-delegate: job ${jobId} was still ${waitedStatus} after 1000ms`)
  })

  it.concurrent("a cancelled job exits 1, like a failed one; the provider's message on stderr", async () => {
    const jobId = jobIdOf(await run(shared, ["submit", "--provider", "gpu", "--prompt", "[cancel] this"]))
    const result = await run(shared, ["result", jobId, "--wait", "--interval", "50ms"])
    expect(result.code).toBe(1)
    expect(json(result)).toStrictEqual({ job_id: jobId, status: "cancelled", error: "gpu: job cancelled" })
    expect(result.stderr.trim()).toBe(`ccl-delegate: job ${jobId} cancelled: gpu: job cancelled`)
  })

  it.concurrent("the same --idempotency-key twice yields the same job, and only one is created", async () => {
    const server = await fake()
    const args = ["submit", "--provider", "gpu", "--prompt", "once", "--idempotency-key", "key-twice"]
    const first = await run(server, args)
    const second = await run(server, args)
    expect([first.code, second.code]).toStrictEqual([0, 0])
    expect(json(second)).toMatchObject({ job_id: jobIdOf(first), idempotency_key: "key-twice" })
    expect(server.counters()).toMatchObject({ jobsCreated: 1, duplicateSubmits: 1, jobsByKey: { "key-twice": 1 } })
  })

  it.concurrent("a TASK.md is submitted with its body as the prompt and its name (or id) as the task_id", async () => {
    const named = task("summarise-logs.md", "---\ncomplexity_hint: high\n---\nSummarise the logs.\n")
    const withId = task("other.md", "---\nid: T-42\n---\nCheck the certificates.\n")
    const [fromName, fromId] = await Promise.all([
      run(shared, ["submit", "--provider", "gemini", named]),
      run(shared, ["submit", "--provider", "claude-api", withId])
    ])
    expect([fromName.code, fromId.code], fromName.stderr + fromId.stderr).toStrictEqual([0, 0])
    expect(shared.counters().jobsByTask).toMatchObject({ "summarise-logs": 1, "T-42": 1 })
    const done = await run(shared, ["result", jobIdOf(fromName), "--wait", "--interval", "50ms"])
    expect(json(done)).toMatchObject({ status: "completed", result: "gemini says: Summarise the logs.\n" })
  })

  it.concurrent("--prompt-file sends the file's text, with task_id \"cli\" unless --task-id is given", async () => {
    const server = await fake()
    const file = task("prompt.txt", "Explain the diff.")
    const submitted = await run(server, [
      "submit",
      "--provider",
      "gpu",
      "--prompt-file",
      file,
      "--complexity-hint",
      "low"
    ])
    expect(submitted.code, submitted.stderr).toBe(0)
    expect(server.counters().jobsByTask).toStrictEqual({ cli: 1 })
    const done = await run(server, ["result", jobIdOf(submitted), "--wait", "--interval", "50ms"])
    expect(json(done)).toMatchObject({ result: "gpu says: Explain the diff." })
  })

  it.concurrent("a task file that does not parse exits 1 naming file, field and line; nothing is sent", async () => {
    const server = await fake()
    const broken = task("broken.md", "---\ntitle: x\nallow_delegation: \"yes\"\n---\nbody\n")
    const result = await run(server, ["submit", "--provider", "gpu", broken])
    expect(result.code).toBe(1)
    expect(result.stdout).toBe("")
    expect(result.stderr.trim()).toBe(
      "ccl-delegate: broken.md:3:1: field 'allow_delegation': Expected boolean, got string \"yes\""
    )
    const missing = await run(server, ["submit", "--provider", "gpu", join(dir, "absent.md")])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain("absent.md: cannot read")
    expect(server.counters().submits).toBe(0)
  })

  it.concurrent("a [fail] prompt: result --wait prints the failed job on stdout, the provider's error on stderr, exit 1", async () => {
    const jobId = jobIdOf(await run(shared, ["submit", "--provider", "gemini", "--prompt", "[fail] this"]))
    const result = await run(shared, ["result", jobId, "--wait", "--interval", "50ms"])
    expect(result.code).toBe(1)
    expect(json(result)).toStrictEqual({ job_id: jobId, status: "failed", error: "gemini: model refused the task" })
    expect(result.stderr.trim()).toBe(`ccl-delegate: job ${jobId} failed: gemini: model refused the task`)
  })

  it.concurrent("half the requests answered 5xx: submit still succeeds, and each retry is reported on stderr", async () => {
    const server = await fake({ ratio5xx: 0.5, seed: 1 })
    const result = await run(server, ["submit", "--provider", "gpu", "--prompt", "flaky", "--idempotency-key", "k-5xx"])
    expect(result.code, result.stderr).toBe(0)
    expect(json(result)).toMatchObject({ idempotency_key: "k-5xx" })
    expect(result.stderr).toMatch(/^retrying: submit cli: HTTP 50[023]: .*; next try in (\d+ms|0)$/m)
    expect(server.counters()).toMatchObject({ jobsCreated: 1, jobsByKey: { "k-5xx": 1 } })
    expect(server.counters().injected.status5xx).toBeGreaterThanOrEqual(1)
  })

  it.concurrent("answers lost after the job was created: the retry with the same key finds it, one job in all", async () => {
    const server = await fake({ lostAnswerRatio: 0.5, seed: 1 })
    const result = await run(server, ["submit", "--provider", "gpu", "--prompt", "lost", "--idempotency-key", "k-lost"])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stderr).toContain("retrying: submit cli: network error")
    const counters = server.counters()
    expect(counters.injected.lostAnswer).toBeGreaterThanOrEqual(1)
    expect(counters.jobsByKey).toStrictEqual({ "k-lost": 1 })
    expect(json(result).job_id).toBe("j_000001")
  })

  it.concurrent("a 429 with Retry-After: 1 is waited out before the retry", async () => {
    const server = await fake({ ratio429: 0.3, retryAfter: 1, seed: 1 })
    const result = await run(server, ["submit", "--provider", "gpu", "--prompt", "busy"])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stderr).toMatch(/^retrying: submit cli: HTTP 429: .*; next try in 1s$/m)
    expect(result.ms).toBeGreaterThanOrEqual(1000)
    expect(server.counters().injected.status429).toBe(1)
  })

  it.concurrent("no answer at all: exit 1 with the key to resubmit with", async () => {
    const gone = await startFakeSecutools({ apiKey: API_KEY })
    await gone.close()
    const result = await run(
      gone.url,
      ["submit", "--provider", "gpu", "--prompt", "x", "--idempotency-key", "k-gone"],
      {
        SECUTOOLS_RETRY_ATTEMPTS: "2"
      }
    )
    expect(result.code).toBe(1)
    expect(result.stdout).toBe("")
    expect(result.stderr).toMatch(
      /^ccl-delegate: submit cli: network error: .*resubmit with --idempotency-key k-gone$/m
    )
  })

  it.concurrent("without SECUTOOLS_API_KEY nothing is sent and the error says why; a wrong key is a 401", async () => {
    const server = await fake()
    const [submit, get, wrong] = await Promise.all([
      run(server, ["submit", "--provider", "gpu", "--prompt", "x"], { SECUTOOLS_API_KEY: undefined }),
      run(server, ["get", "j_000001"], { SECUTOOLS_API_KEY: undefined }),
      run(server, ["get", "j_000001"], { SECUTOOLS_API_KEY: `${API_KEY}-wrong` })
    ])
    expect(submit.code).toBe(1)
    expect(submit.stderr.trim()).toBe("ccl-delegate: submit cli: HTTP 401: SECUTOOLS_API_KEY is not set")
    expect(get.code).toBe(1)
    expect(get.stderr).toContain("SECUTOOLS_API_KEY is not set")
    expect(wrong.code).toBe(1)
    expect(wrong.stderr.trim()).toBe(
      "ccl-delegate: get j_000001: HTTP 401: {\"error\":\"missing or wrong bearer token\"}"
    )
    expect(`${submit.stdout}${get.stdout}${wrong.stdout}`).toBe("")
    expect(server.counters().submits).toBe(0)
  })

  it.concurrent("an unknown job is a 404, exit 1", async () => {
    const result = await run(shared, ["get", "j_nope"])
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe("ccl-delegate: get j_nope: HTTP 404: {\"error\":\"no job j_nope\"}")
  })

  it.concurrent.each([
    [["submit", "--provider", "gpu"], "give the prompt: --prompt TEXT, --prompt-file FILE or a TASK.md file"],
    [
      ["submit", "--provider", "gpu", "--prompt-file", "f", "TASK.md"],
      "give only one prompt source, not --prompt-file and a TASK.md file"
    ],
    [
      ["submit", "--provider", "openai", "--prompt", "x"],
      "Invalid value for flag --provider: \"openai\". Expected: one of gpu, gemini, claude-api"
    ],
    [
      ["result", "j_1", "--wait", "--timeout", "10"],
      "Invalid value for flag --timeout: \"10\". Expected: a duration such as 500ms, 30s, 5m or 1h"
    ],
    [["result", "j_1", "--timeout", "1s"], "--timeout and --interval apply only with --wait"]
  ])("usage error %j exits 2 and says what is wrong", async (args, message) => {
    const result = await run(shared, args)
    expect(result.code).toBe(2)
    expect(result.stderr).toContain(message)
  })

  it.concurrent("--help describes each subcommand and its flags", async () => {
    const [submit, result] = await Promise.all([run(shared, ["submit", "--help"]), run(shared, ["result", "--help"])])
    expect([submit.code, result.code]).toStrictEqual([0, 0])
    for (
      const flag of ["--provider", "--prompt", "--prompt-file", "--idempotency-key", "--task-id", "--complexity-hint"]
    ) {
      expect(submit.stdout).toContain(flag)
    }
    for (const flag of ["--wait", "--timeout", "--interval"]) expect(result.stdout).toContain(flag)
  })
})
