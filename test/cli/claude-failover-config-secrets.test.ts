/** `claude-failover config` and a bad configuration never show SECUTOOLS_URL's credentials. */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { tmpdir } from "node:os"
import { join } from "node:path"

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

describe("claude-failover config: SECUTOOLS_URL credentials", () => {
  it("prints the URL with its user and password replaced by <redacted>", () => {
    const { code, stdout } = cli(["config"], { SECUTOOLS_URL: "https://alice:s3cret@example.com" })
    expect(code).toBe(0)
    expect(stdout).not.toContain("s3cret")
    expect(stdout).not.toContain("alice")
    expect(JSON.parse(stdout)).toMatchObject({ SECUTOOLS_URL: "https://<redacted>@example.com" })
  })

  it("a URL without credentials is shown as it is", () => {
    const { code, stdout } = cli(["config"], { SECUTOOLS_URL: "https://secutools.example.com/api/" })
    expect(code).toBe(0)
    expect(JSON.parse(stdout)).toMatchObject({ SECUTOOLS_URL: "https://secutools.example.com/api" })
  })

  it("a URL that does not parse is reported without its credentials, exit 2", () => {
    const { code, stdout, stderr } = cli(["config"], { SECUTOOLS_URL: "https://alice:s3/cret@exa mple.com" })
    expect(code).toBe(2)
    expect(stdout + stderr).not.toContain("cret")
    expect(stderr).toContain("SECUTOOLS_URL=\"https://<redacted>@exa mple.com\": expected an http:// or https:// URL")
  })

  it("a URL of another scheme is refused, its credentials hidden", () => {
    const { code, stderr } = cli(["config"], { SECUTOOLS_URL: "ftp://alice:s3cret@example.com" })
    expect(code).toBe(2)
    expect(stderr).not.toContain("s3cret")
    expect(stderr).toContain("SECUTOOLS_URL=\"ftp://<redacted>@example.com\": expected an http:// or https:// URL")
  })
})
