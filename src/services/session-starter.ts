/**
 * Sessions the daemon starts (`SESSIONS_START`): the configured sessions that do not exist are created running
 * `CLAUDE_COMMAND`, and a session whose Claude Code exited is restarted, each session with its own growing wait.
 * Easy to get wrong: a session that dies at once must not be restarted in a hot loop — its wait doubles up to a cap
 * and shrinks back only after it stayed up a while — and a restart never comes before its time, whoever asks.
 */
import { resolve } from "node:path"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Result from "effect/Result"
import * as Semaphore from "effect/Semaphore"
import * as CommandLine from "effect/process/CommandLine"
import type { AppConfig } from "../config.ts"
import { type SessionExists, type SessionLaunch, Tmux, type TmuxError, type TmuxNotInstalled } from "../ports/tmux.ts"
import { observeSession, type SessionSelection } from "./sessions.ts"

// ---------------------------------------------------------------------------------------------------------------
// The decision: pure, over the book of what was started when.

/** How long to wait before restarting a session that went down, and when to stop waiting quietly. */
export interface StartPolicy {
  /** The wait before the first restart after a healthy run. */
  readonly firstDelayMs: number
  /** The cap of the doubling wait. */
  readonly maxDelayMs: number
  /** Up this long since its last start, a session is healthy again: its wait and failure count start over. */
  readonly stableAfterMs: number
  /** Restarts in a row without a healthy run after which the session is reported as failing. */
  readonly reportAfter: number
}

/** 5 s doubling to 5 min; 5 min up counts as healthy; the third restart in a row is reported. */
export const defaultStartPolicy: StartPolicy = {
  firstDelayMs: 5_000,
  maxDelayMs: 300_000,
  stableAfterMs: 300_000,
  reportAfter: 3
}

/** What the starter needs to know of a session: running something (up), back at a shell, or not there. */
export type Liveness = "up" | "exited" | "missing"

/** One session's history, as the starter keeps it. */
export interface StartRecord {
  /** Creations and restarts by the starter. */
  readonly starts: number
  readonly restarts: number
  /** Restarts since the session last stayed up `stableAfterMs`. */
  readonly failures: number
  /** The wait before the next restart once the session is seen down. */
  readonly delayMs: number
  /** While down: the earliest moment of the next restart. */
  readonly nextTryAt: number | undefined
  /** While up: when it was first seen up since its last start. */
  readonly upSince: number | undefined
  readonly lastStartAt: number | undefined
  readonly lastSeen: Liveness
}

export type StartBook = ReadonlyMap<string, StartRecord>

export type StartStep =
  /** First sight, not there: created at once. */
  | "create"
  /** Down and its wait is over: started again (`respawn` when exited, a new session when missing). */
  | "restart"
  | "present"
  /** Down, its wait not over. */
  | "wait"

export interface StartDecision {
  readonly session: string
  readonly step: StartStep
  readonly liveness: Liveness
  /** The record after this decision. */
  readonly record: StartRecord
  /** `wait`: this decision began the wait (the session was just seen down). */
  readonly waitBegan: boolean
}

const freshRecord = (policy: StartPolicy, liveness: Liveness): StartRecord => ({
  starts: 0,
  restarts: 0,
  failures: 0,
  delayMs: policy.firstDelayMs,
  nextTryAt: undefined,
  upSince: undefined,
  lastStartAt: undefined,
  lastSeen: liveness
})

