/**
 * Limit policies end to end: the daemon as a real process, a private tmux server, and Claude Code stand-ins that
 * behave like 2.1.332 after a limit (it continues the held turn by itself at the reset unless Esc cancels that) and
 * like 2.1.197 (a limit menu over the input box; "continue" typed after the reset finishes the turn).
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Daemon, Queue, taskFields, TmuxServer, waitFor } from "./support.ts"

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

interface StandinEvent {
  readonly event: string
  readonly session: string
  readonly run: string | null
  readonly at: number
}

const setUp = () => {
  const tmux = new TmuxServer()
  const queue = new Queue()
  const logs = mkdtempSync(join(tmpdir(), "cf-limit-logs-"))
  cleanups.push(() => tmux.kill(), () => queue.remove(), () => rmSync(logs, { recursive: true, force: true }))
  const logOf = (session: string) => join(logs, `${session}.jsonl`)
  const events = (session: string): ReadonlyArray<StandinEvent> =>
    existsSync(logOf(session))
      ? readFileSync(logOf(session), "utf8").trim().split("\n").filter((line) => line !== "").map((line) =>
        JSON.parse(line)
      )
      : []
  const start = (session: string, env: Readonly<Record<string, string>>) => {
    tmux.startStandin(session, { STANDIN_NAME: session, STANDIN_LOG: logOf(session), ...env })
    return waitFor(
      `${session} to show its input box`,
      () => tmux.currentCommand(session) === "node" && tmux.capture(session).includes("? for shortcuts")
    )
  }
  const daemon = (env: Readonly<Record<string, string>>) => {
    const started = new Daemon({ QUEUE_DIR: queue.root, TMUX_SOCKET: tmux.socket, ...env })
    cleanups.push(() => started.stop("SIGKILL"))
    return started
  }
  return { tmux, queue, events, start, daemon }
}

describe("limit policies end to end", () => {
  it(
    "requeue: the session's automatic continue is cancelled (Esc) before the task runs elsewhere; it finishes once",
    async () => {
      const { daemon, events, queue, start, tmux } = setUp()
      // Only claude-1 at first, so the task is its: it hits a limit it would continue by itself 5 minutes later.
      await start("claude-1", { STANDIN_LIMIT_AFTER: "0", STANDIN_LIMIT_STYLE: "auto", STANDIN_RESET_MS: "300000" })
      writeFileSync(join(queue.root, "pending", "job.md"), "Say hello.\n")
      const running = daemon({ TMUX_SESSIONS: "claude-1,claude-2" })
      await waitFor("claude-1 to hit its limit", () => events("claude-1").some((e) => e.event === "limit"))
      await waitFor("the task back in pending/", () => queue.tasks("pending").includes("job.md"))
      // The cancel came first: the held turn can no longer resume beside the next run.
      const cancelled = events("claude-1").find((e) => e.event === "cancelled")
      expect(cancelled).toBeDefined()
      expect(tmux.capture("claude-1")).toContain("Automatic continue cancelled")
      const requeued = taskFields("job.md", queue.read("pending", "job.md")).history?.at(-1)
      expect(requeued).toMatchObject({ event: "requeued", cause: "usage_limit", session: "claude-1" })
      expect(requeued?.reason).toMatch(
        /hit its usage limit \(You've hit your 5-hour limit · resets .+\); it resets at 20\d\d-/
      )

      await start("claude-2", {})
      await waitFor("the task done", () => queue.tasks("done").includes("job.md"))
      // The stand-in logs its completion once the command has exited, a moment after the daemon moved the task.
      await waitFor("claude-2's completion logged", () => events("claude-2").some((e) => e.event === "completion"))
      expect(await running.stop()).toBe(0)
      const done = taskFields("job.md", queue.read("done", "job.md"))
      expect(done).toMatchObject({ session: "claude-2", attempts: 2 })
      // Exactly one completion, by claude-2; claude-1 was told Esc once and never went on with the turn.
      expect(events("claude-2").filter((e) => e.event === "completion")).toHaveLength(1)
      expect(events("claude-1").filter((e) => e.event === "completion" || e.event === "resumed")).toStrictEqual([])
      expect(events("claude-1").filter((e) => e.event === "cancelled")).toHaveLength(1)
      expect(cancelled?.at).toBeLessThan(events("claude-2").find((e) => e.event === "submitted")?.at ?? 0)
    },
    60_000
  )

  it(
    "wait: each task stays with its session — one continues by itself at the reset, the other's menu is closed and \"continue\" typed at the reset; each finishes there, once",
    async () => {
      const { daemon, events, queue, start, tmux } = setUp()
      // claude-1 behaves like 2.1.332 (continues by itself 8 s after the limit); claude-2 like 2.1.197 (menu; the
      // reset is the next whole minute, the time its screen names).
      await start("claude-1", { STANDIN_LIMIT_AFTER: "0", STANDIN_LIMIT_STYLE: "auto", STANDIN_RESET_MS: "8000" })
      await start("claude-2", { STANDIN_LIMIT_AFTER: "0", STANDIN_LIMIT_STYLE: "menu", STANDIN_RESET_MS: "0" })
      writeFileSync(join(queue.root, "pending", "one.md"), "---\non_limit: wait\n---\nSay hello.\n")
      writeFileSync(join(queue.root, "pending", "two.md"), "Say goodbye.\n")
      const running = daemon({ TMUX_SESSIONS: "claude-1,claude-2", LIMIT_POLICY: "wait" })
      await waitFor(
        "both sessions limited",
        () => ["claude-1", "claude-2"].every((s) => events(s).some((e) => e.event === "limit"))
      )
      await waitFor("claude-2's menu closed", () => events("claude-2").some((e) => e.event === "menu-closed"))
      expect(tmux.capture("claude-2")).not.toContain("What do you want to do?")
      expect(queue.tasks("active")).toStrictEqual(["one.md", "two.md"])

      await waitFor("both tasks done", () => queue.tasks("done").length === 2, 90_000)
      expect(await running.stop()).toBe(0)
      for (const name of ["one.md", "two.md"]) {
        const fields = taskFields(name, queue.read("done", name))
        // Never taken back: one run, no history of a requeue.
        expect(fields.attempts, name).toBe(1)
        expect(fields.history ?? [], name).toStrictEqual([])
      }
      for (const session of ["claude-1", "claude-2"]) {
        expect(events(session).filter((e) => e.event === "completion"), session).toHaveLength(1)
        expect(events(session).filter((e) => e.event === "resumed"), session).toHaveLength(1)
      }
      // claude-1 went on by itself: nothing but the prompt was typed into it. claude-2 took "continue" after its reset.
      expect(events("claude-1").filter((e) => e.event === "submitted")).toHaveLength(1)
      const limit2 = events("claude-2").find((e) => e.event === "limit") as StandinEvent & { readonly resetAt: number }
      const resumed2 = events("claude-2").find((e) => e.event === "resumed")
      expect(resumed2?.at).toBeGreaterThanOrEqual(limit2.resetAt)
      expect(events("claude-2").filter((e) => e.event === "submitted")).toHaveLength(2)
    },
    120_000
  )

  it(
    "requeue with a kill -9 of the daemon as Esc cancels the automatic continue: the next daemon finishes the task once, elsewhere",
    async () => {
      const { daemon, events, queue, start } = setUp()
      await start("claude-1", { STANDIN_LIMIT_AFTER: "0", STANDIN_LIMIT_STYLE: "auto", STANDIN_RESET_MS: "300000" })
      writeFileSync(join(queue.root, "pending", "job.md"), "Say hello.\n")
      const first = daemon({ TMUX_SESSIONS: "claude-1,claude-2" })
      await waitFor("the cancel", () => events("claude-1").some((e) => e.event === "cancelled"), 30_000)
      first.process.kill("SIGKILL")
      await first.exited
      await start("claude-2", {})
      const second = daemon({ TMUX_SESSIONS: "claude-1,claude-2" })
      await waitFor("the task done", () => queue.tasks("done").includes("job.md"), 60_000)
      await waitFor("claude-2's completion logged", () => events("claude-2").some((e) => e.event === "completion"))
      expect(await second.stop()).toBe(0)
      expect(taskFields("job.md", queue.read("done", "job.md")).session).toBe("claude-2")
      // The limited session never went on with the task: its continue was cancelled before the task left it.
      expect(events("claude-1").filter((e) => e.event === "completion" || e.event === "resumed")).toStrictEqual([])
      expect(events("claude-2").filter((e) => e.event === "completion")).toHaveLength(1)
    },
    120_000
  )
})
