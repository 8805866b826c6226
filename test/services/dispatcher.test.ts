/** The dispatcher and its watchdog on in-memory ports, with time moved by TestClock. */
import { describe, expect, it } from "@effect/vitest"
import { HookEvents } from "../../src/services/hook-events.ts"
import { SessionStarterOff } from "../../src/services/session-starter.ts"
import { Context, Duration, Effect, Fiber, Layer, Logger, Option, Result } from "effect"
import { TestClock } from "effect/testing"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { MemoryTaskStoreLayer } from "../../src/adapters/memory-task-store.ts"
import { MemoryTmuxControl, MemoryTmuxLayer } from "../../src/adapters/memory-tmux.ts"
import { unfinishedRuns } from "../../src/domain/lifecycle.ts"
import { DEFAULT_COMPLEXITY_MAP } from "../../src/domain/routing.ts"
import { parseTask, TaskName } from "../../src/domain/task.ts"
import { StoreError, TaskStore } from "../../src/ports/task-store.ts"
import { Tmux } from "../../src/ports/tmux.ts"
import { Delegation } from "../../src/services/delegation.ts"
import { Dispatcher, DispatcherLayer, type DispatchSettings } from "../../src/services/dispatcher.ts"
import { OwnWrites } from "../../src/services/own-writes.ts"
import { TaskLocks } from "../../src/services/task-locks.ts"
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

/** The queue as someone other than the daemon sees it: writes through it are not the daemon's own. */
class OutsideStore extends Context.Service<OutsideStore, TaskStore["Service"]>()("test/OutsideStore") {}

const testLayer = (overrides: Partial<DispatchSettings> = {}, store: Layer.Layer<TaskStore> = MemoryTaskStoreLayer) =>
  DispatcherLayer(settings(overrides)).pipe(
    Layer.provideMerge(SessionStarterOff),
    Layer.provideMerge(HookEvents.layerMemory()),
    Layer.provideMerge(memoryDelegation()),
    Layer.provideMerge(Layer.mergeAll(
      OwnWrites.tracking.pipe(Layer.provide(store)),
      Layer.effect(
        OutsideStore,
        Effect.gen(function*() {
          return yield* TaskStore
        })
      ).pipe(Layer.provide(store)),
      MemoryTmuxLayer,
      TaskLocks.layer
    ))
  )

/** A tick sleeps between typing and Enter: run it on a fiber and move the clock until it is done. */
const tick = Effect.gen(function*() {
  const dispatcher = yield* Dispatcher
  const fiber = yield* Effect.forkChild(dispatcher.tick)
  yield* TestClock.adjust(Duration.seconds(5))
  yield* Fiber.join(fiber)
})

/** A file dropped into pending/ long enough ago to have settled. */
const addTask = (name: string, text: string) =>
  Effect.gen(function*() {
    yield* TaskStore.use((store) => store.create("pending", TaskName.make(name), text))
    yield* TestClock.adjust(Duration.seconds(2))
  })

const fieldsOf = (stage: "pending" | "active" | "done" | "failed", name: string) =>
  Effect.gen(function*() {
    const store = yield* TaskStore
    const stored = yield* store.read(stage, TaskName.make(name))
    return Result.getOrThrow(parseTask(name, stored.text)).fields
  })

const lastReason = (fields: { readonly history?: ReadonlyArray<{ readonly reason: string }> }) =>
  fields.history?.at(-1)?.reason ?? ""

const idleSession = (
  session: string,
  pane: { readonly screenAfterEnter?: string; readonly dropsEnters?: number } = {}
) =>
  MemoryTmuxControl.use((tmux) =>
    tmux.setPane(session, { screen: IDLE, command: "claude", screenAfterEnter: BUSY, ...pane })
  )

/** Every paste typed into a session (Enters and clears left out). */
const pastes = (session: string) =>
  Effect.map(
    MemoryTmuxControl.use((tmux) => tmux.panes),
    (panes) => (panes.get(session)?.typed ?? []).filter((text) => text !== "\n" && text !== "^C")
  )

/** At START, job.md dispatched to an idle claude-1; returns the tmux control. */
const jobRunningOnClaude1 = Effect.gen(function*() {
  yield* TestClock.setTime(START)
  yield* idleSession("claude-1")
  yield* addTask("job.md", "Do the job.\n")
  yield* tick
  return yield* MemoryTmuxControl
})

