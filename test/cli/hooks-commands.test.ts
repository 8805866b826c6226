/**
 * `claude-failover hooks print|install|uninstall|report` as processes on real files: the backup before any change,
 * idempotence, the user's settings given back, a broken settings.json left untouched (exit 1), and `report`
 * delivering one event to the daemon named in the queue's .lock.json while printing nothing and exiting 0.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn, spawnSync } from "node:child_process"
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { createServer, type IncomingHttpHeaders } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { isOurHook } from "../../src/domain/hook-settings.ts"
import { tempDirs } from "../temp-dirs.ts"

const BIN = join(import.meta.dirname, "../../bin/claude-failover.js")

/** The child's environment: none of the daemon's or Claude Code's own settings leak in from the test runner. */
const baseEnv = () =>
  Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !/^(QUEUE_DIR|API_|CLAUDE_|TMUX|SECUTOOLS_|HOOKS_)/.test(key))
  )

const cli = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const result = spawnSync(process.execPath, [BIN, ...args], {
    cwd: tmpdir(),
    env: { ...baseEnv(), ...env },
    encoding: "utf8"
  })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

const tempDir = tempDirs("cf-hooks-cli-")

const USER_SETTINGS = {
  model: "opus",
  permissions: { allow: ["Bash(npm test)"] },
  hooks: {
    Stop: [{ matcher: "", hooks: [{ type: "command", command: "notify-send 'Claude is done'" }] }],
    PreToolUse: [{ matcher: "Bash", hooks: [{ type: "command", command: "/usr/local/bin/audit-bash" }] }]
  },
  statusLine: { type: "command", command: "~/.claude/statusline.sh" }
}
const USER_TEXT = `${JSON.stringify(USER_SETTINGS, null, 4)}\n`

const backups = (dir: string) => readdirSync(dir).filter((name) => name.startsWith("settings.json.bak-")).sort()
const settingsOf = (dir: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(dir, "settings.json"), "utf8"))
const countOurs = (settings: Record<string, unknown>) =>
  Object.values((settings.hooks ?? {}) as Record<string, ReadonlyArray<{ hooks: ReadonlyArray<unknown> }>>)
    .flatMap((groups) => groups.flatMap((group) => group.hooks.filter(isOurHook))).length

