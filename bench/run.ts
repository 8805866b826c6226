/**
 * Benchmarks: how fast the pure hot paths are and how much memory they hold, printed as a table.
 * Run with `npm run bench`; numbers are for reading and comparing, never asserted in tests.
 */
import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { Result } from "effect"
import { classifyPane } from "../src/domain/pane.ts"
import { decide, DEFAULT_COMPLEXITY_MAP } from "../src/domain/routing.ts"
import { parseTask, QueueOrder, queueKey, renderTask, TaskName, makeTask } from "../src/domain/task.ts"

interface Row {
  readonly name: string
  readonly ops: number
  readonly meanUs: number
  readonly p99Us: number
  readonly heapKb: number
}

/** Runs `fn` in timed batches after a warm-up; reports per-call mean and p99 of batch means. */
const measure = (name: string, fn: (i: number) => unknown, batch = 200, batches = 50): Row => {
  for (let i = 0; i < batch * 5; i++) fn(i)
  globalThis.gc?.()
  const heapBefore = process.memoryUsage().heapUsed
  const samples: Array<number> = []
  let sink: unknown
  for (let b = 0; b < batches; b++) {
    const start = performance.now()
    for (let i = 0; i < batch; i++) sink = fn(i)
    samples.push(((performance.now() - start) * 1000) / batch)
  }
  void sink
  globalThis.gc?.()
  const retainedKb = Math.max(0, (process.memoryUsage().heapUsed - heapBefore) / 1024)
  samples.sort((a, b) => a - b)
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length
  return {
    name,
    ops: Math.round(1e6 / mean),
    meanUs: mean,
    p99Us: samples[Math.min(samples.length - 1, Math.floor(samples.length * 0.99))] ?? mean,
    heapKb: retainedKb
  }
}

const taskText = `---
id: fix-login-redirect
title: Fix the login redirect
priority: 1
preferred_ai: auto
allow_delegation: true
complexity_hint: low
owner: ana
labels: [auth, web]
created: 2026-11-24T10:00:00Z
---
${"The login page redirects to /home instead of the page the user came from. Fix it and add a test.\n".repeat(20)}`

const parsed = Result.getOrThrow(parseTask("fix-login-redirect.md", taskText))
const screen = [
  ...Array.from({ length: 40 }, (_, i) => `⏺ Step ${i}: reading files and thinking about the change`),
  "⏺ Bash(npm test)",
  "  ⎿  Claude usage limit reached. Your limit will reset at 9am (America/Chicago).",
  "",
  "✻ Cogitating… (12s · ↑ 1.2k tokens · esc to interrupt)",
  "",
  "╭──────────────────────────────────────────────────────────────────────────────╮",
  "│ >                                                                            │",
  "╰──────────────────────────────────────────────────────────────────────────────╯",
  "  ? for shortcuts"
].join("\n")
const situation = { delegationEnabled: true, complexityMap: DEFAULT_COMPLEXITY_MAP, failoverProvider: "claude-api" as const, localAvailable: true }
const keys = Array.from({ length: 10_000 }, (_, i) =>
  queueKey(makeTask({ name: TaskName.make(`t-${i}.md`), fields: { priority: i % 7 } }), 1_000_000 - i)
)

const cliStartup = (): Row => {
  const bin = join(import.meta.dirname, "../bin/ccl-delegate.js")
  const samples: Array<number> = []
  for (let i = 0; i < 5; i++) {
    const start = performance.now()
    spawnSync(process.execPath, [bin, "decide", "--field", "preferred_ai=gemini"], { encoding: "utf8" })
    samples.push((performance.now() - start) * 1000)
  }
  samples.sort((a, b) => a - b)
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length
  return { name: "ccl-delegate decide (process)", ops: Math.round(1e6 / mean), meanUs: mean, p99Us: samples[4] ?? mean, heapKb: 0 }
}

const rows: ReadonlyArray<Row> = [
  measure("parseTask (2 KB file)", () => parseTask("fix-login-redirect.md", taskText)),
  measure("renderTask", () => renderTask(parsed)),
  measure("decide", () => decide(parsed.fields, situation), 5000),
  measure("classifyPane (50-line screen)", () => classifyPane(screen, { now: Date.now(), timeZone: "UTC" })),
  measure("sort 10k queue keys", () => [...keys].sort(QueueOrder), 1, 10),
  cliStartup()
]

const fmt = (n: number, digits = 1) => n.toLocaleString("en-US", { maximumFractionDigits: digits })
const table = [
  ["benchmark", "ops/s", "mean µs", "p99 µs", "retained KB"],
  ...rows.map((r) => [r.name, fmt(r.ops, 0), fmt(r.meanUs), fmt(r.p99Us), fmt(r.heapKb, 0)])
]
const widths = table[0]?.map((_, col) => Math.max(...table.map((row) => (row[col] ?? "").length))) ?? []
const line = (row: ReadonlyArray<string>) =>
  `| ${row.map((cell, col) => col === 0 ? cell.padEnd(widths[col] ?? 0) : cell.padStart(widths[col] ?? 0)).join(" | ")} |`
console.log(line(table[0] ?? []))
console.log(`|${widths.map((w, col) => col === 0 ? `${"-".repeat(w + 1)}-` : `${"-".repeat(w + 1)}:`).join("|")}|`)
for (const row of table.slice(1)) console.log(line(row))
console.log(`\nNode ${process.version}, ${process.arch}; means over batches after warm-up; retained = heap after GC minus before.`)