describe("dispatcher", () => {
  it.effect("assigns pending tasks to free sessions in queue order and types a self-contained prompt with its run", () =>
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
      const urgent = yield* fieldsOf("active", "urgent.md")
      expect(urgent).toMatchObject({ state: "assigned", session: "claude-1", attempts: 1 })
      expect(urgent.started_at).toBeDefined()
      expect(urgent.run).toMatch(/^r[0-9a-f]{12}$/)

      const typed = (yield* (yield* MemoryTmuxControl).panes).get("claude-1")?.typed ?? []
      expect(typed[0]?.split("\n")[0]).toBe(`Task urgent.md from the claude-failover queue (run ${urgent.run}):`)
      expect(typed[0]).toContain("Urgent.")
      expect(typed[0]).toContain(
        `\`/usr/bin/node /app/bin/claude-failover.js task done urgent.md --run ${urgent.run} --queue-dir /q\``
      )
      expect(typed[1]).toBe("\n")
    }).pipe(Effect.provide(testLayer())))

  it.effect("a file modified less than SETTLE_AFTER ago waits: it may still be being written", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* idleSession("claude-1")
      yield* OutsideStore.use((store) => store.create("pending", TaskName.make("fresh.md"), "Half of it"))
      const dispatcher = yield* Dispatcher
      yield* dispatcher.tick
      expect(yield* (yield* TaskStore).list("active")).toStrictEqual([])
      yield* TestClock.adjust(Duration.millis(1500))
      yield* tick
      expect(yield* (yield* TaskStore).list("active")).toStrictEqual(["fresh.md"])
    }).pipe(Effect.provide(testLayer({ settleAfter: Duration.seconds(1) }))))

  it.effect("types into every free session at once, not one after another", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      for (const session of ["claude-1", "claude-2", "claude-3"]) yield* idleSession(session)
      for (const n of [1, 2, 3]) yield* addTask(`t-${n}.md`, `Task ${n}.\n`)
      const fiber = yield* Effect.forkChild((yield* Dispatcher).tick)
      // One session takes ~0.3 s before its Enter (the pause before Enter and a look at the input box): by 0.5 s
      // all three have had their Enter only if they were typed into side by side.
      yield* TestClock.adjust(Duration.millis(500))
      const panes = yield* (yield* MemoryTmuxControl).panes
      expect(["claude-1", "claude-2", "claude-3"].map((session) => panes.get(session)?.typed.includes("\n")))
        .toStrictEqual(
          [true, true, true]
        )
      yield* TestClock.adjust(Duration.seconds(5))
      yield* Fiber.join(fiber)
      expect(yield* (yield* TaskStore).list("active")).toStrictEqual(["t-1.md", "t-2.md", "t-3.md"])
    }).pipe(Effect.provide(testLayer())))

  it.effect("a quick turn (back at idle at once) counts as accepted: typed once, started, never typed again", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* idleSession("claude-1", { screenAfterEnter: IDLE })
      yield* addTask("quick.md", "Be quick.\n")
      for (let i = 0; i < 4; i++) yield* tick
      expect(yield* pastes("claude-1")).toHaveLength(1)
      expect((yield* fieldsOf("active", "quick.md")).started_at).toBeDefined()
    }).pipe(Effect.provide(testLayer())))

  it.effect("an Enter dropped twice is pressed again until the input box gives the prompt up", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* idleSession("claude-1", { dropsEnters: 2 })
      yield* addTask("job.md", "Do the job.\n")
      yield* tick
      const typed = (yield* (yield* MemoryTmuxControl).panes).get("claude-1")?.typed ?? []
      expect(typed.filter((text) => text === "\n")).toHaveLength(3)
      expect((yield* fieldsOf("active", "job.md")).started_at).toBeDefined()
    }).pipe(Effect.provide(testLayer())))

  it.effect("a prompt never accepted is cleared, goes back to the queue, and the session is left alone a while", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* idleSession("claude-1", { dropsEnters: 100 })
      yield* addTask("job.md", "Do the job.\n")
      yield* tick
      const tmux = yield* MemoryTmuxControl
      expect((yield* tmux.panes).get("claude-1")?.typed.at(-1)).toBe("^C")
      expect((yield* tmux.panes).get("claude-1")?.input).toBe("")
      const fields = yield* fieldsOf("pending", "job.md")
      expect(fields.history?.at(-1)).toMatchObject({ cause: "not_accepted", session: "claude-1" })
      expect(fields.run).toBeUndefined()
      // Not typed again at once into the same session.
      yield* tick
      expect(yield* pastes("claude-1")).toHaveLength(1)
      expect((yield* (yield* Dispatcher).status).attention.map((a) => a.session)).toContain("claude-1")
    }).pipe(Effect.provide(testLayer())))

  it.effect("a session whose input box holds text is never typed into", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* idleSession("claude-1")
      yield* (yield* MemoryTmuxControl).setPane("claude-1", { input: "an operator's half-typed question" })
      yield* addTask("job.md", "Do the job.\n")
      yield* tick
      expect(yield* pastes("claude-1")).toStrictEqual([])
      expect(yield* (yield* TaskStore).list("pending")).toStrictEqual(["job.md"])
      expect((yield* fieldsOf("pending", "job.md")).attempts).toBeUndefined()
    }).pipe(Effect.provide(testLayer())))

  it.effect("a usage limit sends the task back and rests the whole account until the reset time", () =>
    Effect.gen(function*() {
      const tmux = yield* jobRunningOnClaude1
      const run = (yield* fieldsOf("active", "job.md")).run
      expect(yield* fieldsOf("active", "job.md")).toMatchObject({ session: "claude-1" })

      yield* tmux.setPane("claude-1", { screen: LIMITED })
      yield* idleSession("claude-2")
      yield* TestClock.adjust(Duration.seconds(20))
      yield* tick
      const store = yield* TaskStore
      expect(yield* store.list("active")).toStrictEqual([])
      expect(yield* store.list("pending")).toStrictEqual(["job.md"])
      const requeued = yield* fieldsOf("pending", "job.md")
      expect(lastReason(requeued)).toContain("session claude-1 hit its usage limit")
      expect(requeued.history?.at(-1)).toMatchObject({
        event: "requeued",
        cause: "usage_limit",
        run,
        session: "claude-1"
      })
      // The old run's fields are gone from the file, not just from memory.
      expect(requeued).not.toHaveProperty("session")
      expect(requeued).not.toHaveProperty("started_at")
      expect(requeued).not.toHaveProperty("run")

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
      expect((yield* fieldsOf("active", "job.md")).run).not.toBe(run)
    }).pipe(Effect.provide(testLayer({ accounts: Option.some(new Map([["acct", ["claude-1", "claude-2"]]])) }))))

  it.effect("a session without an account rests alone, for LIMIT_COOLDOWN when no reset time is shown", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const tmux = yield* MemoryTmuxControl
      yield* tmux.setPane("claude-1", {
        screen: screen("usage_limited--org-out-of-usage-no-reset.txt"),
        command: "claude"
      })
      yield* idleSession("claude-2")
      yield* tick
      const status = yield* (yield* Dispatcher).status
      const cooldownOf = (session: string) => status.sessions.find((s) => s.session === session)?.cooldownUntil
      expect(cooldownOf("claude-1")).toStrictEqual(Option.some(START + 2 * 3_600_000))
      expect(cooldownOf("claude-2")).toStrictEqual(Option.none())
    }).pipe(Effect.provide(testLayer({ limitCooldown: Duration.hours(2) }))))

  it.effect("an exited session gives its task back, and nothing is typed into the shell", () =>
    Effect.gen(function*() {
      const tmux = yield* jobRunningOnClaude1
      yield* tmux.setPane("claude-1", { command: "bash", screen: "dev@host:~$ " })
      yield* tick
      expect(lastReason(yield* fieldsOf("pending", "job.md"))).toContain("session claude-1 exited")
      const typed = (yield* tmux.panes).get("claude-1")?.typed ?? []
      expect(typed).toHaveLength(2)
    }).pipe(Effect.provide(testLayer())))

  it.effect("a task whose session dies MAX_ATTEMPTS times goes to failed/ with the history of why", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const tmux = yield* MemoryTmuxControl
      yield* addTask("killer.md", "Something that makes the session exit.\n")
      for (let round = 0; round < 3; round++) {
        yield* idleSession("claude-1")
        yield* tick
        yield* tmux.setPane("claude-1", { command: "bash", screen: "dev@host:~$ " })
        yield* tick
      }
      const store = yield* TaskStore
      expect(yield* store.list("failed")).toStrictEqual(["killer.md"])
      const fields = yield* fieldsOf("failed", "killer.md")
      expect(fields.history?.filter((entry) => entry.cause === "session_exited")).toHaveLength(2)
      expect((yield* store.read("failed", TaskName.make("killer.md"))).text).toContain("gave up after 3 runs")
    }).pipe(Effect.provide(testLayer({ maxAttempts: 3 }))))

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

  it.effect("a finished task put back into pending/ runs again once, footer dropped, history kept — not an error every tick", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* idleSession("claude-1")
      yield* addTask(
        "again.md",
        "---\nstate: done\nrun: rOLD\nsession: claude-9\nfinished_at: 2026-11-20T10:00:00Z\nattempts: 1\n---\nDo it.\n\n\n---\nclaude-failover: done · 2026-11-20T10:00:00Z · session claude-9\n"
      )
      yield* tick
      yield* tick
      const fields = yield* fieldsOf("active", "again.md")
      expect(fields).toMatchObject({ state: "assigned", session: "claude-1", attempts: 2 })
      expect(fields.history?.at(-1)).toMatchObject({ event: "retried", cause: "put_back", run: "rOLD" })
      const text = (yield* (yield* TaskStore).read("active", TaskName.make("again.md"))).text
      expect(text).not.toContain("claude-failover: done")
    }).pipe(Effect.provide(testLayer())))

  it.effect("a delegated task copied in beside its marker while the daemon runs is taken on, never typed", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* idleSession("claude-1")
      yield* tick
      const store = yield* TaskStore
      const name = TaskName.make("copied.md")
      yield* store.writeMarker(name, {
        task: "copied.md",
        provider: "gemini",
        run: "r1",
        idempotency_key: "copied-k",
        state: "submitted",
        job_id: "j_9",
        created_at: "2026-11-24T09:00:00Z",
        submitted_at: "2026-11-24T09:00:01Z",
        polls: 0
      })
      yield* addTask("copied.md", "---\nstate: delegated_to_secutools\nrun: r1\nprovider: gemini\n---\nRemote.\n")
      yield* tick
      yield* tick
      expect(yield* store.list("active")).toStrictEqual([])
      expect((yield* (yield* MemoryTmuxControl).panes).get("claude-1")?.typed).toStrictEqual([])
      expect((yield* (yield* Delegation).status).active.map((job) => [job.task, job.job_id])).toStrictEqual([
        ["copied.md", "j_9"]
      ])
      // A plain task dropped after it is not held up by it.
      yield* addTask("plain.md", "Fix it.\n")
      yield* tick
      expect(yield* store.list("active")).toStrictEqual(["plain.md"])
    }).pipe(Effect.provide(testLayer())))

  it.effect("a new task reusing a finished task's name is kept under a free name; the finished one is untouched", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* idleSession("claude-1")
      const store = yield* TaskStore
      yield* store.create("done", TaskName.make("report.md"), "---\nstate: done\n---\nOld report.\n")
      yield* addTask("report.md", "New report.\n")
      yield* tick
      yield* tick
      expect((yield* store.read("done", TaskName.make("report.md"))).text).toContain("Old report.")
      expect(yield* store.list("active")).toStrictEqual(["report-2.md"])
    }).pipe(Effect.provide(testLayer())))
})

