/** The demo's pure parts: log line → human line, finished queue → summary, the samples' routes. */
import { describe, expect, it } from "@effect/vitest"
import { SCRIPT, shellWord, startedPids } from "../../demo/headless.ts"
import {
  awaitsRunFacts,
  clockTime,
  describeFault,
  describeFinished,
  describeLogRecord,
  describeRunEnd,
  type FinishedTask,
  formatEvent,
  type LogRecord,
  parseLogLine
} from "../../demo/progress.ts"
import {
  headlessProblems,
  problems,
  renderReport,
  renderRequeues,
  renderTable,
  renderTotals,
  summarizeTask
} from "../../demo/summary.ts"
import { DEMO_SITUATION, planRoute, SAMPLE_TASKS } from "../../demo/tasks.ts"

const record = (message: string, level = "INFO", annotations: Record<string, unknown> = {}): LogRecord => ({
  message,
  level,
  timestamp: "2026-11-25T07:00:00.000Z",
  annotations
})

const noReason = () => undefined

describe("demo progress lines", () => {
  it("reads the daemon's JSON log lines and ignores anything else", () => {
    const line = JSON.stringify({
      message: "a.md → session claude-1",
      level: "INFO",
      timestamp: "2026-11-25T07:00:00.000Z",
      annotations: { task: "a.md", session: "claude-1" },
      spans: {},
      fiberId: "#1"
    })
    expect(parseLogLine(line)).toStrictEqual(
      record("a.md → session claude-1", "INFO", { task: "a.md", session: "claude-1" })
    )
    expect(parseLogLine("not json")).toBeUndefined()
    expect(parseLogLine("{\"level\":\"INFO\"}")).toBeUndefined()
    expect(parseLogLine("[1,2]")).toBeUndefined()
  })

  it("prefixes each line with the seconds elapsed, aligned", () => {
    expect(formatEvent(3_420, "x")).toBe("   3.4s  x")
    expect(formatEvent(12_050, "y")).toBe("  12.1s  y")
    expect(formatEvent(-5, "z")).toBe("   0.0s  z")
  })

  it("says where each task went and why", () => {
    const reasons = (task: string) => (task === "a.md" ? "needs_claude_code" : undefined)
    expect(describeLogRecord(record("a.md → session claude-1"), reasons)).toBe(
      "a.md → claude-1 (local: needs_claude_code)"
    )
    expect(describeLogRecord(record("a.md → session headless-a-1 (run r3b25232a2c2c)"), reasons))
      .toBe("a.md → headless-a-1 (local: needs_claude_code)")
    expect(describeLogRecord(record("b.md → session claude-2"), reasons)).toBe("b.md → claude-2 (local)")
    // The daemon's own reason stands when the demo knows none.
    expect(describeLogRecord(record("c.md → session claude-2 (run r1; it prefers Claude Code)"), reasons))
      .toBe("c.md → claude-2 (local: it prefers Claude Code)")
    expect(
      describeLogRecord(
        record(
          "claude-failover 0.1.0 started on /tmp/q; tmux sessions claude-1; delegation off (x); status page http://h/"
        ),
        noReason
      )
    ).toBe("daemon started on /tmp/q")
    expect(describeLogRecord(record("g.md → secutools gemini (preferred_provider)"), noReason))
      .toBe("g.md → secutools gemini (preferred_provider)")
    expect(describeLogRecord(record("g.md submitted to secutools gemini as job j_000001"), noReason))
      .toBe("g.md submitted to gemini as job j_000001")
  })

  it("shows retries without the HTTP body, usage limits and failovers without the banner", () => {
    expect(
      describeLogRecord(
        record("secutools submit g: HTTP 503: {\"error\":\"injected\"}; retrying in 84ms", "WARN"),
        noReason
      )
    )
      .toBe("↻ secutools submit g: HTTP 503; retrying in 84ms")
    expect(describeLogRecord(record("secutools get j_1: HTTP 500; retrying in 0", "WARN"), noReason))
      .toBe("↻ secutools get j_1: HTTP 500; retrying in 0ms")
    expect(
      describeLogRecord(
        record("session claude-2 hit its usage limit; account claude-2 rests until 2026-11-25T11:00:00.000Z", "WARN"),
        noReason
      )
    ).toBe("⚠ claude-2 hit its usage limit: no new tasks for account claude-2 until 11:00 UTC")
    expect(
      describeLogRecord(
        record(
          "m.md back to pending: session claude-2 hit its usage limit (Claude usage limit reached. Reset at 5am.); it resets at 2026-11-25T05:00:00.000Z",
          "WARN"
        ),
        noReason
      )
    ).toBe("⇄ failover: m.md back to pending (session claude-2 hit its usage limit)")
  })

  it("a usage limit's reset is shown to the second when it is known to the second", () => {
    expect(clockTime("2026-11-25T11:00:00.000Z")).toBe("11:00 UTC")
    expect(clockTime("2026-11-25T22:27:41.000Z")).toBe("22:27:41 UTC")
    expect(clockTime("soon")).toBe("soon")
    expect(
      describeLogRecord(
        record("session headless-a-1 hit its usage limit; account a rests until 2026-11-25T22:27:41.000Z", "WARN"),
        noReason
      )
    ).toBe("⚠ headless-a-1 hit its usage limit: no new tasks for account a until 22:27:41 UTC")
  })

  it("reports delegated endings and malformed files; hides other info lines, never a warning", () => {
    expect(describeLogRecord(record("g.md done by secutools gemini (job j_000002)"), noReason))
      .toBe("✓ g.md done by secutools gemini (job j_000002)")
    expect(describeLogRecord(record("g.md done by secutools gemini (job j_000002, took 3s)"), noReason))
      .toBe("✓ g.md done by secutools gemini (job j_000002)")
    expect(
      describeLogRecord(
        record("f.md failed at secutools: gemini: model refused the task", "WARN", { provider: "gemini" }),
        noReason
      )
    ).toBe("✗ f.md failed at secutools gemini: gemini: model refused the task")
    const problem = "m.md:3:1: field 'allow_delegation': Expected boolean, got string \"yes\""
    expect(
      describeLogRecord(
        record(`pending/m.md cannot be run: ${problem}; moved to failed/m.md with m.md.error`, "WARN", {
          task: "m.md"
        }),
        noReason
      )
    ).toBe("✗ m.md cannot be run → failed/: line 3: field 'allow_delegation': Expected boolean, got string \"yes\"")
    expect(
      describeLogRecord(
        record(`recovery: pending/m.md: cannot be run (${problem}); quarantined as failed/m.md`, "WARN"),
        noReason
      )
    ).toBeUndefined()
    expect(
      describeLogRecord(record("recovery: x.md: a done task put back into pending/; runs again", "WARN"), noReason)
    )
      .toBe("daemon WARN: recovery: x.md: a done task put back into pending/; runs again")
    expect(describeLogRecord(record("recovery: removed 0 duplicate(s)"), noReason)).toBeUndefined()
    expect(describeLogRecord(record("dispatcher tick failed: boom", "ERROR"), noReason))
      .toBe("daemon ERROR: dispatcher tick failed: boom")
  })
})

