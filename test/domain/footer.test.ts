import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import { formatCost, formatDuration, Outcome, readFooter, renderFooter, renderResult } from "../../src/domain/footer.ts"
import { appendToBody, parseTask, renderTask } from "../../src/domain/task.ts"
import { RUNS, task } from "./arbitraries.ts"

const at = "2026-11-24T10:03:12.000Z"

describe("footers", () => {
  it("a done footer for a local session names the session and the duration", () => {
    expect(renderFooter(Outcome.Done({ at, runner: { _tag: "Session", session: "claude-2" }, durationMs: 192_000 })))
      .toBe(`\n\n---\nclaude-failover: done · ${at} · session claude-2 · took 3m 12s\n`)
  })

  it("a delegated result carries provider, job, cost and duration", () => {
    const footer = renderFooter(
      Outcome.Done({
        at,
        runner: { _tag: "Job", provider: "gemini", jobId: "j_123", costUsd: 0.0042 },
        durationMs: 41_000
      })
    )
    expect(footer).toContain("provider gemini · job j_123 · cost $0.0042 · took 41s")
    expect(renderResult("gemini", "All fixed.\n\n")).toBe("\n\n## Result (gemini)\n\nAll fixed.")
  })

  it("a failed footer gives the reason", () => {
    expect(renderFooter(Outcome.Failed({ at, reason: "tests do not pass" })))
      .toBe(`\n\n---\nclaude-failover: failed · ${at}\n\nReason: tests do not pass\n`)
  })

  it("appending a footer keeps everything the task said, and the file still parses to the same fields", () => {
    fc.assert(
      fc.property(task, fc.string({ maxLength: 80 }), (t, reason) => {
        const finished = appendToBody(t, renderFooter(Outcome.Failed({ at, reason })))
        const reparsed = Result.getOrThrow(parseTask(t.name, renderTask(finished)))
        expect(reparsed.body.startsWith(t.body)).toBe(true)
        expect(reparsed.fields).toStrictEqual(t.fields)
      }),
      RUNS
    )
  })

  it.each([
    [850, "850ms"],
    [41_000, "41s"],
    [192_000, "3m 12s"],
    [7_500_000, "2h 5m"]
  ])("formats %ims as %s", (ms, shown) => {
    expect(formatDuration(ms)).toBe(shown)
  })

  it.each([
    [0.0042, "$0.0042"],
    [0.123456, "$0.12"],
    [1.25, "$1.25"],
    [0, "$0"]
  ])("formats $%d as %s", (usd, shown) => {
    expect(formatCost(usd)).toBe(shown)
  })
})

describe("readFooter", () => {
  const line = fc.string({ minLength: 1, maxLength: 40 }).filter((text) =>
    !/[\n·]/.test(text) && text.trim() === text && text !== ""
  )
  const anyTime = fc.date({ min: new Date("2020-01-01"), max: new Date("2030-01-01"), noInvalidDate: true }).map((d) =>
    d.toISOString()
  )

  it("reads back the outcome, the facts and a failure's reason of the last footer renderFooter wrote", () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 80 }),
        anyTime,
        line,
        fc.boolean(),
        line,
        (body, when, session, failed, reason) => {
          const runner = { _tag: "Session", session } as const
          const outcome = failed
            ? Outcome.Failed({ at: when, runner, reason })
            : Outcome.Done({ at: when, runner, summary: reason })
          // An earlier run's footer before it: the last one is read.
          const earlier = renderFooter(Outcome.Failed({ at: when, reason: "an earlier run" }))
          const read = readFooter(`${body}${earlier}${renderFooter(outcome)}`)
          expect(read?.outcome).toBe(failed ? "failed" : "done")
          expect(read?.facts).toBe(`session ${session}`)
          expect(read?.reason).toBe(failed ? reason : undefined)
        }
      ),
      RUNS
    )
    expect(readFooter("No footer here.\n")).toBeUndefined()
  })
})
