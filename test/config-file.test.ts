/** The YAML configuration file: env names in lower case, lists and maps in env syntax, the env winning. */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Option, Result } from "effect"
import fc from "fast-check"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { parseConfigFile, withEnvOver } from "../src/config-file.ts"
import {
  defaultConfigFile,
  describeConfig,
  findConfigFile,
  loadConfig,
  loadConfigWithSource,
  Settings
} from "../src/config.ts"
import { RUNS } from "./domain/arbitraries.ts"
import { tempDirs } from "./temp-dirs.ts"

const KNOWN = Object.values(Settings).map((setting) => setting.env)

const configDir = tempDirs("cf-config-")
const fileWith = (text: string) => {
  const path = join(configDir(), "claude-failover.yaml")
  writeFileSync(path, text)
  return path
}

describe("configuration file", () => {
  it("reads scalars, lists and maps in the env's syntax", () => {
    const parsed = parseConfigFile(
      "c.yaml",
      "queue_dir: /srv/queue\napi_port: 0\ntmux_sessions: [claude-1, claude-2]\ntmux_accounts:\n  a: [claude-1, claude-2]\n  b: [claude-3]\ncomplexity_map:\n  low: gemini\n",
      KNOWN
    )
    expect(parsed).toStrictEqual({
      settings: {
        QUEUE_DIR: "/srv/queue",
        API_PORT: "0",
        TMUX_SESSIONS: "claude-1,claude-2",
        TMUX_ACCOUNTS: "a:claude-1,claude-2;b:claude-3",
        COMPLEXITY_MAP: "low=gemini"
      },
      problems: []
    })
  })

  it("names the file, line and column of a syntax error and of an unknown setting", () => {
    expect(parseConfigFile("c.yaml", "queue_dir: [unclosed\n", KNOWN).problems[0]).toMatch(
      /^c\.yaml:\d+:\d+: invalid YAML: /
    )
    const unknown = parseConfigFile("c.yaml", "queue_dir: q\nqueue_dirx: 1\nQUEUE_DIR: q\n", KNOWN).problems
    expect(unknown).toHaveLength(2)
    expect(unknown[0]).toMatch(/^c\.yaml:2:1: unknown setting 'queue_dirx' \(known: queue_dir, /)
    expect(unknown[1]).toMatch(/^c\.yaml:3:1: unknown setting 'QUEUE_DIR'/)
  })

  it("refuses YAML aliases with line and column, instead of expanding them or throwing", () => {
    expect(parseConfigFile("c.yaml", "queue_dir: *nope\n", KNOWN)).toStrictEqual({
      settings: {},
      problems: ["c.yaml:1:12: YAML aliases (*nope) are not allowed in the configuration file"]
    })
    const reused = parseConfigFile("c.yaml", "tmux_sessions: &s [claude-1]\napi_port: 0\nqueue_dir: *s\n", KNOWN)
    expect(reused).toStrictEqual({
      settings: { TMUX_SESSIONS: "claude-1", API_PORT: "0" },
      problems: ["c.yaml:3:12: YAML aliases (*s) are not allowed in the configuration file"]
    })
  })

  it("survives an alias bomb, reporting its aliases", () => {
    const nine = (alias: string) => `[${Array(9).fill(alias).join(", ")}]`
    const bomb = `queue_dir: &a ${nine("lol")}\napi_port: &b ${nine("*a")}\ntmux_sessions: &c ${
      nine("*b")
    }\npoll_interval: ${nine("*c")}\n`
    const { problems } = parseConfigFile("c.yaml", bomb, KNOWN)
    expect(problems).toHaveLength(27)
    expect(problems[0]).toBe("c.yaml:2:15: YAML aliases (*a) are not allowed in the configuration file")
  })

  it("never throws, and every problem names the file", () => {
    const yamlish = fc.array(
      fc.oneof(
        fc.constantFrom(
          "queue_dir: ",
          "api_port:",
          "*a",
          "&a ",
          "!!binary aGk=",
          "!x ",
          "[",
          "{",
          "]",
          "\n",
          "\n  ",
          "- ",
          ": ",
          "\0"
        ),
        fc.string({ unit: "binary", maxLength: 8 })
      ),
      { maxLength: 30 }
    ).map((parts) => parts.join(""))
    fc.assert(
      fc.property(fc.oneof(yamlish, fc.string({ unit: "binary", maxLength: 200 })), (text) => {
        const { problems } = parseConfigFile("c.yaml", text, KNOWN)
        for (const problem of problems) expect(problem.startsWith("c.yaml")).toBe(true)
      }),
      RUNS
    )
  })

  it("lets a non-blank env value win over the file", () => {
    expect(withEnvOver({ QUEUE_DIR: "/file", POLL_INTERVAL: "1s" }, { QUEUE_DIR: "/env", POLL_INTERVAL: " " }))
      .toStrictEqual({
        QUEUE_DIR: "/env",
        POLL_INTERVAL: "1s"
      })
  })

  it("reports the file's problems and the merged values' problems together", () => {
    const path = fileWith("queue_dirx: 1\napi_port: 99999\npoll_interval: 2s\n")
    const result = loadConfig(Option.some(path), { POLL_INTERVAL: "soon" })
    expect(Result.isFailure(result) ? result.failure.problems : []).toStrictEqual([
      expect.stringContaining(`${path}:1:1: unknown setting 'queue_dirx'`),
      "API_PORT=\"99999\": expected a whole number from 0 to 65535",
      "POLL_INTERVAL=\"soon\": expected a duration such as 500ms, 30s, 5m or 1h"
    ])
  })

  it("resolves a good file under the env", () => {
    const config = Result.getOrThrow(
      loadConfig(Option.some(fileWith("queue_dir: /from/file\npoll_interval: 1s\n")), { POLL_INTERVAL: "3s" })
    )
    expect(config.queueDir).toBe("/from/file")
    expect(Duration.toMillis(config.pollInterval)).toBe(3_000)
  })

  it("says when the file cannot be read", () => {
    const result = loadConfig(Option.some("/nonexistent/claude-failover.yaml"), {})
    expect(Result.isFailure(result) ? result.failure.problems[0] : "").toMatch(
      /^\/nonexistent\/claude-failover\.yaml: cannot read: /
    )
  })
})

describe("finding the configuration file", () => {
  const home = tempDirs("cf-home-")

  it("takes --config, else CLAUDE_FAILOVER_CONFIG, else XDG_CONFIG_HOME's file when it is there", () => {
    const xdg = home()
    const there = () => true
    expect(
      findConfigFile(Option.some("rel/cf.yaml"), { CLAUDE_FAILOVER_CONFIG: "/env.yaml", XDG_CONFIG_HOME: xdg }, there)
    )
      .toStrictEqual(Option.some(join(process.cwd(), "rel/cf.yaml")))
    expect(findConfigFile(Option.none(), { CLAUDE_FAILOVER_CONFIG: "/env.yaml", XDG_CONFIG_HOME: xdg }, there))
      .toStrictEqual(Option.some("/env.yaml"))
    expect(findConfigFile(Option.none(), { CLAUDE_FAILOVER_CONFIG: "  ", XDG_CONFIG_HOME: xdg }, there))
      .toStrictEqual(Option.some(join(xdg, "claude-failover", "config.yaml")))
    expect(findConfigFile(Option.none(), { XDG_CONFIG_HOME: xdg }, () => false)).toStrictEqual(Option.none())
  })

  it("falls back to ~/.config when XDG_CONFIG_HOME is unset or relative, and to nothing without a home", () => {
    expect(defaultConfigFile({ HOME: "/home/op" })).toBe("/home/op/.config/claude-failover/config.yaml")
    expect(defaultConfigFile({ HOME: "/home/op", XDG_CONFIG_HOME: "relative/dir" })).toBe(
      "/home/op/.config/claude-failover/config.yaml"
    )
    expect(defaultConfigFile({})).toBeUndefined()
  })

  it("reads the default file, names it, and takes its relative paths from its own directory", () => {
    const xdg = home()
    mkdirSync(join(xdg, "claude-failover"))
    const file = join(xdg, "claude-failover", "config.yaml")
    writeFileSync(file, "queue_dir: queue\nsessions_cwd: ../work\npoll_interval: 1s\n")
    const loaded = Result.getOrThrow(loadConfigWithSource(Option.none(), { XDG_CONFIG_HOME: xdg }))
    expect(loaded.file).toStrictEqual(Option.some(file))
    expect(loaded.config.queueDir).toBe(join(xdg, "claude-failover", "queue"))
    expect(loaded.config.sessionsCwd).toStrictEqual(Option.some(join(xdg, "work")))
    // A relative QUEUE_DIR from the environment stays relative to the working directory.
    expect(
      Result.getOrThrow(loadConfigWithSource(Option.none(), { XDG_CONFIG_HOME: xdg, QUEUE_DIR: "here" })).config
        .queueDir
    ).toBe("here")
  })

  it("refuses a named file that is missing instead of running without it", () => {
    const result = loadConfigWithSource(Option.none(), { CLAUDE_FAILOVER_CONFIG: "/nonexistent/cf.yaml" })
    expect(Result.isFailure(result) ? result.failure.problems[0] : "").toMatch(
      /^\/nonexistent\/cf\.yaml: cannot read: /
    )
  })
})

describe("CLAUDE_FAILOVER_ names", () => {
  it("win over the plain names, which win over the file; a blank one counts as unset", () => {
    const path = fileWith("poll_interval: 1s\nscan_interval: 9s\nreap_interval: 7s\n")
    const config = Result.getOrThrow(loadConfig(Option.some(path), {
      CLAUDE_FAILOVER_POLL_INTERVAL: "4s",
      POLL_INTERVAL: "3s",
      SCAN_INTERVAL: "8s",
      CLAUDE_FAILOVER_REAP_INTERVAL: " "
    }))
    expect([config.pollInterval, config.scanInterval, config.reapInterval].map(Duration.toMillis)).toStrictEqual([
      4_000,
      8_000,
      7_000
    ])
  })

  it("name themselves in a problem", () => {
    const result = loadConfig(Option.none(), { CLAUDE_FAILOVER_API_PORT: "x", API_PORT: "1" })
    expect(Result.isFailure(result) ? result.failure.problems : []).toStrictEqual([
      "CLAUDE_FAILOVER_API_PORT=\"x\": expected a whole number from 0 to 65535"
    ])
  })

  it("hold for every interval setting, whatever its value: the prefixed value is the one resolved", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...KNOWN.filter((env) => env.endsWith("_INTERVAL"))),
        fc.integer({ min: 1, max: 999 }),
        (env, seconds) => {
          const config = Result.getOrThrow(
            loadConfig(Option.none(), { [`CLAUDE_FAILOVER_${env}`]: `${seconds}s`, [env]: "1000s" })
          )
          const alone = Result.getOrThrow(loadConfig(Option.none(), { [env]: `${seconds}s` }))
          expect(describeConfig(config)[env]).toBe(describeConfig(alone)[env])
        }
      ),
      RUNS
    )
  })
})
