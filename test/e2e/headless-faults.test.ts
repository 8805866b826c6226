/**
 * Headless slots end to end: the daemon as a real process with SESSIONS_MODE=headless, running the scripted stand-in
 * of `claude -p --output-format stream-json` through every way a run can go wrong, then `ok`; a task that always
 * crashes, a usage limit, a login failure, a kill -9 and a SIGTERM of the daemon mid-run, and how a run finishes.
 * Easy to get wrong: the stand-in writes its `started` line before it reads the prompt from stdin, so a test that
 * kills the daemon waits for the run's init line in the transcript; and a process that has ended but is not yet
 * reaped (a zombie, e.g. an orphan whose new parent is slow to reap) still answers signal 0.
 */
import { afterEach, describe, expect, it, onTestFailed } from "@effect/vitest"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { isRunning } from "../../src/adapters/processes.ts"
import { freePort } from "../free-port.ts"
import { Daemon, lastRequeue, Queue, ROOT, taskFields, TmuxServer, waitFor } from "./support.ts"

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      await cleanup()
    } catch (error) {
      console.error("cleanup failed:", error)
    }
  }
})

const CLAUDE_COMMAND = `${process.execPath} ${join(ROOT, "stand-ins/claude-headless.ts")}`
const TASK = "job.md"

interface StandinEvent {
  readonly event: "started" | "completion" | "exit"
  readonly mode?: string
  readonly pid?: number
  readonly session?: string
  readonly at: number
}

/** Waiting until nothing happens has no condition to wait on: these tests look for a bounded time, said where used. */
const quietFor = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The caller's secutools settings blanked (blank counts as unset): every task stays local. */
const noSecutools = (): Record<string, string> =>
  Object.fromEntries(Object.keys(process.env).filter((key) => key.startsWith("SECUTOOLS_")).map((key) => [key, ""]))

/** A queue with one task, the stand-in's log and state files, and daemons on that queue with headless slots. */
const setUp = () => {
  const queue = new Queue()
  const logs = mkdtempSync(join(tmpdir(), "cf-headless-faults-"))
  cleanups.push(() => queue.remove(), () => rmSync(logs, { recursive: true, force: true }))
  writeFileSync(join(queue.root, "pending", TASK), "Say hello.\n")
  const logFile = join(logs, "standin.jsonl")
  const events = (kind?: StandinEvent["event"]): ReadonlyArray<StandinEvent> =>
    existsSync(logFile)
      ? readFileSync(logFile, "utf8").split("\n").filter((line) => line !== "").map((line): StandinEvent =>
        JSON.parse(line)
      )
        .filter((e) => kind === undefined || e.event === kind)
      : []
  const pids = () => events("started").flatMap((e) => e.pid === undefined ? [] : [e.pid])
  // A run is a process group of its own, which a daemon SIGKILLed by a failed test leaves behind: stopped here.
  cleanups.push(() => {
    for (const pid of pids().filter(isRunning)) process.kill(-pid, "SIGKILL")
  })
  let daemons = 0
  const daemon = (env: Readonly<Record<string, string>>) => {
    const started = new Daemon({
      ...noSecutools(),
      QUEUE_DIR: queue.root,
      SESSIONS_MODE: "headless",
      CLAUDE_COMMAND,
      STANDIN_LOG: logFile,
      STANDIN_STATE: join(logs, "state"),
      ...env
    })
    const label = `daemon ${++daemons}`
    cleanups.push(() => started.stop("SIGKILL"))
    onTestFailed(() => console.log(`--- ${label} output ---\n${started.output}--- end of ${label} output ---`))
    return started
  }
  const transcripts = () =>
    existsSync(join(queue.root, "transcripts")) ? readdirSync(join(queue.root, "transcripts")).sort() : []
  /** A transcript's lines that are JSON (a garbage run's others are kept in the file, skipped here). */
  const transcript = (file: string): ReadonlyArray<Record<string, unknown>> =>
    readFileSync(join(queue.root, "transcripts", file), "utf8").split("\n").flatMap((line) => {
      try {
        const value: unknown = JSON.parse(line)
        return typeof value === "object" && value !== null && !Array.isArray(value)
          ? [value as Record<string, unknown>]
          : []
      } catch {
        return []
      }
    })
  /** Resolves once some run's init line has reached the transcript: the stand-in has read its prompt and is running. */
  const runStarted = (count: number) =>
    waitFor(
      `run ${count} to print its init line`,
      () => transcripts().filter((file) => transcript(file).some((line) => line.subtype === "init")).length >= count
    )
  /** The task in done/ with the run's facts written (a result's, or added after the agent's completion line). */
  const doneWithFacts = (timeoutMs = 30_000) =>
    waitFor("the task done with its run's facts", () => {
      if (!queue.tasks("done").includes(TASK)) return false
      const fields = taskFields(TASK, queue.read("done", TASK))
      return fields.transcript !== undefined && fields
    }, timeoutMs)
  /** The stages holding the task: exactly one, once the daemon has stopped (a move links, then unlinks). */
  const stagesOf = () => ["pending", "active", "done", "failed"].filter((stage) => queue.tasks(stage).includes(TASK))
  return { queue, events, pids, daemon, transcripts, transcript, runStarted, doneWithFacts, stagesOf }
}

