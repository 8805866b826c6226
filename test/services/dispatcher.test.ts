/** The dispatcher and its watchdog on in-memory ports, with time moved by TestClock. */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Option, Result } from "effect"
import { TestClock } from "effect/testing"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { MemoryTaskStoreLayer } from "../../src/adapters/memory-task-store.ts"
import { MemoryTmuxControl, MemoryTmuxLayer } from "../../src/adapters/memory-tmux.ts"
import { DEFAULT_COMPLEXITY_MAP } from "../../src/domain/routing.ts"
import { parseTask, TaskName } from "../../src/domain/task.ts"
import { TaskStore } from "../../src/ports/task-store.ts"
import { Dispatcher, DispatcherLayer, type DispatchSettings } from "../../src/services/dispatcher.ts"
import { memoryDelegation } from "./delegation-layers.ts"
import { dispatchSettingsForTests } from "./dispatch-settings.ts"

const screen = (file: string) => readFileSync(join(import.meta.dirname, "../fixtures/screens", file), "utf8")
const IDLE = screen("idle--boxed-prompt-after-work.txt")
const BUSY = screen("busy--spinner-cogitating.txt")
const LIMITED = screen("usage_limited--v1-reached-chicago.txt") // resets 9am (America/Chicago) = 15:00Z
const PROMPT = screen("permission_prompt--bash-command.txt")

/** 2026-11-24 10:00 UTC: the Chicago reset at 15:00Z is five hours away. */
const START = Date.parse("2026-11-24T10:00:00Z")

const settings = dispatchSettingsForTests

const testLayer = (overrides: Partial<DispatchSettings> = {}) =>
  DispatcherLayer(settings(overrides)).pipe(
    Layer.provideMerge(memoryDelegation()),
    Layer.provideMerge(Layer.mergeAll(MemoryTaskStoreLayer, MemoryTmuxLayer))
  )

/** A tick sleeps between typing and Enter: run it on a fiber and move the clock until it is done. */
const tick = Effect.gen(function*() {
  const dispatcher = yield* Dispatcher
  const fiber = yield* Effect.forkChild(dispatcher.tick)
  yield* TestClock.adjust(Duration.seconds(5))
  yield* Fiber.join(fiber)
})

const addTask = (name: string, text: string) =>
  TaskStore.use((store) => store.write("pending", TaskName.make(name), text))

const fieldsOf = (stage: "pending" | "active" | "done", name: string) =>
  Effect.gen(function*() {
    const store = yield* TaskStore
    const stored = yield* store.read(stage, TaskName.make(name))
    return Result.getOrThrow(parseTask(name, stored.text)).fields
  })

const idleSession = (session: string) =>
  MemoryTmuxControl.use((tmux) => tmux.setPane(session, { screen: IDLE, command: "claude", screenAfterEnter: BUSY }))

/** At START, job.md dispatched to an idle claude-1; returns the tmux control. */
const jobRunningOnClaude1 = Effect.gen(function*() {
  yield* TestClock.setTime(START)
  yield* idleSession("claude-1")
  yield* addTask("job.md", "Do the job.\n")
  yield* tick
  return yield* MemoryTmuxControl
})

