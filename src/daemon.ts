/**
 * The daemon: Layers built from the configuration, start-up recovery, the delegation submitter and reaper, the
 * status API, then the dispatcher loop, woken early by inotify on the queue and otherwise every poll interval.
 * Easy to get wrong: inotify drops events silently when its queue overflows, so the watcher only wakes the loop;
 * the periodic full scan is what guarantees pickup.
 */
import { watch } from "node:fs"
import { join, resolve } from "node:path"
import { Cause, Duration, Effect, Layer, Option } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { CliTmuxLayer } from "./adapters/cli-tmux.ts"
import { DryRunTmuxLayer } from "./adapters/dry-run-tmux.ts"
import { FsTaskStoreLayer, prepareQueue, removeTempDebris, REQUESTS_DIR } from "./adapters/fs-task-store.ts"
import { serveHttpApi } from "./adapters/http-api/server.ts"
import { acquireQueueLockPatiently, type HeldLock } from "./adapters/queue-lock.ts"
import { logRetry } from "./adapters/http-secutools.ts"
import { SecutoolsFromConfig } from "./adapters/secutools-layer.ts"
import { TaskStore } from "./ports/task-store.ts"
import { type AppConfig, Config, ConfigInvalid, describeConfig, exposureProblem, routingSettings } from "./config.ts"
import { Delegation, DelegationCountersRef, DelegationLayer, type DelegationSettings } from "./services/delegation.ts"
import { Dispatcher, DispatcherLayer, type DispatchSettings } from "./services/dispatcher.ts"
import { recover } from "./services/recovery.ts"
import { makeRequestInbox, RequestInbox } from "./services/request-inbox.ts"
import { StatusReportLayer } from "./services/status.ts"
import { OwnWrites } from "./services/own-writes.ts"
import { Redaction } from "./services/redaction.ts"
import { TaskLocks } from "./services/task-locks.ts"

/** The command an agent runs when finished: this Node and this checkout's CLI, by absolute path. */
export const completionProgram = (): ReadonlyArray<string> => [
  process.execPath,
  resolve(import.meta.dirname, "../bin/claude-failover.js")
]

export const hostTimeZone = (): string => Intl.DateTimeFormat().resolvedOptions().timeZone

export const dispatchSettings = (config: AppConfig): DispatchSettings => {
  const queueDir = resolve(config.queueDir)
  return {
    sessions: { names: config.tmuxSessions, prefix: config.tmuxSessionPrefix },
    accounts: config.tmuxAccounts,
    pollInterval: config.pollInterval,
    scanInterval: config.scanInterval,
    staleAfter: config.staleAfter,
    requeueAfter: config.requeueAfter,
    limitCooldown: config.limitCooldown,
    maxAttempts: config.maxAttempts,
    settleAfter: config.settleAfter,
    timeZone: hostTimeZone(),
    queueDir,
    command: { program: completionProgram(), queueDir },
    routing: routingSettings(config),
    enterDelay: Duration.millis(200)
  }
}

/**
 * Wakes the dispatcher on any change in pending/ or active/, and the request inbox on a new request; the scan and
 * poll intervals cover what inotify drops.
 */
export const watchQueue = (queueDir: string, wake: { readonly queue: Effect.Effect<void>; readonly requests: Effect.Effect<void> }) =>
  Effect.forEach([["pending", wake.queue], ["active", wake.queue], [REQUESTS_DIR, wake.requests]] as const, ([dir, wakeUp]) =>
    Effect.acquireRelease(
      Effect.sync(() => watch(join(queueDir, dir), { persistent: false }, () => Effect.runFork(wakeUp))),
      (watcher) => Effect.sync(() => watcher.close())
    ), { discard: true })

export const delegationSettings = (config: AppConfig): DelegationSettings => ({
  reapInterval: config.reapInterval,
  reapConcurrency: config.reapConcurrency,
  jobTimeout: config.secutoolsJobTimeout
})

/** Runs a loop forever: a defect is logged and the loop starts again a second later; only interruption stops it. */
export const supervised = (name: string, loop: Effect.Effect<never>): Effect.Effect<never> =>
  loop.pipe(
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause)
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
    const waiting = yield* TaskStore.use((store) => store.listMarkers())
    if (waiting.length > 0) {
      yield* Effect.logWarning(
        `${waiting.length} delegated task(s) in pending/ wait: SECUTOOLS_API_KEY is not set, so their jobs are not polled`
      )
    }
  })

