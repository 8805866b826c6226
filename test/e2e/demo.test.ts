/**
 * `npm run demo` as a child process: exit 0, every sample in the table, the usage-limit failover shown, nothing
 * left running, the queue kept; and `npm run demo -- --headless`: the same with headless slots, a limit and a crash,
 * and no tmux server at all.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SAMPLE_TASKS } from "../../demo/tasks.ts"
import { ROOT } from "./support.ts"

/** The rows of the summary table, each split into its columns (two spaces or more apart). */
const tableRows = (output: string): ReadonlyArray<ReadonlyArray<string>> => {
  const lines = output.split("\n")
  const header = lines.findIndex((line) => /^task +route +reason +ran on +took +attempts +outcome$/.test(line))
  return header < 0 ? [] : lines.slice(header + 2, header + 2 + SAMPLE_TASKS.length).map((line) => line.split(/ {2,}/))
}

describe("npm run demo", () => {
  let child: ChildProcess | undefined
  let queueDir: string | undefined
  let scratch: string | undefined
  afterEach(() => {
    // The demo cleans up after itself on SIGINT; the queue it keeps on purpose is the test's to remove.
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill("SIGINT")
    if (queueDir !== undefined && queueDir.includes("claude-failover-demo-"))
      rmSync(queueDir, { recursive: true, force: true })
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true })
    queueDir = undefined
    scratch = undefined
  })

  /** Runs the demo to its end; resolves to its exit code and everything it printed. */
  const runDemo = async (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = process.env) => {
    const demo = spawn(process.execPath, [join(ROOT, "demo/run.ts"), ...args], {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    child = demo
    let output = ""
    demo.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
    demo.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
    const code = await new Promise<number | null>((resolve) => demo.once("exit", (exitCode) => resolve(exitCode)))
    queueDir = /^Queue kept at (\S+)$/m.exec(output)?.[1]
    return { code, output }
  }

  it("runs every sample to the end, shows the failover, leaves no tmux server and keeps the queue", async () => {
    const started = Date.now()
    const { code, output } = await runDemo([])

    expect(code, output).toBe(0)
    expect(Date.now() - started).toBeLessThan(60_000)
    expect(output).toContain("Every task ended where expected.")
    expect(output).toContain("daemon stopped by SIGTERM: exit code 0")

    expect(tableRows(output).map((row) => row[0])).toStrictEqual(SAMPLE_TASKS.map((sample) => sample.name))
    expect(output).toMatch(/^ +[\d.]+s {2}needs-claude-code\.md → claude-\d \(local: needs_claude_code\)$/m)
    expect(output).toMatch(/✗ malformed\.md cannot be run → failed\/: line 3: /)

    expect(output).toMatch(/⚠ claude-2 hit its usage limit/)
    expect(output).toMatch(/⇄ failover: \S+\.md back to pending \(session claude-2 hit its usage limit\)/)
    expect(output).toMatch(/↻ secutools \w+ \S+: HTTP \d{3}; retrying in /)

    const socket = /private server (cf-demo-\d+-[a-z0-9]+);/.exec(output)?.[1]
    expect(socket, output).toBeDefined()
    expect(() => execFileSync("tmux", ["-L", socket ?? "", "ls"], { stdio: "ignore" })).toThrow()
    const socketDir = join(process.env.TMUX_TMPDIR ?? "/tmp", `tmux-${process.getuid?.() ?? 0}`)
    expect(existsSync(join(socketDir, socket ?? ""))).toBe(false)

    expect(queueDir, output).toBeDefined()
    const dir = queueDir ?? ""
    expect(existsSync(dir)).toBe(true)
    expect(readdirSync(join(dir, "done")).filter((name) => name.endsWith(".md"))).toHaveLength(10)
    expect(readdirSync(join(dir, "failed")).sort()).toStrictEqual([
      "malformed.md",
      "malformed.md.error",
      "provider-fails.md"
    ])
  }, 90_000)

  it(
    "--headless: slots on two accounts, a limit that fails over to the other account, a crash retried, no tmux",
    async () => {
      // Any tmux server started by the demo or the daemon would put its socket here.
      scratch = mkdtempSync(join(tmpdir(), "cf-demo-test-tmux-"))
      const started = Date.now()
      const { code, output } = await runDemo(["--headless"], { ...process.env, TMUX_TMPDIR: scratch })

      expect(code, output).toBe(0)
      expect(Date.now() - started).toBeLessThan(45_000)
      expect(output).toContain("claude-failover demo (headless)")
      expect(output).toContain("Every task ended where expected.")
      expect(output).toContain("daemon stopped by SIGTERM: exit code 0")

      const rows = tableRows(output)
      expect(rows.map((row) => row[0])).toStrictEqual(SAMPLE_TASKS.map((sample) => sample.name))
      const local = rows.filter((row) => row[1] === "local")
      expect(local.map((row) => row[0])).toStrictEqual(
        SAMPLE_TASKS.filter((sample) => sample.expected.ranOn.includes("local")).map((sample) => sample.name)
      )
      for (const row of local) {
        expect(row[3], row.join("  ")).toMatch(/^headless-[ab]-1 · claude [0-9a-f]{8}$/)
        expect(row[6], row.join("  ")).toBe("done ($0.012)")
      }
      expect(output).toMatch(
        /✓ \S+\.md done by headless-[ab]-1 \(took \d+s, cost \$0\.012, claude session [0-9a-f-]{36}\)/
      )

      // The limit: its run's end, the account resting to the second, the task failing over to the other account's slot.
      const limited = /⚠ headless-([ab])-1 hit its usage limit: no new tasks for account \1 until \d\d:\d\d(:\d\d)? UTC/
        .exec(output)
      expect(limited, output).not.toBeNull()
      const [rested, other] = limited?.[1] === "a" ? ["a", "b"] : ["b", "a"]
      expect(output).toMatch(new RegExp(`⏹ \\S+\\.md: its run in headless-${rested}-1 stopped at a usage limit`))
      const failover = new RegExp(
        `⇄ failover: (\\S+\\.md) back to pending \\(session headless-${rested}-1 hit its usage limit\\)`
      ).exec(output)
      expect(failover, output).not.toBeNull()
      expect(rows.find((row) => row[0] === failover?.[1])?.[3]).toMatch(new RegExp(`^headless-${other}-1 `))

      // The crash: the run's end, the task back to pending, done on its next run.
      expect(output).toMatch(
        /✗ plain\.md: its run in headless-[ab]-1 ended without a result \(exit code 3, stderr "stand-in crashed"\)/
      )
      expect(output).toMatch(/⇄ retry: plain\.md back to pending \(session headless-[ab]-1 exited\)/)
      expect(rows.find((row) => row[0] === "plain.md")?.[5]).toBe("2")
      expect(output).toContain("1 failover, 1 retry")

      expect(output).toMatch(/^Cleaned up: 7 headless runs started, none left running, secutools stand-in closed\.$/m)
      expect(output).not.toContain("tmux -L")
      expect(readdirSync(scratch).flatMap((dir) => readdirSync(join(scratch ?? "", dir)))).toStrictEqual([])

      expect(queueDir, output).toBeDefined()
      const dir = queueDir ?? ""
      expect(readdirSync(join(dir, "done")).filter((name) => name.endsWith(".md"))).toHaveLength(10)
      expect(readdirSync(join(dir, "transcripts"))).toHaveLength(7)
    },
    90_000
  )
})
