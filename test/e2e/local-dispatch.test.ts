/**
 * The daemon as a real process, a private tmux server with three Claude Code stand-ins, a real queue directory.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Daemon, frontmatter, lastRequeue, Queue, TmuxServer, waitFor } from "./support.ts"

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const setUp = (sessions: Readonly<Record<string, Readonly<Record<string, string>>>>) => {
  const tmux = new TmuxServer()
  const queue = new Queue()
  cleanups.push(() => tmux.kill(), () => queue.remove())
  for (const [session, env] of Object.entries(sessions)) tmux.startStandin(session, env)
  return { tmux, queue }
}

const startDaemon = (queue: Queue, tmux: TmuxServer, env: Record<string, string> = {}) => {
  const daemon = new Daemon({ QUEUE_DIR: queue.root, TMUX_SOCKET: tmux.socket, ...env })
  cleanups.push(() => daemon.stop("SIGKILL"))
  return daemon
}

const waitForStandins = (tmux: TmuxServer, sessions: ReadonlyArray<string>) =>
  waitFor(
    "the stand-ins to show their input box",
    () => sessions.every((s) => tmux.currentCommand(s) === "node" && tmux.capture(s).includes("? for shortcuts"))
  )

describe("local dispatch end to end", () => {
  it("runs 9 tasks on 3 sessions, fails over a usage limit, quarantines a bad file, types text literally", async () => {
    const { queue, tmux } = setUp({
      "claude-1": {},
      "claude-2": { STANDIN_LIMIT_AFTER: "1" },
      "claude-3": {}
    })
    await waitForStandins(tmux, ["claude-1", "claude-2", "claude-3"])

    for (let i = 1; i <= 8; i++) {
      writeFileSync(join(queue.root, "pending", `task-${i}.md`), `---\npriority: ${i}\n---\nTask ${i}: say hello.\n`)
    }
    const pwned = join(tmpdir(), `cf-pwned-${process.pid}-${Date.now()}`)
    const hostile = `Print this text: $(touch ${pwned}) and \`touch ${pwned}-2\`; "quotes" 'single' \\ back\n`
    writeFileSync(join(queue.root, "pending", "task-9.md"), `---\npriority: 9\n---\n${hostile}`)
    // Not UTF-8 (and not well-typed either): must land in failed/ with its bytes unchanged.
    const badBytes = Buffer.concat([Buffer.from("---\nallow_delegation: \"yes\"\n---\nbody \xff\n", "latin1")])
    writeFileSync(join(queue.root, "pending", "bad.md"), badBytes)

    const daemon = startDaemon(queue, tmux)
    await waitFor("9 tasks in done/", () => queue.tasks("done").length === 9, 60_000)
    expect(await daemon.stop()).toBe(0)

    expect(queue.tasks("pending")).toStrictEqual([])
    expect(queue.tasks("active")).toStrictEqual([])
    const done = queue.tasks("done").map((name) => ({ name, text: queue.read("done", name) }))
    for (const { text } of done) {
      expect(frontmatter(text).state).toBe("done")
      expect(text).toMatch(/\n---\nclaude-failover: done · \S+ · session claude-\d · took [^\n]+/)
    }

    // claude-2 finished one task, then hit its limit mid-task: that task finished elsewhere, and claude-2 got no more.
    const bySession = (session: string) => done.filter(({ text }) => frontmatter(text).session === session)
    expect(bySession("claude-2")).toHaveLength(1)
    const failedOver = done.filter(({ name, text }) => lastRequeue(name, text) !== undefined)
    expect(failedOver).toHaveLength(1)
    const moved = frontmatter(failedOver[0]?.text ?? "")
    expect(lastRequeue(failedOver[0]?.name ?? "", failedOver[0]?.text ?? "")).toContain(
      "session claude-2 hit its usage limit"
    )
    expect(moved.session).not.toBe("claude-2")
    expect(moved.attempts).toBe("2")
    expect(tmux.capture("claude-2")).toContain("Claude usage limit reached")

    // The malformed file: in failed/, byte for byte, with the reason beside it.
    expect(readFileSync(join(queue.root, "failed", "bad.md")).equals(badBytes)).toBe(true)
    expect(queue.read("failed", "bad.md.error")).toContain("not UTF-8 text (invalid byte at offset 37)")

    // The hostile body was typed as text: nothing ran, and the file kept it verbatim.
    expect(existsSync(pwned)).toBe(false)
    expect(existsSync(`${pwned}-2`)).toBe(false)
    expect(queue.read("done", "task-9.md")).toContain(hostile)
    expect(daemon.output).toContain("task-9.md → session")
  })

  it("a daemon killed between recording an assignment and typing it loses nothing on restart", async () => {
    const { queue, tmux } = setUp({ "claude-1": {} })
    await waitForStandins(tmux, ["claude-1"])
    writeFileSync(join(queue.root, "pending", "crash.md"), "Say hello after a crash.\n")

    const crashing = startDaemon(queue, tmux, { CLAUDE_FAILOVER_FAILPOINT: "assign:moved" })
    await crashing.exited
    expect(crashing.process.signalCode).toBe("SIGKILL")
    expect(queue.tasks("active")).toStrictEqual(["crash.md"])
    expect(frontmatter(queue.read("active", "crash.md"))).toMatchObject({ state: "assigned", session: "claude-1" })
    expect(tmux.capture("claude-1")).not.toContain("Say hello after a crash")

    const restarted = startDaemon(queue, tmux)
    await waitFor("crash.md in done/", () => queue.tasks("done").includes("crash.md"), 30_000)
    expect(await restarted.stop()).toBe(0)
    expect(queue.tasks("active")).toStrictEqual([])
    expect(queue.tasks("pending")).toStrictEqual([])
    const fields = frontmatter(queue.read("done", "crash.md"))
    expect(fields.attempts).toBe("2")
    expect(lastRequeue("crash.md", queue.read("done", "crash.md"))).toContain(
      "the daemon stopped before typing it into claude-1"
    )
    expect(restarted.output).toContain(
      "recovery: crash.md: back to pending: the daemon stopped before typing it into claude-1"
    )
  })

  it("a session that exits mid-task gives its task to another session; nothing is typed into its shell", async () => {
    const { queue, tmux } = setUp({ "claude-1": { STANDIN_EXIT_AFTER: "0", STANDIN_WORK_MS: "1500" }, "claude-2": {} })
    await waitForStandins(tmux, ["claude-1", "claude-2"])
    // Both sessions are free; priority makes sure the first task goes to claude-1 (sessions are taken in name order).
    writeFileSync(join(queue.root, "pending", "first.md"), "---\npriority: 1\n---\nFirst task.\n")
    const daemon = startDaemon(queue, tmux)
    await waitFor("first.md in done/", () => queue.tasks("done").includes("first.md"), 30_000)
    writeFileSync(join(queue.root, "pending", "second.md"), "Second task.\n")
    await waitFor("second.md in done/", () => queue.tasks("done").includes("second.md"), 30_000)
    expect(await daemon.stop()).toBe(0)

    const first = frontmatter(queue.read("done", "first.md"))
    expect(lastRequeue("first.md", queue.read("done", "first.md"))).toContain("session claude-1 exited")
    expect(first.session).toBe("claude-2")
    expect(frontmatter(queue.read("done", "second.md")).session).toBe("claude-2")
    expect(tmux.currentCommand("claude-1")).toBe("bash")
    expect(tmux.capture("claude-1")).not.toContain("Second task")
  })
})
