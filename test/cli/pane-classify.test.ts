/**
 * `claude-failover pane classify` as a process, over the recorded screens: the state cases.json expects for each,
 * reset times read against --now in --time-zone, and the exit codes (1: a file unreadable, 2: a bad flag).
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const BIN = join(import.meta.dirname, "../../bin/claude-failover.js")
const SCREENS = join(import.meta.dirname, "../fixtures/screens")
const REAL_SCREENS = join(import.meta.dirname, "../fixtures/real-screens")
const cases = JSON.parse(readFileSync(join(SCREENS, "cases.json"), "utf8")) as ReadonlyArray<{
  readonly file: string
  readonly expect: string
  readonly reset?: string
}>

/** The same clock as test/domain/pane.test.ts: Tuesday 2026-11-24 18:00 UTC, zone-less banners in Europe/Berlin. */
const CLOCK = ["--now", "2026-11-24T18:00:00Z", "--time-zone", "Europe/Berlin"]
/** Worked out by hand, as in pane.test.ts. */
const expectedReset: Readonly<Record<string, string>> = {
  "9am (America/Chicago)": "2026-11-24T15:00:00.000Z",
  "3pm": "2026-11-24T14:00:00.000Z",
  "1762952400": "2025-11-12T13:00:00.000Z"
}

/** Temporary directories of the tests below, removed at the end. */
const temporary: Array<string> = []
afterAll(() => {
  for (const dir of temporary) rmSync(dir, { recursive: true, force: true })
})
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "cf-classify-"))
  temporary.push(dir)
  return dir
}

const cli = (args: ReadonlyArray<string>) => {
  const result = spawnSync(process.execPath, [BIN, "pane", "classify", ...args], { cwd: SCREENS, encoding: "utf8" })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}
const jsonLines = (stdout: string) =>
  stdout.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as Record<string, unknown>)

