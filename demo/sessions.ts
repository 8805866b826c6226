/**
 * Where the demo's local tasks run: three Claude Code stand-ins in a private tmux server (the default), or headless
 * slots (`--headless`, see headless.ts). Easy to get wrong: `stop` runs in the demo's `finally`, also when `start`
 * failed half-way or never ran, so it must clean up whatever exists and nothing more.
 */
import type { SummaryRow } from "./summary.ts"
import { PrivateTmux } from "./tmux.ts"

export interface DemoSessions {
  readonly title: string
  /** Its runs add their facts (cost, Claude Code's session) to a task's done/ file just after the task lands there. */
  readonly runFacts: boolean
  /** Starts what the daemon will find, saying each part in a header line; resolves to the daemon's settings for it. */
  readonly start: (signal: AbortSignal, say: (line: string) => void) => Promise<Readonly<Record<string, string>>>
  /** What the finished queue must show beyond each sample's end: the events this variant scripts. */
  readonly problems: (rows: ReadonlyArray<SummaryRow>) => ReadonlyArray<string>
  /** After the daemon has stopped: what was cleaned up, and whatever was found left behind (each a problem). */
  readonly stop: () => { readonly cleaned: string; readonly problems: ReadonlyArray<string> }
}

/** claude-2 is quick, so it is free first for a second task, in the middle of which it hits its usage limit. */
const SESSIONS: ReadonlyArray<readonly [string, Readonly<Record<string, string>>]> = [
  ["claude-1", { STANDIN_WORK_MS: "2500" }],
  ["claude-2", { STANDIN_WORK_MS: "800", STANDIN_LIMIT_AFTER: "1" }],
  ["claude-3", { STANDIN_WORK_MS: "2500" }]
]

/** `root`: this checkout, where the stand-in lives and the panes start. */
export const tmuxSessions = (root: string): DemoSessions => {
  const tmux = new PrivateTmux(root)
  return {
    title: "claude-failover demo",
    runFacts: false,
    start: async (signal, say) => {
      say(`  tmux       private server ${tmux.socket}; to watch: tmux -L ${tmux.socket} attach -r -t claude-2`)
      for (const [session, env] of SESSIONS) tmux.startStandin(session, env)
      await tmux.waitUntilReady(SESSIONS.map(([session]) => session), signal)
      say(
        "  sessions   claude-1, claude-3: 2.5s a task; claude-2: 0.8s a task, then its usage limit hits during its second"
      )
      return { TMUX_SOCKET: tmux.socket }
    },
    problems: () => [],
    stop: () => {
      tmux.kill()
      return { cleaned: `tmux server ${tmux.socket} killed`, problems: [] }
    }
  }
}
