/**
 * `npm run demo -- --headless`: no tmux; two headless slots on two accounts running the headless stand-in, which
 * follows one script of modes (`SCRIPT`), a mode per run in the order the runs start. Easy to get wrong: the script
 * is shared by both slots, and runs that start together take their turns in either order, so every scripted event
 * must read the same whichever slot it lands in.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { findOrphans } from "../src/adapters/headless-orphans.ts"
import { formatCost } from "../src/domain/footer.ts"
import type { DemoSessions } from "./sessions.ts"
import { headlessProblems } from "./summary.ts"

/**
 * The stand-in's modes, one per run; the last repeats. Runs 1–2 are the first two tasks, started together: one hits
 * the limit, whichever slot it is in, and its account rests; from then on every run is in the other slot, one after
 * another in priority order: 3–5 that task again and the next two, 6 plain.md (it crashes), 7 plain.md again. The
 * crash comes last on purpose: while the only slot left shows a crashed run the daemon counts no local session as
 * available, and routing rule 7 would send a waiting may-delegate.md to secutools.
 */
export const SCRIPT = ["limit", "ok", "ok", "ok", "ok", "crash", "ok"] as const
const RUN_MS = 1000
const RESET_S = 3600
const COST_USD = "0.0123"
const ACCOUNTS = ["a", "b"] as const

/** A word of CLAUDE_COMMAND, which the daemon splits like a shell would: quoted unless plainly safe. */
export const shellWord = (word: string): string =>
  /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'"'"'`)}'`

/** The pids of the runs the stand-in's log (STANDIN_LOG) says started, in order. */
export const startedPids = (log: string): ReadonlyArray<number> =>
  log.split("\n").flatMap((line) => {
    try {
      const entry: unknown = JSON.parse(line)
      return typeof entry === "object" && entry !== null && "event" in entry && entry.event === "started" &&
          "pid" in entry && typeof entry.pid === "number"
        ? [entry.pid]
        : []
    } catch {
      return []
    }
  })

const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? "" : "s"}`

/** `root`: this checkout, where the stand-in lives; `queue`: the demo's queue, which names the daemon's runs. */
export const headlessSessions = (root: string, queue: string): DemoSessions => {
  let scratch: string | undefined
  return {
    title: "claude-failover demo (headless)",
    runFacts: true,
    start: async (_signal, say) => {
      // The accounts' config dirs (the stand-in ignores them), the runs' working directory, the stand-in's files.
      const dir = mkdtempSync(join(tmpdir(), "claude-failover-demo-headless-"))
      scratch = dir
      for (const account of ACCOUNTS) mkdirSync(join(dir, account))
      mkdirSync(join(dir, "work"))
      say(`  sessions   no tmux: SESSIONS_MODE=headless, slots headless-a-1 (account a) and headless-b-1 (account b)`)
      say(
        `  claude     stand-ins/claude-headless.ts as \`claude -p\`: ${RUN_MS / 1000}s a run, ${
          formatCost(Number(COST_USD))
        } a finished one;` +
          ` the 1st run hits its 5-hour limit (resets in ${RESET_S / 3600}h), the 6th crashes`
      )
      return {
        SESSIONS_MODE: "headless",
        HEADLESS_SLOTS: ACCOUNTS.map((account) => `${account}=1`).join(","),
        CLAUDE_CONFIG_DIRS: ACCOUNTS.map((account) => `${account}=${join(dir, account)}`).join(","),
        CLAUDE_COMMAND: [process.execPath, join(root, "stand-ins/claude-headless.ts")].map(shellWord).join(" "),
        SESSIONS_CWD: join(dir, "work"),
        // Not the daemon's settings: its runs inherit its environment, so these reach every stand-in.
        STANDIN_MODES: SCRIPT.join(","),
        STANDIN_STATE: join(dir, "runs"),
        STANDIN_LOG: join(dir, "standin.log"),
        STANDIN_DELAY_MS: String(RUN_MS),
        STANDIN_RESET_S: String(RESET_S),
        STANDIN_COST: COST_USD
      }
    },
    problems: headlessProblems,
    stop: () => {
      if (scratch === undefined) return { cleaned: "nothing started", problems: [] }
      let log = ""
      try {
        log = readFileSync(join(scratch, "standin.log"), "utf8")
      } catch {
        // no run started
      }
      const pids = startedPids(log)
      // What still runs with this queue's run tag (the daemon tags every run): a pid reused since is never touched.
      const left = findOrphans(queue).filter((orphan) => pids.includes(orphan.pid))
      for (const { pid } of left) {
        try {
          process.kill(-pid, "SIGKILL")
        } catch {
          // gone meanwhile
        }
      }
      rmSync(scratch, { recursive: true, force: true })
      return {
        cleaned: `${plural(pids.length, "headless run")} started, ${
          left.length === 0 ? "none" : left.length
        } left running`,
        problems: left.map(({ pid }) => `headless run ${pid} was still running after the daemon stopped (killed)`)
      }
    }
  }
}
