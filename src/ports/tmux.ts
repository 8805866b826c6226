/**
 * The tmux server as a service: which sessions exist, what their panes show, and typing into them.
 * Easy to get wrong: text is always sent literally, never through a shell or as tmux key names.
 */
import { Context, type Effect, Schema } from "effect"

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

export class Tmux extends Context.Service<Tmux, {
  listSessions(): Effect.Effect<ReadonlyArray<string>, TmuxError>
  hasSession(session: string): Effect.Effect<boolean, TmuxError>
  /** The visible pane as plain text (`capture-pane -p`); with `history`, that many lines of scrollback above it too. */
  capturePane(session: string, options?: { readonly history?: number }): Effect.Effect<string, TmuxError | SessionNotFound>
  /** `#{pane_current_command}`: a pane back at a shell means Claude Code has exited. */
  paneCommand(session: string): Effect.Effect<string, TmuxError | SessionNotFound>
  /** Types `text` literally; no Enter. */
  sendText(session: string, text: string): Effect.Effect<void, TmuxError | SessionNotFound>
  sendEnter(session: string): Effect.Effect<void, TmuxError | SessionNotFound>
  /**
   * Empties Claude Code's input box (Ctrl-C, which clears typed text when nothing is running). Only for an idle
   * session with text in its input box: on a busy one Ctrl-C interrupts the turn.
   */
  clearInput(session: string): Effect.Effect<void, TmuxError | SessionNotFound>
  /** Stops the session's current turn (Ctrl-C on a busy Claude Code), so a run taken back cannot go on. */
  interrupt(session: string): Effect.Effect<void, TmuxError | SessionNotFound>
}>()("claude-failover/ports/Tmux") {}