/** The in-memory tmux, with every look at a pane (`lookAtPane`) noted in `looks`. */
const countingTmux = (looks: Array<string>) =>
  Layer.effectContext(Effect.gen(function*() {
    const inner = yield* Tmux
    return Context.make(
      Tmux,
      Tmux.of({
        ...inner,
        lookAtPane: (session) => Effect.andThen(Effect.sync(() => looks.push(session)), inner.lookAtPane(session))
      })
    ).pipe(Context.add(MemoryTmuxControl, yield* MemoryTmuxControl))
  })).pipe(Layer.provide(MemoryTmuxLayer))

describe("a drop between polls", () => {
  const looks: Array<string> = []
  const layer = () =>
    DispatcherLayer(settings({ pollInterval: Duration.seconds(60) })).pipe(
      Layer.provideMerge(SessionStarterOff),
      Layer.provideMerge(HookEvents.layerMemory()),
      Layer.provideMerge(memoryDelegation()),
      Layer.provideMerge(Layer.mergeAll(
        OwnWrites.tracking.pipe(Layer.provide(MemoryTaskStoreLayer)),
        countingTmux(looks),
        TaskLocks.layer
      ))
    )

  it.effect("looks only at sessions free at the last poll, passes over one busy since, and never types into it", () =>
    Effect.gen(function*() {
      looks.length = 0
      yield* TestClock.setTime(START)
      for (const session of ["claude-1", "claude-2", "claude-3"]) yield* idleSession(session)
      const dispatcher = yield* Dispatcher
      yield* Effect.forkChild(dispatcher.run)
      yield* TestClock.adjust(Duration.millis(100))
      // The first tick is a full one: every session is looked at.
      expect([...new Set(looks)].sort()).toStrictEqual(["claude-1", "claude-2", "claude-3"])

      // Between polls, claude-1 gets busy (an operator typed into it), then a task is dropped.
      yield* MemoryTmuxControl.use((tmux) => tmux.setPane("claude-1", { screen: BUSY }))
      yield* addTask("drop.md", "Dropped.\n")
      looks.length = 0
      yield* dispatcher.noticed("drop.md")
      yield* TestClock.adjust(Duration.seconds(5))

      const assigned = yield* fieldsOf("active", "drop.md")
      expect(assigned).toMatchObject({ session: "claude-2", state: "assigned" })
      expect(assigned.started_at).toBeDefined()
      expect(yield* pastes("claude-1")).toStrictEqual([])
      expect(yield* pastes("claude-3")).toStrictEqual([])
      // claude-1 was looked at and found busy; claude-3 was not needed, so not looked at before the next poll.
      expect(looks[0]).toBe("claude-1")
      expect(new Set(looks)).toStrictEqual(new Set(["claude-1", "claude-2"]))
    }).pipe(Effect.provide(layer())))

  it.effect("is dispatched at the next poll when every session free at the last one is busy now", () =>
    Effect.gen(function*() {
      looks.length = 0
      yield* TestClock.setTime(START)
      yield* idleSession("claude-1")
      const dispatcher = yield* Dispatcher
      yield* Effect.forkChild(dispatcher.run)
      yield* TestClock.adjust(Duration.millis(100))
      yield* MemoryTmuxControl.use((tmux) => tmux.setPane("claude-1", { screen: BUSY }))
      yield* addTask("later.md", "Later.\n")
      yield* dispatcher.noticed("later.md")
      yield* TestClock.adjust(Duration.seconds(5))
      expect(yield* (yield* TaskStore).list("pending")).toStrictEqual(["later.md"])
      expect(yield* pastes("claude-1")).toStrictEqual([])

      // Free again; the next full tick (the poll interval, 60 s here) gives it the task.
      yield* idleSession("claude-1")
      yield* TestClock.adjust(Duration.seconds(60))
      expect(yield* fieldsOf("active", "later.md")).toMatchObject({ session: "claude-1" })
    }).pipe(Effect.provide(layer())))
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
      expect(lastReason(yield* fieldsOf("pending", "slow.md"))).toContain("no progress in session claude-1")
      // The stuck turn was interrupted before its task was taken back, so it cannot go on beside the next run.
      expect((yield* tmux.panes).get("claude-1")?.typed.at(-1)).toBe("^C")
    }).pipe(Effect.provide(testLayer({ requeueAfter: Option.some(Duration.hours(1)) }))))

  it.effect("a hung turn whose spinner clock keeps ticking is still stale", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const tmux = yield* MemoryTmuxControl
      const dispatcher = yield* Dispatcher
      yield* idleSession("claude-1")
      yield* addTask("hung.md", "Wait for an API that never answers.\n")
      yield* tick
      for (let minute = 1; minute <= 31; minute++) {
        const frame = minute % 2 === 0 ? "✶" : "✻"
        yield* tmux.setPane("claude-1", {
          screen: BUSY.replace("✻ Cogitating… (12s ·", `${frame} Cogitating… (${minute}m 12s ·`)
        })
        yield* TestClock.adjust(Duration.minutes(1))
        yield* tick
      }
      expect((yield* dispatcher.status).stale).toMatchObject([{ task: "hung.md", session: "claude-1" }])
    }).pipe(Effect.provide(testLayer())))
})

