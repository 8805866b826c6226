/**
 * Local dispatch: each tick observes the sessions, fails over active tasks whose session hit its limit or died,
 * watches for stale panes, and hands pending tasks to free sessions in queue order.
 * Easy to get wrong: the assignment is recorded (task in active/) before a single key is typed, and a session
 * that hit its usage limit, or shares an account with one that did, gets nothing until its reset time.
 */
import { Clock, Context, Duration, Effect, Layer, Option, Queue, Result } from "effect"
import { join } from "node:path"
import { TaskEvent } from "../domain/lifecycle.ts"
import { type CompletionCommand, renderPrompt } from "../domain/prompt.ts"
import { type ComplexityMap, decide } from "../domain/routing.ts"
import type { Provider } from "../domain/provider.ts"
import { parseTask, QueueOrder, queueKey, type Task, type TaskName } from "../domain/task.ts"
import { TaskStore } from "../ports/task-store.ts"
import { Tmux } from "../ports/tmux.ts"
import { Delegation } from "./delegation.ts"
import { accountOf, discoverSessions, type Observation, observeSession, type SessionSelection } from "./sessions.ts"
import { moveTask, nowIso, quarantine, readTask, requeueTask } from "./task-moves.ts"

export interface DispatchSettings {
  readonly sessions: SessionSelection
  readonly accounts: Option.Option<ReadonlyMap<string, ReadonlyArray<string>>>
  readonly pollInterval: Duration.Duration
  readonly scanInterval: Duration.Duration
  readonly staleAfter: Duration.Duration
  readonly requeueAfter: Option.Option<Duration.Duration>
  readonly limitCooldown: Duration.Duration
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
  /** For crash tests only: `after-assign` kills the process (SIGKILL) right after an assignment is recorded. */
  readonly failpoint: Option.Option<"after-assign">
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
const ENTER_RETRIES = 3

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

interface PendingEntry {
  readonly mtimeMs: number
  readonly task: Task
}

export const makeDispatcher = (settings: DispatchSettings) =>
  Effect.gen(function*() {
    const store = yield* TaskStore
    const tmux = yield* Tmux
    const delegation = yield* Delegation
    // The loop runs long after construction; it keeps the ports it was built with.
    const ports = yield* Effect.context<TaskStore | Tmux>()
    const wakeups = yield* Queue.sliding<void>(1)

    // Only `tick` mutates these (with the dispatch fibers it waits for, which touch different keys); `status` reads copies.
    const cooldowns = new Map<string, Cooldown>()
    const dispatches = new Map<string, { readonly at: number; readonly banner: Option.Option<string> }>()
    const watch = new Map<TaskName, { screen: string; since: number; reported: boolean }>()
    const attention = new Map<string, string>()
    const pendingIndex = new Map<TaskName, PendingEntry>()
    let lastFullScan = Number.NEGATIVE_INFINITY
    let lastObservations: ReadonlyArray<Observation> = []
    let activeBySession = new Map<string, TaskName>()
    const counters = { dispatched: 0, failovers: 0, malformed: 0 }

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
      const names = yield* store.list("active")
      const tasks: Array<Task> = []
      for (const name of names) {
        const read = yield* Effect.result(readTask("active", name))
        if (Result.isSuccess(read)) tasks.push(read.success.task)
        else if (read.failure._tag === "TaskParseError") yield* quarantine("active", name, read.failure.message)
      }
      return tasks
    })

    const failover = Effect.fn("Dispatcher.failover")(function*(task: Task, note: string) {
      yield* requeueTask(task.name, note)
      watch.delete(task.name)
      const session = task.fields.session
      if (session !== undefined && activeBySession.get(session) === task.name) activeBySession.delete(session)
      counters.failovers++
      yield* Effect.logWarning(`${task.name} back to pending: ${note}`).pipe(
        Effect.annotateLogs({ task: task.name, session: task.fields.session ?? "" })
      )
    })

