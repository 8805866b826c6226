/**
 * The real Claude Code for end-to-end tests: the project's pinned devDependency, run in a private tmux server with a
 * fresh HOME and CLAUDE_CONFIG_DIR, only the variables it is given (`env -i`), and ANTHROPIC_BASE_URL pointing at
 * the API stand-in. No account, no network.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { ROOT, type TmuxServer, waitFor } from "./support.ts"

export const CLAUDE_VERSION = "2.1.332"

/** The real Claude Code: the project's pinned devDependency, never installed from the network by a test. */
export const claudeBinary = (): string => {
  const manifest = join(ROOT, "node_modules/@anthropic-ai/claude-code/package.json")
  const claude = join(ROOT, "node_modules/.bin/claude")
  const installed = existsSync(manifest) ? String(JSON.parse(readFileSync(manifest, "utf8")).version) : undefined
  if (installed !== CLAUDE_VERSION || !existsSync(claude)) {
    throw new Error(
      `this test needs Claude Code ${CLAUDE_VERSION}, the devDependency @anthropic-ai/claude-code, at ${claude} ` +
        `(found ${installed ?? "none"}): run npm install`
    )
  }
  return claude
}

export const shellQuote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`

export interface ClaudeAccount {
  readonly home: string
  readonly configDir: string
  readonly work: string
}

/**
 * A fresh HOME, CLAUDE_CONFIG_DIR and working directory under `root`: onboarding done, and the working directory
 * trusted unless `trusted` is false (then Claude Code opens on its trust dialog).
 */
export const claudeAccount = (
  root: string,
  name: string,
  options: { readonly trusted?: boolean; readonly allow?: ReadonlyArray<string> } = {}
): ClaudeAccount => {
  const account = {
    home: join(root, name, "home"),
    configDir: join(root, name, "config"),
    work: join(root, name, "work")
  }
  for (const dir of Object.values(account)) mkdirSync(dir, { recursive: true })
  const projects = options.trusted === false ? {} : { [account.work]: { hasTrustDialogAccepted: true } }
  const seeded = JSON.stringify({ hasCompletedOnboarding: true, projects })
  // Claude Code reads .claude.json from CLAUDE_CONFIG_DIR when it is set, from HOME otherwise.
  writeFileSync(join(account.home, ".claude.json"), seeded)
  writeFileSync(join(account.configDir, ".claude.json"), seeded)
  if (options.allow !== undefined) {
    writeFileSync(
      join(account.configDir, "settings.json"),
      JSON.stringify({ permissions: { allow: options.allow } }, null, 2)
    )
  }
  return account
}

/** Fake credentials: an OAuth token is used as it is; an API key makes Claude Code ask "Detected a custom API key". */
export const OAUTH = { CLAUDE_CODE_OAUTH_TOKEN: "sk-ant-oat01-standin-0000000000000000000000" }
export const API_KEY = { ANTHROPIC_API_KEY: "sk-ant-api03-standin-00000000000000000000000000000000" }

/**
 * Starts the real Claude Code as the only process of a new tmux session (`env -i … claude`), in `account`'s working
 * directory. `TMUX_PANE` and `TMUX` pass through: an http hook names its pane with them.
 */
export const startClaude = (
  tmux: TmuxServer,
  session: string,
  account: ClaudeAccount,
  apiUrl: string,
  credentials: Readonly<Record<string, string>>,
  width = 120
): void => {
  const env = {
    PATH: "/usr/local/bin:/usr/bin:/bin",
    HOME: account.home,
    CLAUDE_CONFIG_DIR: account.configDir,
    LANG: "C.UTF-8",
    TZ: "UTC",
    DISABLE_AUTOUPDATER: "1",
    ANTHROPIC_BASE_URL: apiUrl,
    ...credentials
  }
  const assignments = Object.entries(env).map(([k, v]) => shellQuote(`${k}=${v}`)).join(" ")
  const command = `exec env -i ${assignments} TMUX_PANE="$TMUX_PANE" TMUX="$TMUX" ${shellQuote(claudeBinary())}`
  tmux.tmux("new-session", "-d", "-s", session, "-x", String(width), "-y", "40", "-c", account.work, command)
}

/** The pids of the panes' processes, for waiting until every Claude Code is gone after the server is killed. */
export const panePids = (tmux: TmuxServer): ReadonlyArray<number> => {
  try {
    return tmux.tmux("list-panes", "-a", "-F", "#{pane_pid}").trim().split("\n").map(Number).filter((pid) => pid > 0)
  } catch {
    return []
  }
}

const alive = (pid: number) => {
  try {
    return process.kill(pid, 0)
  } catch {
    return false
  }
}

/** Kills the tmux server and waits for its Claude Codes to exit (SIGKILL after 10 s), so nothing writes on after. */
export const killClaudes = async (tmux: TmuxServer): Promise<void> => {
  const pids = panePids(tmux)
  tmux.kill()
  await waitFor("Claude Code to exit", () => pids.every((pid) => !alive(pid)), 10_000).catch(() => {
    for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL")
  })
}