const decideOne = (
  previous: StartRecord | undefined,
  session: string,
  liveness: Liveness,
  now: number,
  policy: StartPolicy
): StartDecision => {
  const record = previous ?? freshRecord(policy, liveness)
  if (liveness === "up") {
    const upSince = record.upSince ?? now
    const healthy = now - upSince >= policy.stableAfterMs
    return {
      session,
      step: "present",
      liveness,
      waitBegan: false,
      record: {
        ...record,
        upSince,
        nextTryAt: undefined,
        lastSeen: liveness,
        ...(healthy ? { failures: 0, delayMs: policy.firstDelayMs } : {})
      }
    }
  }
  if (previous === undefined && liveness === "missing") {
    return {
      session,
      step: "create",
      liveness,
      waitBegan: false,
      record: { ...record, starts: 1, lastStartAt: now }
    }
  }
  const nextTryAt = record.nextTryAt ?? now + record.delayMs
  if (now < nextTryAt) {
    return {
      session,
      step: "wait",
      liveness,
      waitBegan: record.nextTryAt === undefined,
      record: { ...record, nextTryAt, upSince: undefined, lastSeen: liveness }
    }
  }
  return {
    session,
    step: "restart",
    liveness,
    waitBegan: false,
    record: {
      ...record,
      starts: record.starts + 1,
      restarts: record.restarts + 1,
      failures: record.failures + 1,
      delayMs: Math.min(policy.maxDelayMs, record.delayMs * 2),
      nextTryAt: undefined,
      upSince: undefined,
      lastStartAt: now,
      lastSeen: liveness
    }
  }
}

/**
 * One decision per session observed (the first observation of a name counts), and the book after them. A session
 * seen missing at first sight is created at once; one seen down later waits its delay (counted from when it was
 * first seen down), is then restarted, and its next delay doubles up to the cap. Sessions not observed keep their
 * record unchanged.
 */
export const decideStarts = (
  book: StartBook,
  observed: ReadonlyArray<{ readonly session: string; readonly liveness: Liveness }>,
  now: number,
  policy: StartPolicy = defaultStartPolicy
): { readonly book: StartBook; readonly decisions: ReadonlyArray<StartDecision> } => {
  const next = new Map(book)
  const decisions: Array<StartDecision> = []
  const seen = new Set<string>()
  for (const { liveness, session } of observed) {
    if (seen.has(session)) continue
    seen.add(session)
    const decision = decideOne(book.get(session), session, liveness, now, policy)
    next.set(session, decision.record)
    decisions.push(decision)
  }
  return { book: next, decisions }
}

/** Reported as failing: restarted `reportAfter` times in a row without a healthy run. */
export const isFailing = (record: StartRecord, policy: StartPolicy = defaultStartPolicy): boolean =>
  record.failures >= policy.reportAfter

// ---------------------------------------------------------------------------------------------------------------
// What an operator is told when no session can take work.

/** What the start-up check found. */
export interface SessionFacts {
  /** tmux answered `-V`, is not installed, or failed otherwise. */
  readonly tmux: { readonly _tag: "ok" } | { readonly _tag: "missing" } | {
    readonly _tag: "failing"
    readonly problem: string
  }
  /** The sessions looked at: the names of TMUX_SESSIONS, or those matching the prefix (possibly none). */
  readonly sessions: ReadonlyArray<{ readonly session: string; readonly liveness: Liveness }>
  readonly selection: SessionSelection
  readonly sessionsStart: boolean
  /** Sessions the starter reports as failing (they keep exiting). */
  readonly failing: ReadonlyArray<string>
  readonly command: ReadonlyArray<string>
  readonly socket: Option.Option<string>
}

const shellLine = (words: ReadonlyArray<string>): string =>
  Result.getOrElse(CommandLine.join(words), () => words.join(" "))

/**
 * One line telling the operator what to do when no session can take work, or none when some session runs (a
 * usage-limited or busy one counts: it exists). The commands quoted in it are ready to paste.
 */