/** Finished task files as the daemon writes them (see README "Task files"). */
const localDone: FinishedTask = {
  name: "may-delegate.md",
  stage: "done",
  text: [
    "---",
    "priority: 4",
    "allow_delegation: true",
    "state: done",
    "run: r2",
    "session: claude-1",
    "assigned_at: 2026-11-25T07:00:04.000Z",
    "started_at: 2026-11-25T07:00:04.600Z",
    "attempts: 2",
    "finished_at: 2026-11-25T07:00:07.000Z",
    "history:",
    "  - at: 2026-11-25T07:00:03.000Z",
    "    event: requeued",
    "    cause: usage_limit",
    "    run: r1",
    "    session: claude-2",
    "    reason: session claude-2 hit its usage limit (Claude usage limit reached.)",
    "---",
    "Tidy the test fixtures.",
    "",
    "",
    "---",
    "claude-failover: done · 2026-11-25T07:00:07.000Z · session claude-1 · took 3s",
    ""
  ].join("\n")
}

const delegatedDone: FinishedTask = {
  name: "auto-low.md",
  stage: "done",
  text: [
    "---",
    "preferred_ai: auto",
    "complexity_hint: low",
    "state: done",
    "job_id: j_000002",
    "provider: gpu",
    "cost_usd: 0.001",
    "attempts: 1",
    "finished_at: 2026-11-25T07:00:03.000Z",
    "---",
    "Classify these log lines.",
    "",
    "",
    "## Result (gpu)",
    "",
    "gpu says: Classify these log lines.",
    "",
    "---",
    "claude-failover: done · 2026-11-25T07:00:03.000Z · provider gpu · job j_000002 · cost $0.001 · took 2s",
    ""
  ].join("\n")
}