describe("dispatcher", () => {
  it.effect("assigns pending tasks to free sessions in queue order and types a self-contained prompt", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* idleSession("claude-1")
      yield* idleSession("claude-2")
      yield* addTask("low.md", "---\npriority: 50\n---\nLow priority.\n")
      yield* addTask("urgent.md", "---\npriority: 1\n---\nUrgent.\n")
      yield* addTask("later.md", "---\npriority: 90\n---\nLater.\n")
      yield* tick

      const store = yield* TaskStore
      expect(yield* store.list("active")).toStrictEqual(["low.md", "urgent.md"])
      expect(yield* store.list("pending")).toStrictEqual(["later.md"])
      expect(yield* fieldsOf("active", "urgent.md")).toMatchObject({ state: "assigned", session: "claude-1", attempts: 1 })
      expect((yield* fieldsOf("active", "urgent.md")).started_at).toBeDefined()

      const typed = (yield* (yield* MemoryTmuxControl).panes).get("claude-1")?.typed ?? []
      expect(typed[0]).toContain("Urgent.")
      expect(typed[0]).toContain("`/usr/bin/node /app/bin/claude-failover.js task done urgent.md --queue-dir /q`")
      expect(typed[1]).toBe("\n")
    }).pipe(Effect.provide(testLayer())))

  it.effect("types into every free session at once, not one after another", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      for (const session of ["claude-1", "claude-2", "claude-3"]) yield* idleSession(session)
      for (const n of [1, 2, 3]) yield* addTask(`t-${n}.md`, `Task ${n}.\n`)
      const fiber = yield* Effect.forkChild((yield* Dispatcher).tick)
      // One session takes ~0.65 s (pause before Enter, then the check that it left idle): by 0.7 s all three have
      // had their Enter only if they were typed into side by side.
      yield* TestClock.adjust(Duration.millis(700))
      const panes = yield* (yield* MemoryTmuxControl).panes
      expect(["claude-1", "claude-2", "claude-3"].map((session) => panes.get(session)?.typed.includes("\n"))).toStrictEqual(
        [true, true, true]
      )
      yield* TestClock.adjust(Duration.seconds(5))
      yield* Fiber.join(fiber)
      expect(yield* (yield* TaskStore).list("active")).toStrictEqual(["t-1.md", "t-2.md", "t-3.md"])
    }).pipe(Effect.provide(testLayer())))

  it.effect("a usage limit sends the task back and rests the whole account until the reset time", () =>
    Effect.gen(function*() {
      const tmux = yield* jobRunningOnClaude1
      expect(yield* fieldsOf("active", "job.md")).toMatchObject({ session: "claude-1" })

      yield* tmux.setPane("claude-1", { screen: LIMITED })
      yield* idleSession("claude-2")
      yield* TestClock.adjust(Duration.seconds(20))
      yield* tick
      const store = yield* TaskStore
      expect(yield* store.list("active")).toStrictEqual([])
      expect(yield* store.list("pending")).toStrictEqual(["job.md"])
      expect((yield* fieldsOf("pending", "job.md")).last_failover).toContain("session claude-1 hit its usage limit")

      const status = yield* (yield* Dispatcher).status
      const cooldownOf = (session: string) => status.sessions.find((s) => s.session === session)?.cooldownUntil
      expect(cooldownOf("claude-1")).toStrictEqual(Option.some(Date.parse("2026-11-24T15:00:00Z")))
      expect(cooldownOf("claude-2")).toStrictEqual(Option.some(Date.parse("2026-11-24T15:00:00Z")))
      expect(status.counters.failovers).toBe(1)

      // Same account: claude-2 stays idle until 15:00Z, then the task runs again.
      yield* tick
      expect(yield* store.list("pending")).toStrictEqual(["job.md"])
      yield* TestClock.setTime(Date.parse("2026-11-24T15:00:01Z"))
      yield* tick
      expect(yield* store.list("active")).toStrictEqual(["job.md"])
      expect(yield* fieldsOf("active", "job.md")).toMatchObject({ attempts: 2 })
    }).pipe(Effect.provide(testLayer({ accounts: Option.some(new Map([["acct", ["claude-1", "claude-2"]]])) }))))

  it.effect("a session without an account rests alone, for LIMIT_COOLDOWN when no reset time is shown", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const tmux = yield* MemoryTmuxControl
      yield* tmux.setPane("claude-1", { screen: screen("usage_limited--org-monthly-no-reset.txt"), command: "claude" })
      yield* idleSession("claude-2")
      yield* tick
      const status = yield* (yield* Dispatcher).status
      const cooldownOf = (session: string) => status.sessions.find((s) => s.session === session)?.cooldownUntil
      expect(cooldownOf("claude-1")).toStrictEqual(Option.some(START + 2 * 3_600_000))
      expect(cooldownOf("claude-2")).toStrictEqual(Option.none())
    }).pipe(Effect.provide(testLayer({ limitCooldown: Duration.hours(2) }))))

  it.effect("after its cooldown, a session that shows the same banner again rests again", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const tmux = yield* MemoryTmuxControl
      const monthly = screen("usage_limited--org-monthly-no-reset.txt")
      yield* tmux.setPane("claude-1", { screen: monthly, command: "claude" })
      yield* addTask("job.md", "Do the job.\n")
      yield* tick
      expect(yield* (yield* TaskStore).list("pending")).toStrictEqual(["job.md"])

      yield* TestClock.adjust(Duration.hours(2))
      yield* tick
      expect(yield* fieldsOf("active", "job.md")).toMatchObject({ session: "claude-1" })
      yield* TestClock.adjust(Duration.seconds(20))
      yield* tick
      expect((yield* fieldsOf("pending", "job.md")).last_failover).toContain("hit its usage limit")
      const status = yield* (yield* Dispatcher).status
      const now = START + 2 * 3_600_000 + 30_000 // each tick helper moves the clock 5s
      expect(status.sessions[0]?.cooldownUntil).toStrictEqual(Option.some(now + 2 * 3_600_000))
      yield* tick
      expect(yield* (yield* TaskStore).list("active")).toStrictEqual([])
    }).pipe(Effect.provide(testLayer({ limitCooldown: Duration.hours(2) }))))

  it.effect("an exited session gives its task back, and nothing is typed into the shell", () =>
    Effect.gen(function*() {
      const tmux = yield* jobRunningOnClaude1
      yield* tmux.setPane("claude-1", { command: "bash", screen: "dev@host:~$ " })
      yield* tick
      expect((yield* fieldsOf("pending", "job.md")).last_failover).toContain("session claude-1 exited")
      const typed = (yield* tmux.panes).get("claude-1")?.typed ?? []
      expect(typed).toHaveLength(2)
    }).pipe(Effect.provide(testLayer())))

  it.effect("a permission prompt is reported, never answered", () =>
    Effect.gen(function*() {
      const tmux = yield* jobRunningOnClaude1
      yield* tmux.setPane("claude-1", { screen: PROMPT })
      yield* tick
      const status = yield* (yield* Dispatcher).status
      expect(status.attention).toStrictEqual([{ session: "claude-1", reason: "Do you want to proceed?" }])
      expect((yield* tmux.panes).get("claude-1")?.typed).toHaveLength(2)
      expect(yield* (yield* TaskStore).list("active")).toStrictEqual(["job.md"])
    }).pipe(Effect.provide(testLayer())))
})

