/**
 * The tmux server as a service: which sessions exist, what their panes show, and typing into them.
 * Easy to get wrong: text is always sent literally, never through a shell or as tmux key names.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

export class TmuxError extends Schema.TaggedError<TmuxError>()("TmuxError", {
  command: Schema.String,
  problem: Schema.String
}) {
  override get message(): string {
    return `tmux ${this.command}: ${this.problem}`
  }
}

export class SessionNotFound extends Schema.TaggedError<SessionNotFound>()("SessionNotFound", {
  session: Schema.String
}) {
  override get message(): string {
    return `no tmux session '${this.session}'`
  }
}

/** `newSession` for a name that is taken: someone else started it meanwhile. */
export class SessionExists extends Schema.TaggedError<SessionExists>()("SessionExists", {
  session: Schema.String
}) {
  override get message(): string {
    return `tmux session '${this.session}' already exists`
  }
}

/** The tmux binary is not on this host (the spawn found no `tmux`), as opposed to tmux failing. */
export class TmuxNotInstalled extends Schema.TaggedError<TmuxNotInstalled>()("TmuxNotInstalled", {
  problem: Schema.String
}) {
  override get message(): string {
    return `tmux is not installed: ${this.problem}`
  }
}

/** What a started session runs, and where. */
export interface SessionLaunch {
  /** The program and its arguments, run directly: no shell ever parses them. */
  readonly command: ReadonlyArray<string>
  /** Set in the session's environment (`tmux -e`), on top of the tmux server's own. */
  readonly env: Readonly<Record<string, string>>
  /** An absolute directory; the start fails when it is not one (tmux itself would silently start elsewhere). */
  readonly cwd: string
  readonly width?: number
  readonly height?: number
}

/** One look at a session's pane. */
export interface PaneLook {
  /** `#{pane_current_command}`. */
  readonly command: string
  /** The visible pane as plain text, as `capturePane` gives it. */
  readonly screen: string
}

export class Tmux extends Context.Service<Tmux, {
  listSessions(): Effect.Effect<ReadonlyArray<string>, TmuxError>
  /** The visible pane as plain text (`capture-pane -p`); with `history`, that many lines of scrollback above it too. */
  capturePane(
    session: string,
    options?: { readonly history?: number }
  ): Effect.Effect<string, TmuxError | SessionNotFound>
  /**
   * `#{pane_current_command}` (a pane back at a shell means Claude Code has exited) and `capturePane`, in one tmux
   * call: what every look at a session needs.
   */
  lookAtPane(session: string): Effect.Effect<PaneLook, TmuxError | SessionNotFound>
  /** Types `text` literally; no Enter. */
  sendText(session: string, text: string): Effect.Effect<void, TmuxError | SessionNotFound>
  sendEnter(session: string): Effect.Effect<void, TmuxError | SessionNotFound>
  /**
   * Empties Claude Code's input box (Ctrl-C, which clears typed text when nothing is running). Only for an idle
   * session with text in its input box: on a busy one Ctrl-C interrupts the turn.
   */
  clearInput(session: string): Effect.Effect<void, TmuxError | SessionNotFound>
  /**
   * One Esc: closes Claude Code's usage-limit menu, or cancels its automatic continue after a limit. Never twice in a
   * row: a double Esc on an empty input box opens Claude Code's rewind menu.
   */
  sendEscape(session: string): Effect.Effect<void, TmuxError | SessionNotFound>
  /** Stops the session's current turn (Ctrl-C on a busy Claude Code), so a run taken back cannot go on. */
  interrupt(session: string): Effect.Effect<void, TmuxError | SessionNotFound>
  /** A detached session running `launch.command`; when the program exits, the session goes with it. */
  newSession(session: string, launch: SessionLaunch): Effect.Effect<void, TmuxError | SessionExists | TmuxNotInstalled>
  /** Replaces whatever the session's pane runs (a shell Claude Code exited to) with `launch.command` (`respawn-pane -k`). */
  respawn(session: string, launch: SessionLaunch): Effect.Effect<void, TmuxError | SessionNotFound | TmuxNotInstalled>
  /** `tmux -V`; the way to tell "tmux is not installed" from every other failure. */
  version(): Effect.Effect<string, TmuxError | TmuxNotInstalled>
}>()("claude-failover/ports/Tmux") {}
