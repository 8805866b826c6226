/**
 * HookEvents in memory: the newest facts per session in order, `since` a time, bounded both in facts and in sessions,
 * and the live feed a dispatcher wakes on.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Option, PubSub, Stream } from "effect"
import fc from "fast-check"
import { HookFact } from "../../src/domain/hooks.ts"
import { HookEvents } from "../../src/services/hook-events.ts"
import { RUNS } from "../domain/arbitraries.ts"

const ended = HookFact.TurnEnded()
const limit = HookFact.TurnFailed({
  kind: "limit",
  error: "rate_limit",
  text: "You've hit your 5-hour limit · resets 1:22pm"
})
const submitted = (run: string) => HookFact.PromptSubmitted({ run: Option.some(run), task: Option.some("a.md") })

describe("HookEvents (memory)", () => {
  it.effect("latest: the facts of one session in the order recorded; since: those at or after a time", () =>
    Effect.gen(function*() {
      const events = yield* HookEvents
      yield* events.record("claude-1", submitted("r1"), 100)
      yield* events.record("claude-2", ended, 150)
      yield* events.record("claude-1", limit, 200)
      expect(yield* events.latest("claude-1")).toStrictEqual([
        { session: "claude-1", fact: submitted("r1"), at: 100 },
        { session: "claude-1", fact: limit, at: 200 }
      ])
      expect((yield* events.since("claude-1", 200)).map((r) => r.fact)).toStrictEqual([limit])
      expect(yield* events.since("claude-1", 201)).toStrictEqual([])
      expect(yield* events.latest("claude-9")).toStrictEqual([])
      expect(yield* events.sessions).toStrictEqual(["claude-1", "claude-2"])
    }).pipe(Effect.provide(HookEvents.layerMemory())))

  it("keeps only the newest `keep` facts of a session, and only the `sessions` reported most recently", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom("a", "b", "c", "d"), fc.nat(1000)), { maxLength: 60 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 4 }),
        async (calls, keep, sessions) => {
          const program = Effect.gen(function*() {
            const events = yield* HookEvents
            for (const [session, at] of calls) yield* events.record(session, ended, at)
            const order: Array<string> = []
            for (const [session] of [...calls].reverse()) if (!order.includes(session)) order.push(session)
            expect(yield* events.sessions).toStrictEqual(order.slice(0, sessions))
            for (const session of ["a", "b", "c", "d"]) {
              const mine = calls.filter(([s]) => s === session).map(([, at]) => at)
              const kept = (yield* events.latest(session)).map((r) => r.at)
              if (!order.slice(0, sessions).includes(session)) {
                expect(kept).toStrictEqual([])
              } else if (sessions >= 4) {
                // Four names never overflow: every session keeps its newest `keep` facts.
                expect(kept).toStrictEqual(mine.slice(-keep))
              } else {
                // An evicted session starts afresh when reported again: what is kept is a newest part of its facts.
                expect(kept.length).toBeGreaterThan(0)
                expect(kept.length).toBeLessThanOrEqual(keep)
                expect(kept).toStrictEqual(mine.slice(-kept.length))
              }
            }
          })
          await Effect.runPromise(
            Effect.scoped(program.pipe(Effect.provide(HookEvents.layerMemory({ keep, sessions }))))
          )
        }
      ),
      RUNS
    )
  })

  it.effect("changes: a running subscriber sees every fact recorded after it started, in order", () =>
    Effect.gen(function*() {
      const events = yield* HookEvents
      const subscription = yield* events.subscribe
      const seen = yield* events.changes.pipe(Stream.take(2), Stream.runCollect, Effect.forkChild)
      yield* Effect.yieldNow
      yield* events.record("claude-1", submitted("r1"), 1)
      yield* events.record("claude-1", ended, 2)
      expect((yield* Fiber.join(seen)).map((r) => r.at)).toStrictEqual([1, 2])
      expect((yield* PubSub.takeAll(subscription)).map((r) => r.fact._tag)).toStrictEqual([
        "PromptSubmitted",
        "TurnEnded"
      ])
    }).pipe(Effect.provide(HookEvents.layerMemory())))

  it.effect("a subscriber that never reads holds nothing up: it keeps only the newest `backlog` facts", () =>
    Effect.gen(function*() {
      const events = yield* HookEvents
      const subscription = yield* events.subscribe
      for (let at = 0; at < 10; at++) yield* events.record("claude-1", ended, at)
      expect((yield* PubSub.takeAll(subscription)).map((r) => r.at)).toStrictEqual([7, 8, 9])
    }).pipe(Effect.provide(HookEvents.layerMemory({ backlog: 3 }))))
})
