/**
 * The daemon: Layers built from the configuration, start-up recovery, the delegation submitter and reaper, the
 * status API, then the dispatcher loop, woken early by inotify on the queue and otherwise every poll interval.
 * Easy to get wrong: inotify drops events silently when its queue overflows, so the watcher only wakes the loop;
 * the periodic full scan is what guarantees pickup.
 */
import { watch } from "node:fs"
import { hostname } from "node:os"
import { join, resolve } from "node:path"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as References from "effect/References"
import * as Stream from "effect/Stream"
import type * as ChildProcessSpawner from "effect/process/ChildProcessSpawner"
import { CliTmuxLayer } from "./adapters/cli-tmux.ts"
import { hostTimeZone } from "./adapters/host-time-zone.ts"
import { DryRunTmuxLayer } from "./adapters/dry-run-tmux.ts"
import {
  FsTaskStoreLayer,
  makeFsTaskStore,
  prepareQueue,
  removeTempDebris,
  REQUESTS_DIR
} from "./adapters/fs-task-store.ts"
import { SharedQueueLayer } from "./adapters/pg/shared-queue.ts"
import { SharedQueue } from "./ports/shared-queue.ts"
import { serveHttpApi } from "./adapters/http-api/server.ts"
import { acquireQueueLockPatiently, type HeldLock } from "./adapters/queue-lock.ts"
import { logRetry } from "./adapters/http-secutools.ts"
import { SecutoolsFromConfig } from "./adapters/secutools-layer.ts"
import {
  type AppConfig,
  backendProblems,
  Config,
  ConfigInvalid,
  ConfigSource,
  describeConfig,
  exposureProblem,
  routingSettings,
  secretEnvNames,
  sessionStartProblems,
  sharedQueueUrl
} from "./config.ts"
import { Delegation, DelegationCountersRef, DelegationLayer, type DelegationSettings } from "./services/delegation.ts"
import { Dispatcher, DispatcherLayer, type DispatchSettings } from "./services/dispatcher.ts"
import { recover } from "./services/recovery.ts"
import { makeRequestInbox, RequestInbox } from "./services/request-inbox.ts"
import { TmuxPaneSessionsLayer } from "./adapters/http-api/hooks-panes.ts"
import { HookEvents } from "./services/hook-events.ts"
import { HookReceiver, PaneSessions } from "./services/hook-receiver.ts"
import { SessionStarter, SessionStarterLayer, starterSettings } from "./services/session-starter.ts"
import { StatusReportLayer } from "./services/status.ts"
import { OwnWrites } from "./services/own-writes.ts"
import { Redaction } from "./services/redaction.ts"
import { cliProgram } from "./adapters/cli-program.ts"
import { TaskLocks } from "./services/task-locks.ts"
import { type HeadlessSettings, ProcessHeadlessLayer } from "./adapters/process-headless.ts"
import { stopOrphans } from "./adapters/headless-orphans.ts"
import { slotNames, type SlotSpec } from "./domain/headless.ts"
import { completionRules } from "./domain/hook-settings.ts"
import { HeadlessSlots } from "./ports/headless.ts"
import { discoverSessions } from "./services/sessions.ts"
import { runDropBox } from "./services/drop-import.ts"
import { makeLeaseKeeper } from "./services/lease-keeper.ts"
import { startLine } from "./services/start-line.ts"
import { hideUrlCredentials } from "./domain/redact.ts"
import pkg from "../package.json" with { type: "json" }

/** tmux that cannot be started says so plainly; other failures keep their own words. */
const tmuxProblem = (message: string): string =>
  /NotFound|ENOENT/.test(message) ? "tmux is not installed or not on PATH" : message

/** HEADLESS_SLOTS, or one slot when SESSIONS_MODE=headless leaves it unset. */
export const configuredSlots = (config: AppConfig): ReadonlyArray<SlotSpec> =>
  slotNames(Option.getOrElse(config.headlessSlots, () => config.sessionsMode === "headless" ? 1 : 0))

