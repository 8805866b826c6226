/** `ccl-delegate decide` as a shell script runs it: a real process, a real file, env for the API key. */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const BIN = join(import.meta.dirname, "../../bin/ccl-delegate.js")
const dir = mkdtempSync(join(tmpdir(), "decide-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Env without any of the daemon's variables, plus what the test sets. */
const decide = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith("SECUTOOLS_") && key !== "COMPLEXITY_MAP")
  )
  const result = spawnSync(process.execPath, [BIN, "decide", ...args], { env: { ...clean, ...env }, encoding: "utf8" })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}
const json = (stdout: string): unknown => JSON.parse(stdout)
const key = { SECUTOOLS_API_KEY: "sk-test" }

describe("ccl-delegate decide", () => {
  it("--field preferred_ai=gemini with an API key delegates to gemini (preferred_provider)", () => {
    const { code, stdout } = decide(["--field", "preferred_ai=gemini"], key)
    expect(code).toBe(0)
    expect(stdout.trim().split("\n")).toHaveLength(1)
    expect(json(stdout)).toStrictEqual({ route: "delegate", provider: "gemini", reason: "preferred_provider" })
  })

  it.each([
    [["--field", "needs_claude_code=true", "--field", "preferred_ai=gpu"], key, {
      route: "local",
      reason: "needs_claude_code"
    }],
    [["--field", "preferred_ai=claude-code"], key, { route: "local", reason: "preferred_claude_code" }],
    [["--field", "preferred_ai=gpu", "--field", "allow_delegation=false"], key, {
      route: "local",
      reason: "delegation_not_allowed"
    }],
    [["--field", "preferred_ai=gpu"], {}, { route: "local", reason: "delegation_disabled" }],
    [["--field", "preferred_ai=auto", "--field", "complexity_hint=low"], key, {
      route: "delegate",
      provider: "gpu",
      reason: "complexity_map"
    }],
    [["--field", "preferred_ai=auto"], { ...key, COMPLEXITY_MAP: "medium=claude-api" }, {
      route: "delegate",
      provider: "claude-api",
      reason: "complexity_map"
    }],
    [["--field", "allow_delegation=true", "--local-unavailable"], { ...key, FAILOVER_PROVIDER: "gpu" }, {
      route: "delegate",
      provider: "gpu",
      reason: "local_unavailable"
    }],
    [["--field", "allow_delegation=true"], key, { route: "local", reason: "fail_safe_local" }]
  ])("%j routes as DESIGN says", (args, env, expected) => {
    const { code, stdout } = decide(args, env)
    expect(code).toBe(0)
    expect(json(stdout)).toStrictEqual(expected)
  })

  it("reads a task file, and --field overrides it", () => {
    const file = join(dir, "summarise.md")
    writeFileSync(file, "---\npreferred_ai: auto\ncomplexity_hint: high\n---\nSummarise the logs.\n")
    expect(json(decide([file], key).stdout)).toStrictEqual({
      route: "delegate",
      provider: "claude-api",
      reason: "complexity_map"
    })
    expect(json(decide([file, "--field", "needs_claude_code=true"], key).stdout)).toStrictEqual({
      route: "local",
      reason: "needs_claude_code"
    })
  })

  it("a file that does not parse exits non-zero with file, field and line on stderr", () => {
    const file = join(dir, "broken.md")
    writeFileSync(file, "---\ntitle: x\nallow_delegation: \"yes\"\n---\nbody\n")
    const { code, stdout, stderr } = decide([file], key)
    expect(code).toBe(1)
    expect(stdout).toBe("")
    expect(stderr.trim()).toBe(
      "ccl-delegate: broken.md:3:1: field 'allow_delegation': Expected boolean, got string \"yes\""
    )
  })

  it("a missing file, or nothing to decide on, is an error; a bad flag is a usage error", () => {
    expect(decide([join(dir, "absent.md")]).code).toBe(1)
    expect(decide([]).stderr).toContain("give a task file, --field key=value pairs, or both")
    const usage = decide(["--bogus"])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toContain("Unrecognized flag: --bogus")
  })

  it("--help describes the command", () => {
    const { code, stdout } = decide(["--help"])
    expect(code).toBe(0)
    expect(stdout).toContain("--field key=value")
    expect(stdout).toContain("--local-unavailable")
  })

  it("never prints the API key, even when the configuration is invalid", () => {
    const { code, stderr, stdout } = decide(["--field", "preferred_ai=gpu"], { ...key, API_PORT: "x" })
    expect(code).toBe(2)
    expect(stderr).toContain("API_PORT=\"x\"")
    expect(stderr + stdout).not.toContain("sk-test")
  })
})
