/**
 * `PaneSessions` on the tmux binary: `tmux display-message -t %PANE` on the daemon's own tmux server.
 * Easy to get wrong: pane ids repeat on every tmux server, so the answer counts only when the server's socket is the
 * one the hook's `$TMUX` named; and this runs while Claude Code waits for the hook's answer, so it is bounded in time
 * and every failure reads as "not one of ours".
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as ChildProcess from "effect/process/ChildProcess"
import * as ChildProcessSpawner from "effect/process/ChildProcessSpawner"
import { PaneSessions } from "../../services/hook-receiver.ts"

export interface TmuxPaneSessionsOptions {
  /** `tmux -L NAME`, as TMUX_SOCKET; unset = the default server (or the one `$TMUX` names, as tmux itself decides). */
  readonly socket?: string
}

const SEPARATOR = "\t"

export const TmuxPaneSessionsLayer = (options: TmuxPaneSessionsOptions = {}) =>
  Layer.effect(
    PaneSessions,
    Effect.gen(function*() {
      const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
      const prefix = options.socket === undefined ? [] : ["-L", options.socket]
      return PaneSessions.of({
        sessionOf: (ref) =>
          Effect.scoped(Effect.gen(function*() {
            const handle = yield* spawner.spawn(ChildProcess.make("tmux", [
              ...prefix,
              "display-message",
              "-p",
              "-t",
              ref.pane,
              `#{socket_path}${SEPARATOR}#{session_name}`
            ], { stdin: "ignore", stderr: "ignore" }))
            const out = yield* handle.stdout.pipe(Stream.decodeText(), Stream.mkString)
            if (Number(yield* handle.exitCode) !== 0) return Option.none<string>()
            const line = out.replace(/\n$/, "")
            const cut = line.indexOf(SEPARATOR)
            const socket = line.slice(0, cut)
            const session = line.slice(cut + 1)
            return cut > 0 && socket === ref.socket && session !== "" ? Option.some(session) : Option.none<string>()
          })).pipe(
            Effect.timeoutOrElse({ duration: "2 seconds", orElse: () => Effect.succeedNone }),
            Effect.catch(() => Effect.succeedNone)
          )
      })
    })
  )