const delegatedFailed: FinishedTask = {
  name: "provider-fails.md",
  stage: "failed",
  text: [
    "---",
    "preferred_ai: gemini",
    "state: failed",
    "job_id: j_000006",
    "provider: gemini",
    "attempts: 1",
    "finished_at: 2026-11-25T07:00:03.000Z",
    "---",
    "[fail] Translate the contract.",
    "",
    "",
    "---",
    "claude-failover: failed · 2026-11-25T07:00:03.000Z · provider gemini · job j_000006 · took 3s",
    "",
    "Reason: gemini: model refused the task",
    ""
  ].join("\n")
}

/** A task a headless slot finished on its second run, after the first hit the usage limit in the other account's slot. */
const headlessDone: FinishedTask = {
  name: "needs-claude-code.md",
  stage: "done",
  text: [
    "---",
    "priority: 1",
    "needs_claude_code: true",
    "state: done",
    "attempts: 2",
    "history:",
    "  - at: 2026-11-25T21:27:41.238Z",
    "    event: requeued",
    "    cause: usage_limit",
    "    run: r3b25232a2c2c",
    "    session: headless-a-1",
    "    reason: session headless-a-1 hit its usage limit (You've hit your 5-hour limit · resets 10:27pm (UTC)); it resets at 2026-11-25T22:27:41.000Z",
    "run: raba15b4255b6",
    "session: headless-b-1",
    "assigned_at: 2026-11-25T21:27:42.191Z",
    "started_at: 2026-11-25T21:27:42.198Z",
    "finished_at: 2026-11-25T21:27:43.790Z",
    "cost_usd: 0.0123",
    "claude_session: 0e60ae96-3be8-437a-a156-b35b5489a423",
    "turns: 2",
    "transcript: transcripts/needs-claude-code.md.raba15b4255b6.jsonl",
    "---",
    "Refactor the session module.",
    "",
    "",
    "---",
    "claude-failover: done · 2026-11-25T21:27:43.790Z · session headless-b-1 · took 2s",
    "",
    "Headless run: claude session 0e60ae96-3be8-437a-a156-b35b5489a423 · cost $0.012 · 2 turns · transcript transcripts/needs-claude-code.md.raba15b4255b6.jsonl",
    ""
  ].join("\n")
}

/** A task retried in its slot after its first run crashed. */
const headlessRetried: FinishedTask = {
  name: "plain.md",
  stage: "done",
  text: [
    "---",
    "state: done",
    "attempts: 2",
    "history:",
    "  - at: 2026-11-25T21:27:44.750Z",
    "    event: requeued",
    "    cause: session_exited",
    "    run: r4e81ae123a5f",
    "    session: headless-b-1",
    "    reason: \"session headless-b-1 exited: its process ended with code 3 and no result: stand-in crashed\"",
    "run: r7adbac3d014e",
    "session: headless-b-1",
    "finished_at: 2026-11-25T21:27:46.354Z",
    "cost_usd: 0.0123",
    "claude_session: 3d62e839-183d-4674-9092-dab1d4b02bc9",
    "---",
    "Fix the typo.",
    "",
    "",
    "---",
    "claude-failover: done · 2026-11-25T21:27:46.354Z · session headless-b-1 · took 2s",
    ""
  ].join("\n")
}

