/**
 * Benchmarks: how fast the pure hot paths are and how much memory they hold, printed as a table.
 * Run with `npm run bench`; numbers are for reading and comparing, never asserted in tests.
 */
import { spawnSync } from "node:child_process"
import { HookEvents } from "../src/services/hook-events.ts"
import { SessionStarterOff } from "../src/services/session-starter.ts"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Duration, Effect, Layer, Redacted, References, Result } from "effect"
import { startFakeSecutools } from "../src/adapters/fake-secutools/server.ts"
import { resolveConfig } from "../src/config.ts"
import { dispatchSettings } from "../src/daemon.ts"
import { OwnWrites } from "../src/services/own-writes.ts"
import { TaskLocks } from "../src/services/task-locks.ts"
import { FsTaskStoreLayer } from "../src/adapters/fs-task-store.ts"
import { HttpSecutoolsLayer } from "../src/adapters/http-secutools.ts"
import { MemorySecutoolsLayer } from "../src/adapters/memory-secutools.ts"
import { MemoryTmuxLayer } from "../src/adapters/memory-tmux.ts"
import { TaskStore } from "../src/ports/task-store.ts"
import { Delegation, DelegationCountersRef, DelegationLayer } from "../src/services/delegation.ts"
import { Dispatcher, DispatcherLayer } from "../src/services/dispatcher.ts"
import { StatusReport, StatusReportLayer } from "../src/services/status.ts"
import { classifyPane } from "../src/domain/pane.ts"
import { decide, DEFAULT_COMPLEXITY_MAP } from "../src/domain/routing.ts"
import { makeTask, parseTask, queueKey, QueueOrder, renderTask, TaskName } from "../src/domain/task.ts"

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
const situation = {
  delegationEnabled: true,
  complexityMap: DEFAULT_COMPLEXITY_MAP,
  failoverProvider: "claude-api" as const,
  localAvailable: true,
  limitPolicy: "requeue" as const
}
const keys = Array.from(
  { length: 10_000 },
  (_, i) => queueKey(makeTask({ name: TaskName.make(`t-${i}.md`), fields: { priority: i % 7 } }), 1_000_000 - i)
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
  return {
    name: "ccl-delegate decide (process)",
    ops: Math.round(1e6 / mean),
    meanUs: mean,
    p99Us: samples[4] ?? mean,
    heapKb: 0
  }
}

/**
 * Delegation through the real pieces: a filesystem queue, the HTTP adapter and the stand-in server on loopback.
 * One op = one task from `start` (marker written) to done/ (reaped); the reaper polls every 50 ms.
 */
const delegationThroughput = async (tasks: number): Promise<Row> => {
  const root = mkdtempSync(join(tmpdir(), "cf-bench-"))
  const server = await startFakeSecutools({ apiKey: "bench", durationMs: 0 })
  const layer = DelegationLayer({
    reapInterval: Duration.millis(50),
    reapConcurrency: 16,
    jobTimeout: Duration.hours(1)
  }).pipe(
    Layer.provideMerge(
      HttpSecutoolsLayer(
        { baseUrl: server.url, apiKey: Redacted.make("bench"), requestTimeout: Duration.seconds(5) },
        {
          baseDelay: Duration.millis(10),
          maxDelay: Duration.millis(100),
          maxAttempts: 5,
          deadline: Duration.seconds(10)
        }
      ).pipe(Layer.provide(NodeHttpClient.layerUndici))
    ),
    Layer.provideMerge(Layer.mergeAll(FsTaskStoreLayer({ root }), DelegationCountersRef.layer, TaskLocks.layer))
  )
  globalThis.gc?.()
  const heapBefore = process.memoryUsage().heapUsed
  const elapsedMs = await Effect.runPromise(
    Effect.scoped(Effect.gen(function*() {
      const store = yield* TaskStore
      const delegation = yield* Delegation
      const names = Array.from({ length: tasks }, (_, i) => TaskName.make(`bench-${i}.md`))
      for (const name of names) yield* store.create("pending", name, "---\npreferred_ai: gemini\n---\nSummarise.\n")
      const start = performance.now()
      yield* Effect.forkScoped(delegation.run)
      for (const name of names) {
        yield* delegation.start(
          Result.getOrThrow(parseTask(name, "---\npreferred_ai: gemini\n---\nSummarise.\n")),
          "gemini",
          "bench"
        )
      }
      while ((yield* store.list("done")).length < tasks) yield* Effect.sleep(Duration.millis(10))
      return performance.now() - start
    })).pipe(Effect.provide(layer), Effect.provideService(References.MinimumLogLevel, "None"))
  )
  globalThis.gc?.()
  const heapKb = Math.max(0, (process.memoryUsage().heapUsed - heapBefore) / 1024)
  await server.close()
  rmSync(root, { recursive: true, force: true })
  const meanUs = (elapsedMs * 1000) / tasks
  return {
    name: `delegate ${tasks} tasks: marker → done/ (fs + HTTP)`,
    ops: Math.round(1e6 / meanUs),
    meanUs,
    p99Us: Number.NaN,
    heapKb
  }
}

