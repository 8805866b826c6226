/**
 * The live tmux adapter: runs the tmux binary directly (no shell), optionally on a private server (`-L`).
 * Easy to get wrong: targets use `=NAME:` so `claude-1` never matches `claude-10`, and text goes through a paste
 * buffer, so quotes, `$(…)`, backticks and newlines arrive as text and a newline never submits early.
 */
import { statSync } from "node:fs"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as ChildProcess from "effect/process/ChildProcess"
import * as ChildProcessSpawner from "effect/process/ChildProcessSpawner"
import { SessionExists, type SessionLaunch, SessionNotFound, Tmux, TmuxError, TmuxNotInstalled } from "../ports/tmux.ts"

export interface TmuxOptions {
  /** `tmux -L NAME`: a private server, as tests and staging use. */
  readonly socket?: string
  /**
   * Variables a tmux server started by `newSession` must not copy from this process (a server's environment is the
   * one it was started with, and every pane inherits it): the daemon's secrets.
   */
  readonly withholdEnv?: ReadonlyArray<string>
}

/**
 * tmux reads its own command line before it reads the arguments: an argument ending in `;` ends a tmux command
 * (written `\;` it is a `;`), and `-s` / `-c` are formats, where `#` starts an expansion (written `##` it is a `#`).
 */
const tmuxArgument = (arg: string): string => (arg.endsWith(";") ? `${arg.slice(0, -1)}\\;` : arg)
const formatArgument = (arg: string): string => tmuxArgument(arg.replaceAll("#", "##"))

/**
 * The launch as tmux arguments. tmux runs a command of one word through `sh -c`; `env` in front makes it two, so
 * even `claude` alone is executed directly, and `pane_current_command` is still the program (env execs it).
 */
const launchArguments = (launch: SessionLaunch): ReadonlyArray<string> => [
  ...Object.entries(launch.env).flatMap(([key, value]) => ["-e", tmuxArgument(`${key}=${value}`)]),
  "-c",
  formatArgument(launch.cwd),
  "--",
  ...(launch.command.length === 1 ? ["env"] : []),
  ...launch.command.map(tmuxArgument)
]