/** What the agent's `task done` wrote, before the daemon added the run's facts. */
const headlessJustDone: FinishedTask = {
  ...headlessRetried,
  text: headlessRetried.text.replace(/^cost_usd: .*\n/m, "").replace(/^claude_session: .*\n/m, "")
}

const malformed: FinishedTask = {
  name: "malformed.md",
  stage: "failed",
  text: "---\npriority: 8\nallow_delegation: \"yes\"\n---\nRefused.\n",
  error: "malformed.md:3:1: field 'allow_delegation': Expected boolean, got string \"yes\"\n"
}

describe("demo progress lines for headless runs", () => {
  const ended = (outcome: string, detail: string) =>
    record(`headless run r1 of x.md in headless-b-1 ended: ${outcome}${detail === "" ? "" : ` (${detail})`}`, "WARN")

  it("names the slots once the daemon has them", () => {
    expect(describeLogRecord(record("headless slots: headless-a-1, headless-b-1"), noReason))
      .toBe("headless slots headless-a-1, headless-b-1: one `claude -p` run each at a time")
  })

  it("a run that finished is told by its done/ file, not by the daemon's lines about it", () => {
    expect(describeLogRecord(ended("Finished", "Did the task."), noReason)).toBeUndefined()
    expect(describeLogRecord(record("x.md done: its headless run in headless-b-1 ended with a result"), noReason))
      .toBeUndefined()
  })

  it("a limit, a crash, an API error and a login problem each get a line of their own", () => {
    expect(describeLogRecord(ended("Limited", "You've hit your 5-hour limit · resets 10:27pm (UTC)"), noReason))
      .toBe(
        "⏹ x.md: its run in headless-b-1 stopped at a usage limit (\"You've hit your 5-hour limit · resets 10:27pm (UTC)\")"
      )
    expect(
      describeLogRecord(
        ended("Fault", "exited: its process ended with code 3 and no result: stand-in crashed"),
        noReason
      )
    )
      .toBe("✗ x.md: its run in headless-b-1 ended without a result (exit code 3, stderr \"stand-in crashed\")")
    expect(describeLogRecord(ended("ApiError", "API Error: 529 Overloaded."), noReason))
      .toBe("✗ x.md: its run in headless-b-1 ended with an API error: API Error: 529 Overloaded.")
    expect(describeLogRecord(ended("NeedsPerson", "Not logged in · Please run /login"), noReason))
      .toBe("✋ x.md: its run in headless-b-1 needs a person: Not logged in · Please run /login")
    expect(describeRunEnd("x.md", "headless-1", "Limited", "")).toBe(
      "⏹ x.md: its run in headless-1 stopped at a usage limit"
    )
    expect(describeRunEnd("x.md", "headless-1", "Novel", "")).toBe("x.md: its run in headless-1 ended: Novel")
  })

  it("shortens why a run ended without a result", () => {
    expect(describeFault("exited: its process ended with code 3 and no result")).toBe("exit code 3")
    expect(describeFault("exited: its process ended with code 1 and no result: a / b")).toBe(
      "exit code 1, stderr \"a / b\""
    )
    expect(describeFault("exited: its process was killed by SIGKILL")).toBe("killed by SIGKILL")
    expect(describeFault("was stopped: its process printed nothing for 30s (STALE_AFTER)"))
      .toBe("stopped: its process printed nothing for 30s (STALE_AFTER)")
  })

  it("a task back to pending after a crash is a retry, after a limit a failover; the line keeps the first clause", () => {
    expect(
      describeLogRecord(
        record(
          "x.md back to pending: session headless-b-1 exited: its process ended with code 3 and no result: oops",
          "WARN"
        ),
        noReason
      )
    ).toBe("⇄ retry: x.md back to pending (session headless-b-1 exited)")
    expect(
      describeLogRecord(
        record(
          "x.md back to pending: session headless-a-1 hit its usage limit (You've hit your 5-hour limit · resets 10:27pm (UTC)); it resets at 2026-11-25T22:27:41.000Z",
          "WARN"
        ),
        noReason
      )
    ).toBe("⇄ failover: x.md back to pending (session headless-a-1 hit its usage limit)")
  })

  it("says when it stopped runs an earlier daemon left behind", () => {
    expect(
      describeLogRecord(
        record(
          "stopped 2 process(es) of headless runs left by a daemon that stopped: r1 in headless-1, r2 in headless-2",
          "WARN"
        ),
        noReason
      )
    ).toBe("↯ stopped 2 headless run(s) an earlier daemon left running: r1 in headless-1, r2 in headless-2")
  })
})