/** Which sessions share a usage limit: TMUX_ACCOUNTS, with each headless slot in its account ("default" without one). */
const accountsWithSlots = (config: AppConfig): Option.Option<ReadonlyMap<string, ReadonlyArray<string>>> => {
  const slots = configuredSlots(config)
  if (slots.length === 0) return config.tmuxAccounts
  const accounts = new Map(Option.getOrElse(config.tmuxAccounts, () => new Map<string, ReadonlyArray<string>>()))
  for (const slot of slots) {
    const account = Option.getOrElse(slot.account, () => "default")
    accounts.set(account, [...(accounts.get(account) ?? []), slot.name])
  }
  return Option.some(accounts)
}

export const dispatchSettings = (config: AppConfig): DispatchSettings => {
  const queueDir = resolve(config.queueDir)
  return {
    // Headless only: no tmux session is looked for.
    sessions: {
      names: config.sessionsMode === "headless" ? Option.some([]) : config.tmuxSessions,
      prefix: config.tmuxSessionPrefix
    },
    accounts: accountsWithSlots(config),
    pollInterval: config.pollInterval,
    scanInterval: config.scanInterval,
    staleAfter: config.staleAfter,
    requeueAfter: config.requeueAfter,
    limitCooldown: config.limitCooldown,
    maxAttempts: config.maxAttempts,
    // A row of the shared queue is written whole, in one statement: only files (its drop box's) can be half written.
    settleAfter: config.queueBackend === "postgres" ? Duration.zero : config.settleAfter,
    timeZone: hostTimeZone(),
    queueDir,
    host: config.queueBackend === "postgres" ? hostIdOf(config) : undefined,
    command: { program: cliProgram(), queueDir },
    routing: routingSettings(config),
    enterDelay: Duration.millis(200),
    idle: { policy: config.idlePolicy, grace: config.idleGrace }
  }
}

/**
 * Wakes the dispatcher on any change in pending/ or active/, and the request inbox on a new request; the scan and
 * poll intervals cover what inotify drops.
 */
export const watchQueue = (
  queueDir: string,
  wake: {
    /** A name in pending/ changed (`undefined`: the watch could not say which). */
    readonly pending: (name: string | undefined) => Effect.Effect<void>
    readonly active: Effect.Effect<void>
    readonly requests: Effect.Effect<void>
  }
) =>
  Effect.forEach(
    [
      ["pending", (name: string | undefined) => wake.pending(name)],
      ["active", () => wake.active],
      [REQUESTS_DIR, () => wake.requests]
    ] as const,
    ([dir, wakeUp]) =>
      Effect.acquireRelease(
        Effect.sync(() =>
          watch(join(queueDir, dir), { persistent: false }, (_event, name) => Effect.runFork(wakeUp(name ?? undefined)))
        ),
        (watcher) => Effect.sync(() => watcher.close())
      ),
    { discard: true }
  )

export const delegationSettings = (config: AppConfig): DelegationSettings => ({
  reapInterval: config.reapInterval,
  reapConcurrency: config.reapConcurrency,
  jobTimeout: config.secutoolsJobTimeout,
  reaps: routingSettings(config).delegationEnabled,
  sharedQueue: config.queueBackend === "postgres"
})

/**
 * Runs a loop forever: a defect is logged and the loop starts again a second later; only interruption, or a failure
 * the loop declares (one that must stop the daemon), stops it.
 */
export const supervised = <E = never>(name: string, loop: Effect.Effect<never, E>): Effect.Effect<never, E> =>
  loop.pipe(
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause) || Cause.hasFails(cause)
        ? Effect.failCause(cause)
        : Effect.logError(`${name} loop stopped unexpectedly; restarting in 1s`, Cause.pretty(cause)).pipe(
          Effect.andThen(Effect.sleep(Duration.seconds(1)))
        )
    ),
    Effect.forever
  )

/** Submitter and reaper run only with delegation enabled; without a key, delegated tasks wait, untouched. */
const startDelegation = (enabled: boolean) =>
  Effect.gen(function*() {
    const delegation = yield* Delegation
    if (enabled) {
      yield* delegation.resume
      yield* Effect.forkScoped(supervised("delegation", delegation.run))
      return
    }
    const waiting = yield* delegation.load
    if (waiting.length > 0) {
      yield* Effect.logWarning(
        `${waiting.length} delegated task(s) in pending/ wait: SECUTOOLS_API_KEY is not set, so their jobs are not polled`
      )
    }
  })

