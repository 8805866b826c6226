/**
 * Local dispatch: each tick observes the sessions, ends the runs of active tasks whose session hit its limit or
 * died, watches for stale panes, and hands pending tasks to free sessions in queue order.
 * Easy to get wrong: the assignment is recorded (task in active/ with a fresh run token) before a single key is
 * typed; a session is free only when idle with an empty input box; a session that hit its usage limit, or shares an
 * account with one that did, gets nothing until its reset time; and queue writes that fail for lack of space or
 * descriptors pause dispatch with a growing wait instead of failing every tick.
 */
import { Clock, Context, Duration, Effect, Layer, Option, Queue, Result } from "effect"
import { join } from "node:path"
import { newRunId, type RunEndCause, TaskEvent } from "../domain/lifecycle.ts"
import { inputBoxText, watchdogFingerprint } from "../domain/pane.ts"
import { type CompletionCommand, renderPrompt } from "../domain/prompt.ts"
import { type ComplexityMap, decide } from "../domain/routing.ts"
import type { Provider } from "../domain/provider.ts"
import type { Task, TaskName } from "../domain/task.ts"
import { isResourceError, TaskStore } from "../ports/task-store.ts"
import { Tmux } from "../ports/tmux.ts"
import { Delegation } from "./delegation.ts"
import { failpoint } from "./failpoints.ts"
import { makeIntake } from "./intake.ts"
import { accountOf, discoverSessions, type Observation, observeSession, type SessionSelection } from "./sessions.ts"
import { TaskLocks } from "./task-locks.ts"
import { applyEvent, endUnfinishedRun, nowIso, quarantine, readTask } from "./task-moves.ts"
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
  readonly command: CompletionCommand
  readonly routing: {
    readonly delegationEnabled: boolean
    readonly complexityMap: ComplexityMap
    readonly failoverProvider: Provider
  }
  /** Claude Code drops an Enter that arrives with the text: wait this long (more for long pastes) before Enter. */
  readonly enterDelay: Duration.Duration
}

export interface StaleTask {
  readonly task: TaskName
  readonly session: string
  readonly unchangedForMs: number
}

export interface DispatcherStatus {
  readonly sessions: ReadonlyArray<{
    readonly session: string
    readonly state: string
    readonly account: string
    readonly task: Option.Option<TaskName>
    readonly cooldownUntil: Option.Option<number>
  }>
  readonly stale: ReadonlyArray<StaleTask>
  readonly attention: ReadonlyArray<{ readonly session: string; readonly reason: string }>
  readonly counters: { readonly dispatched: number; readonly failovers: number; readonly malformed: number }
  /** Pending tasks in the index (delegated ones excluded). */
  readonly pending: number
  /** The index itself, as parsed at the last tick, so readers need not parse the queue again. */
  readonly pendingTasks: ReadonlyMap<TaskName, Task>
}

/** How long after typing a limit banner that was already on screen is not taken as a new one. */
const DISPATCH_GRACE_MS = 15_000
/** A session that did not take a prompt is left alone this long, so one bad session cannot churn the queue. */
const NOT_TYPED_REST_MS = 10_000
const NOT_ACCEPTED_REST_MS = 60_000
/** Waits after queue writes fail for lack of space, permissions or descriptors: doubling, capped. */
const BACKOFF_FIRST_MS = 1_000
const BACKOFF_MAX_MS = 60_000

export class Dispatcher extends Context.Service<Dispatcher, {
  /** One full pass: observe, fail over, watchdog, assign. */
  readonly tick: Effect.Effect<void>
  /** Wakes the loop early (a queue change was seen). */
  readonly wake: Effect.Effect<void>
  /** Ticks forever: on every wake and at least every poll interval. */
  readonly run: Effect.Effect<never>
  readonly status: Effect.Effect<DispatcherStatus>
}>()("claude-failover/services/Dispatcher") {}

interface Cooldown {
  readonly until: number
  readonly banner: string
  readonly session: string
}