export const sessionAdvice = (facts: SessionFacts): Option.Option<string> => {
  if (facts.tmux._tag === "missing") {
    return Option.some(
      "tmux is not installed: install it (apt-get install -y tmux), then start Claude Code sessions in it"
    )
  }
  if (facts.tmux._tag === "failing") return Option.some(`tmux does not work here: ${facts.tmux.problem}`)
  if (facts.sessions.some((s) => s.liveness === "up")) return Option.none()
  const tmux = ["tmux", ...Option.match(facts.socket, { onNone: () => [], onSome: (socket) => ["-L", socket] })]
  const first = facts.sessions[0]?.session ??
    Option.match(facts.selection.names, {
      onNone: () => `${facts.selection.prefix}1`,
      onSome: (names) => names[0] ?? "claude-1"
    })
  if (facts.sessionsStart) {
    return facts.failing.length === 0
      ? Option.none() // the starter is on it
      : Option.some(
        `no Claude Code session stays up: ${
          facts.failing.join(", ")
        } exit(s) right after SESSIONS_START starts them; ` +
          `run ${shellLine(facts.command)} by hand in SESSIONS_CWD to see why`
      )
  }
  const exited = facts.sessions.filter((s) => s.liveness === "exited").map((s) => s.session)
  if (exited.length > 0) {
    return Option.some(
      `no Claude Code session running: ${exited.join(", ")} ${exited.length === 1 ? "is" : "are"} back at a shell ` +
        `(Claude Code exited): start it again with ${
          shellLine([...tmux, "send-keys", "-t", exited[0] ?? first, shellLine(facts.command), "Enter"])
        }, ` +
        "or set SESSIONS_START=true"
    )
  }
  const where = Option.match(facts.selection.names, {
    onNone: () => `no tmux session named ${facts.selection.prefix}…`,
    onSome: (names) => `none of TMUX_SESSIONS (${names.join(", ")}) exists`
  })
  return Option.some(
    `no Claude Code session found (${where}): start one with ${
      shellLine([...tmux, "new-session", "-d", "-s", first, ...facts.command])
    }, ` +
      "or set SESSIONS_START=true"
  )
}

// ---------------------------------------------------------------------------------------------------------------
// The service.

export interface StarterSettings {
  readonly enabled: boolean
  readonly sessions: SessionSelection
  readonly accounts: Option.Option<ReadonlyMap<string, ReadonlyArray<string>>>
  /** CLAUDE_CONFIG_DIR by account. */
  readonly configDirs: Option.Option<ReadonlyMap<string, string>>
  readonly command: ReadonlyArray<string>
  /** Absolute. */
  readonly cwd: string
  /** For the commands the advice quotes. */
  readonly socket: Option.Option<string>
  /** More variables for every session started (e.g. what its hooks need); the session's own two win. */
  readonly extraEnv: Readonly<Record<string, string>>
  readonly policy: StartPolicy
  readonly width: number
  readonly height: number
}

/** The starter's settings from the configuration; SESSIONS_CWD is resolved against `daemonCwd`, its default. */
export const starterSettings = (config: AppConfig, daemonCwd: string): StarterSettings => ({
  enabled: config.sessionsStart,
  sessions: { names: config.tmuxSessions, prefix: config.tmuxSessionPrefix },
  accounts: config.tmuxAccounts,
  configDirs: config.claudeConfigDirs,
  command: config.claudeCommand,
  cwd: resolve(daemonCwd, Option.getOrElse(config.sessionsCwd, () => ".")),
  socket: config.tmuxSocket,
  extraEnv: {},
  policy: defaultStartPolicy,
  // Wide enough that Claude Code's banners seldom wrap; an operator who attaches resizes it anyway.
  width: 120,
  height: 40
})

/** What `ensure` did about one session. */
export interface StartAction {
  readonly session: string
  readonly action: "created" | "restarted" | "present" | "backing-off"
  readonly detail: string
  /** Worth a log line, and at which level: a start, a failed start, a wait that just began; not a wait going on. */
  readonly log: "info" | "warning" | "none"
}

/** The starter's view of one session, for the status API. */
export interface StarterSessionStatus {
  readonly session: string
  readonly lastSeen: Liveness
  readonly restarts: number
  /** Restarts in a row without a healthy run. */
  readonly failures: number
  /** Reported as failing: it keeps exiting. */
  readonly failing: boolean
  /** While down: when the next restart is due. */
  readonly nextTryAt: Option.Option<number>
  readonly lastStartAt: Option.Option<number>
}