/**
 * One line when no session can take work (tmux missing, no session, all exited or failing), said when the situation
 * starts and when it ends — not every poll.
 */
const adviseForever = (starter: SessionStarter["Service"], every: Duration.Duration): Effect.Effect<never> =>
  Effect.forever(Effect.gen(function*() {
    const advice = yield* starter.advise
    if (Option.isSome(advice)) {
      yield* (advice.value.problem ? Effect.logWarning(advice.value.line) : Effect.logInfo(advice.value.line))
    }
    yield* Effect.sleep(every)
  }))

/** How long a headless slot rests after a run that needs a person (not logged in) before it is tried again. */
const NEEDS_PERSON_REST = Duration.minutes(10)
/** After an API error Claude Code's own retries did not get past: 5 s, doubling per error in a row, at most 10 min. */
const API_ERROR_REST = { first: Duration.seconds(5), max: Duration.minutes(10) }

export const headlessSettings = (config: AppConfig, cwd: string): HeadlessSettings => {
  const settings = dispatchSettings(config)
  return {
    slots: configuredSlots(config),
    command: config.claudeCommand,
    configDirs: Option.getOrElse(config.claudeConfigDirs, () => new Map<string, string>()),
    permissionMode: config.headlessPermissionMode,
    allowedTools: completionRules(settings.command.program),
    extraArgs: Option.getOrElse(config.headlessArgs, () => []),
    // A run never inherits the daemon's secrets.
    env: Object.fromEntries(
      Object.entries(process.env).flatMap(([key, value]) =>
        value === undefined || secretEnvNames.includes(key) ? [] : [[key, value]]
      )
    ),
    defaultCwd: Option.getOrElse(Option.map(config.sessionsCwd, (dir) => resolve(dir)), () => cwd),
    queueRoot: settings.queueDir,
    staleAfter: config.staleAfter,
    maxLineBytes: config.headlessMaxLine,
    needsPersonRest: NEEDS_PERSON_REST,
    apiErrorRest: API_ERROR_REST,
    timeZone: settings.timeZone
  }
}

/**
 * This host's heartbeat, once now and then every third of a lease (from now on, whatever start-up still does), with
 * other hosts' expired runs taken over; returns the keeper and the wait for its loop's end, which comes only if another
 * daemon takes this host over — the daemon then stops.
 */
const keepLeases = (shared: SharedQueue["Service"], config: AppConfig) =>
  Effect.gen(function*() {
    const dispatcher = yield* Dispatcher
    const keeper = yield* makeLeaseKeeper(shared.leases, {
      leaseTtl: config.leaseTtl,
      maxAttempts: config.maxAttempts,
      sessions: Effect.map(dispatcher.status, (status) =>
        status.sessions.map((s) => ({ session: s.session, state: s.state, task: Option.getOrNull(s.task) })))
    })
    yield* keeper.heartbeat.pipe(Effect.catchTag("StoreError", (error) =>
      Effect.logWarning(error.message)))
    return { keeper, stopped: Fiber.join(yield* Effect.forkScoped(supervised("lease keeper", keeper.run))) }
  })

/**
 * The shared queue's changes wake the dispatcher (a task arriving in or leaving pending/, on any host), and this
 * host's pending/ directory is taken into the queue; returns what wakes the drop box (the directory watch).
 */
const followSharedQueue = (
  shared: SharedQueue["Service"],
  config: AppConfig,
  dispatcher: Dispatcher["Service"]
) =>
  Effect.gen(function*() {
    yield* Effect.forkScoped(shared.follow({
      // (Re)connected: what changed meanwhile is unknown, so the whole queue is looked at.
      connected: dispatcher.wake,
      changed: (change) => change.stage === "pending" ? dispatcher.noticed(change.name) : Effect.void
    }))
    const files = makeFsTaskStore({ root: resolve(config.queueDir), maxTaskBytes: config.maxTaskSize })
    const wakeUps = yield* Queue.sliding<void>(1)
    yield* Effect.forkScoped(supervised(
      "drop box",
      runDropBox(files, shared.store, {
        settleAfterMs: Duration.toMillis(config.settleAfter),
        scanIntervalMs: Duration.toMillis(config.scanInterval)
      }, wakeUps)
    ))
    return Queue.offer(wakeUps, undefined).pipe(Effect.asVoid)
  })