export const makeDispatcher = (settings: DispatchSettings) =>
  Effect.gen(function*() {
    const store = yield* TaskStore
    const tmux = yield* Tmux
    const delegation = yield* Delegation
    const locks = yield* TaskLocks
    // The loop runs long after construction; it keeps the ports it was built with.
    const ports = yield* Effect.context<TaskStore | Tmux | TaskLocks>()
    const wakeups = yield* Queue.sliding<void>(1)
    const intake = yield* makeIntake({ settleAfter: settings.settleAfter, scanInterval: settings.scanInterval })

    // Only `tick` mutates these (with the dispatch fibers it waits for, which touch different keys); `status` reads copies.
    const cooldowns = new Map<string, Cooldown>()
    const dispatches = new Map<string, { readonly at: number; readonly banner: Option.Option<string> }>()
    /** Sessions left alone until an instant, and why (a prompt they did not take). */
    const resting = new Map<string, { readonly until: number; readonly reason: string }>()
    const watch = new Map<TaskName, { fingerprint: string; since: number; reported: boolean }>()
    /** Sessions showing a question (a permission prompt): listed for a person, never answered. */
    const questions = new Map<string, string>()
    /** Sessions whose input box holds a prompt the daemon could not clear: not typed into until it is empty. */
    const blocked = new Map<string, string>()
    let lastObservations: ReadonlyArray<Observation> = []
    let activeBySession = new Map<string, TaskName>()
    const counters = { dispatched: 0, failovers: 0 }
    let backoff: { until: number; delayMs: number; problem: string; tick: number } | undefined
    let ticks = 0

    const accountFor = (session: string) => accountOf(settings.accounts, session)
    const coolingUntil = (session: string, now: number): Option.Option<number> => {
      const cooldown = cooldowns.get(accountFor(session))
      return cooldown !== undefined && cooldown.until > now ? Option.some(cooldown.until) : Option.none()
    }
    const bannerOf = (observation: Observation): Option.Option<string> =>
      Option.flatMap(observation.pane, (pane) => pane._tag === "usage_limited" ? Option.some(pane.banner) : Option.none())

    /** A banner that was on screen when we typed is old news for a while: the new prompt has not been read yet. */
    const effectiveState = (observation: Observation, now: number) => {
      const dispatched = dispatches.get(observation.session)
      const banner = bannerOf(observation)
      if (
        observation.state === "usage_limited" && dispatched !== undefined && now - dispatched.at < DISPATCH_GRACE_MS &&
        Option.isSome(banner) && Option.isSome(dispatched.banner) && banner.value === dispatched.banner.value
      ) return "busy" as const
      return observation.state
    }

    /**
     * Queue writes failing for lack of space, permissions or descriptors: wait, longer each tick it happens again, and
     * say so once per kind of failure (the error's code and operation; its text names ever-new temporary files).
     */
    const noteFailure = (
      error: { readonly _tag: string; readonly code?: string | undefined; readonly operation?: string; readonly message: string },
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
            `queue writes fail: ${error.message}; dispatch pauses and retries with a growing wait (up to ${BACKOFF_MAX_MS / 1000}s)`
          )
        }
        return true
      })
    const noteSuccess = Effect.gen(function*() {
      if (backoff === undefined) return
      backoff = undefined
      yield* Effect.logInfo("queue writes work again; dispatch resumes")
    })

    const noteLimit = Effect.fn("Dispatcher.noteLimit")(function*(observation: Observation, now: number) {
      if (observation.state !== "usage_limited" || effectiveState(observation, now) !== "usage_limited") return
      const pane = Option.getOrUndefined(observation.pane)
      if (pane?._tag !== "usage_limited") return
      const account = accountFor(observation.session)
      const known = cooldowns.get(account)
      if (known !== undefined && known.banner === pane.banner && known.session === observation.session) return
      // A reset time already past means "try again now"; none at all means the configured cooldown.
      const until = Option.match(pane.resetAt, {
        onNone: () => now + Duration.toMillis(settings.limitCooldown),
        onSome: (resetAt) => Math.max(resetAt, now)
      })
      cooldowns.set(account, { until, banner: pane.banner, session: observation.session })
      yield* Effect.logWarning(
        `session ${observation.session} hit its usage limit; account ${account} rests until ${new Date(until).toISOString()}`
      ).pipe(Effect.annotateLogs({ session: observation.session, banner: pane.banner }))
    })

    /** Active tasks, by name; a file that no longer parses is quarantined. */
    const loadActive = Effect.gen(function*() {
      const tasks: Array<Task> = []
      for (const name of yield* store.list("active")) {
        const read = yield* Effect.result(readTask("active", name))
        if (Result.isSuccess(read)) tasks.push(read.success.task)
        else if (read.failure._tag === "TaskParseError" || (read.failure._tag === "Unreadable" && read.failure.quarantine)) {
          yield* locks.withTask(name, quarantine("active", name, read.failure.message))
        }
      }
      return tasks
    })

    /** The run of an active task ended without finishing: back to pending, or to failed/ at the attempt limit. */
    const endRun = Effect.fn("Dispatcher.endRun")(function*(task: Task, cause: RunEndCause, reason: string) {
      // The run observed must still be the task's: a completion may have finished it in between.
      const ended = yield* locks.withTask(
        task.name,
        endUnfinishedRun(task.name, cause, reason, settings.maxAttempts, task.fields.run)
      ).pipe(Effect.catchTag("TaskNotFound", () => Effect.succeed(undefined)))
      watch.delete(task.name)
      if (ended === undefined) return
      const session = task.fields.session
      if (session !== undefined && activeBySession.get(session) === task.name) activeBySession.delete(session)
      counters.failovers++
      yield* (ended.gaveUp
        ? Effect.logError(`${task.name} failed: ${ended.reason}`)
        : Effect.logWarning(`${task.name} back to pending: ${reason}`)).pipe(
          Effect.annotateLogs({ task: task.name, session: session ?? "", run: task.fields.run ?? "" })
        )
    })

    const superviseActive = Effect.fn("Dispatcher.superviseActive")(function*(
      task: Task,
      observation: Observation,
      now: number
    ) {
      const session = observation.session
      const state = effectiveState(observation, now)
      if (state === "missing") return yield* endRun(task, "session_gone", `session ${session} is gone`)
      if (state === "exited") return yield* endRun(task, "session_exited", `session ${session} exited`)
      if (state === "usage_limited") {
        const banner = Option.getOrElse(bannerOf(observation), () => "usage limit")
        return yield* endRun(task, "usage_limit", `session ${session} hit its usage limit (${banner})`)
      }
      if (state === "permission_prompt") {
        const pane = Option.getOrUndefined(observation.pane)
        const question = pane?._tag === "permission_prompt" ? pane.question : "a prompt"
        if (questions.get(session) !== question) {
          yield* Effect.logWarning(`session ${session} is waiting at a prompt: ${question}`).pipe(
            Effect.annotateLogs({ task: task.name, session })
          )
        }
        questions.set(session, question)
      } else {
        questions.delete(session)
      }

      // Watchdog: how long has this pane looked the same, ignoring what ticks while nothing happens (the spinner's clock)?
      const fingerprint = watchdogFingerprint(observation.screen)
      const seen = watch.get(task.name)
      if (seen === undefined || seen.fingerprint !== fingerprint) {
        watch.set(task.name, { fingerprint, since: now, reported: false })
        return
      }
      const unchanged = now - seen.since
      if (Option.isSome(settings.requeueAfter) && unchanged >= Duration.toMillis(settings.requeueAfter.value)) {
        // The run is taken back from a live session: stop its turn first, so it cannot go on beside the next run.
        yield* tmux.interrupt(session).pipe(Effect.ignore)
        return yield* endRun(task, "stale", `no progress in session ${session} for ${Math.round(unchanged / 60_000)} min; its turn was interrupted`)
      }
      if (!seen.reported && unchanged >= Duration.toMillis(settings.staleAfter)) {
        seen.reported = true
        yield* Effect.logWarning(`${task.name} looks stale: session ${session} unchanged for ${Math.round(unchanged / 1000)}s`)
          .pipe(Effect.annotateLogs({ task: task.name, session }))
      }
    })

    /** Records the assignment, types the prompt, and records the start — or ends the run it could not start. */
    const dispatch = Effect.fn("Dispatcher.dispatch")(function*(task: Task, observation: Observation, now: number) {
      const session = observation.session
      const run = newRunId()
      const at = yield* nowIso
      // Record first: a crash from here on leaves the task in active/ with its run, which recovery understands.
      const assigned = yield* applyEvent("pending", task.name, TaskEvent.Assign({ session, at, run }), {
        crashPoints: { written: "assign:written", moved: "assign:moved" }
      })
      yield* intake.forget(task.name)
      yield* noteSuccess
      const name = assigned.name
      activeBySession.set(session, name)
      dispatches.set(session, { at: now, banner: bannerOf(observation) })
      // The banner on screen now is spent: if the same text shows again after this prompt, it is a new limit.
      const cooldown = cooldowns.get(accountFor(session))
      if (cooldown?.session === session) cooldowns.set(accountFor(session), { ...cooldown, banner: "" })
      counters.dispatched++
      yield* Effect.logInfo(`${name} → session ${session} (run ${run})`).pipe(Effect.annotateLogs({ task: name, session, run }))
      const prompt = renderPrompt({
        name,
        run,
        body: assigned.task.body,
        taskPath: join(settings.queueDir, "active", name),
        command: settings.command
      })
      const typed = yield* typePrompt(session, prompt, { timeZone: settings.timeZone, enterDelay: settings.enterDelay })
      const reasonOf = (outcome: typeof typed) => outcome._tag === "Accepted" ? "" : outcome.reason
      if (typed._tag === "Accepted") {
        yield* applyEvent("active", name, TaskEvent.Start({ at: yield* nowIso }))
        yield* failpoint("type:started")
        return
      }
      const restFor = typed._tag === "NotTyped" ? NOT_TYPED_REST_MS : NOT_ACCEPTED_REST_MS
      resting.set(session, { until: (yield* Clock.currentTimeMillis) + restFor, reason: reasonOf(typed) })
      if (typed._tag === "NotAccepted" && !typed.cleared) {
        blocked.set(session, `input box holds a prompt the daemon could not clear; nothing is typed into ${session} until it is empty`)
      }
      const ended = yield* endUnfinishedRun(name, typed._tag === "NotTyped" ? "never_typed" : "not_accepted", reasonOf(typed), settings.maxAttempts)
      activeBySession.delete(session)
      counters.failovers++
      yield* Effect.logWarning(`${name} ${ended.gaveUp ? "failed" : "back to pending"}: ${ended.reason}`).pipe(
        Effect.annotateLogs({ task: name, session, run })
      )
    })

    const assign = Effect.fn("Dispatcher.assign")(function*(
      sessions: ReadonlyArray<string>,
      observed: ReadonlyMap<string, Observation>,
      now: number
    ) {
      yield* intake.refresh(now)
      const ready = yield* intake.ready
      if (ready.length === 0) return
      const usable = (session: string) => {
        const observation = observed.get(session)
        if (observation === undefined || Option.isSome(coolingUntil(session, now))) return false
        if ((resting.get(session)?.until ?? 0) > now) return false
        const state = effectiveState(observation, now)
        // A limited session whose reset has passed shows the old banner until it gets new work.
        if (state !== "idle" && state !== "usage_limited") return false
        return state === "usage_limited" || Option.getOrElse(inputBoxText(observation.screen), () => "x") === ""
      }
      const free = sessions.filter((session) => usable(session) && !activeBySession.has(session))
      const situation = {
        ...settings.routing,
        localAvailable: sessions.some((session) => {
          const state = observed.get(session)?.state
          return state !== undefined && state !== "missing" && state !== "exited" &&
            Option.isNone(coolingUntil(session, now))
        })
      }
      const local: Array<Task> = []
      for (const entry of ready) {
        const decision = decide(entry.task.fields, situation)
        if (decision.route === "local") {
          local.push(entry.task)
          continue
        }
        yield* intake.forget(entry.task.name)
        yield* locks.withTask(entry.task.name, delegation.start(entry.task, decision.provider, decision.reason)).pipe(
          Effect.catch((error) => Effect.logError(`delegating ${entry.task.name} failed: ${error.message}`))
        )
      }
      const pairs = free.flatMap((session, index) => {
        const task = local[index]
        const observation = observed.get(session)
        return task === undefined || observation === undefined ? [] : [{ task, observation }]
      })
      // Each session is typed into on its own fiber: the pauses around Enter would otherwise add up per session.
      yield* Effect.forEach(
        pairs,
        ({ observation, task }) =>
          locks.withTask(task.name, dispatch(task, observation, now)).pipe(
            Effect.catch((error) =>
              Effect.gen(function*() {
                if (yield* noteFailure(error, now)) return
                yield* intake.forget(task.name)
                yield* Effect.logError(`dispatching ${task.name} failed: ${error.message}`)
              })
            )
          ),
        { concurrency: "unbounded", discard: true }
      )
    })

    const tick = Effect.gen(function*() {
      ticks++
      const now = yield* Clock.currentTimeMillis
      const discovered = yield* discoverSessions(settings.sessions)
      const active = yield* loadActive
      const sessionsOfActive = active.flatMap((task) => task.fields.session === undefined ? [] : [task.fields.session])
      const all = [...new Set([...discovered, ...sessionsOfActive])]
      const observations = yield* Effect.forEach(
        all,
        (session) => observeSession(session, { now, timeZone: settings.timeZone }),
        { concurrency: 4 }
      )
      lastObservations = observations
      const observed = new Map(observations.map((o) => [o.session, o]))
      for (const observation of observations) {
        yield* noteLimit(observation, now)
        // An input box the daemon could not clear blocks its session until someone empties it.
        if (Option.getOrElse(inputBoxText(observation.screen), () => "") === "") blocked.delete(observation.session)
      }

      activeBySession = new Map()
      for (const task of active) {
        const observation = task.fields.session === undefined ? undefined : observed.get(task.fields.session)
        if (observation === undefined) {
          yield* endRun(task, "session_gone", "its assignment names no session")
          continue
        }
        activeBySession.set(observation.session, task.name)
        yield* superviseActive(task, observation, now).pipe(
          Effect.catch((error) => Effect.logError(`supervising ${task.name} failed: ${error.message}`))
        )
      }
      for (const name of watch.keys()) if (!active.some((task) => task.name === name)) watch.delete(name)
      if (backoff !== undefined && now < backoff.until) return
      yield* assign(discovered, observed, now)
    }).pipe(
      Effect.catch((error) =>
        Effect.gen(function*() {
          if (yield* noteFailure(error, yield* Clock.currentTimeMillis)) return
          yield* Effect.logError(`dispatcher tick failed: ${error.message}`)
        })
      ),
      Effect.withSpan("Dispatcher.tick"),
      Effect.provideContext(ports)
    )

    const status = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const pendingTasks = yield* intake.tasks
      return {
        sessions: lastObservations.map((observation) => ({
          session: observation.session,
          state: effectiveState(observation, now),
          account: accountFor(observation.session),
          task: Option.fromNullishOr(activeBySession.get(observation.session)),
          cooldownUntil: coolingUntil(observation.session, now)
        })),
        stale: [...watch.entries()]
          .filter(([, seen]) => seen.reported)
          .map(([task, seen]) => ({
            task,
            session: [...activeBySession.entries()].find(([, name]) => name === task)?.[0] ?? "",
            unchangedForMs: now - seen.since
          })),
        attention: [
          ...[...questions, ...blocked].map(([session, reason]) => ({ session, reason })),
          ...[...resting].filter(([session, rest]) => rest.until > now && !questions.has(session) && !blocked.has(session))
            .map(([session, rest]) => ({ session, reason: `resting until ${new Date(rest.until).toISOString()}: ${rest.reason}` }))
        ],
        counters: { ...counters, malformed: intake.counters.malformed },
        pending: pendingTasks.size,
        pendingTasks
      } satisfies DispatcherStatus
    })

    const wake = Queue.offer(wakeups, undefined).pipe(Effect.asVoid)
    /** Sleeps until the next wake, the poll interval, or the moment a not-yet-settled file settles. */
    const pause = Effect.gen(function*() {
      const settle = yield* intake.nextSettle
      const now = yield* Clock.currentTimeMillis
      const untilSettle = Option.match(settle, { onNone: () => Infinity, onSome: (at) => Math.max(0, at - now) + 1 })
      const wait = Math.min(Duration.toMillis(settings.pollInterval), untilSettle)
      yield* Queue.take(wakeups).pipe(Effect.timeout(Duration.millis(wait)), Effect.ignore)
    })
    const run = Effect.forever(Effect.andThen(tick, pause))

    return Dispatcher.of({ tick, wake, run, status })
  })

export const DispatcherLayer = (settings: DispatchSettings) => Layer.effect(Dispatcher, makeDispatcher(settings))