describe("demo summary", () => {
  it("a local task that finished: its line names the session and the time it took", () => {
    expect(describeFinished(localDone)).toBe("✓ may-delegate.md done by claude-1 (took 3s)")
    expect(describeFinished({ ...localDone, stage: "failed", text: `${localDone.text}\nReason: tests do not pass\n` }))
      .toBe("✗ may-delegate.md failed in claude-1: tests do not pass (took 3s)")
    expect(describeFinished(delegatedDone)).toBeUndefined()
    expect(describeFinished(malformed)).toBeUndefined()
  })

  it("a task a headless run finished: its line adds the cost and Claude Code's session, once the daemon wrote them", () => {
    expect(describeFinished(headlessDone)).toBe(
      "✓ needs-claude-code.md done by headless-b-1 (took 2s, cost $0.012, claude session 0e60ae96-3be8-437a-a156-b35b5489a423)"
    )
    expect(describeFinished(headlessJustDone)).toBe("✓ plain.md done by headless-b-1 (took 2s)")
    expect(awaitsRunFacts(headlessJustDone)).toBe(true)
    expect([headlessDone, headlessRetried, delegatedDone, delegatedFailed, malformed].some(awaitsRunFacts)).toBe(false)
  })

  it("one row per task: route, reason, where it ran, time, attempts, outcome, failover", () => {
    expect(summarizeTask(localDone)).toStrictEqual({
      task: "may-delegate.md",
      stage: "done",
      route: "local",
      reason: "fail_safe_local",
      ranOn: "claude-1",
      took: "3s",
      attempts: "2",
      outcome: "done",
      requeues: [{
        cause: "usage_limit",
        session: "claude-2",
        reason: "session claude-2 hit its usage limit (Claude usage limit reached.)"
      }],
      where: "local",
      session: "claude-1"
    })
    expect(summarizeTask(delegatedDone)).toMatchObject({
      route: "delegate",
      reason: "complexity_map",
      ranOn: "gpu · j_000002",
      took: "2s",
      attempts: "1",
      outcome: "done ($0.001)",
      where: "secutools gpu"
    })
    expect(summarizeTask(delegatedFailed)).toMatchObject({
      stage: "failed",
      reason: "preferred_provider",
      outcome: "failed: gemini: model refused the task"
    })
    expect(summarizeTask(malformed)).toMatchObject({
      route: "—",
      reason: "malformed",
      outcome: "failed: line 3: field 'allow_delegation': Expected boolean, got string \"yes\"",
      where: "nowhere"
    })
  })

  it("a headless run's row: the slot and Claude Code's session, the cost, the requeues with their causes", () => {
    expect(summarizeTask(headlessDone)).toStrictEqual({
      task: "needs-claude-code.md",
      stage: "done",
      route: "local",
      reason: "needs_claude_code",
      ranOn: "headless-b-1 · claude 0e60ae96",
      took: "2s",
      attempts: "2",
      outcome: "done ($0.012)",
      requeues: [{
        cause: "usage_limit",
        session: "headless-a-1",
        reason:
          "session headless-a-1 hit its usage limit (You've hit your 5-hour limit · resets 10:27pm (UTC)); it resets at 2026-11-25T22:27:41.000Z"
      }],
      where: "local",
      session: "headless-b-1",
      costUsd: 0.0123,
      claudeSession: "0e60ae96-3be8-437a-a156-b35b5489a423"
    })
    expect(summarizeTask(headlessRetried).requeues.map((requeue) => requeue.cause)).toStrictEqual(["session_exited"])
  })

  it("failovers and retries are listed and counted apart; the headless runs' cost is totalled", () => {
    const rows = [headlessDone, headlessRetried, delegatedDone].map(summarizeTask)
    expect(renderRequeues(rows)).toStrictEqual([
      "Failovers and retries:",
      "  needs-claude-code.md: session headless-a-1 hit its usage limit (You've hit your 5-hour limit · resets 10:27pm (UTC)); it resets at 2026-11-25T22:27:41.000Z",
      "  plain.md: session headless-b-1 exited: its process ended with code 3 and no result: stand-in crashed"
    ])
    expect(renderTotals(rows)).toBe(
      "3 tasks · 3 done, 0 failed · 2 ran locally, 1 on secutools, 0 malformed · 1 failover, 1 retry · $0.025 for the headless runs that finished"
    )
    expect(renderRequeues([localDone].map(summarizeTask))[0]).toBe("Failovers:")
    expect(renderRequeues([delegatedDone].map(summarizeTask))).toStrictEqual([])
  })

  it("the headless demo must show a failover to the other slot, a retry, and every run's cost and session", () => {
    expect(headlessProblems([headlessDone, headlessRetried, delegatedDone].map(summarizeTask))).toStrictEqual([])
    const limitedInPlace = summarizeTask({
      ...headlessDone,
      text: headlessDone.text.replace("session: headless-a-1", "session: headless-b-1")
    })
    expect(headlessProblems([limitedInPlace, summarizeTask(headlessJustDone)])).toStrictEqual([
      "no task that hit the usage limit finished in another slot",
      "plain.md finished in headless-b-1 without a cost or a Claude Code session"
    ])
    expect(headlessProblems([summarizeTask(headlessDone)])).toStrictEqual([
      "no task whose run crashed finished on a retry"
    ])
  })

  it("a task that allows delegation and ran on secutools is explained by rule 7", () => {
    const failedOver: FinishedTask = {
      name: "m.md",
      stage: "done",
      text: "---\nallow_delegation: true\nstate: done\njob_id: j_9\nprovider: claude-api\n---\nx\n"
    }
    expect(summarizeTask(failedOver)).toMatchObject({ route: "delegate", reason: "local_unavailable" })
  })

  it("renders an aligned table whose last column is not padded, and totals", () => {
    const rows = [localDone, delegatedDone, delegatedFailed, malformed].map(summarizeTask)
    const lines = renderTable(rows).split("\n")
    expect(lines).toHaveLength(6)
    expect(lines[0]).toMatch(/^task +route +reason +ran on +took +attempts +outcome$/)
    const outcomeAt = (lines[0] ?? "").indexOf("outcome")
    for (const line of lines.slice(2)) expect([...line].slice(outcomeAt - 2, outcomeAt).join("")).toBe("  ")
    expect(lines[2]).toMatch(/^may-delegate\.md +local +fail_safe_local +claude-1 +3s +2 +done$/)
    expect(renderTotals(rows)).toBe(
      "4 tasks · 2 done, 2 failed · 1 ran locally, 2 on secutools, 1 malformed · 1 failover"
    )
  })

  it("the report ends with where the queue is and a verdict", () => {
    const counters = {
      submits: 7,
      jobsCreated: 6,
      duplicateSubmits: 1,
      gets: 30,
      injected: { status5xx: 2, status429: 1, dropped: 0, lostAnswer: 0, malformed: 0, slow: 0 },
      jobsByKey: {},
      jobsByTask: {}
    }
    const report = { rows: [localDone].map(summarizeTask), secutools: counters, totalMs: 9_000, queue: "/tmp/q" }
    const good = renderReport({ ...report, finishedAfterMs: 8_400, issues: [] }).split("\n")
    expect(good).toContain("  may-delegate.md: session claude-2 hit its usage limit (Claude usage limit reached.)")
    expect(good).toContain(
      "secutools stand-in: 7 submits (1 repeated), 6 jobs, 30 polls; injected: 2× HTTP 5xx, 1× HTTP 429"
    )
    expect(good.slice(-3)).toStrictEqual([
      "All tasks finished 8.4s after the daemon started; the demo took 9.0s.",
      "Queue kept at /tmp/q",
      "Every task ended where expected."
    ])
    const bad = renderReport({ ...report, finishedAfterMs: undefined, issues: ["plain.md did not finish"] }).split("\n")
    expect(bad).toContain("Not every task finished; the demo took 9.0s.")
    expect(bad.slice(-2)).toStrictEqual(["PROBLEMS:", "  - plain.md did not finish"])
  })

  it("names every task that did not end where its sample says", () => {
    const samples = SAMPLE_TASKS.filter((sample) =>
      ["may-delegate.md", "auto-low.md", "plain.md"].includes(sample.name)
    )
    const rows = [localDone, { ...delegatedDone, stage: "failed" as const }].map(summarizeTask)
    expect(problems(samples, rows)).toStrictEqual([
      "plain.md did not finish",
      "auto-low.md ended failed, expected done"
    ])
    const elsewhere = summarizeTask({ ...localDone, name: "auto-low.md" })
    expect(problems(samples.filter((sample) => sample.name === "auto-low.md"), [elsewhere]))
      .toStrictEqual(["auto-low.md ran on local, expected secutools gpu"])
  })
})

