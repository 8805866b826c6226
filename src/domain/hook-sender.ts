/**
 * Which tmux session a hook call comes from, read from the headers our hooks send: the session's name when it was
 * started with `CLAUDE_FAILOVER_SESSION` set, else its tmux pane (`$TMUX_PANE`) and tmux server (`$TMUX`).
 * Easy to get wrong: Claude Code sends an empty header for a variable that is not set, and pane ids (`%0`, `%1`, …)
 * repeat on every tmux server, so a pane names a session only together with the server's socket.
 */
import * as Option from "effect/Option"

/** The environment variables the hooks read, in the session's environment. */
export const HookEnv = {
  /** The tmux session's name, for sessions started with it set (`tmux new-session -e CLAUDE_FAILOVER_SESSION=…`). */
  session: "CLAUDE_FAILOVER_SESSION",
  /** Set by tmux in every pane: `%3`. */
  pane: "TMUX_PANE",
  /** Set by tmux in every pane: `/tmp/tmux-1000/default,4242,0` (socket, server pid, session index). */
  tmux: "TMUX",
  /** The status API's token (API_TOKEN), when it has one; the daemon reads the same name. */
  token: "CLAUDE_FAILOVER_API_TOKEN"
} as const

/** The request headers carrying them (lower case, as Node delivers them). */
export const HookHeaders = {
  session: "x-claude-failover-session",
  pane: "x-claude-failover-pane",
  tmux: "x-claude-failover-tmux"
} as const

/** A pane on a tmux server: enough to ask that server which session holds it. */
export interface PaneRef {
  readonly pane: string
  readonly socket: string
}

export type HookSender =
  | { readonly _tag: "Named"; readonly session: string }
  | { readonly _tag: "Pane"; readonly pane: PaneRef }
  | { readonly _tag: "Anonymous" }

/** tmux refuses no printable name, so only emptiness, control characters and absurd lengths are refused. */
export const sessionNameFrom = (raw: string | undefined): Option.Option<string> => {
  const name = raw?.trim() ?? ""
  // eslint-disable-next-line no-control-regex
  return name === "" || name.length > 256 || /[\u0000-\u001f\u007f]/.test(name) ? Option.none() : Option.some(name)
}

const PANE = /^%\d{1,9}$/
/** `$TMUX` is `SOCKET,PID,INDEX`; a socket path may itself hold commas, so the last two fields are split off. */
const TMUX = /^(.+),\d+,-?\d+$/

/** The pane and socket, when both are given and well formed. */
export const paneRefFrom = (pane: string | undefined, tmux: string | undefined): Option.Option<PaneRef> => {
  const id = pane?.trim() ?? ""
  const socket = TMUX.exec(tmux?.trim() ?? "")?.[1]
  return PANE.test(id) && socket !== undefined ? Option.some({ pane: id, socket }) : Option.none()
}

/** Who sent a hook call, from its headers (`header(name)` gives a header's value, if any). */
export const hookSenderFrom = (header: (name: string) => string | undefined): HookSender => {
  const named = sessionNameFrom(header(HookHeaders.session))
  if (Option.isSome(named)) return { _tag: "Named", session: named.value }
  return Option.match(paneRefFrom(header(HookHeaders.pane), header(HookHeaders.tmux)), {
    onNone: (): HookSender => ({ _tag: "Anonymous" }),
    onSome: (pane): HookSender => ({ _tag: "Pane", pane })
  })
}
