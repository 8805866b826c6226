/**
 * Local dispatch: each tick observes the sessions, ends the runs of active tasks whose session hit its limit or
 * died, watches for stale panes, and hands pending tasks to free sessions in queue order.
 * Easy to get wrong: the assignment is recorded (task in active/ with a fresh run token) before a single key is
 * typed; a session is free only when idle with an empty input box; a session that hit its usage limit, or shares an
 * account with one that did, gets nothing until its reset time; and queue writes that fail for lack of space or
 * descriptors pause dispatch with a growing wait instead of failing every tick.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import { join } from "node:path"
import { newRunId, type RunEndCause, TaskEvent } from "../domain/lifecycle.ts"
import { inputBoxText, watchdogFingerprint } from "../domain/pane.ts"
import { type CompletionCommand, renderPrompt } from "../domain/prompt.ts"
import {
  type ComplexityMap,
  decide,
  type Decision as Route,
  type Reason,
  routingReason,
  type Situation
} from "../domain/routing.ts"
import { type IdlePolicy, idlePolicyOf, type LimitPolicy, limitPolicyOf } from "../domain/limit-policy.ts"
import type { Provider } from "../domain/provider.ts"
import {
  applyAll,
  attention,
  type Book,
  type BookSettings,
  coolingUntil,
  type Decision,
  effectiveState,
  emptyBook,
  type Fact,
  isFree,
  localAvailable,
  type Sighting,
  staleTasks,
  waitingTasks
} from "../domain/session-book.ts"
import type { Task, TaskName } from "../domain/task.ts"
import { isResourceError, TaskStore } from "../ports/task-store.ts"
import { Tmux } from "../ports/tmux.ts"
import { HeadlessSlots, noSlots } from "../ports/headless.ts"
import { type RunFacts, type RunOutcome, sightingOfSlot, type SlotState } from "../domain/headless.ts"
import type { HeadlessFacts } from "../domain/footer.ts"
import { Delegation } from "./delegation.ts"
import { failpoint } from "./failpoints.ts"
import { makeIntake, type PendingEntry } from "./intake.ts"
import { mergeSignals } from "../domain/signals.ts"
import { HookEvents } from "./hook-events.ts"
import { logStartActions, SessionStarter } from "./session-starter.ts"
import { accountOf, discoverSessions, type Observation, observeSession, type SessionSelection } from "./sessions.ts"
import { TaskLocks } from "./task-locks.ts"
import {
  applyEvent,
  endUnfinishedRun,
  finishLocalTask,
  nowIso,
  quarantine,
  readTask,
  recordHeadlessFacts
} from "./task-moves.ts"
import { typePrompt } from "./typing.ts"

export interface DispatchSettings {
  readonly sessions: SessionSelection
  readonly accounts: Option.Option<ReadonlyMap<string, ReadonlyArray<string>>>
  readonly pollInterval: Duration.Duration
  readonly scanInterval: Duration.Duration
  readonly settleAfter: Duration.Duration
  readonly staleAfter: Duration.Duration
  readonly requeueAfter: Option.Option<Duration.Duration>
  readonly limitCooldown: Duration.Duration
  readonly maxAttempts: number
  readonly timeZone: string
  readonly queueDir: string
  /**
   * This host's id when the queue is shared by several hosts (PostgreSQL): recorded with each run, as session names
   * repeat across hosts; the tasks are then rows, not files in queueDir. Undefined on one host's files.
   */
  readonly host: string | undefined
  readonly command: CompletionCommand
  readonly routing: {
    readonly delegationEnabled: boolean
    readonly complexityMap: ComplexityMap
    readonly failoverProvider: Provider
    readonly limitPolicy: LimitPolicy
  }
  /** Claude Code drops an Enter that arrives with the text: wait this long (more for long pastes) before Enter. */
  readonly enterDelay: Duration.Duration
  /** A task whose session's turn ended without it reporting: IDLE_POLICY, after IDLE_GRACE. */
  readonly idle: { readonly policy: IdlePolicy; readonly grace: Duration.Duration }
}

/** An active task waiting in its session for the usage limit to reset (limit policy `wait`). */
export interface WaitingTask {
  readonly task: TaskName
  readonly session: string
  readonly until: number
  /** Claude Code continues by itself; otherwise the daemon types "continue" at `until`. */
  readonly auto: boolean
}

/** One ended headless run, as the status API lists it. */
export interface EndedRun {
  readonly task: TaskName
  readonly run: string
  readonly slot: string
  /** Finished | Limited | NeedsPerson | ApiError | Fault */
  readonly outcome: RunOutcome["_tag"]
  readonly detail: string
  readonly endedAt: number
  readonly claudeSession: Option.Option<string>
  readonly costUsd: Option.Option<number>
  readonly turns: Option.Option<number>
  readonly durationMs: Option.Option<number>
  readonly transcript: string
}

/** Ended headless runs kept for the status API, newest last. */
const RECENT_RUNS = 50

export interface StaleTask {
  readonly task: TaskName
  readonly session: string
  readonly unchangedForMs: number
}

