/** `claude-failover --config FILE` and `config`: the file under the env, and bad settings stopping everything with exit 2. */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { tempDirs } from "../temp-dirs.ts"

const BIN = join(import.meta.dirname, "../../bin/claude-failover.js")

const cli = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !/^(QUEUE_DIR|API_|SECUTOOLS_|POLL_)/.test(key))
  )
  const result = spawnSync(process.execPath, [BIN, ...args], {
    cwd: tmpdir(),
    env: { ...base, ...env },
    encoding: "utf8"
  })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

const dir = tempDirs("cf-config-cli-")

describe("claude-failover --config", () => {
  it("prints the file's settings under the env's, secrets redacted", () => {
    const file = join(dir(), "cf.yaml")
    writeFileSync(file, "queue_dir: /srv/queue\npoll_interval: 1s\nsecutools_api_key: sk-file-secret-81\n")
    const { code, stdout } = cli(["config", "--config", file], { POLL_INTERVAL: "3s" })
    expect(code).toBe(0)
    expect(JSON.parse(stdout)).toMatchObject({
      QUEUE_DIR: "/srv/queue",
      POLL_INTERVAL: "3s",
      SECUTOOLS_API_KEY: "<redacted>"
    })
    expect(stdout).not.toContain("sk-file-secret-81")
  })

  it("stops the daemon before it starts, exit 2, listing every bad key of the file and the env", () => {
    const root = dir()
    const file = join(root, "cf.yaml")
    const queue = join(root, "queue")
    writeFileSync(file, `queue_dir: ${queue}\nqueue_dirx: 1\n`)
    const { code, stderr } = cli(["--config", file], { API_PORT: "70000", SECUTOOLS_API_KEY: "  " })
    expect(code).toBe(2)
    expect(stderr).toContain(`${file}:2:1: unknown setting 'queue_dirx'`)
    expect(stderr).toContain("API_PORT=\"70000\": expected a whole number from 0 to 65535")
    expect(existsSync(queue)).toBe(false)
  })

  it("has --help naming --config", () => {
    const { code, stdout } = cli(["--help"])
    expect(code).toBe(0)
    expect(stdout).toContain("--config")
  })
})

describe("claude-failover config: which file", () => {
  it("finds the file in XDG_CONFIG_HOME, names it on stderr, and lets CLAUDE_FAILOVER_ names win", () => {
    const xdg = dir()
    mkdirSync(join(xdg, "claude-failover"))
    const file = join(xdg, "claude-failover", "config.yaml")
    writeFileSync(file, "queue_dir: q\npoll_interval: 1s\nscan_interval: 9s\n")
    const { code, stderr, stdout } = cli(["config"], {
      XDG_CONFIG_HOME: xdg,
      POLL_INTERVAL: "3s",
      CLAUDE_FAILOVER_POLL_INTERVAL: "4s"
    })
    expect(code).toBe(0)
    expect(stderr).toContain(`configuration file: ${file}`)
    expect(JSON.parse(stdout)).toMatchObject({
      QUEUE_DIR: join(xdg, "claude-failover", "q"),
      POLL_INTERVAL: "4s",
      SCAN_INTERVAL: "9s"
    })
  })

  it("takes CLAUDE_FAILOVER_CONFIG over the default file, and says when there is none", () => {
    const xdg = dir()
    const named = join(dir(), "named.yaml")
    writeFileSync(named, "poll_interval: 7s\n")
    const found = cli(["config"], { XDG_CONFIG_HOME: xdg, CLAUDE_FAILOVER_CONFIG: named })
    expect(JSON.parse(found.stdout)).toMatchObject({ POLL_INTERVAL: "7s" })
    expect(found.stderr).toContain(`configuration file: ${named}`)
    const none = cli(["config"], { XDG_CONFIG_HOME: xdg })
    expect(none.code).toBe(0)
    expect(none.stderr).toContain("no configuration file")
    const missing = cli(["config"], { XDG_CONFIG_HOME: xdg, CLAUDE_FAILOVER_CONFIG: join(xdg, "absent.yaml") })
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain(`${join(xdg, "absent.yaml")}: cannot read`)
  })
})
