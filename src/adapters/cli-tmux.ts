/**
 * The live tmux adapter: runs the tmux binary directly (no shell), optionally on a private server (`-L`).
 * Easy to get wrong: targets use `=NAME:` so `claude-1` never matches `claude-10`, and text goes through a paste
 * buffer, so quotes, `$(…)`, backticks and newlines arrive as text and a newline never submits early.
 */
import { Effect, Layer, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { SessionNotFound, Tmux, TmuxError } from "../ports/tmux.ts"

export interface TmuxOptions {
  /** `tmux -L NAME`: a private server, as tests and staging use. */
  readonly socket?: string
}

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
      return Effect.fail(new TmuxError({ command: args[0] ?? "", problem: outcome.stderr.trim() || `exit ${outcome.code}` }))
    }))

  const target = (session: string) => `=${session}:`

  return Tmux.of({
    listSessions: () =>
      tmux(["list-sessions", "-F", "#{session_name}"]).pipe(Effect.flatMap((outcome): Effect.Effect<ReadonlyArray<string>, TmuxError> => {
        if (outcome.code === 0) return Effect.succeed(outcome.stdout.split("\n").filter((line) => line !== "").sort())
        if (NO_SERVER.test(outcome.stderr)) return Effect.succeed([])
        return Effect.fail(new TmuxError({ command: "list-sessions", problem: outcome.stderr.trim() }))
      })),
    hasSession: (session) =>
      tmux(["has-session", "-t", `=${session}`]).pipe(Effect.map((outcome) => outcome.code === 0)),
    capturePane: (session, options) =>
      onSession(session, [
        "capture-pane",
        "-p",
        ...(options?.history === undefined ? [] : ["-S", `-${options.history}`]),
        "-t",
        target(session)
      ]),
    paneCommand: (session) =>
      onSession(session, ["display-message", "-p", "-t", target(session), "#{pane_current_command}"]).pipe(
        Effect.map((out) => out.trim())
      ),
    sendText: (session, text) => {
      // One buffer per call, deleted by the paste (-d); -p pastes in bracketed mode when the app asked for it.
      const buffer = `claude-failover-${process.pid}-${Math.random().toString(36).slice(2, 10)}`
      return onSession(session, ["load-buffer", "-b", buffer, "-"], text).pipe(
        Effect.andThen(onSession(session, ["paste-buffer", "-p", "-d", "-b", buffer, "-t", target(session)])),
        Effect.asVoid
      )
    },
    sendEnter: (session) => onSession(session, ["send-keys", "-t", target(session), "Enter"]).pipe(Effect.asVoid),
    clearInput: (session) => onSession(session, ["send-keys", "-t", target(session), "C-c"]).pipe(Effect.asVoid),
    interrupt: (session) => onSession(session, ["send-keys", "-t", target(session), "C-c"]).pipe(Effect.asVoid)
  })
})

export const CliTmuxLayer = (options: TmuxOptions = {}) => Layer.effect(Tmux, makeCliTmux(options))
