/** The demo's pure parts: log line → human line, finished queue → summary, the samples' routes. */
import { describe, expect, it } from "@effect/vitest"
import {
  describeFinished,
  describeLogRecord,
  type FinishedTask,
  formatEvent,
  type LogRecord,
  parseLogLine
} from "../../demo/progress.ts"
import { problems, renderReport, renderTable, renderTotals, summarizeTask } from "../../demo/summary.ts"
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
    expect(parseLogLine(line)).toStrictEqual(record("a.md → session claude-1", "INFO", { task: "a.md", session: "claude-1" }))
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
    expect(describeLogRecord(record("a.md → session claude-1"), reasons)).toBe("a.md → claude-1 (local: needs_claude_code)")
    expect(describeLogRecord(record("b.md → session claude-2"), reasons)).toBe("b.md → claude-2 (local)")
    expect(describeLogRecord(record("g.md → secutools gemini (preferred_provider)"), noReason))
      .toBe("g.md → secutools gemini (preferred_provider)")
    expect(describeLogRecord(record("g.md submitted to secutools gemini as job j_000001"), noReason))
      .toBe("g.md submitted to gemini as job j_000001")
  })

  it("shows retries without the HTTP body, usage limits and failovers without the banner", () => {
    expect(describeLogRecord(record("secutools submit g: HTTP 503: {\"error\":\"injected\"}; retrying in 84ms", "WARN"), noReason))
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

  it("reports delegated endings and malformed files; hides other info lines, never a warning", () => {
    expect(describeLogRecord(record("g.md done by secutools gemini (job j_000002)"), noReason))
      .toBe("✓ g.md done by secutools gemini (job j_000002)")
    expect(
      describeLogRecord(record("f.md failed at secutools: gemini: model refused the task", "WARN", { provider: "gemini" }), noReason)
    ).toBe("✗ f.md failed at secutools gemini: gemini: model refused the task")
    expect(
      describeLogRecord(
        record("pending/m.md cannot be parsed; moved to failed/ with m.md.error", "WARN", {
          task: "m.md",
          reason: "m.md:3:1: field 'allow_delegation': Expected boolean, got string \"yes\""
        }),
        noReason
      )
    ).toBe("✗ m.md is malformed → failed/: line 3: field 'allow_delegation': Expected boolean, got string \"yes\"")
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

const malformed: FinishedTask = {
  name: "malformed.md",
  stage: "failed",
  text: "---\npriority: 8\nallow_delegation: \"yes\"\n---\nRefused.\n",
  error: "malformed.md:3:1: field 'allow_delegation': Expected boolean, got string \"yes\"\n"
}

describe("demo summary", () => {
  it("a local task that finished: its line names the session and the time it took", () => {
    expect(describeFinished(localDone)).toBe("✓ may-delegate.md done by claude-1 (took 3s)")
    expect(describeFinished({ ...localDone, stage: "failed", text: `${localDone.text}\nReason: tests do not pass\n` }))
      .toBe("✗ may-delegate.md failed in claude-1: tests do not pass (took 3s)")
    expect(describeFinished(delegatedDone)).toBeUndefined()
    expect(describeFinished(malformed)).toBeUndefined()
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
      failover: "session claude-2 hit its usage limit (Claude usage limit reached.)",
      where: "local"
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
    expect(renderTotals(rows)).toBe("4 tasks · 2 done, 2 failed · 1 ran locally, 2 on secutools, 1 malformed · 1 failover")
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
    expect(good).toContain("secutools stand-in: 7 submits (1 repeated), 6 jobs, 30 polls; injected: 2× HTTP 5xx, 1× HTTP 429")
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
    const samples = SAMPLE_TASKS.filter((sample) => ["may-delegate.md", "auto-low.md", "plain.md"].includes(sample.name))
    const rows = [localDone, { ...delegatedDone, stage: "failed" as const }].map(summarizeTask)
    expect(problems(samples, rows)).toStrictEqual(["plain.md did not finish", "auto-low.md ended failed, expected done"])
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
