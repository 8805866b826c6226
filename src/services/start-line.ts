/**
 * The daemon's one start line: what an operator checks first — which queue, which sessions it found, whether it
 * delegates, where its status page is, and which configuration file it read. Easy to get wrong: it must stay one
 * line (the full configuration is a debug line), and it must say why there are no sessions, not just "none".
 */
import * as Option from "effect/Option"

export interface StartFacts {
  readonly version: string
  readonly queueDir: string
  /** The queue shared by several hosts on PostgreSQL, as this host (queueDir is then its drop box). */
  readonly sharedQueue?: { readonly host: string } | undefined
  readonly mode: "tmux" | "dry-run" | "headless"
  /** tmux sessions found (or dry-run sessions), or why none could be listed. */
  readonly sessions: { readonly _tag: "Found"; readonly names: ReadonlyArray<string> } | {
    readonly _tag: "Unlisted"
    readonly problem: string
  }
  /** How sessions are chosen: TMUX_SESSIONS, else the prefix. */
  readonly selection: { readonly names: Option.Option<ReadonlyArray<string>>; readonly prefix: string }
  readonly headlessSlots: ReadonlyArray<string>
  readonly delegation: { readonly enabled: boolean; readonly mode: "http" | "fake"; readonly url: string }
  readonly api: string
  readonly configFile: Option.Option<string>
}

const list = (names: ReadonlyArray<string>) => names.join(", ")

const sessionsPart = (facts: StartFacts): string => {
  const slots = facts.headlessSlots.length === 0 ? "" : `headless slots ${list(facts.headlessSlots)}`
  if (facts.mode === "headless") return slots
  const wanted = Option.match(facts.selection.names, {
    onNone: () => `sessions named ${facts.selection.prefix}*`,
    onSome: (names) => `TMUX_SESSIONS ${list(names)}`
  })
  const kind = facts.mode === "dry-run" ? "dry-run sessions" : "tmux sessions"
  const found = facts.sessions._tag === "Unlisted"
    ? `${kind}: cannot list them (${facts.sessions.problem})`
    : facts.sessions.names.length === 0
    ? `${kind}: none up yet (looking for ${wanted})`
    : `${kind} ${list(facts.sessions.names)}`
  return slots === "" ? found : `${found}; ${slots}`
}

const delegationPart = (facts: StartFacts): string =>
  !facts.delegation.enabled
    ? "delegation off (SECUTOOLS_API_KEY is not set)"
    : facts.delegation.mode === "fake"
    ? "delegation on (the in-process secutools stand-in)"
    : `delegation on (secutools ${facts.delegation.url})`

export const startLine = (facts: StartFacts): string =>
  [
    facts.sharedQueue === undefined
      ? `claude-failover ${facts.version} started on ${facts.queueDir}`
      : `claude-failover ${facts.version} started as host ${facts.sharedQueue.host} of the shared queue on PostgreSQL ` +
        `(drop box ${facts.queueDir}/pending)`,
    sessionsPart(facts),
    delegationPart(facts),
    `status page ${facts.api}/`,
    Option.match(facts.configFile, { onNone: () => "no configuration file", onSome: (file) => `configuration ${file}` })
  ].join("; ")