const getJson = async <A>(port: number, path: string): Promise<A> =>
  (await (await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5_000) })).json()) as A

interface SessionView {
  readonly session: string
  readonly state: string
  readonly cooldown_until: string | null
}

/** Each fault, then `ok`: what the history says of the run that failed. */
const FAULTS: ReadonlyArray<{
  readonly mode: string
  readonly env: Readonly<Record<string, string>>
  readonly cause: string
  readonly reason: RegExp
}> = [
  { mode: "crash", env: {}, cause: "session_exited", reason: /ended with code 3 and no result: stand-in crashed/ },
  { mode: "signal", env: {}, cause: "session_exited", reason: /was killed by SIGKILL/ },
  {
    mode: "hang",
    env: { STALE_AFTER: "2s" },
    cause: "session_exited",
    reason: /printed nothing for [23]s \(STALE_AFTER\)/
  },
  {
    mode: "huge",
    env: { HEADLESS_MAX_LINE: "1MB", STANDIN_HUGE_BYTES: "3000000" },
    cause: "session_exited",
    reason: /printed a line over 1048576 bytes/
  },
  // A process that closed its output has min(10 s, STALE_AFTER / 3) to exit: 2 s here, well before STALE_AFTER.
  {
    mode: "close-stdout",
    env: { STALE_AFTER: "6s" },
    cause: "session_exited",
    reason: /closed its output but did not exit/
  },
  { mode: "overloaded", env: {}, cause: "api_error", reason: /API Error: 529 Overloaded/ }
]