/** A change in what the operator should be told: a new problem, or the old one gone. */
export interface SessionAdvice {
  readonly problem: boolean
  readonly line: string
}

export class SessionStarter extends Context.Service<SessionStarter, {
  /**
   * Once per dispatcher tick: creates the missing sessions, restarts the exited ones whose wait is over, and says
   * what it did for each session it keeps. Does nothing (and returns nothing) unless SESSIONS_START is on. Never fails.
   */
  readonly ensure: Effect.Effect<ReadonlyArray<StartAction>>
  readonly status: Effect.Effect<ReadonlyArray<StarterSessionStatus>>
  /**
   * The start-up check: one line when no session can take work (tmux missing, no session, all exited, or all failing
   * to start), returned only when it differs from the last call's — and, once, a line when the problem is gone.
   */
  readonly advise: Effect.Effect<Option.Option<SessionAdvice>>
}>()("claude-failover/services/SessionStarter") {}

const seconds = (ms: number) => (ms % 60_000 === 0 ? `${ms / 60_000}m` : `${Math.ceil(ms / 1000)}s`)

const accountFor = (settings: StarterSettings, session: string): Option.Option<string> =>
  Option.flatMap(
    settings.accounts,
    (accounts) => Option.fromNullishOr([...accounts].find(([, members]) => members.includes(session))?.[0])
  )

/** The program run, its environment and directory for one session. */
export const launchFor = (settings: StarterSettings, session: string): SessionLaunch => {
  const configDir = Option.flatMap(
    accountFor(settings, session),
    (account) => Option.flatMap(settings.configDirs, (dirs) => Option.fromNullishOr(dirs.get(account)))
  )
  return {
    command: settings.command,
    env: {
      ...settings.extraEnv,
      CLAUDE_FAILOVER_SESSION: session,
      ...Option.match(configDir, { onNone: () => ({}), onSome: (dir) => ({ CLAUDE_CONFIG_DIR: dir }) })
    },
    cwd: settings.cwd,
    width: settings.width,
    height: settings.height
  }
}

const livenessOf = (state: string): Liveness => (state === "missing" ? "missing" : state === "exited" ? "exited" : "up")

