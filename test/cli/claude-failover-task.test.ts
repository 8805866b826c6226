/** `claude-failover task done|fail` as an agent runs it: another directory, none of the daemon's variables. */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { frontmatter, Queue } from "../e2e/support.ts"

const BIN = join(import.meta.dirname, "../../bin/claude-failover.js")
const queues: Array<Queue> = []
afterEach(() => {
  for (const queue of queues.splice(0)) queue.remove()
})

const cli = (args: ReadonlyArray<string>) => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== "QUEUE_DIR"))
  const result = spawnSync(process.execPath, [BIN, ...args], { cwd: tmpdir(), env, encoding: "utf8" })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

const withActiveTask = () => {
  const queue = new Queue()
  queues.push(queue)
  writeFileSync(
    join(queue.root, "active", "fix-login.md"),
    "---\ntitle: Fix login\nowner: ana\nstate: assigned\nsession: claude-2\nassigned_at: 2026-11-24T10:00:00.000Z\nattempts: 1\n---\nFix the login redirect.\n"
  )
  return queue
}
const snapshot = (queue: Queue) =>
  ["pending", "active", "done", "failed"].map((stage) => [stage, readdirSync(join(queue.root, stage))])

describe("claude-failover task", () => {
  it("done moves the task to done/ with state, finished_at and a footer; unknown fields and body kept", () => {
    const queue = withActiveTask()
    const { code, stdout } = cli(["task", "done", "fix-login", "--queue-dir", queue.root, "--summary", "Redirect fixed"])
    expect(code).toBe(0)
    expect(stdout.trim()).toBe("fix-login.md done")
    expect(queue.tasks("active")).toStrictEqual([])
    const text = queue.read("done", "fix-login.md")
    expect(frontmatter(text)).toMatchObject({ owner: "ana", state: "done", session: "claude-2", attempts: "1" })
    expect(frontmatter(text).finished_at).toMatch(/^\d{4}-\d\d-\d\dT/)
    expect(text).toContain("Fix the login redirect.\n")
    expect(text).toMatch(/claude-failover: done · \S+ · session claude-2 · took [^\n]+\n\nRedirect fixed\n$/)
  })

  it("fail moves the task to failed/ with the reason", () => {
    const queue = withActiveTask()
    const { code } = cli(["task", "fail", "fix-login.md", "--queue-dir", queue.root, "--reason", "tests do not pass"])
    expect(code).toBe(0)
    expect(frontmatter(queue.read("failed", "fix-login.md")).state).toBe("failed")
    expect(queue.read("failed", "fix-login.md")).toContain("Reason: tests do not pass\n")
  })

  it("an unknown or finished NAME is a clear error, exits non-zero, and changes nothing", () => {
    const queue = withActiveTask()
    const before = snapshot(queue)
    const unknown = cli(["task", "done", "nope", "--queue-dir", queue.root])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr.trim()).toBe("claude-failover: no active task 'nope.md'; nothing changed")
    expect(snapshot(queue)).toStrictEqual(before)

    cli(["task", "done", "fix-login", "--queue-dir", queue.root])
    const again = cli(["task", "fail", "fix-login", "--queue-dir", queue.root, "--reason", "late"])
    expect(again.code).toBe(1)
    expect(again.stderr).toContain("no active task 'fix-login.md' (it is in done/); nothing changed")
    expect(readFileSync(join(queue.root, "done", "fix-login.md"), "utf8")).not.toContain("late")
  })

  it("fail without --reason is a usage error", () => {
    const queue = withActiveTask()
    expect(cli(["task", "fail", "fix-login", "--queue-dir", queue.root]).code).toBe(2)
    expect(queue.tasks("active")).toStrictEqual(["fix-login.md"])
  })
})