describe("claude-failover hooks install / uninstall", () => {
  it("installs into the user's file after a byte-exact backup; a second install changes nothing; uninstall gives it back", () => {
    const dir = tempDir()
    writeFileSync(join(dir, "settings.json"), USER_TEXT)
    chmodSync(join(dir, "settings.json"), 0o644)

    const first = cli(["hooks", "install", "--config-dir", dir])
    expect(first.code).toBe(0)
    expect(first.stdout).toMatch(
      /^installed claude-failover's hooks in .*settings\.json \(backup: .*settings\.json\.bak-\d{8}T\d{6}Z\)\n$/
    )
    const [backup] = backups(dir)
    expect(readFileSync(join(dir, backup ?? ""), "utf8")).toBe(USER_TEXT)
    const installed = settingsOf(dir)
    expect(countOurs(installed)).toBe(6)
    expect(installed).toMatchObject({ model: "opus", statusLine: USER_SETTINGS.statusLine })
    // The user's permissions stay; the two completion lines are allowed after their own rules.
    const permissions = installed.permissions as { readonly allow: ReadonlyArray<string> }
    expect(permissions).toMatchObject({ ...USER_SETTINGS.permissions, allow: expect.any(Array) })
    expect(permissions.allow.slice(0, -2)).toStrictEqual(USER_SETTINGS.permissions.allow)
    expect(permissions.allow.slice(-2)).toStrictEqual(
      ["done", "fail"].map((verb) => `Bash(${process.execPath} ${BIN} task ${verb}:*)`)
    )
    expect((installed.hooks as Record<string, unknown>).PreToolUse).toStrictEqual(USER_SETTINGS.hooks.PreToolUse)
    expect(statSync(join(dir, "settings.json")).mode & 0o777).toBe(0o644)

    const text = readFileSync(join(dir, "settings.json"), "utf8")
    const second = cli(["hooks", "install", "--config-dir", dir])
    expect(second.code).toBe(0)
    expect(second.stdout).toContain("already in")
    expect(readFileSync(join(dir, "settings.json"), "utf8")).toBe(text)
    expect(backups(dir)).toHaveLength(1)

    const removed = cli(["hooks", "uninstall", "--config-dir", dir])
    expect(removed.code).toBe(0)
    expect(removed.stdout).toContain("removed claude-failover's hooks from")
    expect(settingsOf(dir)).toStrictEqual(USER_SETTINGS)
    expect(backups(dir).length).toBeGreaterThanOrEqual(1)
    expect(cli(["hooks", "uninstall", "--config-dir", dir]).stdout).toContain("no claude-failover hooks in")
  })

  it("refuses a settings.json that is not JSON, exit 1, leaving it and the directory untouched", () => {
    const dir = tempDir()
    const broken = "{\n  \"model\": \"opus\",\n  \"hooks\": {\n"
    writeFileSync(join(dir, "settings.json"), broken)
    const before = statSync(join(dir, "settings.json")).mtimeMs
    for (const command of ["install", "uninstall"]) {
      const result = cli(["hooks", command, "--config-dir", dir])
      expect(result.code).toBe(1)
      expect(result.stderr).toMatch(/settings\.json: it is not valid JSON \(.*\); fix it by hand, nothing was changed/)
      expect(result.stdout).toBe("")
    }
    expect(readFileSync(join(dir, "settings.json"), "utf8")).toBe(broken)
    expect(statSync(join(dir, "settings.json")).mtimeMs).toBe(before)
    expect(readdirSync(dir)).toStrictEqual(["settings.json"])
  })

  it("refuses a settings.json whose hooks are not a list of groups, exit 1", () => {
    const dir = tempDir()
    writeFileSync(join(dir, "settings.json"), "{\"hooks\": {\"Stop\": \"notify-send\"}}")
    const result = cli(["hooks", "install", "--config-dir", dir])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain("its \"hooks.Stop\" is not a list; fix it by hand, nothing was changed")
  })

  it("creates the file (mode 600) when there is none, in $CLAUDE_CONFIG_DIR when no --config-dir is given", () => {
    const dir = join(tempDir(), "claude-config")
    const result = cli(["hooks", "install"], { CLAUDE_CONFIG_DIR: dir })
    expect(result.code).toBe(0)
    expect(result.stdout).toContain("(it did not exist)")
    expect(countOurs(settingsOf(dir))).toBe(6)
    expect(statSync(join(dir, "settings.json")).mode & 0o777).toBe(0o600)
    expect(backups(dir)).toStrictEqual([])
  })

  it("writes through a symlinked settings.json (dotfiles): the link stays a link", () => {
    const dir = tempDir()
    const dotfiles = join(tempDir(), "dotfiles")
    mkdirSync(dotfiles)
    writeFileSync(join(dotfiles, "claude-settings.json"), USER_TEXT)
    symlinkSync(join(dotfiles, "claude-settings.json"), join(dir, "settings.json"))
    expect(cli(["hooks", "install", "--config-dir", dir]).code).toBe(0)
    expect(lstatSync(join(dir, "settings.json")).isSymbolicLink()).toBe(true)
    expect(countOurs(JSON.parse(readFileSync(join(dotfiles, "claude-settings.json"), "utf8")))).toBe(6)
  })

  it("API_PORT=0: http hooks cannot point at it, exit 1 and nothing written; --transport command can", () => {
    const dir = tempDir()
    const refused = cli(["hooks", "install", "--config-dir", dir], { API_PORT: "0" })
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain("API_PORT=0 picks another port at every start")
    expect(existsSync(join(dir, "settings.json"))).toBe(false)
    expect(cli(["hooks", "install", "--config-dir", dir, "--transport", "command"], { API_PORT: "0" }).code).toBe(0)
    expect(JSON.stringify(settingsOf(dir))).not.toContain("\"type\":\"http\"")
  })

  it("a usage error is exit 2", () => {
    expect(cli(["hooks", "install", "--transport", "pigeon"]).code).toBe(2)
  })
})