/** After the lock: the status API, debris and recovery, then the loops; runs until interrupted. */
export const runDaemon = (lock: HeldLock) =>
  Effect.gen(function*() {
    const config = yield* Config
    const settings = dispatchSettings(config)
    yield* Effect.logInfo(`claude-failover starting on ${settings.queueDir}`).pipe(
      Effect.annotateLogs({ config: JSON.stringify(describeConfig(config)) })
    )
    const url = yield* serveHttpApi({
      host: config.apiHost,
      port: config.apiPort,
      token: config.apiToken,
      allowedHosts: Option.getOrElse(config.apiAllowedHosts, () => [])
    })
    yield* lock.label({ api: url })
    const debris = yield* removeTempDebris(settings.queueDir)
    if (debris.length > 0) yield* Effect.logInfo(`removed ${debris.length} temporary file(s) left by a crash`)
    const recovered = yield* recover({ timeZone: settings.timeZone, maxAttempts: config.maxAttempts })
    for (const action of recovered.actions) yield* Effect.logWarning(`recovery: ${action}`)
    yield* startDelegation(settings.routing.delegationEnabled)
    const inbox = yield* RequestInbox
    const dispatcher = yield* Dispatcher
    yield* watchQueue(settings.queueDir, { queue: dispatcher.wake, requests: inbox.wake })
    yield* inbox.drain
    yield* Effect.forkScoped(supervised("request inbox", inbox.run))
    return yield* supervised("dispatcher", dispatcher.run)
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
    : CliTmuxLayer(Option.match(config.tmuxSocket, { onNone: () => ({}), onSome: (socket) => ({ socket }) }))

/** Every Layer the daemon needs, chosen from the configuration. */
export const daemonLayer = (config: AppConfig) => {
  const settings = dispatchSettings(config)
  const ports = Layer.mergeAll(
    OwnWrites.tracking.pipe(Layer.provide(FsTaskStoreLayer({ root: settings.queueDir, maxTaskBytes: config.maxTaskSize }))),
    tmuxLayer(config),
    secutoolsLayer(config),
    TaskLocks.layer
  ).pipe(Layer.provideMerge(DelegationCountersRef.layer))
  // A request that changed the queue (a task done) frees a session: the dispatcher is woken.
  const inbox = Layer.effect(
    RequestInbox,
    Effect.flatMap(Dispatcher, (dispatcher) =>
      makeRequestInbox({ root: settings.queueDir, interval: config.pollInterval, onChange: dispatcher.wake }))
  )
  const core = StatusReportLayer.pipe(
    Layer.provideMerge(inbox),
    Layer.provideMerge(DispatcherLayer(settings)),
    Layer.provideMerge(DelegationLayer(delegationSettings(config))),
    Layer.provideMerge(ports),
    // Every log line passes through the redactor: no configured secret reaches the log, whatever an error echoes.
    Layer.provideMerge(Redaction.logger(config.logFormat)),
    Layer.provideMerge(Redaction.fromConfig(config))
  )
  return core
}

/** How long a starting daemon waits for a command holding the queue's lock (commands hold it for milliseconds). */
const COMMAND_LOCK_WAIT_MS = 30_000

/** The daemon: the queue's lock first (a second daemon stops here, exit 2, before it binds a port), then the rest. */
export const daemon: Effect.Effect<never, unknown, Config | ChildProcessSpawner.ChildProcessSpawner> = Effect.gen(
  function*() {
    const config = yield* Config
    const exposure = exposureProblem(config)
    if (exposure !== undefined) return yield* new ConfigInvalid({ problems: [exposure] })
    const root = resolve(config.queueDir)
    // A queue laid out so moves cannot be atomic is a setting to fix, not a fault to retry: exit 2 like bad settings.
    yield* prepareQueue({ root }).pipe(
      Effect.catchIf((error) => error.operation === "check", (error) => Effect.fail(new ConfigInvalid({ problems: [error.message] })))
    )
    // A command (an agent's `task done`) may hold the lock for a moment while no daemon runs: wait it out.
    const lock = yield* acquireQueueLockPatiently(root, { kind: "daemon", command: "claude-failover" }, COMMAND_LOCK_WAIT_MS)
    return yield* runDaemon(lock).pipe(Effect.provide(daemonLayer(config)))
  }
).pipe(Effect.scoped)
