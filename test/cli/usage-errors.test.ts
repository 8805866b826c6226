/**
 * Both commands as processes given a command line they cannot run: usage on stderr and exit 2, stdout untouched;
 * `--help` on stdout and exit 0; and the shared `--config` flag read by `ccl-delegate` as by the daemon.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const BIN = {
  "claude-failover": join(import.meta.dirname, "../../bin/claude-failover.js"),
  "ccl-delegate": join(import.meta.dirname, "../../bin/ccl-delegate.js")
} as const
const dir = mkdtempSync(join(tmpdir(), "cf-usage-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Spawned asynchronously so the cases run side by side; none of the caller's settings reach the process. */
const run = (program: keyof typeof BIN, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  new Promise<Run>((resolve, reject) => {
    const inherited = Object.fromEntries(
      Object.entries(process.env).filter(([key]) =>
        !/^(QUEUE_DIR|API_|SECUTOOLS_|COMPLEXITY_MAP|CLAUDE_FAILOVER_)/.test(key)
      )
    )
    const child = spawn(process.execPath, [BIN[program], ...args], {
      cwd: dir,
      env: { ...inherited, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    const deadline = setTimeout(() => child.kill("SIGKILL"), 30_000)
    child.once("error", reject)
    child.once("close", (code) => {
      clearTimeout(deadline)
      resolve({ code, stdout, stderr })
    })
  })

describe.concurrent("usage errors", () => {
  it("an unknown flag: the error, the command's usage line and where to read more, on stderr only; exit 2", async () => {
    const result = await run("claude-failover", ["task", "done", "x", "--bogus"])
    expect(result.code).toBe(2)
    expect(result.stdout).toBe("")
    expect(result.stderr.trimEnd().split("\n")).toStrictEqual([
      "claude-failover task done: Unrecognized flag: --bogus in command claude-failover task done",
      "Usage: claude-failover task done [flags] <name>",
      "Run 'claude-failover task done --help' for the flags."
    ])
  })

  it.each([
    [
      ["result"],
      "ccl-delegate result: Missing required argument: job-id",
      "Usage: ccl-delegate result [flags] <job-id>"
    ],
    [["nope"], "ccl-delegate: Unknown subcommand \"nope\"", "Usage: ccl-delegate <subcommand>"]
  ])("ccl-delegate %j: exit 2, nothing on stdout, error and usage on stderr", async (args, error, usage) => {
    const result = await run("ccl-delegate", args)
    expect(result.code, result.stderr).toBe(2)
    expect(result.stdout).toBe("")
    expect(result.stderr).toContain(error)
    expect(result.stderr).toContain(usage)
    expect(result.stderr).not.toContain("GLOBAL FLAGS")
  })

  it("a bad value for task list --stage is a usage error too", async () => {
    const result = await run("claude-failover", ["task", "list", "--stage", "archived"])
    expect(result.code).toBe(2)
    expect(result.stdout).toBe("")
    expect(result.stderr).toContain("Usage: claude-failover task list [flags]")
  })

  it("ccl-delegate with no subcommand: the subcommands on stderr, exit 2", async () => {
    const result = await run("ccl-delegate", [])
    expect(result.code).toBe(2)
    expect(result.stdout).toBe("")
    const lines = result.stderr.trimEnd().split("\n")
    expect(lines[0]).toBe("ccl-delegate: a subcommand is required")
    expect(lines[1]).toBe("Usage: ccl-delegate <subcommand> [flags]")
    expect(lines.slice(3, 7).map((line) => line.trim().split(/\s+/)[0])).toStrictEqual([
      "decide",
      "submit",
      "get",
      "result"
    ])
    expect(lines.at(-1)).toBe("Run 'ccl-delegate SUBCOMMAND --help' for a subcommand's flags.")
  })

  it("claude-failover task with no subcommand: likewise, every task subcommand listed", async () => {
    const result = await run("claude-failover", ["task"])
    expect(result.code).toBe(2)
    expect(result.stdout).toBe("")
    expect(result.stderr).toContain("claude-failover task: a subcommand is required")
    for (const sub of ["list", "show", "done", "fail", "retry", "cancel", "requeue"]) {
      expect(result.stderr).toMatch(new RegExp(`^  ${sub} `, "m"))
    }
  })

  it("--help prints the full help on stdout, exit 0; the root's says what no subcommand does and where settings are", async () => {
    const [root, sub] = await Promise.all([
      run("claude-failover", ["--help"]),
      run("ccl-delegate", ["result", "--help"])
    ])
    expect([root.code, sub.code]).toStrictEqual([0, 0])
    expect(root.stderr + sub.stderr).toBe("")
    const text = root.stdout.replace(/\s+/g, " ")
    expect(text).toContain("With no subcommand it runs the daemon in the foreground on QUEUE_DIR (default ./queue)")
    expect(text).toContain("CLAUDE_FAILOVER_<NAME> or <NAME>")
    expect(text).toContain("--config, else CLAUDE_FAILOVER_CONFIG, else ~/.config/claude-failover/config.yaml")
    expect(text).toContain("claude-failover config")
    expect(sub.stdout).toContain("4: not finished")
    expect(sub.stdout).toContain("--config")
  })
})

describe.concurrent("ccl-delegate reads the daemon's settings", () => {
  const withFile = (name: string, text: string) => {
    const file = join(dir, name)
    writeFileSync(file, text)
    return file
  }

  it("decide answers from --config, or from the file CLAUDE_FAILOVER_CONFIG names, as the daemon would", async () => {
    const file = withFile("settings.yaml", "secutools_api_key: sk-from-file-7731\ncomplexity_map: medium=gemini\n")
    const [flag, env, none] = await Promise.all([
      run("ccl-delegate", ["decide", "--config", file, "--field", "preferred_ai=auto"]),
      run("ccl-delegate", ["decide", "--field", "preferred_ai=auto"], { CLAUDE_FAILOVER_CONFIG: file }),
      run("ccl-delegate", ["decide", "--field", "preferred_ai=auto"])
    ])
    expect([flag.code, env.code, none.code], flag.stderr + env.stderr).toStrictEqual([0, 0, 0])
    const expected = { route: "delegate", provider: "gemini", reason: "complexity_map" }
    expect(JSON.parse(flag.stdout)).toStrictEqual(expected)
    expect(JSON.parse(env.stdout)).toStrictEqual(expected)
    // Without the file there is no API key: delegation is off.
    expect(JSON.parse(none.stdout)).toStrictEqual({ route: "local", reason: "delegation_disabled" })
    expect(flag.stdout + flag.stderr + env.stdout + env.stderr).not.toContain("sk-from-file-7731")
  })

  it("a config file with a bad key stops every subcommand with exit 2, naming file and line", async () => {
    const file = withFile("bad.yaml", "secutools_api_key: sk-x\nqueue_dirx: /q\n")
    const result = await run("ccl-delegate", ["get", "j_1", "--config", file])
    expect(result.code).toBe(2)
    expect(result.stdout).toBe("")
    expect(result.stderr).toContain(`${file}:2:1: unknown setting 'queue_dirx'`)
  })
})
