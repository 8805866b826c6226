/** The daemon's loops are supervised: a defect restarts the loop a second later; interruption stops it for good. */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { supervised } from "../../src/daemon.ts"

describe("supervised loops", () => {
  it.effect("restarts a loop that died, one second later, each time", () =>
    Effect.gen(function*() {
      let starts = 0
      const loop = Effect.suspend(() => {
        starts++
        return starts < 3 ? Effect.die(new Error(`boom ${starts}`)) : Effect.never
      })
      const fiber = yield* Effect.forkChild(supervised("test", loop))
      yield* TestClock.adjust(Duration.millis(999))
      expect(starts).toBe(1)
      yield* TestClock.adjust(Duration.millis(1))
      expect(starts).toBe(2)
      yield* TestClock.adjust(Duration.seconds(10))
      expect(starts).toBe(3)
      yield* Fiber.interrupt(fiber)
      yield* TestClock.adjust(Duration.seconds(10))
      expect(starts).toBe(3)
    }))
})