describe("claude-failover hooks print", () => {
  it("prints the fragment for API_HOST/API_PORT, with the token header when API_TOKEN is set", () => {
    const result = cli(["hooks", "print"], {
      API_HOST: "0.0.0.0",
      API_PORT: "7999",
      API_TOKEN: "s3cret",
      QUEUE_DIR: "/srv/q"
    })
    expect(result.code).toBe(0)
    const fragment = JSON.parse(result.stdout)
    expect(Object.keys(fragment.hooks)).toStrictEqual([
      "SessionStart",
      "UserPromptSubmit",
      "Stop",
      "StopFailure",
      "Notification",
      "SessionEnd"
    ])
    expect(fragment.hooks.Stop[0].hooks[0]).toMatchObject({
      type: "http",
      url: "http://127.0.0.1:7999/api/hooks",
      headers: { Authorization: "Bearer $CLAUDE_FAILOVER_API_TOKEN" }
    })
    expect(fragment.hooks.SessionStart[0].hooks[0].command).toContain("hooks report --queue-dir /srv/q")
    expect(result.stdout).not.toContain("s3cret")
    expect(result.stderr).toContain("CLAUDE_FAILOVER_API_TOKEN")
  })
})

// ---------------------------------------------------------------------------------------------------------------------

interface Received {
  readonly headers: IncomingHttpHeaders
  readonly url: string
  readonly body: string
}

/** Runs `hooks report` with `stdin`, as Claude Code runs a command hook. */
const report = (args: ReadonlyArray<string>, stdin: string, env: Record<string, string>) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [BIN, "hooks", "report", ...args], { env: { ...baseEnv(), ...env } })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => (stdout += chunk))
    child.stderr.on("data", (chunk) => (stderr += chunk))
    child.on("close", (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(stdin)
  })

describe("claude-failover hooks report", () => {
  it("posts the event from stdin to the API in QUEUE_DIR/.lock.json, naming the session and sending the token", async () => {
    const received: Array<Received> = []
    const server = createServer((req, res) => {
      let body = ""
      req.on("data", (chunk) => (body += chunk))
      req.on("end", () => {
        received.push({ headers: req.headers, url: req.url ?? "", body })
        res.writeHead(202, { "content-type": "application/json" })
        res.end("{}")
      })
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    try {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      const queue = tempDir()
      writeFileSync(
        join(queue, ".lock.json"),
        JSON.stringify({
          pid: 1,
          host: "h",
          kind: "daemon",
          command: "claude-failover",
          started_at: "2026-11-25T00:00:00Z",
          api: `http://127.0.0.1:${port}`
        })
      )
      const event = JSON.stringify({ session_id: "s", hook_event_name: "SessionStart", source: "startup" })
      const result = await report(["--queue-dir", queue], event, {
        CLAUDE_FAILOVER_SESSION: "claude-7",
        CLAUDE_FAILOVER_API_TOKEN: "tok-7"
      })
      expect(result).toMatchObject({ code: 0, stdout: "" })
      expect(received).toHaveLength(1)
      expect(received[0]).toMatchObject({
        url: "/api/hooks",
        body: event,
        headers: {
          "x-claude-failover-session": "claude-7",
          authorization: "Bearer tok-7",
          "content-type": "application/json"
        }
      })
    } finally {
      server.close()
    }
  })

  it("with no daemon on the queue it drops the event: nothing on stdout, exit 0", async () => {
    const result = await report(["--queue-dir", tempDir()], "{\"hook_event_name\":\"Stop\"}", {
      CLAUDE_FAILOVER_SESSION: "claude-7"
    })
    expect(result.code).toBe(0)
    expect(result.stdout).toBe("")
    expect(result.stderr).toContain("no daemon serves")
  })
})