describe("headless slots: faults end to end", () => {
  it.each(FAULTS)(
    "$mode, then ok: the task is done once, the history says why the first run ended, no process is left",
    async ({ cause, env, mode, reason }) => {
      const { daemon, doneWithFacts, events, pids, stagesOf, transcripts } = setUp()
      const running = daemon({ STANDIN_MODES: `${mode},ok`, ...env })
      await waitFor("the second run to start", () => events("started").length >= 2)
      // The faulty run was over before the next one started: it cannot go on beside it.
      const [faulty = -1] = pids()
      expect(isRunning(faulty), `${mode} run (pid ${faulty}) still alive when the next started`).toBe(false)

      const fields = await doneWithFacts()
      expect(await running.stop()).toBe(0)
      expect(stagesOf()).toStrictEqual(["done"])
      expect(events("started").map((e) => e.mode)).toStrictEqual([mode, "ok"])
      expect(events("completion")).toHaveLength(1)
      expect(fields.attempts).toBe(2)
      expect(fields.history).toHaveLength(1)
      const [requeued] = fields.history ?? []
      expect(requeued).toMatchObject({ event: "requeued", cause, session: "headless-1" })
      expect(requeued?.reason).toMatch(reason)
      // Both runs kept a transcript, named by the task and the run.
      expect(transcripts()).toStrictEqual([`${TASK}.${requeued?.run}.jsonl`, `${TASK}.${fields.run}.jsonl`].sort())
      for (const pid of pids()) expect(isRunning(pid), `stand-in pid ${pid}`).toBe(false)
    }
  )

  it("garbage: malformed and unknown lines are logged and skipped, the run finishes normally", async () => {
    const { daemon, doneWithFacts, events, pids, stagesOf } = setUp()
    const running = daemon({ STANDIN_MODES: "garbage" })
    const fields = await doneWithFacts()
    expect(await running.stop()).toBe(0)
    expect(stagesOf()).toStrictEqual(["done"])
    expect(fields).toMatchObject({ attempts: 1, cost_usd: 0.0123, turns: 2 })
    expect(fields.history ?? []).toStrictEqual([])
    expect(events("started")).toHaveLength(1)
    expect(running.output).toContain("skipped a line that is not JSON: not json at all")
    expect(running.output).toContain("an event of a type this version does not know (future_event)")
    for (const pid of pids()) expect(isRunning(pid), `stand-in pid ${pid}`).toBe(false)
  })

  it("a task whose every run crashes ends in failed/ after MAX_ATTEMPTS runs, with the history of why", async () => {
    const { daemon, events, pids, queue, stagesOf } = setUp()
    const running = daemon({ STANDIN_MODES: "crash", MAX_ATTEMPTS: "2" })
    await waitFor("the task failed", () => queue.tasks("failed").includes(TASK))
    expect(await running.stop()).toBe(0)
    expect(stagesOf()).toStrictEqual(["failed"])
    expect(events("started")).toHaveLength(2)
    const text = queue.read("failed", TASK)
    const fields = taskFields(TASK, text)
    expect(fields.attempts).toBe(2)
    expect(fields.history?.map((entry) => [entry.event, entry.cause])).toStrictEqual([["requeued", "session_exited"]])
    expect(fields.history?.[0]?.reason).toMatch(/code 3 and no result: stand-in crashed/)
    expect(text).toMatch(
      /\nclaude-failover: failed · .+ · session headless-1\n\nReason: gave up after 2 runs that ended without finishing \(MAX_ATTEMPTS=2\); the last: .*code 3 and no result: stand-in crashed/
    )
    for (const pid of pids()) expect(isRunning(pid), `stand-in pid ${pid}`).toBe(false)
  })

  it("a usage limit: the task is requeued, the account cools down until the event's resetsAt exactly, no second run meanwhile", async () => {
    const { daemon, events, queue, transcript, transcripts } = setUp()
    const port = await freePort()
    const running = daemon({ STANDIN_MODES: "limit", STANDIN_RESET_S: "3600", API_PORT: String(port) })
    await waitFor(
      "the task back in pending/",
      () => queue.tasks("pending").includes(TASK) && lastRequeue(TASK, queue.read("pending", TASK))
    )
    const requeued = taskFields(TASK, queue.read("pending", TASK)).history?.at(-1)
    expect(requeued).toMatchObject({ event: "requeued", cause: "usage_limit", session: "headless-1" })
    expect(requeued?.reason).toMatch(/You've hit your 5-hour limit/)

    const [file = ""] = transcripts()
    const event = transcript(file).find((line) => line.type === "rate_limit_event")
    const info = event?.rate_limit_info as { readonly resetsAt?: number; readonly status?: string } | undefined
    expect(info?.status).toBe("rejected")
    const resetsAt = new Date((info?.resetsAt ?? 0) * 1000).toISOString()
    const slot = await waitFor("headless-1 cooling down", async () => {
      const { sessions } = await getJson<{ readonly sessions: ReadonlyArray<SessionView> }>(port, "/api/sessions")
      return sessions.find((s) => s.session === "headless-1" && s.cooldown_until !== null)
    })
    expect(slot.cooldown_until).toBe(resetsAt)

    // Nothing to wait on for "no run starts": 2.5 s is ten poll intervals, each of which would have started one.
    await quietFor(2_500)
    expect(events("started")).toHaveLength(1)
    expect(queue.tasks("pending")).toStrictEqual([TASK])
    expect(await running.stop()).toBe(0)
  })

  it("a usage limit with a near reset: the task runs again once the reset has passed, not before", async () => {
    const { daemon, doneWithFacts, events, transcript } = setUp()
    const running = daemon({ STANDIN_MODES: "limit,ok", STANDIN_RESET_S: "3" })
    const fields = await doneWithFacts()
    expect(await running.stop()).toBe(0)
    const [requeued] = fields.history ?? []
    expect(requeued).toMatchObject({ event: "requeued", cause: "usage_limit", session: "headless-1" })
    const event = transcript(`${TASK}.${requeued?.run}.jsonl`).find((line) => line.type === "rate_limit_event")
    const resetsAt = ((event?.rate_limit_info as { readonly resetsAt?: number } | undefined)?.resetsAt ?? Infinity) *
      1000
    const [limited, again] = events("started")
    expect([limited?.mode, again?.mode]).toStrictEqual(["limit", "ok"])
    expect(again?.at).toBeGreaterThanOrEqual(resetsAt)
    expect(fields.attempts).toBe(2)
  })

  it("not logged in: the task goes back (api_error), the slot rests and asks for attention, no second run", async () => {
    const { daemon, events, queue } = setUp()
    const port = await freePort()
    const running = daemon({ STANDIN_MODES: "auth", API_PORT: String(port) })
    await waitFor(
      "the task back in pending/",
      () => queue.tasks("pending").includes(TASK) && lastRequeue(TASK, queue.read("pending", TASK))
    )
    const requeued = taskFields(TASK, queue.read("pending", TASK)).history?.at(-1)
    expect(requeued).toMatchObject({ event: "requeued", cause: "api_error", session: "headless-1" })
    expect(requeued?.reason).toMatch(/Not logged in/)
    const attention = await waitFor("headless-1 in the watchdog's attention list", async () => {
      const status = await getJson<
        { readonly attention: ReadonlyArray<{ readonly session: string; readonly reason: string }> }
      >(port, "/watchdog/status")
      // (The run's own outcome may be listed for a moment first, before the slot is put to rest.)
      return status.attention.find((entry) => entry.session === "headless-1" && entry.reason.includes("tried again"))
    })
    // The slot rests: it is tried again after 10 minutes, not at the next poll.
    expect(attention.reason).toMatch(/Not logged in · Please run \/login \(tried again in 10m\)/)

    // Nothing to wait on for "no run starts": 2.5 s is ten poll intervals, each of which would have started one.
    await quietFor(2_500)
    expect(events("started")).toHaveLength(1)
    expect(queue.tasks("pending")).toStrictEqual([TASK])
    expect(await running.stop()).toBe(0)
  })

  it("CLAUDE_COMMAND that cannot be started: the task goes back uncounted and the slot asks for a person; a task cwd that is no directory fails the task", async () => {
    const { daemon, queue } = setUp()
    const port = await freePort()
    const missing = daemon({ CLAUDE_COMMAND: "/nonexistent/claude", API_PORT: String(port) })
    await waitFor(
      "the task back in pending/",
      () => queue.tasks("pending").includes(TASK) && lastRequeue(TASK, queue.read("pending", TASK))
    )
    const requeued = taskFields(TASK, queue.read("pending", TASK)).history?.at(-1)
    // Not the task's fault: not counted towards MAX_ATTEMPTS.
    expect(requeued).toMatchObject({
      cause: "api_error",
      reason: expect.stringContaining("did not start: CLAUDE_COMMAND /nonexistent/claude: NotFound")
    })
    const attention = await waitFor("headless-1 in the watchdog's attention list", async () => {
      const status = await getJson<
        { readonly attention: ReadonlyArray<{ readonly session: string; readonly reason: string }> }
      >(port, "/watchdog/status")
      return status.attention.find((entry) => entry.session === "headless-1")
    })
    expect(attention.reason).toContain("did not start: CLAUDE_COMMAND /nonexistent/claude")
    expect(await missing.stop()).toBe(0)

    // The task's own working directory missing is the task's problem: counted, then failed/ with the reason.
    writeFileSync(join(queue.root, "pending", "lost.md"), "---\ncwd: /nonexistent/dir\n---\nSay hello.\n")
    rmSync(join(queue.root, "pending", TASK))
    const running = daemon({ MAX_ATTEMPTS: "2" })
    await waitFor("lost.md in failed/", () => queue.tasks("failed").includes("lost.md"))
    expect(queue.read("failed", "lost.md")).toMatch(
      /gave up after 2 runs .*its working directory \/nonexistent\/dir is not a directory/
    )
    expect(await running.stop()).toBe(0)
  })

  it("kill -9 of the daemon mid-run: the next daemon stops the orphan, gives the task back (orphaned) and finishes it once", async () => {
    const { daemon, doneWithFacts, events, pids, runStarted, stagesOf, transcripts } = setUp()
    const first = daemon({ STANDIN_MODES: "hang,ok" })
    await runStarted(1)
    const [orphan = -1] = pids()
    first.process.kill("SIGKILL")
    await first.exited
    // The run is in a process group of its own: the daemon's death does not take it along.
    expect(isRunning(orphan)).toBe(true)

    const second = daemon({ STANDIN_MODES: "hang,ok" })
    await waitFor("the second run to start", () => events("started").length >= 2)
    expect(isRunning(orphan), `orphan pid ${orphan} alive when the next run started`).toBe(false)
    const fields = await doneWithFacts()
    expect(await second.stop()).toBe(0)
    expect(second.output).toMatch(/stopped 1 process\(es\) of headless runs left by a daemon that stopped/)
    expect(stagesOf()).toStrictEqual(["done"])
    expect(events("completion")).toHaveLength(1)
    expect(fields.attempts).toBe(2)
    expect(fields.history?.map((entry) => [entry.event, entry.cause])).toStrictEqual([["requeued", "orphaned"]])
    expect(fields.history?.[0]?.reason).toMatch(
      /daemon stopped during its headless run in headless-1.*\(recovered at start-up\)/
    )
    expect(transcripts()).toHaveLength(2)
    const [, again] = events("started")
    expect(again?.mode).toBe("ok")
    expect(fields.claude_session).toBe(again?.session)
    for (const pid of pids()) expect(isRunning(pid), `stand-in pid ${pid}`).toBe(false)
  })

  it("SIGTERM mid-run: the daemon stops its run and exits 0 at once, the task stays active; the next start gives it back and finishes it", async () => {
    const { daemon, doneWithFacts, events, pids, queue, runStarted } = setUp()
    const first = daemon({ STANDIN_MODES: "hang,ok" })
    await runStarted(1)
    const [hung = -1] = pids()
    const stopping = Date.now()
    expect(await first.stop("SIGTERM")).toBe(0)
    // The stand-in ends on SIGTERM; the daemon's 5 s grace before SIGKILL is not needed.
    expect(Date.now() - stopping).toBeLessThan(5_000)
    expect(isRunning(hung), `stand-in pid ${hung} after the daemon exited`).toBe(false)
    expect(queue.tasks("active")).toStrictEqual([TASK])

    const second = daemon({ STANDIN_MODES: "hang,ok" })
    const fields = await doneWithFacts()
    expect(await second.stop()).toBe(0)
    expect(events("started").map((e) => e.mode)).toStrictEqual(["hang", "ok"])
    expect(fields.attempts).toBe(2)
    expect(fields.history?.map((entry) => [entry.event, entry.cause])).toStrictEqual([["requeued", "orphaned"]])
    expect(fields.history?.[0]?.reason).toMatch(/\(recovered at start-up\)/)
    for (const pid of pids()) expect(isRunning(pid), `stand-in pid ${pid}`).toBe(false)
  })

  it("the agent's completion line finishes the task; the run's result adds its session, cost, turns and transcript", async () => {
    const { daemon, doneWithFacts, events, queue, stagesOf } = setUp()
    const running = daemon({ STANDIN_MODES: "ok" })
    const fields = await doneWithFacts()
    expect(await running.stop()).toBe(0)
    expect(stagesOf()).toStrictEqual(["done"])
    const [started] = events("started")
    expect(events("completion")).toHaveLength(1)
    expect(fields).toMatchObject({ claude_session: started?.session, cost_usd: 0.0123, turns: 2, attempts: 1 })
    const transcript = join(queue.root, fields.transcript ?? "none")
    expect(transcript.startsWith(`${queue.root}/transcripts/`)).toBe(true)
    const [first = ""] = readFileSync(transcript, "utf8").split("\n")
    expect(JSON.parse(first)).toMatchObject({ type: "system", subtype: "init", session_id: started?.session })
    const text = queue.read("done", TASK)
    // The completion line's footer (no facts of the run: the result came after it), then the facts the result added.
    expect(text).toMatch(/\nclaude-failover: done · \S+ · session headless-1 · took [^\n]+\n/)
    expect(text).toContain(
      `\nHeadless run: claude session ${started?.session} · cost $0.012 · 2 turns · transcript transcripts/${TASK}.${fields.run}.jsonl\n`
    )
  })

  it("an agent that never reports: the run's result finishes the task, its text the summary, its facts in the footer", async () => {
    const { daemon, doneWithFacts, events, queue } = setUp()
    const running = daemon({ STANDIN_MODES: "ok", STANDIN_RUN_COMPLETION: "0", STANDIN_RESULT: "Said hello, twice." })
    const fields = await doneWithFacts()
    expect(await running.stop()).toBe(0)
    const [started] = events("started")
    expect(events("completion")).toStrictEqual([])
    expect(fields).toMatchObject({
      state: "done",
      claude_session: started?.session,
      cost_usd: 0.0123,
      turns: 2,
      attempts: 1
    })
    const text = queue.read("done", TASK)
    expect(text).toMatch(
      new RegExp(
        `\\n---\\nclaude-failover: done · \\S+ · session headless-1 · claude session ${started?.session} · cost \\$0\\.012 · 2 turns · ` +
          `transcript transcripts/${
            TASK.replace(".", "\\.")
          }\\.${fields.run}\\.jsonl · took [^\\n]+\\n\\nSaid hello, twice\\.\\n$`
      )
    )
    expect(text).not.toContain("Headless run:")
  })
})

describe("tmux sessions and headless slots side by side", () => {
  it("HEADLESS_SLOTS beside a tmux session: both kinds take work from one queue, each task once", async () => {
    const tmux = new TmuxServer()
    const queue = new Queue()
    const logs = mkdtempSync(join(tmpdir(), "cf-headless-both-"))
    cleanups.push(() => tmux.kill(), () => queue.remove(), () => rmSync(logs, { recursive: true, force: true }))
    tmux.startStandin("claude-1", { STANDIN_WORK_MS: "1500", STANDIN_NAME: "claude-1" })
    await waitFor("claude-1's input box", () => tmux.capture("claude-1").includes("? for shortcuts"))
    const names = ["a.md", "b.md", "c.md", "d.md"]
    for (const name of names) writeFileSync(join(queue.root, "pending", name), `Say hello (${name}).\n`)
    const daemon = new Daemon({
      ...noSecutools(),
      QUEUE_DIR: queue.root,
      TMUX_SOCKET: tmux.socket,
      TMUX_SESSIONS: "claude-1",
      HEADLESS_SLOTS: "1",
      CLAUDE_COMMAND,
      STANDIN_DELAY_MS: "1500",
      STANDIN_LOG: join(logs, "headless.jsonl")
    })
    cleanups.push(() => daemon.stop("SIGKILL"))
    await waitFor("every task done", () => queue.tasks("done").length === names.length, 60_000)
    expect(await daemon.stop()).toBe(0)
    const sessions = names.map((name) => taskFields(name, queue.read("done", name)).session)
    expect(new Set(sessions)).toStrictEqual(new Set(["claude-1", "headless-1"]))
    for (const name of names) expect(taskFields(name, queue.read("done", name)).attempts, name).toBe(1)
  }, 90_000)
})
