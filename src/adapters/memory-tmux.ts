/**
 * An in-memory tmux for unit tests: sessions whose screens the test sets, and a log of what was typed.
 * Easy to get wrong: a missing session must fail like the live adapter does, not return an empty screen.
 */
import { basename } from "node:path"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import { SessionExists, type SessionLaunch, SessionNotFound, Tmux, TmuxError, TmuxNotInstalled } from "../ports/tmux.ts"
import { drawInput } from "./dry-run-tmux.ts"

export interface MemoryPane {
  readonly screen: string
  readonly command: string
  /** Every `sendText` and Enter, in order (Enter recorded as "\n", a clear as "^C", Esc as "Esc"). */
  readonly typed: ReadonlyArray<string>
  /** What the pane shows once Enter submits the input (a session that starts working); unchanged when absent. */
  readonly screenAfterEnter?: string
  /** What the pane shows after Esc (a limit menu closed, an automatic continue cancelled); unchanged when absent. */
  readonly screenAfterEscape?: string
  /** Text pasted and not yet submitted: drawn into the screen's input box. */
  readonly input: string
  /** Enters the session ignores before one submits (Claude Code drops an Enter that arrives with a paste). */
  readonly dropsEnters: number
  /** What `newSession` / `respawn` last started in it. */
  readonly launch?: SessionLaunch
}

/** One `newSession` or `respawn`, in order. */
export interface MemoryLaunch {
  readonly session: string
  readonly kind: "new-session" | "respawn"
  readonly launch: SessionLaunch
}

/** What a freshly started session shows: Claude Code 2.x, idle, empty input box. */
export const FRESH_SCREEN = ["✻ Welcome to Claude Code!", "", "─".repeat(60), "❯ ", "─".repeat(60), "  ? for shortcuts"]
  .join("\n")

export class MemoryTmuxControl extends Context.Service<MemoryTmuxControl, {
  setPane(session: string, pane: Partial<MemoryPane>): Effect.Effect<void>
  killSession(session: string): Effect.Effect<void>
  readonly panes: Effect.Effect<ReadonlyMap<string, MemoryPane>>
  /** Every session started or respawned, in order. */
  readonly launches: Effect.Effect<ReadonlyArray<MemoryLaunch>>
  /** `false`: the new commands fail as on a host without tmux. */
  setInstalled(installed: boolean): Effect.Effect<void>
}>()("claude-failover/adapters/MemoryTmuxControl") {}

export const MemoryTmuxLayer = Layer.effectContext(Effect.gen(function*() {
  const panes = yield* Ref.make<ReadonlyMap<string, MemoryPane>>(new Map())
  const launches = yield* Ref.make<ReadonlyArray<MemoryLaunch>>([])
  const installed = yield* Ref.make(true)
  const requireTmux = Effect.flatMap(
    Ref.get(installed),
    (yes) => yes ? Effect.void : Effect.fail(new TmuxNotInstalled({ problem: "spawn tmux ENOENT (memory)" }))
  )
  /** A started program: its basename is what `#{pane_current_command}` shows. */
  const started = (launch: SessionLaunch): MemoryPane => ({
    screen: FRESH_SCREEN,
    command: basename(launch.command[0] ?? ""),
    typed: [],
    input: "",
    dropsEnters: 0,
    launch
  })

  const withPane = <A>(session: string, f: (pane: MemoryPane) => A) =>
    Ref.get(panes).pipe(Effect.flatMap((current) => {
      const pane = current.get(session)
      return pane === undefined ? Effect.fail(new SessionNotFound({ session })) : Effect.succeed(f(pane))
    }))
  const update = (session: string, f: (pane: MemoryPane) => MemoryPane) =>
    Ref.update(panes, (current) => {
      const pane = current.get(session)
      return pane === undefined ? current : new Map(current).set(session, f(pane))
    })
  const record = (session: string, text: string) =>
    Effect.andThen(
      withPane(session, () => undefined),
      Ref.update(panes, (current) => {
        const pane = current.get(session)
        return pane === undefined ? current : new Map(current).set(session, { ...pane, typed: [...pane.typed, text] })
      })
    )

  const tmux = Tmux.of({
    listSessions: () =>
      Ref.get(installed).pipe(
        // As the live adapter fails on a host without tmux: its list-sessions cannot spawn.
        Effect.flatMap((yes) =>
          yes
            ? Ref.get(panes)
            : Effect.fail(new TmuxError({ command: "list-sessions", problem: "spawn tmux ENOENT (memory)" }))
        ),
        Effect.map((current) => [...current.keys()].sort())
      ),
    capturePane: (session) => withPane(session, (pane) => drawInput(pane.screen, pane.input)),
    lookAtPane: (session) =>
      withPane(session, (pane) => ({ command: pane.command, screen: drawInput(pane.screen, pane.input) })),
    sendText: (session, text) =>
      Effect.andThen(record(session, text), update(session, (pane) => ({ ...pane, input: pane.input + text }))),
    sendEnter: (session) =>
      Effect.andThen(
        record(session, "\n"),
        update(session, (pane) => {
          if (pane.input === "") return pane
          if (pane.dropsEnters > 0) return { ...pane, dropsEnters: pane.dropsEnters - 1 }
          const { screenAfterEnter, ...rest } = pane
          return { ...rest, input: "", ...(screenAfterEnter === undefined ? {} : { screen: screenAfterEnter }) }
        })
      ),
    clearInput: (session) => Effect.andThen(record(session, "^C"), update(session, (pane) => ({ ...pane, input: "" }))),
    sendEscape: (session) =>
      Effect.andThen(
        record(session, "Esc"),
        update(session, (pane) => {
          const { screenAfterEscape, ...rest } = pane
          return screenAfterEscape === undefined ? pane : { ...rest, screen: screenAfterEscape }
        })
      ),
    interrupt: (session) => record(session, "^C"),
    newSession: (session, launch) =>
      requireTmux.pipe(
        Effect.andThen(Ref.get(panes)),
        Effect.flatMap((current) =>
          current.has(session)
            ? Effect.fail(new SessionExists({ session }))
            : Ref.set(panes, new Map(current).set(session, started(launch)))
        ),
        Effect.andThen(Ref.update(launches, (all) => [...all, { session, kind: "new-session" as const, launch }]))
      ),
    respawn: (session, launch) =>
      requireTmux.pipe(
        Effect.andThen(withPane(session, () => undefined)),
        Effect.andThen(Ref.update(panes, (current) => new Map(current).set(session, started(launch)))),
        Effect.andThen(Ref.update(launches, (all) => [...all, { session, kind: "respawn" as const, launch }]))
      ),
    version: () => Effect.as(requireTmux, "tmux 3.3a (memory)")
  })

  const control = MemoryTmuxControl.of({
    setPane: (session, pane) =>
      Ref.update(panes, (current) =>
        new Map(current).set(session, {
          screen: "",
          command: "claude",
          typed: [],
          input: "",
          dropsEnters: 0,
          ...current.get(session),
          ...pane
        })),
    killSession: (session) =>
      Ref.update(panes, (current) => {
        const next = new Map(current)
        next.delete(session)
        return next
      }),
    panes: Ref.get(panes),
    launches: Ref.get(launches),
    setInstalled: (yes) => Ref.set(installed, yes)
  })

  return Context.make(Tmux, tmux).pipe(Context.add(MemoryTmuxControl, control))
}))