/** One status snapshot (what every API request reads) over a queue of `tasks` pending files, after a dispatcher tick. */
const statusSnapshot = async (tasks: number): Promise<Row> => {
  const root = mkdtempSync(join(tmpdir(), "cf-bench-"))
  const layer = StatusReportLayer.pipe(
    // The daemon's own settings from the defaults, pointed at the bench queue.
    Layer.provideMerge(DispatcherLayer(dispatchSettings(Result.getOrThrow(resolveConfig({ QUEUE_DIR: root }))))),
    Layer.provideMerge(
      DelegationLayer({ reapInterval: Duration.seconds(5), reapConcurrency: 4, jobTimeout: Duration.hours(1) })
    ),
    Layer.provideMerge(SessionStarterOff),
    Layer.provideMerge(HookEvents.layerMemory()),
    Layer.provideMerge(
      Layer.mergeAll(
        OwnWrites.tracking.pipe(Layer.provide(FsTaskStoreLayer({ root }))),
        MemoryTmuxLayer,
        MemorySecutoolsLayer,
        DelegationCountersRef.layer,
        TaskLocks.layer
      )
    )
  )
  const samples = await Effect.runPromise(
    Effect.gen(function*() {
      const store = yield* TaskStore
      for (let i = 0; i < tasks; i++) yield* store.create("pending", TaskName.make(`t-${i}.md`), taskText)
      yield* (yield* Dispatcher).tick
      const report = yield* StatusReport
      const times: Array<number> = []
      for (let i = 0; i < 10; i++) {
        const start = performance.now()
        yield* report.snapshot
        times.push((performance.now() - start) * 1000)
      }
      return times.sort((a, b) => a - b)
    }).pipe(Effect.provide(layer), Effect.provideService(References.MinimumLogLevel, "None"))
  )
  rmSync(root, { recursive: true, force: true })
  const meanUs = samples.reduce((a, b) => a + b, 0) / samples.length
  return {
    name: `status snapshot, ${tasks} pending tasks`,
    ops: Math.round(1e6 / meanUs),
    meanUs,
    p99Us: samples.at(-1) ?? meanUs,
    heapKb: 0
  }
}

const rows: ReadonlyArray<Row> = [
  measure("parseTask (2 KB file)", () => parseTask("fix-login-redirect.md", taskText)),
  measure("renderTask", () => renderTask(parsed)),
  measure("decide", () => decide(parsed.fields, situation), 5000),
  measure("classifyPane (50-line screen)", () => classifyPane(screen, { now: Date.now(), timeZone: "UTC" })),
  measure("sort 10k queue keys", () => [...keys].sort(QueueOrder), 1, 10),
  cliStartup(),
  await delegationThroughput(200),
  await statusSnapshot(5_000)
]

const fmt = (n: number, digits = 1) => n.toLocaleString("en-US", { maximumFractionDigits: digits })
const table = [
  ["benchmark", "ops/s", "mean µs", "p99 µs", "retained KB"],
  ...rows.map((
    r
  ) => [r.name, fmt(r.ops, 0), fmt(r.meanUs), Number.isNaN(r.p99Us) ? "–" : fmt(r.p99Us), fmt(r.heapKb, 0)])
]
const widths = table[0]?.map((_, col) => Math.max(...table.map((row) => (row[col] ?? "").length))) ?? []
const line = (row: ReadonlyArray<string>) =>
  `| ${
    row.map((cell, col) => col === 0 ? cell.padEnd(widths[col] ?? 0) : cell.padStart(widths[col] ?? 0)).join(" | ")
  } |`
console.log(line(table[0] ?? []))
console.log(`|${widths.map((w, col) => col === 0 ? `${"-".repeat(w + 1)}-` : `${"-".repeat(w + 1)}:`).join("|")}|`)
for (const row of table.slice(1)) console.log(line(row))
console.log(
  `\nNode ${process.version}, ${process.arch}; means over batches after warm-up; retained = heap after GC minus before.`
)