    const superviseActive = Effect.fn("Dispatcher.superviseActive")(function*(
      task: Task,
      observation: Observation,
      now: number
    ) {
      const session = observation.session
      const state = effectiveState(observation, now)
      if (state === "missing") return yield* failover(task, `session ${session} is gone`)
      if (state === "exited") return yield* failover(task, `session ${session} exited`)
      if (state === "usage_limited") {
        const banner = Option.getOrElse(bannerOf(observation), () => "usage limit")
        return yield* failover(task, `session ${session} hit its usage limit (${banner})`)
      }
      if (state === "permission_prompt") {
        const pane = Option.getOrUndefined(observation.pane)
        const question = pane?._tag === "permission_prompt" ? pane.question : "a prompt"
        if (attention.get(session) !== question) {
          yield* Effect.logWarning(`session ${session} is waiting at a prompt: ${question}`).pipe(
            Effect.annotateLogs({ task: task.name, session })
          )
        }
        attention.set(session, question)
      } else {
        attention.delete(session)
      }

      // Watchdog: how long has this pane looked exactly the same?
      const seen = watch.get(task.name)
      if (seen === undefined || seen.screen !== observation.screen) {
        watch.set(task.name, { screen: observation.screen, since: now, reported: false })
        return
      }
      const unchanged = now - seen.since
      if (Option.isSome(settings.requeueAfter) && unchanged >= Duration.toMillis(settings.requeueAfter.value)) {
        return yield* failover(task, `no progress in session ${session} for ${Math.round(unchanged / 60_000)} min`)
      }
      if (!seen.reported && unchanged >= Duration.toMillis(settings.staleAfter)) {
        seen.reported = true
        yield* Effect.logWarning(`${task.name} looks stale: session ${session} unchanged for ${Math.round(unchanged / 1000)}s`)
          .pipe(Effect.annotateLogs({ task: task.name, session }))
      }
    })

    /** The pending index: new or changed names are read; everything is re-read every scan interval. */
    const refreshPending = Effect.fn("Dispatcher.refreshPending")(function*(now: number) {
      const names = yield* store.list("pending")
      const delegated = new Set(yield* store.listMarkers())
      const fullScan = now - lastFullScan >= Duration.toMillis(settings.scanInterval)
      if (fullScan) lastFullScan = now
      const present = new Set(names)
      for (const name of [...pendingIndex.keys()]) if (!present.has(name) || delegated.has(name)) pendingIndex.delete(name)
      for (const name of names) {
        if (delegated.has(name) || (pendingIndex.has(name) && !fullScan)) continue
        const read = yield* Effect.result(store.read("pending", name))
        if (Result.isFailure(read)) continue
        const known = pendingIndex.get(name)
        if (known !== undefined && known.mtimeMs === read.success.mtimeMs) continue
        const parsed = parseTask(name, read.success.text)
        if (Result.isFailure(parsed)) {
          pendingIndex.delete(name)
          counters.malformed++
          yield* quarantine("pending", name, parsed.failure.message)
          continue
        }
        pendingIndex.set(name, { mtimeMs: read.success.mtimeMs, task: parsed.success })
      }
    })

    const typePrompt = Effect.fn("Dispatcher.typePrompt")(function*(task: Task, session: string) {
      const prompt = renderPrompt({
        name: task.name,
        body: task.body,
        taskPath: join(settings.queueDir, "active", task.name),
        command: settings.command
      })
      yield* tmux.sendText(session, prompt)
      const lines = prompt.split("\n").length
      yield* Effect.sleep(Duration.sum(settings.enterDelay, Duration.millis(Math.min(1000, lines * 5))))
      yield* tmux.sendEnter(session)
      // Claude Code sometimes drops the Enter: check the pane left idle, press again if not.
      for (let attempt = 1; attempt <= ENTER_RETRIES; attempt++) {
        yield* Effect.sleep(Duration.millis(400))
        const now = yield* Clock.currentTimeMillis
        const seen = yield* observeSession(session, { now, timeZone: settings.timeZone })
        if (seen.state !== "idle") return true
        if (attempt < ENTER_RETRIES) yield* tmux.sendEnter(session)
      }
      return false
    })