describe("demo samples", () => {
  it("cover every routing reason possible with delegation on, and a malformed file", () => {
    const reasons = SAMPLE_TASKS.map((sample) => planRoute(sample.name, sample.text)).map((planned) =>
      planned._tag === "Decided" ? planned.decision.reason : "malformed"
    )
    expect(new Set(reasons)).toStrictEqual(
      new Set([
        "needs_claude_code",
        "preferred_claude_code",
        "delegation_not_allowed",
        "preferred_provider",
        "complexity_map",
        "fail_safe_local",
        "malformed"
      ])
    )
    const failover = SAMPLE_TASKS.flatMap((sample) => {
      const planned = planRoute(sample.name, sample.text, { ...DEMO_SITUATION, localAvailable: false })
      return planned._tag === "Decided" && planned.decision.reason === "local_unavailable" ? [sample.name] : []
    })
    expect(failover).toStrictEqual(["may-delegate.md"])
  })

  it("each sample is expected to run where `decide` sends it", () => {
    for (const sample of SAMPLE_TASKS) {
      const planned = planRoute(sample.name, sample.text)
      const where = planned._tag === "Malformed"
        ? "nowhere"
        : planned.decision.route === "local"
        ? "local"
        : `secutools ${planned.decision.provider}`
      expect(sample.expected.ranOn, sample.name).toContain(where)
    }
  })
})