interface Outcome {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** What tmux says when the server or the session is not there. */
const NO_SERVER = /no server running|error connecting to|server exited unexpectedly/i
const NO_SESSION = /can't find (?:session|pane|window)|session not found/i

export const makeCliTmux = Effect.fn("makeCliTmux")(function*(options: TmuxOptions = {}) {
  const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
  const prefix = options.socket === undefined ? [] : ["-L", options.socket]

  const tmux = (args: ReadonlyArray<string>, stdin?: string): Effect.Effect<Outcome, TmuxError> =>
    Effect.scoped(Effect.gen(function*() {
      const handle = yield* spawner.spawn(ChildProcess.make("tmux", [...prefix, ...args], {
        stdin: stdin === undefined ? "ignore" : Stream.make(new TextEncoder().encode(stdin))
      }))
      const [stdout, stderr] = yield* Effect.all([
        handle.stdout.pipe(Stream.decodeText(), Stream.mkString),
        handle.stderr.pipe(Stream.decodeText(), Stream.mkString)
      ], { concurrency: 2 })
      return { code: Number(yield* handle.exitCode), stdout, stderr }
    })).pipe(
      Effect.mapError((error) => new TmuxError({ command: args[0] ?? "", problem: error.message }))
    )

  /** Runs a command aimed at one session; a missing session or server is SessionNotFound. */
  const onSession = (
    session: string,
    args: ReadonlyArray<string>,
    stdin?: string
  ): Effect.Effect<string, TmuxError | SessionNotFound> =>
    tmux(args, stdin).pipe(Effect.flatMap((outcome): Effect.Effect<string, TmuxError | SessionNotFound> => {
      if (outcome.code === 0) return Effect.succeed(outcome.stdout)
      if (NO_SESSION.test(outcome.stderr) || NO_SERVER.test(outcome.stderr)) {
        return Effect.fail(new SessionNotFound({ session }))
      }
      return Effect.fail(
        new TmuxError({ command: args[0] ?? "", problem: outcome.stderr.trim() || `exit ${outcome.code}` })
      )
    }))

  const target = (session: string) => `=${session}:`

  /** Like `tmux`, for the commands added with session starting: a missing binary is TmuxNotInstalled. */
  const run = (args: ReadonlyArray<string>, withhold: ReadonlyArray<string> = []) =>
    Effect.scoped(Effect.gen(function*() {
      const env = withhold.length === 0
        ? {}
        : {
          env: Object.fromEntries(Object.entries(process.env).filter(([key]) => !withhold.includes(key))),
          extendEnv: false
        }
      const handle = yield* spawner.spawn(ChildProcess.make("tmux", [...prefix, ...args], { stdin: "ignore", ...env }))
      const [stdout, stderr] = yield* Effect.all([
        handle.stdout.pipe(Stream.decodeText(), Stream.mkString),
        handle.stderr.pipe(Stream.decodeText(), Stream.mkString)
      ], { concurrency: 2 })
      return { code: Number(yield* handle.exitCode), stdout, stderr } satisfies Outcome
    })).pipe(
      Effect.mapError((error) =>
        error.reason._tag === "NotFound"
          ? new TmuxNotInstalled({ problem: error.message })
          : new TmuxError({ command: args[0] ?? "", problem: error.message })
      )
    )
  const failed = (command: string, outcome: Outcome) =>
    new TmuxError({ command, problem: outcome.stderr.trim() || `exit ${outcome.code}` })
  /** tmux would start the pane in some other directory without a word: refuse first. */
  const checkDirectory = (command: string, cwd: string) =>
    Effect.try({
      try: () => statSync(cwd).isDirectory(),
      catch: (error) => new TmuxError({ command, problem: `working directory ${cwd}: ${String(error)}` })
    }).pipe(Effect.flatMap((isDirectory) =>
      isDirectory
        ? Effect.void
        : Effect.fail(new TmuxError({ command, problem: `working directory ${cwd} is not a directory` }))
    ))
  const size = (launch: SessionLaunch) => [
    ...(launch.width === undefined ? [] : ["-x", String(launch.width)]),
    ...(launch.height === undefined ? [] : ["-y", String(launch.height)])
  ]

  return Tmux.of({
    listSessions: () =>
      tmux(["list-sessions", "-F", "#{session_name}"]).pipe(
        Effect.flatMap((outcome): Effect.Effect<ReadonlyArray<string>, TmuxError> => {
          if (outcome.code === 0) return Effect.succeed(outcome.stdout.split("\n").filter((line) => line !== "").sort())
          if (NO_SERVER.test(outcome.stderr)) return Effect.succeed([])
          return Effect.fail(new TmuxError({ command: "list-sessions", problem: outcome.stderr.trim() }))
        })
      ),
    capturePane: (session, options) =>
      onSession(session, [
        "capture-pane",
        "-p",
        ...(options?.history === undefined ? [] : ["-S", `-${options.history}`]),
        "-t",
        target(session)
      ]),
    // `;` as an argument of its own separates tmux commands: one process does both, a third of the cost of three.
    lookAtPane: (session) =>
      onSession(session, [
        "display-message",
        "-p",
        "-t",
        target(session),
        "#{pane_current_command}",
        ";",
        "capture-pane",
        "-p",
        "-t",
        target(session)
      ]).pipe(Effect.map((out) => {
        const end = out.indexOf("\n")
        return end === -1
          ? { command: out.trim(), screen: "" }
          : { command: out.slice(0, end).trim(), screen: out.slice(end + 1) }
      })),
    sendText: (session, text) => {
      // One buffer per call, deleted by the paste (-d); -p pastes in bracketed mode when the app asked for it.
      const buffer = `claude-failover-${process.pid}-${Math.random().toString(36).slice(2, 10)}`
      return onSession(session, [
        "load-buffer",
        "-b",
        buffer,
        "-",
        ";",
        "paste-buffer",
        "-p",
        "-d",
        "-b",
        buffer,
        "-t",
        target(session)
      ], text).pipe(Effect.asVoid)
    },
    sendEnter: (session) => onSession(session, ["send-keys", "-t", target(session), "Enter"]).pipe(Effect.asVoid),
    clearInput: (session) => onSession(session, ["send-keys", "-t", target(session), "C-c"]).pipe(Effect.asVoid),
    sendEscape: (session) => onSession(session, ["send-keys", "-t", target(session), "Escape"]).pipe(Effect.asVoid),
    interrupt: (session) => onSession(session, ["send-keys", "-t", target(session), "C-c"]).pipe(Effect.asVoid),
    newSession: (session, launch) =>
      checkDirectory("new-session", launch.cwd).pipe(
        Effect.andThen(run(
          ["new-session", "-d", "-s", formatArgument(session), ...size(launch), ...launchArguments(launch)],
          options.withholdEnv
        )),
        Effect.flatMap((outcome): Effect.Effect<void, TmuxError | SessionExists> => {
          if (outcome.code === 0) return Effect.void
          if (/duplicate session/i.test(outcome.stderr)) return Effect.fail(new SessionExists({ session }))
          return Effect.fail(failed("new-session", outcome))
        })
      ),
    respawn: (session, launch) =>
      checkDirectory("respawn-pane", launch.cwd).pipe(
        Effect.andThen(run(["respawn-pane", "-k", "-t", target(session), ...launchArguments(launch)])),
        Effect.flatMap((outcome): Effect.Effect<void, TmuxError | SessionNotFound> => {
          if (outcome.code === 0) return Effect.void
          if (NO_SESSION.test(outcome.stderr) || NO_SERVER.test(outcome.stderr)) {
            return Effect.fail(new SessionNotFound({ session }))
          }
          return Effect.fail(failed("respawn-pane", outcome))
        })
      ),
    version: () =>
      run(["-V"]).pipe(
        Effect.flatMap((outcome) =>
          outcome.code === 0 ? Effect.succeed(outcome.stdout.trim()) : Effect.fail(failed("-V", outcome))
        )
      )
  })
})

export const CliTmuxLayer = (options: TmuxOptions = {}) => Layer.effect(Tmux, makeCliTmux(options))