describe("queue writes that fail", () => {
  /** A store whose writes fail with ENOSPC while `full` is set, counting the failed tries. */
  const fullDisk = (full: { value: boolean; tries: number }) =>
    Layer.effect(
      TaskStore,
      Effect.gen(function*() {
        const inner = yield* TaskStore
        const enospc = (operation: string) =>
          Effect.fail(
            new StoreError({ operation, path: "/q", problem: "ENOSPC: no space left on device", code: "ENOSPC" })
          )
        const guarded = <A, E, R>(
          operation: string,
          write: Effect.Effect<A, E, R>
        ): Effect.Effect<A, E | StoreError, R> =>
          Effect.suspend((): Effect.Effect<A, E | StoreError, R> => {
            if (!full.value) return write
            full.tries++
            return enospc(operation)
          })
        return TaskStore.of({
          ...inner,
          replace: (stage, name, text) => guarded("write", inner.replace(stage, name, text)),
          create: (stage, name, text) => guarded("create", inner.create(stage, name, text)),
          move: (from, to, name, toName) => guarded("move", inner.move(from, to, name, toName))
        })
      })
    ).pipe(Layer.provide(MemoryTaskStoreLayer))

  it.effect("a full disk pauses dispatch with a growing wait, tries rarely, and resumes when space returns", () => {
    const full = { value: true, tries: 0 }
    return Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* idleSession("claude-1")
      full.value = false
      yield* addTask("job.md", "Do the job.\n")
      full.value = true
      // 30 ticks of a second: with a wait doubling from 1 s, dispatch is attempted about five times, not thirty.
      for (let i = 0; i < 30; i++) {
        const fiber = yield* Effect.forkChild((yield* Dispatcher).tick)
        yield* TestClock.adjust(Duration.seconds(1))
        yield* Fiber.join(fiber)
      }
      expect(yield* pastes("claude-1")).toStrictEqual([])
      expect(yield* (yield* TaskStore).list("pending")).toStrictEqual(["job.md"])
      expect(full.tries).toBeGreaterThanOrEqual(3)
      expect(full.tries).toBeLessThanOrEqual(6)
      full.value = false
      yield* TestClock.adjust(Duration.seconds(60))
      yield* tick
      expect(yield* (yield* TaskStore).list("active")).toStrictEqual(["job.md"])
    }).pipe(Effect.provide(testLayer({}, fullDisk(full))))
  })
})