export const makeSessionStarter = (settings: StarterSettings) =>
  Effect.gen(function*() {
    const tmux = yield* Tmux
    const ports = yield* Effect.context<Tmux>()
    const book = yield* Ref.make<StartBook>(new Map())
    /** The sessions the last `ensure` kept, in its order. */
    const kept = yield* Ref.make<ReadonlyArray<string>>([])
    const lastAdvice = yield* Ref.make<Option.Option<string>>(Option.none())
    const oneAtATime = yield* Semaphore.make(1)
    const policy = settings.policy
    const shown = shellLine(settings.command)

    /**
     * The sessions to keep up: TMUX_SESSIONS; or, with the prefix, those that exist, those the starter started
     * (recreated when they vanish), and PREFIX1 when there is none at all.
     */
    const sessionsToKeep = Effect.gen(function*() {
      if (Option.isSome(settings.sessions.names)) return settings.sessions.names.value
      // tmux failing to list is the advice's business (see `advise`); the starter keeps what it knows.
      const listed = (yield* tmux.listSessions().pipe(Effect.orElseSucceed((): ReadonlyArray<string> => [])))
        .filter((name) => name.startsWith(settings.sessions.prefix))
      const started = [...(yield* Ref.get(book))].filter(([, record]) => record.starts > 0).map(([name]) => name)
      const all = [...new Set([...listed, ...started])].sort()
      return all.length > 0 ? all : [`${settings.sessions.prefix}1`]
    })

    const observe = (session: string, now: number) =>
      observeSession(session, { now, timeZone: "UTC" }).pipe(
        Effect.map((observation) => ({ session, liveness: livenessOf(observation.state) }))
      )

    const describeLaunch = (session: string) => {
      const launch = launchFor(settings, session)
      const dir = launch.env.CLAUDE_CONFIG_DIR === undefined
        ? ""
        : `, CLAUDE_CONFIG_DIR=${launch.env.CLAUDE_CONFIG_DIR}`
      return `running ${shown} in ${launch.cwd}${dir}`
    }

    /** Carries out a create or restart; the decision already counted it, so a failure simply waits its turn. */
    const act = (decision: StartDecision): Effect.Effect<StartAction> => {
      const { record, session } = decision
      const launch = launchFor(settings, session)
      const start: Effect.Effect<void, TmuxError | TmuxNotInstalled | SessionExists> = decision.liveness === "exited"
        ? tmux.respawn(session, launch).pipe(
          // Gone between the look and the restart: start it afresh.
          Effect.catchTag("SessionNotFound", () => tmux.newSession(session, launch))
        )
        : tmux.newSession(session, launch)
      const why = decision.liveness === "exited"
        ? "Claude Code exited (the pane was back at a shell)"
        : "the session was gone"
      const failing = isFailing(record, policy)
      const done: StartAction = decision.step === "create"
        ? { session, action: "created", detail: `started ${describeLaunch(session)}`, log: "info" }
        : {
          session,
          action: "restarted",
          detail: failing
            ? `keeps exiting: restart ${record.failures} in a row without staying up ${
              seconds(policy.stableAfterMs)
            } ` +
              `(${why}); restarted ${describeLaunch(session)}; next wait ${seconds(record.delayMs)} — ` +
              `run ${shown} by hand to see why it exits`
            : `${why}; restarted ${describeLaunch(session)} (restart ${record.restarts})`,
          log: failing ? "warning" : "info"
        }
      return start.pipe(
        Effect.as(done),
        Effect.catch((error) =>
          Effect.succeed<StartAction>(
            error._tag === "SessionExists"
              ? { session, action: "present", detail: "started meanwhile by someone else", log: "none" }
              : {
                session,
                action: "backing-off",
                detail: `could not start it: ${error.message}; next try after ${seconds(record.delayMs)}`,
                log: "warning"
              }
          )
        ),
        Effect.withSpan("SessionStarter.start", { attributes: { session, step: decision.step } })
      )
    }

    const report = (decision: StartDecision, now: number): Effect.Effect<StartAction> => {
      const { record, session } = decision
      switch (decision.step) {
        case "present":
          return Effect.succeed({ session, action: "present", detail: "running", log: "none" })
        case "wait": {
          const inMs = (record.nextTryAt ?? now) - now
          const what = decision.liveness === "exited" ? "Claude Code exited (back at a shell)" : "the session is gone"
          const failing = isFailing(record, policy)
          return Effect.succeed({
            session,
            action: "backing-off",
            detail: `${what}; restart in ${seconds(inMs)}${
              failing ? ` (failing: ${record.failures} restarts in a row)` : ""
            }`,
            log: decision.waitBegan ? (failing ? "warning" : "info") : "none"
          })
        }
        default:
          return act(decision)
      }
    }

    const ensure = oneAtATime.withPermit(Effect.gen(function*() {
      if (!settings.enabled) return []
      const now = yield* Clock.currentTimeMillis
      const sessions = yield* sessionsToKeep
      yield* Ref.set(kept, sessions)
      const looks = yield* Effect.forEach(sessions, (session) => Effect.result(observe(session, now)), {
        concurrency: 4
      })
      const observed = looks.flatMap((look) => (Result.isSuccess(look) ? [look.success] : []))
      const { book: next, decisions } = decideStarts(yield* Ref.get(book), observed, now, policy)
      yield* Ref.set(book, next)
      const actions = yield* Effect.forEach(decisions, (decision) => report(decision, now))
      // A session tmux could not be asked about keeps its record: nothing is decided on no facts.
      const unseen = sessions.flatMap((session, i) => {
        const look = looks[i]
        return look !== undefined && Result.isFailure(look)
          ? [{
            session,
            action: "backing-off" as const,
            detail: `cannot see it: ${look.failure.message}`,
            log: "none" as const
          }]
          : []
      })
      return [...actions, ...unseen]
    })).pipe(
      Effect.withSpan("SessionStarter.ensure"),
      Effect.provideContext(ports)
    )

    const status = Effect.gen(function*() {
      const records = yield* Ref.get(book)
      const names = [...new Set([...(yield* Ref.get(kept)), ...records.keys()])].sort()
      return names.flatMap((session): ReadonlyArray<StarterSessionStatus> => {
        const record = records.get(session)
        if (record === undefined) return []
        return [{
          session,
          lastSeen: record.lastSeen,
          restarts: record.restarts,
          failures: record.failures,
          failing: isFailing(record, policy),
          nextTryAt: Option.fromNullishOr(record.nextTryAt),
          lastStartAt: Option.fromNullishOr(record.lastStartAt)
        }]
      })
    })

    const facts = Effect.gen(function*() {
      const version = yield* Effect.result(tmux.version())
      const tmuxFacts: SessionFacts["tmux"] = Result.isSuccess(version)
        ? { _tag: "ok" }
        : version.failure._tag === "TmuxNotInstalled"
        ? { _tag: "missing" }
        : { _tag: "failing", problem: version.failure.message }
      const now = yield* Clock.currentTimeMillis
      const names = tmuxFacts._tag !== "ok"
        ? []
        : Option.isSome(settings.sessions.names)
        ? settings.sessions.names.value
        : yield* tmux.listSessions().pipe(
          Effect.map((all) => all.filter((name) => name.startsWith(settings.sessions.prefix))),
          Effect.orElseSucceed(() => [])
        )
      const looks = yield* Effect.forEach(names, (session) => Effect.result(observe(session, now)), { concurrency: 4 })
      const records = yield* Ref.get(book)
      return {
        tmux: tmuxFacts,
        sessions: looks.flatMap((look) => (Result.isSuccess(look) ? [look.success] : [])),
        selection: settings.sessions,
        sessionsStart: settings.enabled,
        failing: [...records].filter(([, record]) => isFailing(record, policy) && record.lastSeen !== "up").map((
          [name]
        ) => name),
        command: settings.command,
        socket: settings.socket
      } satisfies SessionFacts
    })

    const advise = Effect.gen(function*() {
      const line = sessionAdvice(yield* facts)
      const before = yield* Ref.getAndSet(lastAdvice, line)
      if (Option.isSome(line)) {
        return Option.isSome(before) && before.value === line.value
          ? Option.none()
          : Option.some({ problem: true, line: line.value })
      }
      return Option.isSome(before)
        ? Option.some({ problem: false, line: "a Claude Code session is up: the earlier problem is gone" })
        : Option.none()
    }).pipe(Effect.withSpan("SessionStarter.advise"), Effect.provideContext(ports))

    return SessionStarter.of({ ensure, status, advise })
  })

export const SessionStarterLayer = (settings: StarterSettings) =>
  Layer.effect(SessionStarter, makeSessionStarter(settings))

/** A starter that starts nothing (SESSIONS_START off): for services tested without it. Needs Tmux. */
export const SessionStarterOff = SessionStarterLayer({
  enabled: false,
  sessions: { names: Option.none(), prefix: "claude-" },
  accounts: Option.none(),
  configDirs: Option.none(),
  command: ["claude"],
  cwd: "/",
  socket: Option.none(),
  extraEnv: {},
  policy: defaultStartPolicy,
  width: 120,
  height: 40
})

/** The log lines for what `ensure` did: one per action worth one, annotated with its session. */
export const logStartActions = (actions: ReadonlyArray<StartAction>): Effect.Effect<void> =>
  Effect.forEach(actions, (action) => {
    const line = `session ${action.session}: ${action.action}: ${action.detail}`
    const logged = action.log === "warning"
      ? Effect.logWarning(line)
      : action.log === "info"
      ? Effect.logInfo(line)
      : Effect.void
    return logged.pipe(Effect.annotateLogs({ session: action.session }))
  }, { discard: true })
