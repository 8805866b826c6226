import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { MemorySecutoolsControl, MemorySecutoolsLayer } from "../../src/adapters/memory-secutools.ts"
import { MemoryTmuxControl, MemoryTmuxLayer } from "../../src/adapters/memory-tmux.ts"
import { Secutools } from "../../src/ports/secutools.ts"
import { Tmux } from "../../src/ports/tmux.ts"

describe("memory secutools", () => {
  it.effect("the same idempotency key yields the same job", () =>
    Effect.gen(function*() {
      const secutools = yield* Secutools
      const request = { task_id: "t", provider: "gpu" as const, prompt: "p" }
      const first = yield* secutools.submit(request, "k1")
      const again = yield* secutools.submit(request, "k1")
      const other = yield* secutools.submit(request, "k2")
      expect(again.job_id).toBe(first.job_id)
      expect(other.job_id).not.toBe(first.job_id)
      yield* (yield* MemorySecutoolsControl).finish(first.job_id, "completed", { result: "ok", cost_usd: 0.01 })
      expect(yield* secutools.get(first.job_id)).toMatchObject({ status: "completed", result: "ok", cost_usd: 0.01 })
      const missing = yield* Effect.exit(secutools.get("j_404"))
      expect(Exit.isFailure(missing)).toBe(true)
    }).pipe(Effect.provide(MemorySecutoolsLayer)))
})

describe("memory tmux", () => {
  it.effect("records typed text and fails for a missing session", () =>
    Effect.gen(function*() {
      const tmux = yield* Tmux
      const control = yield* MemoryTmuxControl
      yield* control.setPane("claude-1", { screen: "> " })
      yield* tmux.sendText("claude-1", "do $(this)")
      yield* tmux.sendEnter("claude-1")
      expect((yield* control.panes).get("claude-1")?.typed).toStrictEqual(["do $(this)", "\n"])
      expect(yield* tmux.listSessions()).toStrictEqual(["claude-1"])
      yield* control.killSession("claude-1")
      const exit = yield* Effect.exit(tmux.capturePane("claude-1"))
      expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toContain("SessionNotFound")
    }).pipe(Effect.provide(MemoryTmuxLayer)))
})