describe("an assignment whose answer was lost", () => {
  /** A store whose first change of stage is made, and then reported failed (EIO): a commit whose answer was lost. */
  const lostAnswer = Layer.effect(
    TaskStore,
    Effect.gen(function*() {
      const inner = yield* TaskStore
      let lost = false
      return TaskStore.of({
        ...inner,
        atomically: (effect) =>
          Effect.flatMap(inner.atomically(effect), (result) => {
            if (lost) return Effect.succeed(result)
            lost = true
            return Effect.fail(
              new StoreError({
                operation: "commit",
                path: "postgres:cf_tasks",
                problem: "Connection terminated",
                code: "EIO"
              })
            )
          })
      })
    })
  ).pipe(Layer.provide(MemoryTaskStoreLayer))

  it.effect("the task, found in active/ never typed, goes back to pending/ and is typed on the next tick", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* idleSession("claude-1")
      yield* addTask("job.md", "Do the job.\n")
      yield* tick
      // Applied, but the dispatcher was told it failed: nothing typed, and the session looks taken by the task.
      expect(yield* pastes("claude-1")).toStrictEqual([])
      const lostRun = (yield* fieldsOf("active", "job.md")).run
      // The next tick finds it in active/, never started: back to pending/, uncounted, and typed on the free session.
      yield* TestClock.adjust(Duration.seconds(5))
      yield* tick
      const again = yield* fieldsOf("active", "job.md")
      expect(again.history?.at(-1)).toMatchObject({ event: "requeued", cause: "never_typed", run: lostRun })
      // Its second assignment, the first run never having run: not one that counts towards MAX_ATTEMPTS.
      expect(again.attempts).toBe(2)
      expect(unfinishedRuns(again)).toBe(0)
      expect(again.run).not.toBe(lostRun)
      expect((yield* pastes("claude-1")).join("")).toContain(`run ${again.run}`)
    }).pipe(Effect.provide(testLayer({}, lostAnswer))))
})

