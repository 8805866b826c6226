/**
 * contrib/claude-failover.service, the systemd user unit: read as systemd would (its keys and what they promise),
 * and checked by `systemd-analyze verify` with `%h` pointing at a home whose ~/claude-failover is this checkout.
 * Easy to get wrong: verify exits 0 on an unknown key (it only warns), so its output must be empty too.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import {
  accessSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { EXIT_USAGE } from "../../src/adapters/cli/run-cli.ts"
import { ROOT } from "../e2e/support.ts"

const UNIT = join(ROOT, "contrib/claude-failover.service")
const SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"
/** Where the unit expects the checkout: `%h` is the user's home in a user unit. */
const CHECKOUT = "%h/claude-failover"

/** Sections of keys to values (a key given twice keeps every value), as systemd reads an INI-style unit. */
const parseUnit = (text: string): ReadonlyMap<string, ReadonlyMap<string, ReadonlyArray<string>>> => {
  const sections = new Map<string, Map<string, Array<string>>>()
  let current: Map<string, Array<string>> | undefined
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim()
    if (line === "" || line.startsWith("#") || line.startsWith(";")) return
    const header = /^\[(.+)\]$/.exec(line)
    if (header?.[1] !== undefined) {
      current = new Map()
      sections.set(header[1], current)
      return
    }
    const equals = line.indexOf("=")
    if (current === undefined || equals <= 0)
      throw new Error(`${UNIT}:${index + 1}: not a key=value line in a section: ${raw}`)
    const key = line.slice(0, equals).trim()
    current.set(key, [...(current.get(key) ?? []), line.slice(equals + 1).trim()])
  })
  return sections
}

const unit = parseUnit(readFileSync(UNIT, "utf8"))
const value = (section: string, key: string): string | undefined => unit.get(section)?.get(key)?.at(-1)

const temps: Array<string> = []
afterEach(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe("the systemd user unit, as written", () => {
  it("starts the pinned Node on bin/claude-failover.js by absolute path, both present in this checkout, with npm start's flags", () => {
    const [node, ...words] = (value("Service", "ExecStart") ?? "").split(/\s+/)
    const flags = words.filter((word) => word.startsWith("--"))
    const [script, ...rest] = words.filter((word) => !word.startsWith("--"))
    expect([node, script, rest]).toStrictEqual([
      `${CHECKOUT}/node_modules/node/bin/node`,
      `${CHECKOUT}/bin/claude-failover.js`,
      []
    ])
    // The same Node flags as `npm start` (the young generation's size): the service runs what was measured.
    const start = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts.start as string
    expect(flags).toStrictEqual(start.split(/\s+/).filter((word) => word.startsWith("--")))
    expect(flags.length).toBeGreaterThan(0)
    // The daemon finds its configuration by itself (~/.config/claude-failover/config.yaml): no --config here.
    for (const path of [node, script]) {
      expect(() => accessSync((path ?? "").replace(CHECKOUT, ROOT), constants.X_OK)).not.toThrow()
    }
    expect(value("Service", "WorkingDirectory")).toBe(CHECKOUT)
  })

  it("restarts after a failure, but not after exit 2, which a restart cannot cure", () => {
    expect(value("Service", "Restart")).toBe("on-failure")
    expect(value("Service", "RestartPreventExitStatus")).toBe(String(EXIT_USAGE))
    expect(value("Service", "RestartSec")).toMatch(/^\d+s$/)
  })

  it("stops with SIGTERM to the daemon alone, so a tmux server it started survives, within a bounded time", () => {
    expect(value("Service", "KillSignal")).toBe("SIGTERM")
    expect(value("Service", "KillMode")).toBe("process")
    // Longer than a clean stop (a headless run gets 5 s to end), short enough for a restart not to hang.
    const timeout = Number(/^(\d+)s$/.exec(value("Service", "TimeoutStopSec") ?? "")?.[1])
    expect(timeout).toBeGreaterThanOrEqual(15)
    expect(timeout).toBeLessThanOrEqual(90)
  })

  it("is enabled into the user's default target", () => {
    expect(value("Install", "WantedBy")).toBe("default.target")
  })
})

describe("systemd-analyze verify", () => {
  /** A home whose claude-failover/ is this checkout, the unit copied (with `extra` appended) into a directory. */
  const verify = (extra = "") => {
    const home = mkdtempSync(join(tmpdir(), "cf-unit-home-"))
    temps.push(home)
    symlinkSync(ROOT, join(home, "claude-failover"))
    const runtime = join(home, "run")
    mkdirSync(runtime, { mode: 0o700 })
    const units = join(home, "units")
    mkdirSync(units)
    const copy = join(units, "claude-failover.service")
    copyFileSync(UNIT, copy)
    if (extra !== "") writeFileSync(copy, `${readFileSync(copy, "utf8")}${extra}\n`)
    // --user reads %h as a user manager would; it needs a runtime directory, which a root shell has none of.
    const result = spawnSync(SYSTEMD_ANALYZE, ["verify", "--user", copy], {
      env: { ...process.env, HOME: home, XDG_RUNTIME_DIR: runtime },
      encoding: "utf8"
    })
    return { code: result.status, output: `${result.stdout}${result.stderr}`, error: result.error }
  }

  it("accepts the unit without a warning, its ExecStart resolved under the home directory", () => {
    if (!existsSync(SYSTEMD_ANALYZE)) {
      // No systemd here: the parse above is all that can be checked, and it must have found the service.
      expect(unit.has("Service")).toBe(true)
      return
    }
    expect(verify()).toStrictEqual({ code: 0, output: "", error: undefined })
  })

  it("would report a key systemd does not know (the check above is not blind)", () => {
    if (!existsSync(SYSTEMD_ANALYZE)) {
      expect(() => parseUnit("NoSection=1")).toThrow(/not a key=value line in a section/)
      return
    }
    expect(verify("[Service]\nRestartPreventExitCode=2").output).toContain("Unknown key 'RestartPreventExitCode'")
  })
})