/** After the lock: the status API, debris and recovery, then the loops; runs until interrupted. */
export const runDaemon = (lock: HeldLock) =>
  Effect.gen(function*() {
    const config = yield* Config
    const settings = dispatchSettings(config)
    yield* Effect.logDebug("configuration").pipe(
      Effect.annotateLogs({ config: JSON.stringify(describeConfig(config)) })
    )
    const url = yield* serveHttpApi({
      host: config.apiHost,
      port: config.apiPort,
      token: config.apiToken,
      allowedHosts: Option.getOrElse(config.apiAllowedHosts, () => []),
      hooks: yield* HookReceiver,
      // The status page's buttons: applied as a command's request is, logged as from the page.
      actions: (yield* RequestInbox).apply
    })
    yield* lock.label({ api: url })
    const debris = yield* removeTempDebris(settings.queueDir)
    if (debris.length > 0) yield* Effect.logInfo(`removed ${debris.length} temporary file(s) left by a crash`)
    // Headless runs a killed daemon left behind are stopped before recovery gives their tasks back.
    const orphans = yield* stopOrphans(settings.queueDir)
    if (orphans.length > 0) {
      yield* Effect.logWarning(
        `stopped ${orphans.length} process(es) of headless runs left by a daemon that stopped: ${
          [...new Set(orphans.map((o) => `${o.run} in ${o.slot}`))].join(", ")
        }`
      )
    }
    const headless = yield* HeadlessSlots
    const shared = yield* Effect.serviceOption(SharedQueue)
    yield* Effect.logInfo(startLine({
      version: pkg.version,
      queueDir: settings.queueDir,
      sharedQueue: Option.getOrUndefined(Option.map(shared, (queue) => ({ host: queue.host }))),
      mode: config.sessionsMode,
      sessions: yield* discoverSessions(settings.sessions).pipe(
        Effect.map((names) => ({ _tag: "Found" as const, names })),
        Effect.catch((error) => Effect.succeed({ _tag: "Unlisted" as const, problem: tmuxProblem(error.message) }))
      ),
      selection: settings.sessions,
      headlessSlots: headless.slots.map((slot) => slot.name),
      delegation: {
        enabled: settings.routing.delegationEnabled,
        mode: config.secutoolsMode,
        url: hideUrlCredentials(config.secutoolsUrl)
      },
      api: url,
      configFile: Option.flatten(yield* Effect.serviceOption(ConfigSource))
    }))
    yield* Effect.addFinalizer(() => Effect.logInfo(`claude-failover stopped on ${settings.queueDir}`))
    // On a shared queue the heartbeat goes first and on all along: a long recovery must not cost this host its leases.
    const leases = Option.isSome(shared) ? Option.some(yield* keepLeases(shared.value, config)) : Option.none()
    const recovered = yield* recover({
      timeZone: settings.timeZone,
      maxAttempts: config.maxAttempts,
      isHeadless: headless.isSlot,
      settleAfterMs: Duration.toMillis(settings.settleAfter)
    })
    for (const action of recovered.actions) yield* Effect.logWarning(`recovery: ${action}`)
    yield* startDelegation(settings.routing.delegationEnabled)
    if (Option.isSome(leases)) {
      // Other hosts' jobs, once delegation has read its own: those a stopped host reaped are taken on here.
      const delegation = yield* Delegation
      yield* Effect.forkScoped(supervised("delegated jobs", leases.value.keeper.followJobs(delegation.otherHosts)))
    }
    const inbox = yield* RequestInbox
    const dispatcher = yield* Dispatcher
    if (Option.isSome(shared)) {
      const dropBox = yield* followSharedQueue(shared.value, config, dispatcher)
      yield* watchQueue(settings.queueDir, {
        pending: () => dropBox,
        active: Effect.void,
        requests: inbox.wake
      })
    } else {
      yield* watchQueue(settings.queueDir, {
        pending: dispatcher.noticed,
        active: dispatcher.wake,
        requests: inbox.wake
      })
    }
    // A hook event wakes the dispatcher at once: it need not wait for its next poll to act on it.
    yield* Effect.forkScoped(Stream.runForEach((yield* HookEvents).changes, () => dispatcher.wake))
    yield* Effect.forkScoped(Stream.runForEach(headless.changes, () => dispatcher.wake))
    // With headless slots, a missing tmux session is no reason to warn: the slots take the work.
    if (headless.slots.length === 0) {
      yield* Effect.forkScoped(supervised("session advice", adviseForever(yield* SessionStarter, config.scanInterval)))
    } else {
      yield* Effect.logInfo(`headless slots: ${headless.slots.map((slot) => slot.name).join(", ")}`)
    }
    yield* inbox.drain
    yield* Effect.forkScoped(supervised("request inbox", inbox.run))
    // The lease keeper ends only when another daemon took this host over: the daemon stops with its reason.
    return yield* Effect.raceFirst(
      supervised("dispatcher", dispatcher.run),
      Option.match(leases, { onNone: () => Effect.never, onSome: (kept) => kept.stopped })
    )
  }).pipe(Effect.scoped)