describe("routing to secutools", () => {
  const delegating = {
    routing: {
      delegationEnabled: true,
      complexityMap: DEFAULT_COMPLEXITY_MAP,
      failoverProvider: "claude-api" as const,
      limitPolicy: "requeue" as const
    }
  }

  it.effect("a task routed to a provider gets a marker and is never typed into a session", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* idleSession("claude-1")
      yield* addTask("gpu.md", "---\npreferred_ai: GPU\n---\nRender it.\n")
      yield* addTask("auto.md", "---\npreferred_ai: auto\ncomplexity_hint: low\n---\nSort it.\n")
      yield* tick
      const store = yield* TaskStore
      expect(yield* store.listMarkers()).toStrictEqual(["auto.md", "gpu.md"])
      const marker = yield* store.readMarker(TaskName.make("gpu.md"))
      expect(Option.map(marker, (m) => m.provider)).toStrictEqual(Option.some("gpu"))
      const fields = yield* fieldsOf("pending", "gpu.md")
      expect(fields).toMatchObject({ state: "delegated_to_secutools", provider: "gpu" })
      expect(fields.run).toBe(Option.getOrUndefined(marker)?.run)
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
      expect(fields).not.toHaveProperty("session")
      expect(lastReason(fields)).toContain("session claude-1 hit its usage limit")
    }).pipe(Effect.provide(testLayer(delegating))))
})