describe("claude-failover pane classify", () => {
  it("--json: one object a line per recorded screen, with the state and reset time cases.json gives", () => {
    const { code, stderr, stdout } = cli(["--json", ...CLOCK, ...cases.map((c) => c.file)])
    expect(stderr).toBe("")
    expect(code).toBe(0)
    const lines = jsonLines(stdout)
    expect(lines.map((line) => line.file)).toStrictEqual(cases.map((c) => c.file))
    for (const [i, c] of cases.entries()) {
      const line = lines[i] ?? {}
      expect(line.state, c.file).toBe(c.expect)
      expect(line.resetAt, c.file).toBe(c.reset === undefined ? null : expectedReset[c.reset] ?? "unlisted")
      expect(Object.keys(line).slice(0, 4)).toStrictEqual(["file", "state", "resetAt", "inputBox"])
      expect("banner" in line, c.file).toBe(c.expect === "usage_limited")
      expect("question" in line, c.file).toBe(c.expect === "permission_prompt")
      expect("dialog" in line, c.file).toBe(c.expect === "setup_dialog")
    }
    expect(lines.find((line) => line.file === "setup_dialog--trust-folder-boxed.txt"))
      .toMatchObject({ dialog: "Do you trust the files in this folder?", inputBox: null })
    expect(lines.find((line) => line.file === "idle--boxed-prompt-after-work.txt")).toMatchObject({ inputBox: "" })
    expect(lines.find((line) => line.file === "usage_limited--v1-reached-wrapped.txt")).toMatchObject({
      banner: "Claude usage limit reached. Your limit will reset at 9am (America/Chicago)."
    })
  })

  it("--json over the real program's screens: state, reset time, input box, and what each state names", () => {
    const real = JSON.parse(readFileSync(join(REAL_SCREENS, "cases.json"), "utf8")) as ReadonlyArray<{
      readonly file: string
      readonly expect: string
      readonly resetAt?: string | null
      readonly inputBox: string | null
      readonly recordedAt: string
      readonly timeZone: string
    }>
    // One clock for all: the recordings are minutes apart, and every reset time is read as its occurrence nearest to it.
    const first = real[0]
    if (first === undefined) throw new Error("no recorded screens in the manifest")
    const result = spawnSync(
      process.execPath,
      [
        BIN,
        "pane",
        "classify",
        "--json",
        "--now",
        first.recordedAt,
        "--time-zone",
        first.timeZone,
        ...real.map((c) => c.file)
      ],
      { cwd: REAL_SCREENS, encoding: "utf8" }
    )
    expect(result.status).toBe(0)
    const lines = jsonLines(result.stdout)
    expect(lines).toHaveLength(real.length)
    for (const [i, c] of real.entries()) {
      const line = lines[i] ?? {}
      expect(line.state, c.file).toBe(c.expect)
      expect(line.inputBox, c.file).toBe(c.inputBox)
      if (c.expect === "usage_limited" && c.resetAt !== undefined && c.resetAt !== null) {
        expect(line.resetAt, c.file).toBe(new Date(c.resetAt).toISOString())
      }
      if (c.expect === "setup_dialog") expect(line.dialog, c.file).toEqual(expect.any(String))
      if (c.expect === "turn_error") expect(line.error, c.file).toMatch(/API Error|Not logged in/)
    }
    expect(lines.find((line) => line.file === "setup_dialog--api-key--2.1.332--80.txt")).toMatchObject({
      dialog: "Detected a custom API key in your environment"
    })
    expect(lines.find((line) => line.file === "usage_limited--limit-5h--2.1.332--200.txt")).toMatchObject({
      autoContinue: true
    })
  })

  it("reads a zone-less reset time in --time-zone, against a --now given as wall-clock time there", () => {
    // "resets 3pm": 3pm in New York on the day of --now (10:00 New York time) is 20:00 UTC.
    const ny = cli([
      "--json",
      "--now",
      "2026-11-24T10:00",
      "--time-zone",
      "America/New_York",
      "usage_limited--five-hour-reached.txt"
    ])
    expect(ny.code).toBe(0)
    expect(jsonLines(ny.stdout)[0]).toMatchObject({ state: "usage_limited", resetAt: "2026-11-24T20:00:00.000Z" })
    // The same screen and instant read in Tokyo: the 3pm nearest to 2026-11-25 00:00 Tokyo is the day before.
    const tokyo = cli([
      "--json",
      "--now",
      "2026-11-24T15:00:00Z",
      "--time-zone",
      "Asia/Tokyo",
      "usage_limited--five-hour-reached.txt"
    ])
    expect(jsonLines(tokyo.stdout)[0]).toMatchObject({ resetAt: "2026-11-24T06:00:00.000Z" })
  })

  it("prints one line per file for people: state, reset time in the zone, banner, question, input box", () => {
    const dir = tempDir()
    const typed = join(dir, "typed.txt")
    writeFileSync(
      typed,
      ["● Done.", "", "─".repeat(40), "❯ fix the login redirect", "─".repeat(40), "  ? for shortcuts"].join("\n")
    )
    const { code, stdout } = cli([
      ...CLOCK,
      "idle--boxed-prompt-after-work.txt",
      "usage_limited--v1-reached-chicago.txt",
      "usage_limited--org-out-of-usage-no-reset.txt",
      "permission_prompt--bash-command.txt",
      typed
    ])
    expect(code).toBe(0)
    expect(stdout.split("\n")).toStrictEqual([
      "idle--boxed-prompt-after-work.txt: idle",
      "usage_limited--v1-reached-chicago.txt: usage_limited (reset at 2026-11-24 16:00 Europe/Berlin), " +
      `banner: "Claude usage limit reached. Your limit will reset at 9am (America/Chicago)."`,
      `usage_limited--org-out-of-usage-no-reset.txt: usage_limited (no reset time on screen), banner: "Your org is out of usage · contact your admin"`,
      `permission_prompt--bash-command.txt: permission_prompt, question: "Do you want to proceed?"`,
      `${typed}: idle, input box: "fix the login redirect"`,
      ""
    ])
  })

  it("names an unreadable file on stderr, classifies the others, and exits 1", () => {
    const dir = tempDir()
    const locked = join(dir, "locked.txt")
    writeFileSync(locked, "x")
    chmodSync(locked, 0o000)
    const unreadable = process.getuid?.() === 0 ? [] : [locked] // root reads anything
    const { code, stderr, stdout } = cli([
      "--json",
      "no-such-screen.txt",
      "idle--boxed-prompt-after-work.txt",
      dir,
      ...unreadable
    ])
    expect(code).toBe(1)
    expect(jsonLines(stdout)).toStrictEqual([{
      file: "idle--boxed-prompt-after-work.txt",
      state: "idle",
      resetAt: null,
      inputBox: ""
    }])
    expect(stderr).toContain("no-such-screen.txt: cannot read it (no such file)")
    expect(stderr).toContain(`${dir}: cannot read it`)
    if (unreadable.length > 0) expect(stderr).toContain(`${locked}: cannot read it (permission denied)`)
    expect(stderr).toContain(`${2 + unreadable.length} of ${3 + unreadable.length} file(s) could not be read`)
  })

  it("refuses a --now that is not ISO-8601 and an unknown --time-zone: usage error, exit 2, nothing classified", () => {
    for (const now of ["yesterday", "2026-13-01T00:00:00Z", "2026-11-24T25:00", "1764007200"]) {
      const { code, stderr, stdout } = cli(["--json", "--now", now, "idle--boxed-prompt-after-work.txt"])
      expect(code, now).toBe(2)
      expect(stdout, now).not.toContain("idle--boxed-prompt-after-work.txt")
      expect(stderr, now).toContain("--now")
    }
    const zone = cli(["--time-zone", "Mars/Olympus", "idle--boxed-prompt-after-work.txt"])
    expect(zone.code).toBe(2)
    expect(zone.stderr).toContain("expected an IANA time zone")
  })

  it("defaults to now in the host's zone", () => {
    const { code, stdout } = cli(["--json", "usage_limited--five-hour-reached.txt"])
    expect(code).toBe(0)
    const resetAt = Date.parse(String(jsonLines(stdout)[0]?.resetAt))
    // The 3pm nearest to now: never more than 12 hours away.
    expect(Math.abs(resetAt - Date.now())).toBeLessThanOrEqual(12 * 3_600_000)
  })
})