/** Secutools as configured, its retries counted for the status API. */
const secutoolsLayer = (config: AppConfig) =>
  Layer.unwrap(Effect.gen(function*() {
    const counters = yield* DelegationCountersRef
    return SecutoolsFromConfig(config, logRetry(() => counters.retries++))
  }))

/** Real tmux, or for staging sessions that only pretend (TMUX_SESSIONS, else PREFIX1 and PREFIX2). */
const tmuxLayer = (config: AppConfig) =>
  config.sessionsMode === "dry-run"
    ? DryRunTmuxLayer({
      sessions: Option.getOrElse(config.tmuxSessions, () => [1, 2].map((n) => `${config.tmuxSessionPrefix}${n}`)),
      workFor: config.dryRunDelay,
      // Kept beside the queue, so a restarted staging daemon finds its sessions still working on what they had.
      stateFile: join(resolve(config.queueDir), ".dry-run-sessions.json")
    })
    : CliTmuxLayer({
      ...Option.match(config.tmuxSocket, { onNone: () => ({}), onSome: (socket) => ({ socket }) }),
      // A tmux server this daemon starts would hand its secrets to every Claude Code session in it.
      withholdEnv: secretEnvNames
    })

/** This host's name in the shared queue: HOST_ID, else the machine's host name. */
export const hostIdOf = (config: AppConfig): string => Option.getOrElse(config.hostId, () => hostname())

/** The queue shared with other hosts on PostgreSQL, when QUEUE_BACKEND=postgres (one instance: layers are shared). */
const sharedQueueLayer = (config: AppConfig) =>
  Option.match(sharedQueueUrl(config), {
    onNone: () => Option.none(),
    onSome: (url) =>
      Option.some(SharedQueueLayer({
        url,
        host: hostIdOf(config),
        leaseTtl: config.leaseTtl,
        maxTaskBytes: config.maxTaskSize,
        reapsJobs: routingSettings(config).delegationEnabled,
        ...(config.mirrorFinished ? { mirrorTo: resolve(config.queueDir) } : {})
      }))
  })