describe("limit policies, on screens of the real Claude Code", () => {
  const REAL = join(import.meta.dirname, "../fixtures/real-screens")
  const realCases = JSON.parse(readFileSync(join(REAL, "cases.json"), "utf8")) as ReadonlyArray<{
    readonly file: string
    readonly resetAt?: string | null
    readonly recordedAt: string
  }>
  const real = (file: string) => {
    const found = realCases.find((c) => c.file === file)
    if (found === undefined) throw new Error(`${file} is not in real-screens/cases.json`)
    return {
      screen: readFileSync(join(REAL, file), "utf8"),
      recordedAt: Date.parse(found.recordedAt),
      resetAt: Date.parse(found.resetAt ?? "")
    }
  }
  /** 2.1.332: the 5-hour limit it continues by itself, and the same screen after Esc cancelled that. */
  const AUTO = real("usage_limited--limit-5h--2.1.332--80.txt")
  const CANCELLED = real("usage_limited--limit-5h-esc--2.1.332--80.txt")
  /** 2.1.197: the limit menu, and the screen after Esc closed it. */
  const MENU = real("usage_limited--limit-5h--2.1.197--80.txt")
  const CLOSED = real("usage_limited--limit-5h-esc--2.1.197--80.txt")
  const escapes = (session: string) =>
    Effect.map(
      MemoryTmuxControl.use((tmux) => tmux.panes),
      (panes) => (panes.get(session)?.typed ?? []).filter((key) => key === "Esc").length
    )
  const withTimeZone = (overrides: Partial<DispatchSettings> = {}) =>
    testLayer({ timeZone: "America/New_York", ...overrides })

  /** job.md (with `fields`) running on claude-1, which then shows `limit` at the instant it was recorded. */
  const limitedJob = (
    limit: { readonly screen: string; readonly recordedAt: number },
    after: { readonly screen: string } | undefined,
    fields = ""
  ) =>
    Effect.gen(function*() {
      yield* TestClock.setTime(limit.recordedAt - 60_000)
      yield* idleSession("claude-1")
      yield* addTask("job.md", `${fields === "" ? "" : `---\n${fields}\n---\n`}Do the job.\n`)
      yield* tick
      expect(yield* (yield* TaskStore).list("active")).toStrictEqual(["job.md"])
      const tmux = yield* MemoryTmuxControl
      yield* tmux.setPane("claude-1", {
        screen: limit.screen,
        ...(after === undefined ? {} : { screenAfterEscape: after.screen })
      })
      yield* TestClock.setTime(limit.recordedAt)
      return tmux
    })

  it.effect("requeue (the default): Claude Code's automatic continue is cancelled with Esc first, then the task goes back, naming the reset", () =>
    Effect.gen(function*() {
      yield* limitedJob(AUTO, CANCELLED)
      yield* tick
      expect(yield* escapes("claude-1")).toBe(1)
      expect(yield* (yield* TaskStore).list("pending")).toStrictEqual(["job.md"])
      expect(lastReason(yield* fieldsOf("pending", "job.md"))).toContain(
        `it resets at ${new Date(AUTO.resetAt).toISOString()}`
      )
      // The cancelled screen is the same limit: no second Esc (a double Esc opens Claude Code's rewind menu).
      yield* tick
      expect(yield* escapes("claude-1")).toBe(1)
    }).pipe(Effect.provide(withTimeZone())))

  it.effect("requeue: while Esc does not cancel the automatic continue, the task is not taken back; after three tries it waits for the reset in its session", () =>
    Effect.gen(function*() {
      yield* limitedJob(AUTO, undefined)
      for (let i = 0; i < 3; i++) yield* tick
      expect(yield* escapes("claude-1")).toBe(3)
      expect(yield* (yield* TaskStore).list("active")).toStrictEqual(["job.md"])
      yield* tick
      expect(yield* escapes("claude-1")).toBe(3)
      expect(yield* (yield* TaskStore).list("active")).toStrictEqual(["job.md"])
      const status = yield* (yield* Dispatcher).status
      expect(status.waiting).toStrictEqual([{ task: "job.md", session: "claude-1", until: AUTO.resetAt, auto: true }])
    }).pipe(Effect.provide(withTimeZone())))

  it.effect("wait (on_limit): the limit menu is closed with one Esc, the task stays, and \"continue\" is typed once the reset has passed", () =>
    Effect.gen(function*() {
      const tmux = yield* limitedJob(MENU, CLOSED, "on_limit: wait")
      yield* tick
      expect(yield* escapes("claude-1")).toBe(1)
      expect(yield* (yield* TaskStore).list("active")).toStrictEqual(["job.md"])
      const status = yield* (yield* Dispatcher).status
      expect(status.waiting).toStrictEqual([{ task: "job.md", session: "claude-1", until: MENU.resetAt, auto: false }])
      // Before the reset nothing is typed, however long it takes; the watchdog does not call it stale.
      yield* TestClock.setTime(MENU.resetAt - 60_000)
      yield* tick
      expect((yield* pastes("claude-1")).filter((text) => text === "continue")).toStrictEqual([])
      expect((yield* (yield* Dispatcher).status).stale).toStrictEqual([])
      yield* tmux.setPane("claude-1", { screenAfterEnter: BUSY })
      yield* TestClock.setTime(MENU.resetAt + 1_000)
      yield* tick
      expect((yield* pastes("claude-1")).filter((text) => text === "continue")).toStrictEqual(["continue"])
      // The session works again: no longer waiting, the task still its own.
      yield* tick
      expect((yield* (yield* Dispatcher).status).waiting).toStrictEqual([])
      expect(yield* fieldsOf("active", "job.md")).toMatchObject({ session: "claude-1", attempts: 1 })
    }).pipe(Effect.provide(withTimeZone())))

  it.effect("delegate (LIMIT_POLICY): after a limit the task goes to FAILOVER_PROVIDER at once, though other sessions are free", () =>
    Effect.gen(function*() {
      yield* limitedJob(CANCELLED, undefined)
      yield* idleSession("claude-2")
      yield* tick
      const store = yield* TaskStore
      expect(yield* store.listMarkers()).toStrictEqual(["job.md"])
      expect(yield* fieldsOf("pending", "job.md")).toMatchObject({
        state: "delegated_to_secutools",
        provider: "gemini"
      })
      expect(yield* pastes("claude-2")).toStrictEqual([])
    }).pipe(Effect.provide(withTimeZone({
      routing: {
        delegationEnabled: true,
        complexityMap: DEFAULT_COMPLEXITY_MAP,
        failoverProvider: "gemini",
        limitPolicy: "delegate"
      }
    }))))
})

