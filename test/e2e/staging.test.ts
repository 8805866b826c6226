/**
 * Staging: the daemon as a real process with SESSIONS_MODE=dry-run and SECUTOOLS_MODE=fake, so it runs a copy of a
 * queue with no Claude account and no secutools key; and SIGTERM in the middle of work leaves nothing half-written.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { Daemon, frontmatter, Queue, waitFor } from "./support.ts"

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const staging = (queue: Queue) => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("SECUTOOLS_")))
  const daemon = new Daemon({
    ...env,
    QUEUE_DIR: queue.root,
    SESSIONS_MODE: "dry-run",
    SECUTOOLS_MODE: "fake",
    DRY_RUN_DELAY: "300ms",
    REAP_INTERVAL: "200ms",
    API_PORT: "0"
  })
  cleanups.push(() => daemon.stop("SIGKILL"))
  return daemon
}

const newQueue = () => {
  const queue = new Queue()
  cleanups.push(() => queue.remove())
  return queue
}

/** Every file of every stage, hidden ones included. */
const everything = (queue: Queue) =>
  ["pending", "active", "done", "failed"].flatMap((stage) => queue.list(stage).map((f) => `${stage}/${f}`))

describe("staging", () => {
  it("dry-run sessions and the in-process secutools finish local and delegated tasks without a key", async () => {
    const queue = newQueue()
    for (let i = 1; i <= 4; i++) writeFileSync(join(queue.root, "pending", `local-${i}.md`), `Local task ${i}.\n`)
    for (const provider of ["gpu", "gemini"]) {
      writeFileSync(
        join(queue.root, "pending", `remote-${provider}.md`),
        `---\npreferred_ai: ${provider}\n---\nRemote.\n`
      )
    }
    const daemon = staging(queue)
    await waitFor("6 tasks in done/", () => queue.tasks("done").length === 6, 40_000)
    // A task's line is logged just after its file lands in done/: stopping at once could cut the last one off.
    await waitFor("a done line for each task", () => (daemon.output.match(/\.md done /g) ?? []).length === 6, 10_000)
    expect(await daemon.stop()).toBe(0)

    for (let i = 1; i <= 4; i++)
      expect(frontmatter(queue.read("done", `local-${i}.md`)).session).toMatch(/^claude-[12]$/)
    expect(frontmatter(queue.read("done", "remote-gpu.md"))).toMatchObject({ provider: "gpu", state: "done" })
    expect(daemon.output).toContain("dry run: would type into claude-")
    expect(daemon.output).toContain("SECUTOOLS_MODE=fake: secutools stand-in at http://127.0.0.1:")

    // What an operator reads: one start line, where each task went and why, when it finished and how long it took, the stop.
    const started = daemon.output.split("\n").filter((line) => line.includes("started on"))
    expect(started).toHaveLength(1)
    expect(started[0]).toMatch(
      new RegExp(
        `claude-failover \\S+ started on ${queue.root}; dry-run sessions claude-1, claude-2; ` +
          "delegation on \\(the in-process secutools stand-in\\); status page http://127\\.0\\.0\\.1:\\d+/; no configuration file$"
      )
    )
    expect(daemon.output).not.toContain("SECUTOOLS_RETRY_BASE")
    expect(daemon.output).toMatch(
      /local-1\.md → session claude-[12] \(run r[0-9a-f]{12}; no rule sends it to secutools\)/
    )
    expect(daemon.output).toContain("remote-gemini.md → secutools gemini (it names this provider)")
    expect(daemon.output).toMatch(/local-1\.md done \(session claude-[12], took \d+(ms|s)\)/)
    expect(daemon.output).toMatch(/remote-gpu\.md done by secutools gpu \(job \S+, took \d+(ms|s)\)/)
    expect(daemon.output.trimEnd().split("\n").filter((line) => line.includes("claude-failover stopped on")))
      .toHaveLength(1)
  })

  it("SIGTERM mid-run exits 0 within seconds; no temporary file, no task in two places, none lost", async () => {
    const queue = newQueue()
    const names = Array.from({ length: 30 }, (_, i) => `t-${String(i).padStart(2, "0")}.md`)
    for (const [i, name] of names.entries()) {
      const body = i % 2 === 0 ? "Local.\n" : "---\npreferred_ai: claude-api\n---\nRemote.\n"
      writeFileSync(join(queue.root, "pending", name), body)
    }
    const daemon = staging(queue)
    await waitFor("work under way", () => queue.tasks("done").length >= 2, 30_000)
    const stoppedAt = Date.now()
    expect(await daemon.stop("SIGTERM")).toBe(0)
    expect(Date.now() - stoppedAt).toBeLessThan(5_000)

    const files = everything(queue)
    expect(files.filter((file) => /\/\./.test(file))).toStrictEqual([])
    const tasks = files.filter((file) => file.endsWith(".md")).map((file) => file.slice(file.indexOf("/") + 1))
    expect([...tasks].sort()).toStrictEqual(names)
  })
})
