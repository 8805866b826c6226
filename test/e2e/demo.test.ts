/**
 * `npm run demo` as a child process: exit 0, every sample in the table, the usage-limit failover shown, nothing
 * left running, the queue kept.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, readdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import { SAMPLE_TASKS } from "../../demo/tasks.ts"
import { ROOT } from "./support.ts"

describe("npm run demo", () => {
  let child: ChildProcess | undefined
  let queueDir: string | undefined
  afterEach(() => {
    // The demo cleans up after itself on SIGINT; the queue it keeps on purpose is the test's to remove.
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill("SIGINT")
    if (queueDir !== undefined && queueDir.includes("claude-failover-demo-")) rmSync(queueDir, { recursive: true, force: true })
  })

  it("runs every sample to the end, shows the failover, leaves no tmux server and keeps the queue", async () => {
    const started = Date.now()
    const demo = spawn(process.execPath, [join(ROOT, "demo/run.ts")], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] })
    child = demo
    let output = ""
    demo.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
    demo.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
    const code = await new Promise<number | null>((resolve) => demo.once("exit", (exitCode) => resolve(exitCode)))
    queueDir = /^Queue kept at (\S+)$/m.exec(output)?.[1]

    expect(code, output).toBe(0)
    expect(Date.now() - started).toBeLessThan(60_000)
    expect(output).toContain("Every task ended where expected.")
    expect(output).toContain("daemon stopped by SIGTERM: exit code 0")

    const lines = output.split("\n")
    const header = lines.findIndex((line) => /^task +route +reason +ran on +took +attempts +outcome$/.test(line))
    expect(header, output).toBeGreaterThanOrEqual(0)
    const table = lines.slice(header + 2, header + 2 + SAMPLE_TASKS.length)
    expect(table.map((line) => line.split(/\s+/)[0])).toStrictEqual(SAMPLE_TASKS.map((sample) => sample.name))

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
    expect(readdirSync(join(dir, "failed")).sort()).toStrictEqual(["malformed.md", "malformed.md.error", "provider-fails.md"])
  }, 90_000)
})