describe("a turn that ended without a report", () => {
  it.effect("IDLE_POLICY attention (the default): the task stays, and its session is listed for a person after IDLE_GRACE", () =>
    Effect.gen(function*() {
      const tmux = yield* jobRunningOnClaude1
      yield* tmux.setPane("claude-1", { screen: IDLE })
      yield* tick
      yield* TestClock.adjust(Duration.minutes(1))
      yield* tick
      expect((yield* (yield* Dispatcher).status).attention).toStrictEqual([])
      yield* TestClock.adjust(Duration.minutes(1))
      yield* tick
      const status = yield* (yield* Dispatcher).status
      expect(status.attention).toStrictEqual([{
        session: "claude-1",
        reason: expect.stringContaining("job.md reported neither done nor failed")
      }])
      expect(yield* (yield* TaskStore).list("active")).toStrictEqual(["job.md"])
    }).pipe(Effect.provide(testLayer())))

  it.effect("on_idle: requeue: back to the queue after IDLE_GRACE, and the run counts towards MAX_ATTEMPTS", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* idleSession("claude-1", { screenAfterEnter: IDLE })
      yield* addTask("job.md", "---\non_idle: requeue\n---\nDo the job.\n")
      yield* tick
      expect(yield* (yield* TaskStore).list("active")).toStrictEqual(["job.md"])
      yield* tick
      yield* TestClock.adjust(Duration.minutes(2))
      yield* tick
      // Back to the queue, and (the session being free) started again at once: a second run, its first recorded.
      const again = yield* fieldsOf("active", "job.md")
      expect(again.attempts).toBe(2)
      expect(again.history?.at(-1)).toMatchObject({ event: "requeued", cause: "turn_ended", session: "claude-1" })
    }).pipe(Effect.provide(testLayer())))
})

/** Every line logged while `effect` runs, as `LEVEL message`. */
const capturingLogs = <A, E, R>(effect: (lines: ReadonlyArray<string>) => Effect.Effect<A, E, R>) => {
  const lines: Array<string> = []
  const logger = Logger.make(({ logLevel, message }) => {
    lines.push(`${logLevel} ${(Array.isArray(message) ? message : [message]).map(String).join(" ")}`)
  })
  return effect(lines).pipe(Effect.provide(Logger.layer([logger])))
}

describe("dispatcher log lines", () => {
  it.effect("a tick failing the same way is said once, again when it changes, and its end is said", () =>
    capturingLogs((lines) =>
      Effect.gen(function*() {
        yield* TestClock.setTime(START)
        const tmux = yield* MemoryTmuxControl
        yield* tmux.setInstalled(false)
        yield* addTask("job.md", "Do the job.\n")
        for (let i = 0; i < 5; i++) yield* tick
        const failures = () => lines.filter((line) => line.includes("dispatcher tick failed"))
        expect(failures()).toHaveLength(1)
        expect(failures()[0]).toMatch(/^Error dispatcher tick failed: .*ENOENT.*said again only if it changes/)
        yield* tmux.setInstalled(true)
        yield* idleSession("claude-1")
        yield* tick
        expect(lines.filter((line) => line.includes("the dispatcher works again"))).toHaveLength(1)
        expect(yield* (yield* TaskStore).list("active")).toStrictEqual(["job.md"])
        expect(failures()).toHaveLength(1)
      })
    ).pipe(Effect.provide(testLayer())))

  it.effect("says once why a task waits, and with its dispatch where it went and why", () =>
    capturingLogs((lines) =>
      Effect.gen(function*() {
        yield* TestClock.setTime(START)
        yield* addTask("job.md", "---\nneeds_claude_code: true\n---\nDo the job.\n")
        for (let i = 0; i < 4; i++) yield* tick
        const waits = lines.filter((line) => line.includes("job.md waits"))
        expect(waits).toStrictEqual([
          "Info job.md waits for a local session (it needs Claude Code): no Claude Code session is up"
        ])
        yield* idleSession("claude-1")
        yield* tick
        expect(lines.filter((line) => line.includes("job.md → session claude-1"))[0]).toMatch(
          /^Info job\.md → session claude-1 \(run r[0-9a-f]{12}; it needs Claude Code\)$/
        )
      })
    ).pipe(Effect.provide(testLayer())))
})
