/**
 * Finding the Claude Code sessions and seeing what each one is doing: liveness first, then the pane scrape.
 * Easy to get wrong: a pane back at a shell is `exited` whatever its text says, and nothing is ever typed into it.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { classifyPane, PaneState } from "../domain/pane.ts"
import { Tmux } from "../ports/tmux.ts"

/** Programs that mean Claude Code has quit and the pane is back at a shell. */
const SHELLS = new Set(["bash", "zsh", "sh", "dash", "fish", "ksh", "tcsh", "csh", "login"])

export type SessionState = PaneState["_tag"] | "missing"

export interface Observation {
  readonly session: string
  readonly state: SessionState
  readonly pane: Option.Option<PaneState>
  /** The captured text ("" when missing or exited); the watchdog compares it between polls. */
  readonly screen: string
}

export interface SessionSelection {
  readonly names: Option.Option<ReadonlyArray<string>>
  readonly prefix: string
}

export const discoverSessions = Effect.fn("discoverSessions")(function*(selection: SessionSelection) {
  if (Option.isSome(selection.names)) return selection.names.value
  const tmux = yield* Tmux
  return (yield* tmux.listSessions()).filter((name) => name.startsWith(selection.prefix))
})

const gone = (session: string, state: "missing" | "exited"): Observation => ({
  session,
  state,
  pane: state === "exited" ? Option.some(PaneState.exited()) : Option.none(),
  screen: ""
})

export const observeSession = Effect.fn("observeSession")(function*(
  session: string,
  clock: { readonly now: number; readonly timeZone: string }
) {
  const tmux = yield* Tmux
  const { command, screen } = yield* tmux.lookAtPane(session)
  if (SHELLS.has(command)) return gone(session, "exited")
  const pane = classifyPane(screen, clock)
  return { session, state: pane._tag, pane: Option.some(pane), screen } satisfies Observation
}, (effect, session) =>
  // A session that vanishes between two tmux calls is missing, not an error.
  Effect.catchTag(effect, "SessionNotFound", () => Effect.succeed(gone(session, "missing"))))

/** Account of each session: sessions sharing a CLAUDE_CONFIG_DIR share one usage limit; alone, a session is its own. */
export const accountOf = (accounts: Option.Option<ReadonlyMap<string, ReadonlyArray<string>>>, session: string) =>
  Option.match(accounts, {
    onNone: () => session,
    onSome: (map) => [...map].find(([, members]) => members.includes(session))?.[0] ?? session
  })