export interface DispatcherStatus {
  readonly sessions: ReadonlyArray<{
    readonly session: string
    readonly state: string
    /** Where the state came from: the session's hooks, or its screen. */
    readonly signal: "hook" | "pane" | "process"
    readonly account: string
    readonly task: Option.Option<TaskName>
    readonly cooldownUntil: Option.Option<number>
  }>
  readonly stale: ReadonlyArray<StaleTask>
  readonly waiting: ReadonlyArray<WaitingTask>
  readonly attention: ReadonlyArray<{ readonly session: string; readonly reason: string }>
  readonly counters: { readonly dispatched: number; readonly failovers: number; readonly malformed: number }
  /** Headless runs: the latest ended ones, and totals since start. */
  readonly headless: {
    readonly recent: ReadonlyArray<EndedRun>
    readonly runs: ReadonlyMap<RunOutcome["_tag"], number>
    readonly costUsd: number
    readonly turns: number
  }
  /** Pending tasks in the index (delegated ones excluded). */
  readonly pending: number
  /** The index itself, as parsed at the last tick, so readers need not parse the queue again. */
  readonly pendingTasks: ReadonlyMap<TaskName, Task>
}

/** How long Esc may take to cancel an automatic continue on screen. */
const CANCEL_WAIT_MS = 3_000
/** How long after typing a limit banner that was already on screen is not taken as a new one. */
const DISPATCH_GRACE_MS = 15_000
/** A session that did not take a prompt is left alone this long, so one bad session cannot churn the queue. */
const NOT_TYPED_REST_MS = 10_000
const NOT_ACCEPTED_REST_MS = 60_000
/** How long a run whose assignment failed with a resource error is looked for in active/ (see unsureAssignments). */
const UNSURE_ASSIGNMENT_KEPT_MS = 10 * 60_000
/** Tasks handed to delegation at once (each writes its marker and its new state, with their flushes). */
const DELEGATE_CONCURRENCY = 16
/** Newly waiting tasks named in the log per tick; the others are counted in one line. */
const WAITING_NAMED = 10
/** Waits after queue writes fail for lack of space, permissions or descriptors: doubling, capped. */
const BACKOFF_FIRST_MS = 1_000
const BACKOFF_MAX_MS = 60_000

export class Dispatcher extends Context.Service<Dispatcher, {
  /** One full pass: observe, fail over, watchdog, assign. */
  readonly tick: Effect.Effect<void>
  /** Wakes the loop early (a queue change was seen). */
  readonly wake: Effect.Effect<void>
  /**
   * The directory watch saw `name` change in pending/ (`undefined`: it could not say which): the next tick looks at
   * that file, and from then on between full scans only at what the watch reports. Wakes the loop.
   */
  readonly noticed: (name: string | undefined) => Effect.Effect<void>
  /** Ticks forever: on every wake and at least every poll interval. */
  readonly run: Effect.Effect<never>
  readonly status: Effect.Effect<DispatcherStatus>
  /** Stops the session's current turn (Ctrl-C in tmux, or its headless run), as a run taken back is stopped. */
  readonly stopTurn: (session: string, reason: string) => Effect.Effect<void>
}>()("claude-failover/services/Dispatcher") {}