describe("watchdog", () => {
  it.effect("reports a pane unchanged for STALE_AFTER, requeues after REQUEUE_AFTER, and resets on change", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const tmux = yield* MemoryTmuxControl
      const dispatcher = yield* Dispatcher
      yield* idleSession("claude-1")
      yield* addTask("slow.md", "Take your time.\n")
      yield* tick

      yield* TestClock.adjust(Duration.minutes(29))
      yield* tick
      expect((yield* dispatcher.status).stale).toStrictEqual([])

      // Progress on screen restarts the clock.
      yield* tmux.setPane("claude-1", { screen: `${BUSY}\n⏺ Still working.` })
      yield* tick
      yield* TestClock.adjust(Duration.minutes(29))
      yield* tick
      expect((yield* dispatcher.status).stale).toStrictEqual([])

      yield* TestClock.adjust(Duration.minutes(2))
      yield* tick
      expect((yield* dispatcher.status).stale).toMatchObject([{ task: "slow.md", session: "claude-1" }])
      expect(yield* (yield* TaskStore).list("active")).toStrictEqual(["slow.md"])

      yield* TestClock.adjust(Duration.minutes(30))
      yield* tick
      expect((yield* fieldsOf("pending", "slow.md")).last_failover).toContain("no progress in session claude-1")
    }).pipe(Effect.provide(testLayer({ requeueAfter: Option.some(Duration.hours(1)) }))))
})

describe("routing to secutools", () => {
  const delegating = { routing: { delegationEnabled: true, complexityMap: DEFAULT_COMPLEXITY_MAP, failoverProvider: "claude-api" as const } }

  it.effect("a task routed to a provider gets a marker and is never typed into a session", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* idleSession("claude-1")
      yield* addTask("gpu.md", "---\npreferred_ai: GPU\n---\nRender it.\n")
      yield* addTask("auto.md", "---\npreferred_ai: auto\ncomplexity_hint: low\n---\nSort it.\n")
      yield* tick
      const store = yield* TaskStore
      expect(yield* store.listMarkers()).toStrictEqual(["auto.md", "gpu.md"])
      expect(Option.map(yield* store.readMarker(TaskName.make("gpu.md")), (m) => m.provider)).toStrictEqual(Option.some("gpu"))
      expect(yield* fieldsOf("pending", "gpu.md")).toMatchObject({ state: "delegated_to_secutools", provider: "gpu" })
      expect(yield* store.list("active")).toStrictEqual([])
      expect((yield* (yield* MemoryTmuxControl).panes).get("claude-1")?.typed).toStrictEqual([])
    }).pipe(Effect.provide(testLayer(delegating))))

  it.effect("without SECUTOOLS_API_KEY the same task runs locally, with no marker", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* idleSession("claude-1")
      yield* addTask("gpu.md", "---\npreferred_ai: gpu\nallow_delegation: true\n---\nRender it.\n")
      yield* tick
      const store = yield* TaskStore
      expect(yield* store.listMarkers()).toStrictEqual([])
      expect(yield* fieldsOf("active", "gpu.md")).toMatchObject({ state: "assigned", session: "claude-1" })
    }).pipe(Effect.provide(testLayer())))

  it.effect("a task that allows delegation fails over to FAILOVER_PROVIDER when its only session hits its limit", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* idleSession("claude-1")
      yield* addTask("job.md", "---\nallow_delegation: true\n---\nDo the job.\n")
      yield* tick
      expect(yield* fieldsOf("active", "job.md")).toMatchObject({ session: "claude-1" })

      yield* (yield* MemoryTmuxControl).setPane("claude-1", { screen: LIMITED })
      yield* TestClock.adjust(Duration.seconds(20))
      yield* tick
      const store = yield* TaskStore
      expect(Option.map(yield* store.readMarker(TaskName.make("job.md")), (m) => m.provider)).toStrictEqual(
        Option.some("claude-api")
      )
      const fields = yield* fieldsOf("pending", "job.md")
      expect(fields).toMatchObject({ state: "delegated_to_secutools", provider: "claude-api", attempts: 2 })
      expect(fields.last_failover).toContain("session claude-1 hit its usage limit")
    }).pipe(Effect.provide(testLayer(delegating))))
})
