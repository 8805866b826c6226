import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Option, Redacted, Result } from "effect"
import {
  backendProblems,
  describeConfig,
  exposureProblem,
  resolveConfig,
  routingSettings,
  Settings
} from "../src/config.ts"

describe("configuration", () => {
  it("has DESIGN's defaults when nothing is set", () => {
    const config = Result.getOrThrow(resolveConfig({}))
    expect(config.queueDir).toBe("./queue")
    expect(config.secutoolsUrl).toBe("http://127.0.0.1:8787")
    expect(config.apiHost).toBe("127.0.0.1")
    expect(config.apiPort).toBe(7878)
    expect(Duration.toMillis(config.scanInterval)).toBe(5_000)
    expect(Duration.toMillis(config.staleAfter)).toBe(30 * 60_000)
    expect(Option.isNone(config.requeueAfter)).toBe(true)
    expect(Duration.toMillis(config.limitCooldown)).toBe(5 * 3_600_000)
    expect(config.complexityMap).toStrictEqual({ low: "gpu", medium: "gemini", high: "claude-api" })
    expect(routingSettings(config).delegationEnabled).toBe(false)
  })

  it("reads env values: durations, lists, accounts, secrets", () => {
    const config = Result.getOrThrow(resolveConfig({
      SECUTOOLS_API_KEY: "sk-123",
      TMUX_SESSIONS: "claude-1, claude-2",
      TMUX_ACCOUNTS: "a1:claude-1,claude-2;a2:claude-3",
      POLL_INTERVAL: "500ms",
      REQUEUE_AFTER: "1h",
      FAILOVER_PROVIDER: "Gemini",
      API_PORT: "0"
    }))
    expect(Option.map(config.secutoolsApiKey, Redacted.value)).toStrictEqual(Option.some("sk-123"))
    expect(String(config.secutoolsApiKey)).not.toContain("sk-123")
    expect(config.tmuxSessions).toStrictEqual(Option.some(["claude-1", "claude-2"]))
    expect(Option.map(config.tmuxAccounts, (m) => [...m])).toStrictEqual(
      Option.some([["a1", ["claude-1", "claude-2"]], ["a2", ["claude-3"]]])
    )
    expect(Duration.toMillis(config.pollInterval)).toBe(500)
    expect(Option.map(config.requeueAfter, Duration.toMillis)).toStrictEqual(Option.some(3_600_000))
    expect(config.failoverProvider).toBe("gemini")
    expect(config.apiPort).toBe(0)
    expect(routingSettings(config).delegationEnabled).toBe(true)
  })

  it("lists every bad key at once, never echoing a secret", () => {
    const result = resolveConfig({
      API_PORT: "70000",
      SCAN_INTERVAL: "5 seconds",
      COMPLEXITY_MAP: "low=gpt",
      LOG_FORMAT: "xml",
      API_TOKEN: "   "
    })
    expect(Result.isFailure(result)).toBe(true)
    const problems = Result.isFailure(result) ? result.failure.problems : []
    expect(problems).toStrictEqual([
      "API_PORT=\"70000\": expected a whole number from 0 to 65535",
      "SCAN_INTERVAL=\"5 seconds\": expected a duration such as 500ms, 30s, 5m or 1h",
      "COMPLEXITY_MAP=\"low=gpt\": 'low=gpt': unknown provider 'gpt' (known: gpu, gemini, claude-api)",
      "LOG_FORMAT=\"xml\": expected one of pretty, json"
    ])
  })

  it("names every setting exactly once, and the README's configuration table lists exactly these", () => {
    const names = Object.values(Settings).map((setting) => setting.env)
    expect(new Set(names).size).toBe(names.length)
    const readme = readFileSync(join(import.meta.dirname, "../README.md"), "utf8")
    const table = readme.slice(readme.indexOf("| env | default | meaning |"))
    const rows = table.slice(0, table.indexOf("\n\n")).split("\n").slice(2)
    const documented = rows.flatMap((row) => [...row.split("|")[1]?.matchAll(/`([A-Z_]+)`/g) ?? []].map((m) => m[1]))
    expect([...documented].sort()).toStrictEqual([...names].sort())
  })

  it("reads sizes as operators write them", () => {
    const sized = (raw: string) => Result.map(resolveConfig({ MAX_TASK_SIZE: raw }), (config) => config.maxTaskSize)
    expect(sized("65536")).toStrictEqual(Result.succeed(65536))
    expect(sized("64KB")).toStrictEqual(Result.succeed(65536))
    expect(sized("1mb")).toStrictEqual(Result.succeed(1024 * 1024))
    expect(Result.isFailure(sized("lots"))).toBe(true)
    expect(Result.isFailure(sized("0"))).toBe(true)
  })

  it("refuses a status API reachable from other hosts without a token, unless allowed explicitly", () => {
    const exposure = (env: Record<string, string>) => exposureProblem(Result.getOrThrow(resolveConfig(env)))
    expect(exposure({ API_HOST: "0.0.0.0" })).toContain("API_HOST=\"0.0.0.0\" is reachable from other hosts")
    expect(exposure({ API_HOST: "192.0.2.7" })).toContain("set API_TOKEN")
    expect(exposure({ API_HOST: "0.0.0.0", API_TOKEN: "t" })).toBeUndefined()
    expect(exposure({ API_HOST: "0.0.0.0", API_ALLOW_OPEN: "true" })).toBeUndefined()
    for (const host of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"])
      expect(exposure({ API_HOST: host })).toBeUndefined()
  })
})

describe("the shared queue's settings", () => {
  const problems = (env: Record<string, string>) => backendProblems(Result.getOrThrow(resolveConfig(env)))

  it("files by default; PostgreSQL needs a postgres URL, kept redacted, and a host id that can be shown", () => {
    const config = Result.getOrThrow(resolveConfig({}))
    expect(config.queueBackend).toBe("fs")
    expect(Result.getOrThrow(resolveConfig({ QUEUE_BACKEND: "files" })).queueBackend).toBe("fs")
    expect(Duration.toMillis(config.leaseTtl)).toBe(30_000)
    expect(problems({})).toStrictEqual([])
    expect(problems({ QUEUE_BACKEND: "postgres" })).toStrictEqual([
      "QUEUE_BACKEND=postgres needs DATABASE_URL (postgres://…)"
    ])
    const url = "postgres://app:hunter2@db.example:5432/queue"
    const shared = Result.getOrThrow(resolveConfig({ QUEUE_BACKEND: "postgres", DATABASE_URL: url, HOST_ID: "box-7" }))
    expect(backendProblems(shared)).toStrictEqual([])
    expect(Option.map(shared.databaseUrl, Redacted.value)).toStrictEqual(Option.some(url))
    expect(shared.hostId).toStrictEqual(Option.some("box-7"))
    expect(JSON.stringify(describeConfig(shared))).not.toContain("hunter2")
    expect(describeConfig(shared)["DATABASE_URL"]).toBe("<redacted>")
  })

  it("refuses a URL of another scheme, a host id that cannot be shown, a lease too short, without echoing the URL", () => {
    const result = resolveConfig({
      DATABASE_URL: "mysql://app:hunter2@db/queue",
      HOST_ID: "two words",
      LEASE_TTL: "1s",
      QUEUE_BACKEND: "oracle"
    })
    expect(Result.isFailure(result)).toBe(true)
    const message = Result.isFailure(result) ? result.failure.message : ""
    for (const key of ["DATABASE_URL", "HOST_ID", "LEASE_TTL", "QUEUE_BACKEND"]) expect(message).toContain(key)
    expect(message).toContain("must be at least 3s")
    expect(message).not.toContain("hunter2")
  })

  it("delegates on a shared queue with a secutools URL, not with the stand-in inside one daemon", () => {
    const env = { QUEUE_BACKEND: "postgres", DATABASE_URL: "postgres://db/queue" }
    expect(problems({ ...env, SECUTOOLS_API_KEY: "sk-1" })).toStrictEqual([])
    expect(problems({ ...env, SECUTOOLS_MODE: "fake" })[0]).toContain("SECUTOOLS_MODE=fake keeps its jobs inside")
    expect(problems(env)).toStrictEqual([])
  })
})

describe("configuration display", () => {
  it("shows durations as operators write them and redacts secrets", () => {
    const shown = describeConfig(Result.getOrThrow(resolveConfig({ API_TOKEN: "tok-9", POLL_INTERVAL: "1500ms" })))
    expect(shown).toMatchObject({
      STALE_AFTER: "30m",
      LIMIT_COOLDOWN: "5h",
      POLL_INTERVAL: "1500ms",
      SCAN_INTERVAL: "5s"
    })
    expect(shown.API_TOKEN).toBe("<redacted>")
    expect(JSON.stringify(shown)).not.toContain("tok-9")
  })
})