export const makeDispatcher = (settings: DispatchSettings) =>
  Effect.gen(function*() {
    const store = yield* TaskStore
    const tmux = yield* Tmux
    const delegation = yield* Delegation
    const locks = yield* TaskLocks
    const starter = yield* SessionStarter
    const hooks = yield* HookEvents
    // Headless slots are optional: without the service, there are none.
    const headless = Option.getOrElse(yield* Effect.serviceOption(HeadlessSlots), () => noSlots)
    // The loop runs long after construction; it keeps the ports it was built with.
    const ports = yield* Effect.context<TaskStore | Tmux | TaskLocks>()
    const wakeups = yield* Queue.sliding<void>(1)
    const intake = yield* makeIntake({
      settleAfter: settings.settleAfter,
      scanInterval: settings.scanInterval,
      isDelegated: delegation.isDelegated,
      adopt: delegation.adopt
    })
    const bookSettings: BookSettings = {
      accountOf: (session) => accountOf(settings.accounts, session),
      limitCooldownMs: Duration.toMillis(settings.limitCooldown),
      staleAfterMs: Duration.toMillis(settings.staleAfter),
      requeueAfterMs: Option.map(settings.requeueAfter, Duration.toMillis),
      graceMs: DISPATCH_GRACE_MS,
      idleGraceMs: Duration.toMillis(settings.idle.grace)
    }

    // Only `tick` changes these (with the dispatch fibers it waits for); `status` reads them.
    let book: Book = emptyBook
    let lastSightings: ReadonlyArray<Sighting> = []
    let activeBySession = new Map<string, TaskName>()
    /**
     * Runs whose assignment failed with a resource error, by when: the write may have been applied all the same (a
     * database that committed and then dropped the connection before answering). Such a run, found later in active/
     * and never started, was never typed: it goes back to pending/ instead of holding its session forever.
     */
    const unsureAssignments = new Map<string, number>()
    /** Runs typed and taken whose `started_at` could not be written (see recordStart). */
    const startedUnrecorded = new Set<string>()
    const counters = { dispatched: 0, failovers: 0 }
    const headlessTotals = { runs: new Map<RunOutcome["_tag"], number>(), costUsd: 0, turns: 0 }
    let recentRuns: Array<EndedRun> = []
    /** Ended runs already counted, by slot: a slot holds its outcome over several ticks. */
    const counted = new Map<string, string>()
    let backoff: { until: number; delayMs: number; problem: string; tick: number } | undefined
    let ticks = 0
    /** The last tick's failure, already logged. */
    let tickProblem: string | undefined
    /** Tasks routed here whose wait for a free session was logged (once each, until they are dispatched). */
    const waitingLogged = new Set<TaskName>()

    /**
     * Queue writes failing for lack of space, permissions or descriptors: wait, longer each tick it happens again, and
     * say so once per kind of failure (the error's code and operation; its text names ever-new temporary files).
     */
    const noteFailure = (
      error: {
        readonly _tag: string
        readonly code?: string | undefined
        readonly operation?: string
        readonly message: string
      },
      now: number
    ) =>
      Effect.gen(function*() {
        if (!isResourceError(error)) return false
        const problem = `${error.code ?? ""} ${error.operation ?? ""}`
        // Sessions typed into side by side fail in the same tick: one step of the wait per tick, not one per session.
        const sameTick = backoff?.tick === ticks
        const delayMs = backoff === undefined
          ? BACKOFF_FIRST_MS
          : sameTick
          ? backoff.delayMs
          : Math.min(BACKOFF_MAX_MS, backoff.delayMs * 2)
        const first = backoff === undefined || backoff.problem !== problem
        backoff = { until: now + delayMs, delayMs, problem, tick: ticks }
        if (first) {
          yield* Effect.logError(
            `queue writes fail: ${error.message}; dispatch pauses and retries with a growing wait (up to ${
              BACKOFF_MAX_MS / 1000
            }s)`
          )
        }
        return true
      })
    const noteSuccess = Effect.gen(function*() {
      if (backoff === undefined) return
      backoff = undefined
      yield* Effect.logInfo("queue writes work again; dispatch resumes")
    })

    /** Active tasks, by name; a file that no longer parses is quarantined. */
    const loadActive = Effect.gen(function*() {
      const tasks: Array<Task> = []
      for (const name of yield* store.list("active")) {
        const read = yield* Effect.result(readTask("active", name))
        if (Result.isSuccess(read)) tasks.push(read.success.task)
        else if (
          read.failure._tag === "TaskParseError" || (read.failure._tag === "Unreadable" && read.failure.quarantine)
        ) {
          yield* locks.withTask(name, quarantine("active", name, read.failure.message))
        }
      }
      return tasks
    })

    /**
     * Esc, then the screen must show the automatic continue gone (2.1.332: "Automatic continue cancelled"); false when
     * it still shows it, so the run is not taken back from a session that would go on with it after the reset.
     */
    const cancelAutoContinue = (session: string) =>
      Effect.gen(function*() {
        yield* tmux.sendEscape(session)
        const deadline = (yield* Clock.currentTimeMillis) + CANCEL_WAIT_MS
        for (;;) {
          const now = yield* Clock.currentTimeMillis
          const seen = yield* observeSession(session, { now, timeZone: settings.timeZone })
          const pane = Option.getOrUndefined(seen.pane)
          if (!(pane?._tag === "usage_limited" && pane.autoContinue)) return true
          if (now >= deadline) return false
          yield* Effect.sleep(Duration.millis(100))
        }
      }).pipe(Effect.orElseSucceed(() => false))

    const stopTurn = (session: string, reason: string): Effect.Effect<void> =>
      headless.isSlot(session) ? headless.stop(session, reason) : tmux.interrupt(session).pipe(Effect.ignore)

    /** The run of an active task ended without finishing: back to pending, or to failed/ at the attempt limit. */
    const endRun = Effect.fn("Dispatcher.endRun")(function*(decision: Extract<Decision, { _tag: "EndRun" }>) {
      const { cause, reason, run, session, task } = decision
      if (decision.cancelAutoContinue && !(yield* cancelAutoContinue(session))) {
        yield* record([{
          _tag: "CancelFailed",
          at: yield* Clock.currentTimeMillis,
          task,
          reason: `Esc did not cancel the automatic continue in session ${session}`
        }])
        return
      }
      // A run taken back from a live session is stopped first, so it cannot go on beside the next run.
      if (decision.interrupt) yield* stopTurn(session, reason)
      // The run observed must still be the task's: a completion may have finished it in between.
      const ended = yield* locks.withTask(task, endUnfinishedRun(task, cause, reason, settings.maxAttempts, run)).pipe(
        Effect.catchTag("TaskNotFound", () => Effect.succeed(undefined))
      )
      if (ended === undefined) return
      if (activeBySession.get(session) === task) activeBySession.delete(session)
      counters.failovers++
      yield* (ended.gaveUp
        ? Effect.logError(`${task} failed: ${ended.reason}`)
        : Effect.logWarning(`${task} back to pending: ${reason}`)).pipe(
          Effect.annotateLogs({ task, session, run: run ?? "" })
        )
    })

    /** Limit policy `wait`, after the reset: "continue" typed into the session, checked like any prompt. */
    const typeContinue = Effect.fn("Dispatcher.typeContinue")(
      function*(decision: Extract<Decision, { _tag: "Continue" }>) {
        const typed = headless.isSlot(decision.session)
          ? yield* resumeHeadless(decision)
          : yield* typePrompt(decision.session, "continue", {
            timeZone: settings.timeZone,
            enterDelay: settings.enterDelay
          })
        if (typed._tag === "Accepted") {
          yield* Effect.logInfo(`typed "continue" into session ${decision.session}: its usage limit has reset`).pipe(
            Effect.annotateLogs({ task: decision.task, session: decision.session, run: decision.run ?? "" })
          )
        }
        yield* record([{
          _tag: "ContinueTyped",
          at: yield* Clock.currentTimeMillis,
          task: decision.task,
          taken: typed._tag === "Accepted",
          reason: typed._tag === "Accepted" ? "" : typed.reason
        }])
      }
    )

    /** Limit policy `wait` in a headless slot, after the reset: the same Claude Code session goes on (`--resume`). */
    const resumeHeadless = (decision: Extract<Decision, { _tag: "Continue" }>) =>
      Effect.gen(function*() {
        const state = yield* headless.state(decision.session)
        const session = state._tag === "Ended" && state.task === decision.task
          ? state.outcome.facts.sessionId
          : Option.none<string>()
        if (state._tag !== "Ended" || decision.run === undefined || Option.isNone(session)) {
          return { _tag: "NotAccepted" as const, reason: "no Claude Code session to resume" }
        }
        const { task } = yield* readTask("active", decision.task)
        const started = yield* Effect.result(headless.start(decision.session, {
          task: decision.task,
          run: decision.run,
          prompt: "continue",
          cwd: Option.fromUndefinedOr(task.fields.cwd),
          resume: session
        }))
        return started._tag === "Success"
          ? { _tag: "Accepted" as const }
          : { _tag: "NotAccepted" as const, reason: started.failure.message }
      })

    /** Counts an ended headless run once and keeps it for the status API. */
    const noteEnded = (slot: string, state: Extract<SlotState, { _tag: "Ended" }>) =>
      Effect.gen(function*() {
        const key = `${state.run}@${state.at}`
        if (counted.get(slot) === key) return
        counted.set(slot, key)
        const { facts } = state.outcome
        headlessTotals.runs.set(state.outcome._tag, (headlessTotals.runs.get(state.outcome._tag) ?? 0) + 1)
        headlessTotals.costUsd += Option.getOrElse(facts.costUsd, () => 0)
        headlessTotals.turns += Option.getOrElse(facts.turns, () => 0)
        const detail = state.outcome._tag === "Fault" ? state.outcome.reason : state.outcome.text
        recentRuns = [...recentRuns, {
          task: state.task,
          run: state.run,
          slot,
          outcome: state.outcome._tag,
          detail,
          endedAt: state.at,
          claudeSession: facts.sessionId,
          costUsd: facts.costUsd,
          turns: facts.turns,
          durationMs: facts.durationMs,
          transcript: headless.transcriptOf(state.task, state.run)
        }].slice(-RECENT_RUNS)
        const log = state.outcome._tag === "Finished" ? Effect.logInfo : Effect.logWarning
        yield* log(
          `headless run ${state.run} of ${state.task} in ${slot} ended: ${state.outcome._tag}${
            detail === "" ? "" : ` (${detail.slice(0, 200)})`
          }`
        ).pipe(
          Effect.annotateLogs({ task: state.task, session: slot, run: state.run })
        )
      })

    /**
     * Headless runs that ended with a result: the task is done — unless its agent already said `task done|fail`, whose
     * word wins (the run's facts are then added to the finished file). Other endings are the session book's.
     */
    const settleFinished = (
      slot: string,
      state: Extract<SlotState, { _tag: "Ended" }>,
      outcome: Extract<RunOutcome, { _tag: "Finished" }>
    ) =>
      Effect.gen(function*() {
        const facts = headlessFacts(outcome.facts, headless.transcriptOf(state.task, state.run))
        const summary = outcome.text.trim()
        yield* locks.withTask(
          state.task,
          Effect.gen(function*() {
            const active = yield* Effect.result(readTask("active", state.task))
            if (active._tag === "Success" && active.success.task.fields.run === state.run) {
              yield* finishLocalTask(state.task, { _tag: "Done", ...(summary === "" ? {} : { summary }) }, facts)
              if (activeBySession.get(slot) === state.task) activeBySession.delete(slot)
              yield* Effect.logInfo(`${state.task} done: its headless run in ${slot} ended with a result`).pipe(
                Effect.annotateLogs({ task: state.task, session: slot, run: state.run })
              )
            } else {
              yield* recordHeadlessFacts(state.task, state.run, facts)
            }
          })
        ).pipe(
          Effect.catch((error) =>
            Effect.logError(`finishing ${state.task} after its headless run failed: ${error.message}`)
          )
        )
        yield* headless.release(slot)
      })

    /**
     * Ended headless runs: each counted once; one that ended with a result is settled here (see `settleFinished`),
     * any other ending is the session book's, through the slot's sighting.
     */
    const settleHeadless = Effect.gen(function*() {
      for (const slot of headless.slots) {
        const state = yield* headless.state(slot.name)
        if (state._tag !== "Ended") continue
        yield* noteEnded(slot.name, state)
        if (state.outcome._tag === "Finished") yield* settleFinished(slot.name, state, state.outcome)
      }
    })

    /** Applies facts to the book and carries out what it decides. */
    const record = (facts: ReadonlyArray<Fact>): Effect.Effect<void, never, TaskStore | Tmux | TaskLocks> =>
      Effect.gen(function*() {
        const step = applyAll(book, bookSettings, facts)
        book = step.book
        for (const decision of step.decisions) {
          if (decision._tag === "EndRun") {
            yield* endRun(decision).pipe(
              Effect.catch((error) => Effect.logError(`taking back ${decision.task} failed: ${error.message}`))
            )
          } else if (decision._tag === "DismissMenu") {
            yield* tmux.sendEscape(decision.session).pipe(Effect.ignore)
            yield* Effect.logInfo(`closed the usage-limit menu in session ${decision.session} (Esc)`).pipe(
              Effect.annotateLogs({ session: decision.session })
            )
          } else if (decision._tag === "Continue") {
            yield* typeContinue(decision).pipe(
              Effect.catch((error) =>
                Effect.logError(`typing "continue" into ${decision.session} failed: ${error.message}`)
              )
            )
          } else {
            const log = decision.level === "warning"
              ? Effect.logWarning(decision.message)
              : Effect.logInfo(decision.message)
            yield* log.pipe(Effect.annotateLogs({
              ...(decision.session === undefined ? {} : { session: decision.session }),
              ...(decision.task === undefined ? {} : { task: decision.task })
            }))
          }
        }
      })

    /** Records the assignment, types the prompt, and records the start — or ends the run it could not start. */
    /** One line per task that must wait for a session, when it starts waiting: why it stays here, and for what. */
    const logWaiting = (
      waiting: ReadonlyArray<{ readonly task: Task; readonly reason: Reason }>,
      sessions: number,
      free: number
    ) =>
      Effect.gen(function*() {
        const fresh = waiting.filter(({ task }) => !waitingLogged.has(task.name))
        if (fresh.length === 0) return
        for (const { task } of fresh) waitingLogged.add(task.name)
        const why = sessions === 0
          ? "no Claude Code session is up"
          : free === 0
          ? `all ${sessions} session(s) are busy or unavailable`
          : "the free sessions took earlier tasks"
        // A few by name, the rest counted: a queue of 100,000 tasks would otherwise log 100,000 lines at start-up.
        for (const { reason, task } of fresh.slice(0, WAITING_NAMED)) {
          yield* Effect.logInfo(`${task.name} waits for a local session (${routingReason(reason)}): ${why}`).pipe(
            Effect.annotateLogs({ task: task.name })
          )
        }
        if (fresh.length > WAITING_NAMED) {
          yield* Effect.logInfo(`${fresh.length - WAITING_NAMED} more tasks wait for a local session: ${why}`)
        }
      })

    /**
     * The run was typed and taken: `started_at` is written. Should that write fail, the run is known started all the
     * same (its turn ending unreported is then the idle policy's, as for any started run).
     */
    const recordStart = (name: TaskName, run: string) =>
      Effect.gen(function*() {
        startedUnrecorded.add(run)
        yield* applyEvent("active", name, TaskEvent.Start({ at: yield* nowIso }))
        startedUnrecorded.delete(run)
      })

    const dispatch = Effect.fn("Dispatcher.dispatch")(
      function*(task: Task, sighting: Sighting, now: number, reason: Reason) {
        const session = sighting.session
        const run = newRunId()
        const at = yield* nowIso
        // Record first: a crash from here on leaves the task in active/ with its run, which recovery understands.
        const assigned = yield* applyEvent(
          "pending",
          task.name,
          TaskEvent.Assign({ session, at, run, host: settings.host }),
          {
            crashPoints: { written: "assign:written", moved: "assign:moved" }
          }
        ).pipe(
          Effect.tapError((error) =>
            Effect.sync(() => {
              if (isResourceError(error)) unsureAssignments.set(run, now)
            })
          )
        )
        yield* intake.forget(task.name)
        yield* noteSuccess
        const name = assigned.name
        activeBySession.set(session, name)
        yield* record([{ _tag: "Dispatched", at: now, session, banner: sighting.banner }])
        counters.dispatched++
        waitingLogged.delete(task.name)
        yield* Effect.logInfo(`${name} → session ${session} (run ${run}; ${routingReason(reason)})`).pipe(
          Effect.annotateLogs({ task: name, session, run })
        )
        const prompt = renderPrompt({
          name,
          run,
          body: assigned.task.body,
          taskPath: settings.host === undefined ? join(settings.queueDir, "active", name) : undefined,
          command: settings.command
        })
        if (headless.isSlot(session)) {
          const started = yield* Effect.result(headless.start(session, {
            task: name,
            run,
            prompt,
            cwd: Option.fromUndefinedOr(assigned.task.fields.cwd),
            resume: Option.none()
          }))
          if (started._tag === "Success") {
            yield* recordStart(name, run)
            yield* failpoint("type:started")
            return
          }
          const ended = yield* endUnfinishedRun(name, "never_typed", started.failure.message, settings.maxAttempts)
          activeBySession.delete(session)
          counters.failovers++
          yield* Effect.logWarning(`${name} ${ended.gaveUp ? "failed" : "back to pending"}: ${ended.reason}`).pipe(
            Effect.annotateLogs({ task: name, session, run })
          )
          return
        }
        const typedAt = yield* Clock.currentTimeMillis
        // The session's UserPromptSubmit hook naming this run is the surest sign the prompt was taken.
        const submitted = Effect.map(
          hooks.since(session, typedAt),
          (records) =>
            records.some(({ fact }) => fact._tag === "PromptSubmitted" && Option.getOrUndefined(fact.run) === run)
        )
        const typed = yield* typePrompt(session, prompt, {
          timeZone: settings.timeZone,
          enterDelay: settings.enterDelay,
          submitted
        })
        if (typed._tag === "Accepted") {
          yield* recordStart(name, run)
          yield* failpoint("type:started")
          return
        }
        yield* record([{
          _tag: "NotTaken",
          at: yield* Clock.currentTimeMillis,
          session,
          reason: typed.reason,
          restMs: typed._tag === "NotTyped" ? NOT_TYPED_REST_MS : NOT_ACCEPTED_REST_MS,
          blocked: typed._tag === "NotAccepted" && !typed.cleared
        }])
        const cause = typed._tag === "NotTyped" ? "never_typed" : "not_accepted"
        const ended = yield* endUnfinishedRun(name, cause, typed.reason, settings.maxAttempts)
        activeBySession.delete(session)
        counters.failovers++
        yield* Effect.logWarning(`${name} ${ended.gaveUp ? "failed" : "back to pending"}: ${ended.reason}`).pipe(
          Effect.annotateLogs({ task: name, session, run })
        )
      }
    )

    /**
     * Each waiting task's route, worked out again only when its file or whether a session can run anything changes:
     * the other inputs are settings. A tick then costs little more with 100,000 tasks waiting than with 100.
     */
    const decisions = new WeakMap<PendingEntry, { readonly localAvailable: boolean; readonly decision: Route }>()
    const decisionOf = (entry: PendingEntry, situation: Situation): Route => {
      const known = decisions.get(entry)
      if (known !== undefined && known.localAvailable === situation.localAvailable) return known.decision
      const decision = decide(entry.task.fields, situation)
      decisions.set(entry, { localAvailable: situation.localAvailable, decision })
      return decision
    }

    /** Routes the ready tasks, as the index stands (the caller brought it up to date), and types the local ones. */
    const assign = Effect.fn("Dispatcher.assign")(function*(
      sessions: ReadonlyArray<string>,
      sighted: ReadonlyMap<string, Sighting>,
      now: number,
      /** The sessions that may be given a task (default: all); the others count only for routing. */
      offered: ReadonlyArray<string> = sessions
    ) {
      const ready = yield* intake.ready
      if (ready.length === 0) return
      const free = offered.filter((session) => {
        const sighting = sighted.get(session)
        return sighting !== undefined && isFree(book, bookSettings, sighting, now, activeBySession.has(session))
      })
      const situation = {
        ...settings.routing,
        localAvailable: localAvailable(
          book,
          bookSettings,
          sessions.flatMap((s) => Option.toArray(Option.fromNullishOr(sighted.get(s)))),
          now
        )
      }
      const local: Array<{ readonly task: Task; readonly reason: Reason }> = []
      const delegated: Array<{ readonly task: Task; readonly decision: Extract<Route, { route: "delegate" }> }> = []
      for (const entry of ready) {
        const decision = decisionOf(entry, situation)
        if (decision.route === "local") local.push({ task: entry.task, reason: decision.reason })
        else delegated.push({ task: entry.task, decision })
      }
      // Each under its own task's lock, several at a time: one after another, the writes and flushes of a burst of
      // delegated tasks held the whole drain to one disk round trip per task.
      yield* Effect.forEach(
        delegated,
        ({ decision, task }) =>
          Effect.andThen(
            intake.forget(task.name),
            locks.withTask(task.name, delegation.start(task, decision.provider, routingReason(decision.reason)))
          ).pipe(Effect.catch((error) =>
            error._tag === "TaskNotFound"
              // Changed or gone since it was read: removed, or on a shared queue taken or delegated by another host.
              ? Effect.logInfo(
                `${task.name} left pending/ before it could be delegated` +
                  (settings.host === undefined ? " (removed)" : " (another host took it, or it was removed)")
              ).pipe(Effect.annotateLogs({ task: task.name }))
              : Effect.logError(`delegating ${task.name} failed: ${error.message}`)
          )),
        { concurrency: DELEGATE_CONCURRENCY, discard: true }
      )
      const pairs = free.flatMap((session, index) => {
        const entry = local[index]
        const sighting = sighted.get(session)
        return entry === undefined || sighting === undefined ? [] : [{ ...entry, sighting }]
      })
      yield* logWaiting(local.slice(pairs.length), sessions.length, free.length)
      // Each session is typed into on its own fiber: the pauses around Enter would otherwise add up per session.
      yield* Effect.forEach(
        pairs,
        ({ reason, sighting, task }) =>
          locks.withTask(task.name, dispatch(task, sighting, now, reason)).pipe(
            Effect.catch((error) =>
              Effect.gen(function*() {
                if (yield* noteFailure(error, now)) return
                yield* intake.forget(task.name)
                // Gone from pending/ (or changed) since it was read: removed by a person, or on a shared queue taken
                // by another host a moment earlier. Nothing was typed; the session stays free, and is offered the
                // next task at once rather than at the next poll (hosts reading the same queue race for its head).
                if (error._tag === "TaskNotFound") {
                  yield* Effect.logInfo(
                    `${task.name} left pending/ before it could be assigned to ${sighting.session}` +
                      (settings.host === undefined ? " (removed)" : " (another host took it, or it was removed)")
                  ).pipe(Effect.annotateLogs({ task: task.name }))
                  return yield* wakeUp
                }
                yield* Effect.logError(`dispatching ${task.name} failed: ${error.message}`)
              })
            )
          ),
        { concurrency: "unbounded", discard: true }
      )
    })

    /** One look at a session, as the session book takes it. */
    const sight = (session: string, now: number) =>
      Effect.gen(function*() {
        if (headless.isSlot(session)) return sightingOfSlot(session, yield* headless.state(session), now)
        const pane = sightingOf(yield* observeSession(session, { now, timeZone: settings.timeZone }))
        // A session with hooks takes the course of its turn from them; its screen cross-checks.
        return mergeSignals(pane, yield* hooks.latest(session), { now, timeZone: settings.timeZone })
      })

    /** Sessions found and when, at the last full tick: what a quick tick starts from. */
    let lastDiscovered: ReadonlyArray<string> = []
    let lastFullTickAt = Number.NEGATIVE_INFINITY
    /** Something other than a file in pending/ woke the loop: a session's turn, an active task or a hook changed. */
    let fullTickWanted = true

    /**
     * A tick for a wake that only new files in pending/ caused, within a poll interval of the last full tick: only the
     * sessions that were free then are looked at again (as many as there are tasks ready), and tasks assigned to those
     * still free. Supervision of running tasks waits for the next full tick, at most a poll interval away. A drop then
     * costs one tmux call per session it can go to, not a look at every session.
     */
    const quickTick = Effect.gen(function*() {
      ticks++
      const now = yield* Clock.currentTimeMillis
      if (backoff !== undefined && now < backoff.until) return
      yield* intake.refresh(now)
      const ready = yield* intake.size
      if (ready === 0) return
      const sighted = new Map(lastSightings.map((sighting) => [sighting.session, sighting]))
      const free = (session: string) => {
        const sighting = sighted.get(session)
        return sighting !== undefined && isFree(book, bookSettings, sighting, now, activeBySession.has(session))
      }
      const candidates = lastDiscovered.filter(free)
      // Looked at a few at a time until enough are still free: one that got busy since is passed over, not waited on.
      let looked = 0
      let stillFree = 0
      while (looked < candidates.length && stillFree < ready) {
        const batch = candidates.slice(looked, looked + Math.min(4, ready - stillFree))
        looked += batch.length
        const fresh = yield* Effect.forEach(batch, (session) => sight(session, now), { concurrency: 4 })
        for (const sighting of fresh) sighted.set(sighting.session, sighting)
        yield* record(fresh.map((sighting): Fact => ({ _tag: "Seen", at: now, sighting })))
        stillFree += batch.filter(free).length
      }
      lastSightings = lastSightings.map((sighting) => sighted.get(sighting.session) ?? sighting)
      // Only the sessions looked at just now can be given a task (the others' sightings are a poll old); tasks routed
      // to secutools go at once.
      yield* assign(lastDiscovered, sighted, now, candidates.slice(0, looked))
    }).pipe(
      Effect.catch((error) =>
        Effect.gen(function*() {
          if (yield* noteFailure(error, yield* Clock.currentTimeMillis)) return
          // The full tick that follows says what fails, once.
          fullTickWanted = true
        })
      ),
      Effect.withSpan("Dispatcher.quickTick"),
      Effect.provideContext(ports)
    )

    const tick = Effect.gen(function*() {
      ticks++
      fullTickWanted = false
      // Sessions the daemon keeps up (SESSIONS_START) are created or restarted first, so this tick sees them.
      const started = yield* starter.ensure
      yield* logStartActions(started)
      const fresh = new Set(
        started.filter((a) => a.action === "created" || a.action === "restarted").map((a) => a.session)
      )
      const now = yield* Clock.currentTimeMillis
      const discovered = [...yield* discoverSessions(settings.sessions), ...headless.slots.map((slot) => slot.name)]
      yield* settleHeadless
      const active = yield* loadActive
      const sessionsOfActive = active.flatMap((task) => task.fields.session === undefined ? [] : [task.fields.session])
      const all = [...new Set([...discovered, ...sessionsOfActive])]
      const sightings = yield* Effect.forEach(all, (session) => sight(session, now), { concurrency: 4 })
      lastSightings = sightings
      lastDiscovered = discovered
      lastFullTickAt = now
      const sighted = new Map(sightings.map((sighting) => [sighting.session, sighting]))
      yield* record(sightings.map((sighting): Fact => ({ _tag: "Seen", at: now, sighting })))

      activeBySession = new Map()
      const supervised: Array<Fact> = []
      for (const [run, at] of unsureAssignments) if (now - at > UNSURE_ASSIGNMENT_KEPT_MS) unsureAssignments.delete(run)
      for (const task of active) {
        const sighting = task.fields.session === undefined ? undefined : sighted.get(task.fields.session)
        /** Ends the task's run without touching its session (nothing of it goes on there to stop). */
        const endQuietly = (cause: RunEndCause, reason: string) =>
          endRun({
            _tag: "EndRun",
            task: task.name,
            run: task.fields.run,
            session: task.fields.session ?? "",
            cause,
            reason,
            interrupt: false,
            cancelAutoContinue: false
          })
        if (task.fields.run !== undefined && unsureAssignments.has(task.fields.run)) {
          unsureAssignments.delete(task.fields.run)
          if (task.fields.started_at === undefined) {
            yield* endQuietly(
              "never_typed",
              "its assignment was applied although the queue answered with an error; it was never typed"
            )
            continue
          }
        }
        if (task.fields.session !== undefined && fresh.has(task.fields.session)) {
          // A Claude Code started anew knows nothing of the run its session had.
          yield* endQuietly("session_exited", `session ${task.fields.session} exited and was started again`)
          continue
        }
        const slotState = task.fields.session !== undefined && headless.isSlot(task.fields.session)
          ? yield* headless.state(task.fields.session)
          : undefined
        if (task.fields.session !== undefined && slotState !== undefined && !holdsRun(slotState, task.fields.run)) {
          // No process of this daemon runs it: the daemon that started it stopped (its runs are stopped at start-up).
          yield* endQuietly(
            "orphaned",
            `no headless run of ${task.name} goes on in ${task.fields.session}: the daemon that started it stopped`
          )
          continue
        }
        if (sighting === undefined) {
          yield* endQuietly("session_gone", "its assignment names no session")
          continue
        }
        activeBySession.set(sighting.session, task.name)
        supervised.push({
          _tag: "Supervised",
          at: now,
          task: task.name,
          run: task.fields.run,
          policy: limitPolicyOf(task.fields, settings.routing.limitPolicy),
          idlePolicy: idlePolicyOf(task.fields, settings.idle.policy),
          started: task.fields.started_at !== undefined ||
            (task.fields.run !== undefined && startedUnrecorded.has(task.fields.run)),
          sighting
        })
      }
      const runsActive = new Set(active.map((task) => task.fields.run))
      for (const run of startedUnrecorded) if (!runsActive.has(run)) startedUnrecorded.delete(run)
      const stillActive = new Set(active.map((task) => task.name))
      const left = [...book.watch.keys()].filter((name) => !stillActive.has(name))
      yield* record([...supervised, ...left.map((task): Fact => ({ _tag: "TaskLeft", task }))])
      // A run that ended since the first look is counted (and, with a result, settled) before its slot forgets it;
      // an ended run whose task has left its slot (requeued, finished, failed) frees the slot.
      yield* settleHeadless
      for (const slot of headless.slots) {
        const state = yield* headless.state(slot.name)
        const freed = state._tag === "Ended" && activeBySession.get(slot.name) !== state.task
        if (freed) yield* headless.release(slot.name)
        // Assigned as it is now: a slot whose run just crashed or finished is free again, not a session gone (rule 7
        // would otherwise send delegable tasks to secutools for want of a local session).
        if (freed || state._tag === "Free")
          sighted.set(slot.name, sightingOfSlot(slot.name, yield* headless.state(slot.name), now))
      }
      if (backoff !== undefined && now < backoff.until)
        return
      yield* intake.refresh(now)
      yield* assign(discovered, sighted, now)
      if (tickProblem !== undefined) {
        tickProblem = undefined
        yield* Effect.logInfo("the dispatcher works again")
      }
    }).pipe(
      Effect.catch((error) =>
        Effect.gen(function*() {
          if (yield* noteFailure(error, yield* Clock.currentTimeMillis)) return
          // Said once, and again only when it changes: the same failure every poll tells an operator nothing new.
          if (tickProblem === error.message) return
          tickProblem = error.message
          yield* Effect.logError(
            `dispatcher tick failed: ${error.message} (tried again every poll; said again only if it changes)`
          )
        })
      ),
      Effect.withSpan("Dispatcher.tick"),
      Effect.provideContext(ports)
    )

    const status = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const pendingTasks = yield* intake.tasks
      const sessionOf = (task: TaskName) => [...activeBySession.entries()].find(([, name]) => name === task)?.[0] ?? ""
      return {
        sessions: lastSightings.map((sighting) => ({
          session: sighting.session,
          state: effectiveState(book, bookSettings, sighting, now),
          signal: sighting.signal,
          account: bookSettings.accountOf(sighting.session),
          task: Option.fromNullishOr(activeBySession.get(sighting.session)),
          cooldownUntil: coolingUntil(book, bookSettings, sighting.session, now)
        })),
        stale: staleTasks(book, now).map(({ task, unchangedForMs }) => ({
          task,
          session: sessionOf(task),
          unchangedForMs
        })),
        waiting: waitingTasks(book).map(({ auto, session, task, until }) => ({ task, session, until, auto })),
        attention: attention(book, now),
        counters: { ...counters, malformed: intake.counters.malformed },
        headless: {
          recent: recentRuns,
          runs: new Map(headlessTotals.runs),
          costUsd: headlessTotals.costUsd,
          turns: headlessTotals.turns
        },
        pending: pendingTasks.size,
        pendingTasks
      } satisfies DispatcherStatus
    })

    const wakeUp = Queue.offer(wakeups, undefined).pipe(Effect.asVoid)
    const wake = Effect.andThen(
      Effect.sync(() => {
        fullTickWanted = true
      }),
      wakeUp
    )
    /** Sleeps until the next wake, the poll interval, or the moment a not-yet-settled file settles. */
    const pause = Effect.gen(function*() {
      const settle = yield* intake.nextSettle
      const now = yield* Clock.currentTimeMillis
      const untilSettle = Option.match(settle, { onNone: () => Infinity, onSome: (at) => Math.max(0, at - now) + 1 })
      const wait = (yield* intake.scanning) ? 0 : Math.min(Duration.toMillis(settings.pollInterval), untilSettle)
      yield* Queue.take(wakeups).pipe(Effect.timeout(Duration.millis(wait)), Effect.ignore)
    })
    const next = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const quick = !fullTickWanted && !(yield* intake.scanning) &&
        now - lastFullTickAt < Duration.toMillis(settings.pollInterval)
      yield* quick ? quickTick : tick
    })
    const run = Effect.forever(Effect.andThen(next, pause))

    const noticed = (name: string | undefined) => Effect.andThen(intake.touch(name), wakeUp)

    return Dispatcher.of({ tick, wake, noticed, run, status, stopTurn })
  })