    const dispatch = Effect.fn("Dispatcher.dispatch")(function*(task: Task, observation: Observation, now: number) {
      const session = observation.session
      const at = yield* nowIso
      // Record first: a crash from here on leaves the task in active/, which recovery understands.
      yield* moveTask("pending", "active", task.name, TaskEvent.Assign({ session, at }))
      if (Option.isSome(settings.failpoint)) process.kill(process.pid, "SIGKILL")
      pendingIndex.delete(task.name)
      activeBySession.set(session, task.name)
      dispatches.set(session, { at: now, banner: bannerOf(observation) })
      // The banner on screen now is spent: if the same text shows again after this prompt, it is a new limit.
      const cooldown = cooldowns.get(accountFor(session))
      if (cooldown?.session === session) cooldowns.set(accountFor(session), { ...cooldown, banner: "" })
      counters.dispatched++
      yield* Effect.logInfo(`${task.name} → session ${session}`).pipe(Effect.annotateLogs({ task: task.name, session }))
      const accepted = yield* typePrompt(task, session).pipe(
        Effect.catchTags({ SessionNotFound: () => Effect.succeed(false), TmuxError: () => Effect.succeed(false) })
      )
      if (accepted) {
        yield* moveTask("active", "active", task.name, TaskEvent.Start({ at: yield* nowIso }))
      } else {
        attention.set(session, "did not accept a typed prompt")
        yield* failover(task, `session ${session} did not accept the prompt`)
      }
    })

    const assign = Effect.fn("Dispatcher.assign")(function*(
      sessions: ReadonlyArray<string>,
      observed: ReadonlyMap<string, Observation>,
      now: number
    ) {
      yield* refreshPending(now)
      if (pendingIndex.size === 0) return
      const usable = (session: string) => {
        const observation = observed.get(session)
        if (observation === undefined || Option.isSome(coolingUntil(session, now))) return false
        const state = effectiveState(observation, now)
        return state === "idle" || state === "usage_limited"
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
      const local: Array<PendingEntry> = []
      for (const entry of pendingIndex.values()) {
        const decision = decide(entry.task.fields, situation)
        if (decision.route === "local") {
          local.push(entry)
          continue
        }
        pendingIndex.delete(entry.task.name)
        yield* delegation.start(entry.task, decision.provider, decision.reason).pipe(
          Effect.catch((error) => Effect.logError(`delegating ${entry.task.name} failed: ${error.message}`))
        )
      }
      local.sort((a, b) => QueueOrder(queueKey(a.task, a.mtimeMs), queueKey(b.task, b.mtimeMs)))
      const pairs = free.flatMap((session, index) => {
        const entry = local[index]
        const observation = observed.get(session)
        return entry === undefined || observation === undefined ? [] : [{ entry, observation }]
      })
      // Each session is typed into on its own fiber: the pauses around Enter would otherwise add up per session.
      yield* Effect.forEach(
        pairs,
        ({ entry, observation }) =>
          dispatch(entry.task, observation, now).pipe(
            Effect.catch((error) => Effect.logError(`dispatching ${entry.task.name} failed: ${error.message}`))
          ),
        { concurrency: "unbounded", discard: true }
      )
    })

    const tick = Effect.gen(function*() {
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
      for (const observation of observations) yield* noteLimit(observation, now)

      activeBySession = new Map()
      for (const task of active) {
        const observation = task.fields.session === undefined ? undefined : observed.get(task.fields.session)
        if (observation === undefined) {
          yield* failover(task, "its assignment names no session")
          continue
        }
        activeBySession.set(observation.session, task.name)
        yield* superviseActive(task, observation, now).pipe(
          Effect.catch((error) => Effect.logError(`supervising ${task.name} failed: ${error.message}`))
        )
      }
      for (const name of watch.keys()) if (!active.some((task) => task.name === name)) watch.delete(name)
      yield* assign(discovered, observed, now)
    }).pipe(
      Effect.catch((error) => Effect.logError(`dispatcher tick failed: ${error.message}`)),
      Effect.withSpan("Dispatcher.tick"),
      Effect.provideContext(ports)
    )

    const status = Effect.map(Clock.currentTimeMillis, (now): DispatcherStatus => {
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
        attention: [...attention.entries()].map(([session, reason]) => ({ session, reason })),
        counters: { ...counters },
        pending: pendingIndex.size,
        pendingTasks: new Map([...pendingIndex].map(([name, entry]) => [name, entry.task]))
      }
    })

    const wake = Queue.offer(wakeups, undefined).pipe(Effect.asVoid)
    const run = Effect.forever(
      Effect.andThen(tick, Queue.take(wakeups).pipe(Effect.timeout(settings.pollInterval), Effect.ignore))
    )

    return Dispatcher.of({ tick, wake, run, status })
  })

export const DispatcherLayer = (settings: DispatchSettings) => Layer.effect(Dispatcher, makeDispatcher(settings))