describe("headless demo script", () => {
  it("the limit is the first run and the crash the sixth: the last task, with nothing waiting that may be delegated", () => {
    expect(SCRIPT.indexOf("limit")).toBe(0)
    expect(SCRIPT.indexOf("crash")).toBe(5)
    expect(SCRIPT.filter((mode) => mode !== "ok")).toStrictEqual(["limit", "crash"])
    expect(SCRIPT.at(-1)).toBe("ok")
    // Runs: the first two tasks together (one limited), that one again, then the rest in priority order.
    const local = SAMPLE_TASKS.filter((sample) => sample.expected.ranOn.includes("local")).map((sample) => sample.name)
    expect(local).toHaveLength(5)
    expect(local.at(-1)).toBe("plain.md")
  })

  it("reads the started runs' pids from the stand-in's log", () => {
    const log = [
      JSON.stringify({ event: "started", mode: "limit", pid: 41, args: [], at: 1 }),
      JSON.stringify({ event: "exit", code: 1, at: 2 }),
      "not json",
      JSON.stringify({ event: "started", mode: "ok", pid: 42, args: [], at: 3 }),
      ""
    ].join("\n")
    expect(startedPids(log)).toStrictEqual([41, 42])
  })

  it("quotes a word of CLAUDE_COMMAND only when it must", () => {
    expect(shellWord("/usr/bin/node")).toBe("/usr/bin/node")
    expect(shellWord("/home/me/my dir/x.ts")).toBe("'/home/me/my dir/x.ts'")
    expect(shellWord("/it's")).toBe(`'/it'"'"'s'`)
  })
})