/** Does the slot run (or hold the ended run of) this run? */
const holdsRun = (state: SlotState, run: string | undefined): boolean =>
  (state._tag === "Running" || state._tag === "Ended") && state.run === run

const headlessFacts = (facts: RunFacts, transcript: string): HeadlessFacts => ({
  ...Option.match(facts.sessionId, { onNone: () => ({}), onSome: (claudeSession) => ({ claudeSession }) }),
  ...Option.match(facts.costUsd, { onNone: () => ({}), onSome: (costUsd) => ({ costUsd }) }),
  ...Option.match(facts.turns, { onNone: () => ({}), onSome: (turns) => ({ turns }) }),
  transcript
})

/** What the session book is told of one look at a session. */
const sightingOf = (observation: Observation): Sighting => {
  const pane = Option.getOrUndefined(observation.pane)
  return {
    session: observation.session,
    state: observation.state,
    signal: "pane",
    detail: pane?._tag === "setup_dialog"
      ? Option.some(pane.dialog)
      : pane?._tag === "turn_error"
      ? Option.some(pane.error)
      : Option.none(),
    banner: pane?._tag === "usage_limited" ? Option.some(pane.banner) : Option.none(),
    resetAt: pane?._tag === "usage_limited" ? pane.resetAt : Option.none(),
    autoContinue: pane?._tag === "usage_limited" && pane.autoContinue,
    question: pane?._tag === "permission_prompt" ? Option.some(pane.question) : Option.none(),
    inputBox: observation.state === "missing" || observation.state === "exited"
      ? Option.none()
      : inputBoxText(observation.screen),
    fingerprint: watchdogFingerprint(observation.screen)
  }
}

export const DispatcherLayer = (settings: DispatchSettings) => Layer.effect(Dispatcher, makeDispatcher(settings))
