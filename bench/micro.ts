/**
 * The small second section: pure functions of the domain timed in-process (µs per call, mean over batches after a
 * warm-up), each beside the plainest code doing the same kind of work. (A command's start-up is row 8's business.)
 * Easy to get wrong: these are not the daemon's figures (no I/O, no scheduling); they say which pure step is costly
 * when a daemon row is slow, and they run last, after every process scenario, so they disturb none.
 */
import { Result } from "effect"
import YAML from "yaml"
import { classifyPane } from "../src/domain/pane.ts"
import { makeTask, parseTask, type QueueKey, queueKey, QueueOrder, renderTask, TaskName } from "../src/domain/task.ts"
import type { Sizes } from "./sizes.ts"
import { q, type Row } from "./table.ts"

export const MICRO_ROWS = [
  { id: "m1", what: "parseTask, 2 KB task file" },
  { id: "m2", what: "renderTask" },
  { id: "m3", what: "classifyPane, 50-line screen" },
  { id: "m4", what: "sort 10,000 queue keys (QueueOrder)" }
] as const

/** Mean µs per call of `fn`, in batches after a warm-up. */
const perCall = (fn: (i: number) => unknown, batches: number, batch: number): number => {
  let sink: unknown
  for (let i = 0; i < batch * 5; i++) sink = fn(i)
  const started = performance.now()
  for (let i = 0; i < batch * batches; i++) sink = fn(i)
  const us = ((performance.now() - started) * 1000) / (batch * batches)
  return sink === Symbol.for("never") ? Number.NaN : us
}

const frontmatter = `id: fix-login-redirect
title: Fix the login redirect
priority: 1
preferred_ai: auto
allow_delegation: true
complexity_hint: low
owner: ana
labels: [auth, web]
created: 2026-11-24T10:00:00Z`
const body = "The login page redirects to /home instead of the page the user came from. Fix it and add a test.\n"
  .repeat(20)
const taskText = `---\n${frontmatter}\n---\n${body}`
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

const plainOrder = (a: QueueKey, b: QueueKey): number =>
  a.priority - b.priority || a.createdMs - b.createdMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)

export const microRows = (sizes: Sizes): ReadonlyArray<Row> => {
  const batches = sizes.quick ? 10 : 30
  const batch = sizes.microBatch
  const parsed = Result.getOrThrow(parseTask("fix-login-redirect.md", taskText))
  const fields = YAML.parse(frontmatter)
  const keys = Array.from(
    { length: 10_000 },
    (_, i) => queueKey(makeTask({ name: TaskName.make(`t-${i}.md`), fields: { priority: i % 7 } }), 1_000_000 - i)
  )
  const [parse, render, classify, sort] = MICRO_ROWS
  return [
    {
      ...parse,
      figure: q(perCall(() => parseTask("fix-login-redirect.md", taskText), batches, batch), "µs"),
      baseline: q(
        perCall(
          () => [YAML.parse(taskText.slice(4, taskText.indexOf("\n---\n"))), taskText.split("\n---\n")[1]],
          batches,
          batch
        ),
        "µs"
      ),
      baselineIs: "YAML.parse of its frontmatter (yaml package)"
    },
    {
      ...render,
      figure: q(perCall(() => renderTask(parsed), batches, batch), "µs"),
      baseline: q(perCall(() => `---\n${YAML.stringify(fields)}---\n${body}`, batches, batch), "µs"),
      baselineIs: "YAML.stringify of its fields + body"
    },
    {
      ...classify,
      figure: q(perCall(() => classifyPane(screen, { now: Date.now(), timeZone: "UTC" }), batches, batch), "µs"),
      baseline: q(
        perCall(
          () => screen.split("\n").reverse().find((line) => /usage limit|esc to interrupt|│ >/.test(line)),
          batches,
          batch
        ),
        "µs"
      ),
      baselineIs: "split + one regex per line, bottom-up"
    },
    {
      ...sort,
      figure: q(perCall(() => [...keys].sort(QueueOrder), 10, 1), "µs"),
      baseline: q(perCall(() => [...keys].sort(plainOrder), 10, 1), "µs"),
      baselineIs: "the same keys, hand-written comparator"
    }
  ]
}