/** Every Layer the daemon needs, chosen from the configuration. */
export const daemonLayer = (config: AppConfig) => {
  const settings = dispatchSettings(config)
  const shared = sharedQueueLayer(config)
  const store = Option.match(shared, {
    onNone: () => FsTaskStoreLayer({ root: settings.queueDir, maxTaskBytes: config.maxTaskSize }),
    onSome: (queue) => SharedQueue.taskStore.pipe(Layer.provide(queue))
  })
  const ports = Layer.mergeAll(
    OwnWrites.tracking.pipe(Layer.provide(store)),
    tmuxLayer(config),
    secutoolsLayer(config),
    TaskLocks.layer
  ).pipe(Layer.provideMerge(DelegationCountersRef.layer))
  const starter = SessionStarterLayer(starterSettings(config, process.cwd()))
  const slots = configuredSlots(config).length === 0
    ? HeadlessSlots.none
    : ProcessHeadlessLayer(headlessSettings(config, process.cwd()))
  // Claude Code's hooks report to the status API; the facts they carry are kept here for the dispatcher.
  const hooks = HookReceiver.layer.pipe(
    Layer.provideMerge(HookEvents.layerMemory({ keep: config.hooksKeep })),
    Layer.provideMerge(
      config.sessionsMode === "dry-run"
        ? PaneSessions.none
        : TmuxPaneSessionsLayer(
          Option.match(config.tmuxSocket, { onNone: () => ({}), onSome: (socket) => ({ socket }) })
        )
    )
  )
  // A request that changed the queue (a task done) frees a session: the dispatcher is woken.
  const inbox = Layer.effect(
    RequestInbox,
    Effect.flatMap(Dispatcher, (dispatcher) =>
      makeRequestInbox({
        root: settings.queueDir,
        // The watch on requests/ answers at once; the scan interval is only the safety net for what it drops.
        interval: config.scanInterval,
        onChange: dispatcher.wake,
        // A requeue stops the session's turn first, as the dispatcher does for a run it takes back.
        stopTurn: dispatcher.stopTurn
      }))
  )
  const core = StatusReportLayer.pipe(
    Layer.provideMerge(inbox),
    Layer.provideMerge(DispatcherLayer(settings)),
    Layer.provideMerge(DelegationLayer(delegationSettings(config))),
    Layer.provideMerge(starter),
    Layer.provideMerge(slots),
    Layer.provideMerge(hooks),
    Layer.provideMerge(ports),
    // The same SharedQueue the store came from (layers are built once), for the leases, the feed and the status.
    Layer.provideMerge(Option.getOrElse(shared, () => Layer.empty)),
    // Every log line passes through the redactor: no configured secret reaches the log, whatever an error echoes.
    Layer.provideMerge(Redaction.logger(config.logFormat)),
    Layer.provideMerge(Redaction.fromConfig(config))
  )
  return core
}

const minimumLevel = { debug: "Debug", info: "Info", warning: "Warn", error: "Error" } as const

/** How long a starting daemon waits for a command holding the queue's lock (commands hold it for milliseconds). */
const COMMAND_LOCK_WAIT_MS = 30_000

/** The daemon: the queue's lock first (a second daemon stops here, exit 2, before it binds a port), then the rest. */
export const daemon: Effect.Effect<never, unknown, Config | ChildProcessSpawner.ChildProcessSpawner> = Effect.gen(
  function*() {
    const config = yield* Config
    const problems = [
      ...Option.toArray(Option.fromNullishOr(exposureProblem(config))),
      ...sessionStartProblems(config),
      ...backendProblems(config)
    ]
    if (problems.length > 0) return yield* new ConfigInvalid({ problems })
    const root = resolve(config.queueDir)
    // A queue laid out so moves cannot be atomic is a setting to fix, not a fault to retry: exit 2 like bad settings.
    yield* prepareQueue({ root }).pipe(
      Effect.catchIf(
        (error) => error.operation === "check",
        (error) => Effect.fail(new ConfigInvalid({ problems: [error.message] }))
      )
    )
    // A command (an agent's `task done`) may hold the lock for a moment while no daemon runs: wait it out.
    const lock = yield* acquireQueueLockPatiently(
      root,
      { kind: "daemon", command: "claude-failover" },
      COMMAND_LOCK_WAIT_MS
    )
    return yield* runDaemon(lock).pipe(
      Effect.provide(daemonLayer(config)),
      Effect.provideService(References.MinimumLogLevel, minimumLevel[config.logLevel]),
      // No tracer is installed: recording a span for every named step only cost time and memory.
      Effect.provideService(References.TracerEnabled, false)
    )
  }
).pipe(Effect.scoped)
