/**
 * The daemon: Layers built from the configuration, start-up recovery, the delegation submitter and reaper, the
 * status API, then the dispatcher loop, woken early by inotify on the queue and otherwise every poll interval.
 * Easy to get wrong: inotify drops events silently when its queue overflows, so the watcher only wakes the loop;
 * the periodic full scan is what guarantees pickup.
 */
import { watch } from "node:fs"
import { join, resolve } from "node:path"
import { Cause, Duration, Effect, Layer, Logger, Option } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { CliTmuxLayer } from "./adapters/cli-tmux.ts"
import { DryRunTmuxLayer } from "./adapters/dry-run-tmux.ts"
import { FsTaskStoreLayer } from "./adapters/fs-task-store.ts"
import { HttpApiLayer } from "./adapters/http-api/server.ts"
import { logRetry } from "./adapters/http-secutools.ts"
import { SecutoolsFromConfig } from "./adapters/secutools-layer.ts"
import { TaskStore } from "./ports/task-store.ts"
import { type AppConfig, Config, describeConfig, routingSettings } from "./config.ts"
import { Delegation, DelegationCountersRef, DelegationLayer, type DelegationSettings } from "./services/delegation.ts"
import { Dispatcher, DispatcherLayer, type DispatchSettings } from "./services/dispatcher.ts"
import { recover } from "./services/recovery.ts"
import { StatusReportLayer } from "./services/status.ts"

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
    timeZone: hostTimeZone(),
    queueDir,
    command: { program: completionProgram(), queueDir },
    routing: routingSettings(config),
    enterDelay: Duration.millis(200),
    failpoint: process.env.CLAUDE_FAILOVER_FAILPOINT === "after-assign" ? Option.some("after-assign") : Option.none()
  }
}

/** Wakes the dispatcher on any change in pending/ or active/; the scan interval covers what inotify drops. */
export const watchQueue = (queueDir: string) =>
  Effect.gen(function*() {
    const dispatcher = yield* Dispatcher
    const wake = () => Effect.runFork(dispatcher.wake)
    for (const stage of ["pending", "active"]) {
      yield* Effect.acquireRelease(
        Effect.sync(() => watch(join(queueDir, stage), { persistent: false }, wake)),
        (watcher) => Effect.sync(() => watcher.close())
      )
    }
  })

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

export const runDaemon = Effect.gen(function*() {
  const config = yield* Config
  const settings = dispatchSettings(config)
  yield* Effect.logInfo(`claude-failover starting on ${settings.queueDir}`).pipe(
    Effect.annotateLogs({ config: JSON.stringify(describeConfig(config)) })
  )
  const recovered = yield* recover(settings.timeZone)
  if (recovered.duplicates.length + recovered.requeued.length > 0) {
    yield* Effect.logInfo(
      `recovery: removed ${recovered.duplicates.length} duplicate(s), requeued ${recovered.requeued.length} task(s)`
    )
  }
  yield* startDelegation(settings.routing.delegationEnabled)
  yield* watchQueue(settings.queueDir)
  const dispatcher = yield* Dispatcher
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
      workFor: config.dryRunDelay
    })
    : CliTmuxLayer(Option.match(config.tmuxSocket, { onNone: () => ({}), onSome: (socket) => ({ socket }) }))

/** Every Layer the daemon needs, chosen from the configuration. */
export const daemonLayer = (config: AppConfig) => {
  const settings = dispatchSettings(config)
  const ports = Layer.mergeAll(
    FsTaskStoreLayer({ root: settings.queueDir }),
    tmuxLayer(config),
    secutoolsLayer(config)
  ).pipe(Layer.provideMerge(DelegationCountersRef.layer))
  const core = DispatcherLayer(settings).pipe(
    Layer.provideMerge(DelegationLayer(delegationSettings(config))),
    Layer.provideMerge(ports),
    Layer.provideMerge(Logger.layer([config.logFormat === "json" ? Logger.consoleJson : Logger.consolePretty()]))
  )
  const api = HttpApiLayer({ host: config.apiHost, port: config.apiPort, token: config.apiToken }).pipe(
    Layer.provide(StatusReportLayer)
  )
  return api.pipe(Layer.provideMerge(core))
}

export const daemon: Effect.Effect<never, unknown, Config | ChildProcessSpawner.ChildProcessSpawner> = Effect.gen(
  function*() {
    const config = yield* Config
    return yield* runDaemon.pipe(Effect.provide(daemonLayer(config)))
  }
)
