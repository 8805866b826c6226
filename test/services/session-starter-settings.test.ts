/** The settings of sessions the daemon starts: CLAUDE_COMMAND split like a shell would, account directories, defaults. */
import { describe, expect, it } from "@effect/vitest"
import { Option, Result } from "effect"
import fc from "fast-check"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { resolveConfig, secretEnvNames, sessionStartProblems, Settings, splitCommandLine } from "../../src/config.ts"
import { launchFor, starterSettings } from "../../src/services/session-starter.ts"
import { RUNS } from "../domain/arbitraries.ts"

const config = (env: Record<string, string>) => Result.getOrThrow(resolveConfig(env))
const split = (raw: string) => Result.getOrUndefined(splitCommandLine(raw))
const refusal = (raw: string) =>
  Result.isFailure(splitCommandLine(raw)) ? Result.merge(splitCommandLine(raw)) : undefined

describe("CLAUDE_COMMAND", () => {
  it("defaults to claude; splits words, quotes and backslashes as sh does", () => {
    expect(config({}).claudeCommand).toStrictEqual(["claude"])
    expect(split("claude --model opus")).toStrictEqual(["claude", "--model", "opus"])
    expect(split("  node   stand-ins/claude-code.ts  ")).toStrictEqual(["node", "stand-ins/claude-code.ts"])
    expect(split(`"/opt/my tools/claude" --append-system-prompt 'Be brief; no $HOME' a\\ b ""`))
      .toStrictEqual(["/opt/my tools/claude", "--append-system-prompt", "Be brief; no $HOME", "a b", ""])
    expect(split(`x"a\\"b"'c'`)).toStrictEqual([`xa"bc`])
  })

  it("refuses what only a shell would do, instead of passing it on as text", () => {
    for (
      const raw of [
        "$HOME/bin/claude",
        "~/bin/claude",
        "claude; rm -rf x",
        "claude | tee log",
        "claude &",
        "claude > log",
        "`which claude`",
        "claude \"$MODEL\"",
        "claude *",
        "# claude"
      ]
    ) {
      expect(refusal(raw), raw).toMatch(/runs without one/)
    }
    expect(refusal("claude 'oops")).toMatch(/unterminated '/)
    expect(refusal("")).toMatch(/expected a command/)
    // …but in the environment a blank value counts as unset: the default applies.
    expect(config({ CLAUDE_COMMAND: "  " }).claudeCommand).toStrictEqual(["claude"])
    expect(Result.isFailure(resolveConfig({ CLAUDE_COMMAND: "claude $X" }))).toBe(true)
  })

  it("gives back any list of words quoted as sh would quote them", () => {
    const word = fc.string({
      unit: fc.constantFrom("a", " ", "'", "\"", "\\", "$", ";", "é", "-", "~", "#", "*"),
      maxLength: 8
    })
    fc.assert(
      fc.property(fc.array(word, { minLength: 1, maxLength: 5 }), (words) => {
        const quoted = words.map((w) => `'${w.replaceAll("'", `'\\''`)}'`).join(" ")
        expect(split(quoted)).toStrictEqual(words)
      }),
      RUNS
    )
  })
})

describe("SESSIONS_START, CLAUDE_CONFIG_DIRS, SESSIONS_CWD", () => {
  it("are off, unset and the daemon's directory by default", () => {
    const settings = starterSettings(config({}), "/srv/daemon")
    expect(settings).toMatchObject({ enabled: false, command: ["claude"], cwd: "/srv/daemon" })
    expect(Option.isNone(settings.configDirs)).toBe(true)
  })

  it("give each session its account's CLAUDE_CONFIG_DIR and its own name", () => {
    const settings = starterSettings(
      config({
        SESSIONS_START: "true",
        TMUX_SESSIONS: "claude-1,claude-2,claude-3",
        TMUX_ACCOUNTS: "work:claude-1,claude-2;home:claude-3",
        CLAUDE_CONFIG_DIRS: "work=/home/me/.claude-work",
        SESSIONS_CWD: "projects",
        CLAUDE_COMMAND: "claude --model opus"
      }),
      "/srv"
    )
    expect(launchFor(settings, "claude-2")).toStrictEqual({
      command: ["claude", "--model", "opus"],
      env: { CLAUDE_FAILOVER_SESSION: "claude-2", CLAUDE_CONFIG_DIR: "/home/me/.claude-work" },
      cwd: "/srv/projects",
      width: 120,
      height: 40
    })
    // No directory for its account, or no account at all: Claude Code's default.
    expect(launchFor(settings, "claude-3").env).toStrictEqual({ CLAUDE_FAILOVER_SESSION: "claude-3" })
    expect(launchFor(settings, "other").env).toStrictEqual({ CLAUDE_FAILOVER_SESSION: "other" })
  })

  it("refuse relative directories and accounts given twice; flag accounts TMUX_ACCOUNTS does not define", () => {
    const problems = (env: Record<string, string>) =>
      Result.match(resolveConfig(env), {
        onFailure: (error) => error.problems,
        onSuccess: () => []
      })
    expect(problems({ CLAUDE_CONFIG_DIRS: "work=.claude" })).toStrictEqual([
      `CLAUDE_CONFIG_DIRS="work=.claude": 'work=.claude': expected ACCOUNT=/absolute/path`
    ])
    expect(problems({ CLAUDE_CONFIG_DIRS: "a=/x,a=/y" })[0]).toContain("account 'a' is given twice")
    expect(problems({ SESSIONS_START: "maybe" })[0]).toContain("expected true or false")
    expect(sessionStartProblems(config({ TMUX_ACCOUNTS: "work:claude-1", CLAUDE_CONFIG_DIRS: "work=/a,wrok=/b" })))
      .toStrictEqual([
        "CLAUDE_CONFIG_DIRS names account 'wrok', which neither TMUX_ACCOUNTS nor HEADLESS_SLOTS defines"
      ])
  })

  it("keep the daemon's secrets out of the sessions' environment", () => {
    expect(secretEnvNames).toStrictEqual(expect.arrayContaining([
      "SECUTOOLS_API_KEY",
      "API_TOKEN",
      "SECUTOOLS_URL",
      "CLAUDE_FAILOVER_SECUTOOLS_API_KEY",
      "CLAUDE_FAILOVER_API_TOKEN"
    ]))
    expect(secretEnvNames).not.toContain("QUEUE_DIR")
  })
})

describe("the README's configuration table", () => {
  it("lists the settings of sessions the daemon starts, with their defaults", () => {
    const readme = readFileSync(join(import.meta.dirname, "../../README.md"), "utf8")
    const table = readme.slice(readme.indexOf("| env | default | meaning |"))
    const rows = table.slice(0, table.indexOf("\n\n")).split("\n").slice(2)
    const documented = new Set(
      rows.flatMap((row) => [...row.split("|")[1]?.matchAll(/`([A-Z_]+)`/g) ?? []].map((m) => m[1]))
    )
    const mine = [Settings.sessionsStart, Settings.claudeCommand, Settings.claudeConfigDirs, Settings.sessionsCwd].map((
      s
    ) => s.env)
    for (const env of mine) expect(documented.has(env), env).toBe(true)
    const row = (env: string) => rows.find((r) => r.startsWith(`| \`${env}\` |`))?.split("|")[2]?.trim()
    expect(row("SESSIONS_START")).toBe("`false`")
    expect(row("CLAUDE_COMMAND")).toBe("`claude`")
    expect(row("CLAUDE_CONFIG_DIRS")).toBe("unset")
    expect(row("SESSIONS_CWD")).toBe("the daemon's")
  })
})
