/**
 * Every setting, once: its env name, default, parser and meaning. Env wins over the YAML file.
 * Easy to get wrong: validation reports every bad key at once, and secrets stay `Redacted` end to end.
 */
import { existsSync, readFileSync } from "node:fs"
import { dirname, isAbsolute, join, resolve } from "node:path"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { parseConfigFile, withEnvOver } from "./config-file.ts"
import { IdlePolicies, LimitPolicies, type LimitPolicy } from "./domain/limit-policy.ts"
import { parseProvider, type Provider, Providers } from "./domain/provider.ts"
import { hideUrlCredentials } from "./domain/redact.ts"
import { type ComplexityMap, parseComplexityMap } from "./domain/routing.ts"

type Parse<A> = (raw: string) => Result.Result<A, string>

interface Setting<A, F extends string | undefined = string | undefined> {
  readonly env: string
  /** The raw default, as an operator would write it; undefined = unset. */
  readonly fallback: F
  readonly parse: Parse<A>
  readonly meaning: string
  /** `true`: never shown; a function: what of a value may be shown (SECUTOOLS_URL without its credentials). */
  readonly secret?: boolean | Conceal
}

type Conceal = (text: string) => string

const setting = <A, const F extends string | undefined>(
  env: string,
  fallback: F,
  parse: Parse<A>,
  meaning: string,
  secret: boolean | Conceal = false
): Setting<A, F> => ({ env, fallback, parse, meaning, secret })

const text: Parse<string> = (raw) => raw.trim() === "" ? Result.fail("must not be empty") : Result.succeed(raw.trim())
const secret: Parse<Redacted.Redacted<string>> = (raw) => Result.map(text(raw), (value) => Redacted.make(value))
const oneOf = <const L extends ReadonlyArray<string>>(choices: L): Parse<L[number]> => (raw) => {
  const choice = choices.find((c) => c === raw.trim().toLowerCase())
  return choice === undefined ? Result.fail(`expected one of ${choices.join(", ")}`) : Result.succeed(choice)
}
const list: Parse<ReadonlyArray<string>> = (raw) => {
  const items = raw.split(",").map((item) => item.trim()).filter((item) => item.length > 0)
  return items.length === 0 ? Result.fail("expected a comma-separated list of names") : Result.succeed(items)
}
const integer = (min: number, max: number): Parse<number> => (raw) => {
  const value = Number(raw.trim())
  return Number.isInteger(value) && value >= min && value <= max && raw.trim() !== ""
    ? Result.succeed(value)
    : Result.fail(`expected a whole number from ${min} to ${max}`)
}
const url: Parse<string> = (raw) =>
  /^https?:$/.test(URL.parse(raw.trim())?.protocol ?? "")
    ? Result.succeed(raw.trim().replace(/\/+$/, ""))
    : Result.fail("expected an http:// or https:// URL")
const provider: Parse<Provider> = (raw) =>
  Option.match(parseProvider(raw), {
    onNone: () => Result.fail(`expected one of ${Providers.join(", ")}`),
    onSome: Result.succeed
  })

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/
const unitMs = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const

/** `500ms`, `30s`, `5m`, `1h`. */
export const parseDuration: Parse<Duration.Duration> = (raw) => {
  const match = DURATION.exec(raw.trim())
  const unit = match?.[2] as keyof typeof unitMs | undefined
  return match === null || unit === undefined
    ? Result.fail("expected a duration such as 500ms, 30s, 5m or 1h")
    : Result.succeed(Duration.millis(Number(match[1]) * unitMs[unit]))
}
const SIZE = /^(\d+)\s*(b|kb|kib|mb|mib)?$/i
const sizeUnit: Readonly<Record<string, number>> = { b: 1, kb: 1024, kib: 1024, mb: 1024 * 1024, mib: 1024 * 1024 }

/** `65536`, `64KB`, `1MB` (1024-based). */
export const parseSize: Parse<number> = (raw) => {
  const match = SIZE.exec(raw.trim())
  const bytes = match === null
    ? Number.NaN
    : Number(match[1]) * (sizeUnit[(match[2] ?? "b").toLowerCase()] ?? Number.NaN)
  return Number.isSafeInteger(bytes) && bytes > 0
    ? Result.succeed(bytes)
    : Result.fail("expected a size such as 65536, 64KB or 1MB")
}
const flag: Parse<boolean> = (raw) => {
  const value = raw.trim().toLowerCase()
  if (["true", "yes", "1", "on"].includes(value)) return Result.succeed(true)
  if (["false", "no", "0", "off"].includes(value)) return Result.succeed(false)
  return Result.fail("expected true or false")
}

const durationOrOff: Parse<Option.Option<Duration.Duration>> = (raw) =>
  raw.trim().toLowerCase() === "off" ? Result.succeed(Option.none()) : Result.map(parseDuration(raw), Option.some)

/** `acct1:claude-1,claude-2;acct2:claude-3`. */
const accounts: Parse<ReadonlyMap<string, ReadonlyArray<string>>> = (raw) => {
  const result = new Map<string, ReadonlyArray<string>>()
  for (const group of raw.split(";").map((g) => g.trim()).filter((g) => g.length > 0)) {
    const [name = "", members = "", ...more] = group.split(":")
    const sessions = list(members)
    if (more.length > 0 || name.trim() === "" || Result.isFailure(sessions)) {
      return Result.fail(`'${group}': expected ACCOUNT:SESSION,SESSION`)
    }
    result.set(name.trim(), sessions.success)
  }
  return Result.succeed(result)
}

/**
 * A command line split as a POSIX shell splits words — blanks separate, `'…'` is literal, `"…"` and `\\` escape — but
 * never run by one: nothing is expanded, so `$`, backticks, `~`, globs, `;`, `|`, `&`, `<`, `>`, `(`, `)` and a
 * leading `#` are refused unless quoted, rather than passed on as text the operator did not mean.
 */
export const splitCommandLine: Parse<ReadonlyArray<string>> = (raw) => {
  const words: Array<string> = []
  let word: string | undefined
  let i = 0
  const refuse = (what: string) =>
    Result.fail(
      `${what} at column ${
        i + 1
      }: the command is split like a shell would, but runs without one (quote it to mean it literally)`
    )
  while (i < raw.length) {
    const c = raw[i] ?? ""
    if (/\s/.test(c)) {
      if (word !== undefined) words.push(word)
      word = undefined
      i++
    } else if (c === "'") {
      const end = raw.indexOf("'", i + 1)
      if (end < 0) return Result.fail(`unterminated ' at column ${i + 1}`)
      word = (word ?? "") + raw.slice(i + 1, end)
      i = end + 1
    } else if (c === "\"") {
      let text = ""
      let j = i + 1
      for (; j < raw.length && raw[j] !== "\""; j++) {
        const d = raw[j] ?? ""
        if (d === "\\" && j + 1 < raw.length && "\"\\$`\n".includes(raw[j + 1] ?? "")) {
          if (raw[j + 1] !== "\n") text += raw[j + 1]
          j++
        } else if (d === "$" || d === "`") {
          i = j
          return refuse(`'${d}' inside double quotes`)
        } else {
          text += d
        }
      }
      if (j >= raw.length) return Result.fail(`unterminated " at column ${i + 1}`)
      word = (word ?? "") + text
      i = j + 1
    } else if (c === "\\") {
      if (i + 1 >= raw.length) return Result.fail("a trailing \\ escapes nothing")
      if (raw[i + 1] !== "\n") word = (word ?? "") + raw[i + 1]
      i += 2
    } else if ("$`;|&<>()*?[".includes(c) || (word === undefined && (c === "~" || c === "#"))) {
      return refuse(`'${c}'`)
    } else {
      word = (word ?? "") + c
      i++
    }
  }
  if (word !== undefined) words.push(word)
  return words.length === 0 ? Result.fail("expected a command, e.g. claude") : Result.succeed(words)
}

/** `acct1=/path/one,acct2=/path/two`: absolute paths, each account once. */
const configDirs: Parse<ReadonlyMap<string, string>> = (raw) => {
  const result = new Map<string, string>()
  for (const entry of raw.split(",").map((e) => e.trim()).filter((e) => e.length > 0)) {
    const at = entry.indexOf("=")
    const name = entry.slice(0, Math.max(0, at)).trim()
    const dir = entry.slice(at + 1).trim()
    if (at < 0 || name === "" || !dir.startsWith("/")) return Result.fail(`'${entry}': expected ACCOUNT=/absolute/path`)
    if (result.has(name)) return Result.fail(`account '${name}' is given twice`)
    result.set(name, dir)
  }
  return result.size === 0 ? Result.fail("expected ACCOUNT=/absolute/path,…") : Result.succeed(result)
}

/** HEADLESS_SLOTS: `N` slots on the default account, or `account=N,…`. */
const headlessSlots: Parse<number | ReadonlyMap<string, number>> = (raw) => {
  const trimmed = raw.trim()
  if (/^\d+$/.test(trimmed)) return integer(0, 64)(trimmed)
  const result = new Map<string, number>()
  for (const entry of trimmed.split(",").map((e) => e.trim()).filter((e) => e.length > 0)) {
    const [name = "", count = "", ...more] = entry.split("=").map((part) => part.trim())
    const n = Number(count)
    if (more.length > 0 || !/^[A-Za-z0-9_.-]+$/.test(name) || !/^\d+$/.test(count) || n < 1 || n > 64) {
      return Result.fail(
        `'${entry}': expected a number of slots, or ACCOUNT=N (1 to 64) with a name of letters, digits, . _ -`
      )
    }
    if (result.has(name)) return Result.fail(`account '${name}' is given twice`)
    result.set(name, n)
  }
  return result.size === 0 ? Result.fail("expected a number of slots, or ACCOUNT=N,…") : Result.succeed(result)
}

/** Claude Code's permission modes for headless runs (`--permission-mode`). */
export const PermissionModes = ["default", "acceptEdits", "plan", "bypassPermissions", "dontAsk", "auto"] as const
const permissionMode: Parse<(typeof PermissionModes)[number]> = (raw) => {
  const choice = PermissionModes.find((mode) => mode === raw.trim())
  return choice === undefined ? Result.fail(`expected one of ${PermissionModes.join(", ")}`) : Result.succeed(choice)
}

/** Extra arguments: split like a command line, none allowed. */
const argumentList: Parse<ReadonlyArray<string>> = (raw) =>
  raw.trim() === "" ? Result.succeed([]) : splitCommandLine(raw)

export const LogLevels = ["debug", "info", "warning", "error"] as const

export const QueueBackends = ["fs", "postgres"] as const

/** `fs` (the queue directory's files; `files` is taken for it too) or `postgres`. */
const queueBackend: Parse<typeof QueueBackends[number]> = (raw) =>
  raw.trim().toLowerCase() === "files" ? Result.succeed("fs") : oneOf(QueueBackends)(raw)

/** A PostgreSQL connection URL; kept `Redacted`, as its password is a secret. */
const databaseUrl: Parse<Redacted.Redacted<string>> = (raw) =>
  /^postgres(?:ql)?:$/.test(URL.parse(raw.trim())?.protocol ?? "")
    ? Result.succeed(Redacted.make(raw.trim()))
    : Result.fail("expected a postgres:// or postgresql:// URL")

/** A host id: shown in logs, footers and the status of every host, so printable and short. */
const hostId: Parse<string> = (raw) =>
  /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(raw.trim())
    ? Result.succeed(raw.trim())
    : Result.fail("expected 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit")

const atLeast = (min: Duration.Duration, parse: Parse<Duration.Duration>): Parse<Duration.Duration> => (raw) =>
  Result.flatMap(parse(raw), (value) =>
    Duration.isGreaterThanOrEqualTo(value, min)
      ? Result.succeed(value)
      : Result.fail(`must be at least ${formatSettingDuration(min)}`))

/** The settings table; the README's configuration table mirrors it. */
export const Settings = {
  queueDir: setting("QUEUE_DIR", "./queue", text, "queue root"),
  queueBackend: setting(
    "QUEUE_BACKEND",
    "fs",
    queueBackend,
    "`fs` (the queue is QUEUE_DIR's files) or `postgres` (one queue in DATABASE_URL shared by several hosts; QUEUE_DIR/pending/ is this host's drop box)"
  ),
  databaseUrl: setting(
    "DATABASE_URL",
    undefined,
    databaseUrl,
    "QUEUE_BACKEND=postgres: `postgres://user:password@host:5432/database`; never logged",
    true
  ),
  hostId: setting(
    "HOST_ID",
    undefined,
    hostId,
    "QUEUE_BACKEND=postgres: this host's name in the shared queue; default the host name"
  ),
  leaseTtl: setting(
    "LEASE_TTL",
    "30s",
    atLeast(Duration.seconds(3), parseDuration),
    "QUEUE_BACKEND=postgres: a host silent this long loses its running tasks to the others (heartbeat every third)"
  ),
  mirrorFinished: setting(
    "MIRROR_FINISHED",
    "true",
    flag,
    "QUEUE_BACKEND=postgres: a copy of each task this host finishes in QUEUE_DIR/done/ or failed/"
  ),
  secutoolsApiKey: setting("SECUTOOLS_API_KEY", undefined, secret, "enables delegation; never logged", true),
  secutoolsUrl: setting("SECUTOOLS_URL", "http://127.0.0.1:8787", url, "secutools base URL", hideUrlCredentials),
  secutoolsMode: setting("SECUTOOLS_MODE", "http", oneOf(["http", "fake"]), "`http` or `fake` (in-process stand-in)"),
  secutoolsTimeout: setting("SECUTOOLS_TIMEOUT", "10s", parseDuration, "secutools: per-request timeout"),
  secutoolsRetryBase: setting(
    "SECUTOOLS_RETRY_BASE",
    "500ms",
    parseDuration,
    "secutools: first retry delay, doubled each time"
  ),
  secutoolsRetryMaxDelay: setting("SECUTOOLS_RETRY_MAX_DELAY", "30s", parseDuration, "secutools: cap of a retry delay"),
  secutoolsRetryAttempts: setting("SECUTOOLS_RETRY_ATTEMPTS", "6", integer(1, 100), "secutools: tries per request"),
  secutoolsRetryDeadline: setting("SECUTOOLS_RETRY_DEADLINE", "2m", parseDuration, "secutools: no retry starts later"),
  secutoolsJobTimeout: setting(
    "SECUTOOLS_JOB_TIMEOUT",
    "6h",
    parseDuration,
    "a delegated job not finished by then fails"
  ),
  secutoolsMaxAnswer: setting("SECUTOOLS_MAX_ANSWER", "8MB", parseSize, "secutools: largest answer body read"),
  tmuxSessions: setting("TMUX_SESSIONS", undefined, list, "comma list of session names"),
  tmuxSessionPrefix: setting("TMUX_SESSION_PREFIX", "claude-", text, "used when TMUX_SESSIONS is unset"),
  tmuxSocket: setting("TMUX_SOCKET", undefined, text, "`tmux -L` socket name (private server)"),
  tmuxAccounts: setting("TMUX_ACCOUNTS", undefined, accounts, "sessions sharing one usage limit"),
  sessionsMode: setting(
    "SESSIONS_MODE",
    "tmux",
    oneOf(["tmux", "dry-run", "headless"]),
    "`tmux`, `dry-run`, or `headless` (only headless slots, no tmux)"
  ),
  headlessSlots: setting(
    "HEADLESS_SLOTS",
    undefined,
    headlessSlots,
    "headless slots (`claude -p` processes): `N`, or `account=N,…` with CLAUDE_CONFIG_DIRS; default 1 when SESSIONS_MODE=headless"
  ),
  headlessPermissionMode: setting(
    "HEADLESS_PERMISSION_MODE",
    "acceptEdits",
    permissionMode,
    "headless runs' `--permission-mode` (the completion lines are always allowed)"
  ),
  headlessArgs: setting(
    "HEADLESS_ARGS",
    undefined,
    argumentList,
    "more arguments for every headless run, e.g. `--model sonnet`"
  ),
  headlessMaxLine: setting("HEADLESS_MAX_LINE", "16MB", parseSize, "a headless run printing a longer line is stopped"),
  sessionsStart: setting(
    "SESSIONS_START",
    "false",
    flag,
    "start the TMUX_SESSIONS that do not exist, running CLAUDE_COMMAND, and restart those that exit"
  ),
  claudeCommand: setting(
    "CLAUDE_COMMAND",
    "claude",
    splitCommandLine,
    "the Claude Code command line for sessions the daemon starts (split like a shell would, run without one)"
  ),
  claudeConfigDirs: setting(
    "CLAUDE_CONFIG_DIRS",
    undefined,
    configDirs,
    "`acct=/path,…`: the CLAUDE_CONFIG_DIR of each account of TMUX_ACCOUNTS (sessions the daemon starts) or HEADLESS_SLOTS"
  ),
  sessionsCwd: setting(
    "SESSIONS_CWD",
    undefined,
    text,
    "working directory of sessions the daemon starts; default the daemon's"
  ),
  dryRunDelay: setting("DRY_RUN_DELAY", "3s", parseDuration, "dry-run: how long a session works before `task done`"),
  apiHost: setting("API_HOST", "127.0.0.1", text, "status API address"),
  apiPort: setting("API_PORT", "7878", integer(0, 65535), "status API port; 0 = any free port"),
  apiToken: setting("API_TOKEN", undefined, secret, "bearer token for every route but /healthz", true),
  apiAllowedHosts: setting(
    "API_ALLOWED_HOSTS",
    undefined,
    list,
    "more names the status API answers to (Host header), e.g. behind a local proxy"
  ),
  apiAllowOpen: setting(
    "API_ALLOW_OPEN",
    "false",
    flag,
    "allow a non-loopback API_HOST without API_TOKEN (anyone who can reach it reads the queue)"
  ),
  scanInterval: setting("SCAN_INTERVAL", "5s", parseDuration, "full reconcile of the queue"),
  pollInterval: setting("POLL_INTERVAL", "2s", parseDuration, "pane polling"),
  reapInterval: setting("REAP_INTERVAL", "5s", parseDuration, "delegated job polling"),
  reapConcurrency: setting("REAP_CONCURRENCY", "16", integer(1, 1024), "parallel job polls"),
  staleAfter: setting("STALE_AFTER", "30m", parseDuration, "watchdog: report an unchanged pane"),
  requeueAfter: setting("REQUEUE_AFTER", "off", durationOrOff, "watchdog: requeue an unchanged pane"),
  limitCooldown: setting("LIMIT_COOLDOWN", "5h", parseDuration, "cooldown when a usage limit names no reset time"),
  limitPolicy: setting(
    "LIMIT_POLICY",
    "requeue",
    oneOf(LimitPolicies),
    "a task whose session hits its usage limit: `requeue`, `wait` (for the reset, in its session) or `delegate`; task field `on_limit`"
  ),
  idlePolicy: setting(
    "IDLE_POLICY",
    "attention",
    oneOf(IdlePolicies),
    "a task whose session's turn ended without `task done|fail`: `attention` (listed for a person) or `requeue`; task field `on_idle`"
  ),
  idleGrace: setting(
    "IDLE_GRACE",
    "2m",
    parseDuration,
    "how long a session stays idle with an unreported task before IDLE_POLICY applies"
  ),
  maxAttempts: setting(
    "MAX_ATTEMPTS",
    "5",
    integer(1, 1000),
    "runs of a task that ended without finishing (session died, prompt not accepted, stale) before it goes to failed/"
  ),
  maxTaskSize: setting("MAX_TASK_SIZE", "1MB", parseSize, "a task file larger than this is quarantined"),
  settleAfter: setting(
    "SETTLE_AFTER",
    "1s",
    parseDuration,
    "a pending file changed more recently than this is taken once unchanged for this long"
  ),
  failoverProvider: setting("FAILOVER_PROVIDER", "claude-api", provider, "routing rule 7"),
  complexityMap: setting(
    "COMPLEXITY_MAP",
    "low=gpu,medium=gemini,high=claude-api",
    parseComplexityMap,
    "routing rule 6"
  ),
  hooksKeep: setting(
    "HOOKS_KEEP",
    "32",
    integer(1, 10_000),
    "facts from Claude Code hooks kept per session (the newest; see `claude-failover hooks`)"
  ),
  logFormat: setting("LOG_FORMAT", "pretty", oneOf(["pretty", "json"]), "`pretty` or `json`"),
  logLevel: setting(
    "LOG_LEVEL",
    "info",
    oneOf(LogLevels),
    "least severe log lines written: `debug` adds the full configuration at start"
  )
} as const

type SettingsTable = typeof Settings
type ValueOf<S> = S extends Setting<infer A> ? A : never

/** The resolved configuration: unset optional settings are `Option.none()`. */
export type AppConfig = {
  readonly [K in keyof SettingsTable]: SettingsTable[K]["fallback"] extends string ? ValueOf<SettingsTable[K]>
    : Option.Option<ValueOf<SettingsTable[K]>>
}

export class ConfigInvalid extends Schema.TaggedError<ConfigInvalid>()("ConfigInvalid", {
  problems: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `invalid configuration:\n${this.problems.map((problem) => `  - ${problem}`).join("\n")}`
  }
}

/** The prefix that keeps the settings' names apart from other tools' (`CLAUDE_FAILOVER_QUEUE_DIR`). */
export const ENV_PREFIX = "CLAUDE_FAILOVER_"

const nonBlank = (value: string | undefined): value is string => value !== undefined && value.trim() !== ""

/** A setting's value and the name it was given under: the prefixed name wins over the plain one; blank is unset. */
const givenValue = (source: Readonly<Record<string, string | undefined>>, env: string) => {
  const prefixed = source[`${ENV_PREFIX}${env}`]
  if (nonBlank(prefixed)) return { name: `${ENV_PREFIX}${env}`, value: prefixed }
  const plain = source[env]
  return nonBlank(plain) ? { name: env, value: plain } : undefined
}

/**
 * Resolves every setting from `source` (env names as keys; the YAML file's lower-case keys are mapped by the caller).
 * Blank values count as unset, so `FOO=` falls back to the default; `CLAUDE_FAILOVER_FOO` wins over `FOO`.
 */
export const resolveConfig = (
  source: Readonly<Record<string, string | undefined>>
): Result.Result<AppConfig, ConfigInvalid> => {
  const problems: Array<string> = []
  const resolved: Record<string, unknown> = {}
  for (const [key, entry] of Object.entries(Settings) as Array<[string, Setting<unknown>]>) {
    const given = givenValue(source, entry.env)
    const raw = given === undefined ? entry.fallback : given.value
    if (raw === undefined) {
      resolved[key] = Option.none()
      continue
    }
    const parsed = entry.parse(raw)
    if (Result.isFailure(parsed)) {
      const shown = entry.secret === true ? "<redacted>" : JSON.stringify(concealed(entry, raw))
      problems.push(`${given?.name ?? entry.env}=${shown}: ${parsed.failure}`)
      continue
    }
    resolved[key] = entry.fallback === undefined ? Option.some(parsed.success) : parsed.success
  }
  return problems.length > 0 ? Result.fail(new ConfigInvalid({ problems })) : Result.succeed(resolved as AppConfig)
}

/** `localhost`, 127.0.0.0/8 and ::1: addresses only this host can reach. */
export const isLoopbackHost = (host: string): boolean => {
  const bare = host.trim().toLowerCase().replace(/^\[(.*)\]$/, "$1")
  return bare === "localhost" || bare === "::1" || /^127(?:\.\d{1,3}){3}$/.test(bare)
}

/**
 * The daemon refuses to serve the queue's contents on other interfaces with no token unless the operator says so
 * explicitly. (Only the daemon: `status` may well be pointed at such an address.)
 */
export const exposureProblem = (config: AppConfig): string | undefined =>
  !isLoopbackHost(config.apiHost) && Option.isNone(config.apiToken) && !config.apiAllowOpen
    ? `API_HOST=${
      JSON.stringify(config.apiHost)
    } is reachable from other hosts and API_TOKEN is not set: set API_TOKEN, ` +
      "bind to 127.0.0.1, or set API_ALLOW_OPEN=true to serve the status API to anyone who can reach it"
    : undefined

/** DATABASE_URL when the queue is the shared one (QUEUE_BACKEND=postgres); none for the file queue. */
export const sharedQueueUrl = (config: AppConfig): Option.Option<Redacted.Redacted<string>> =>
  config.queueBackend === "postgres" ? config.databaseUrl : Option.none()

/**
 * The shared queue's settings that cannot work together: PostgreSQL without a URL, and (until delegated jobs are
 * handed out between hosts) delegation on a shared queue, where two hosts could each submit the same task.
 */
export const backendProblems = (config: AppConfig): ReadonlyArray<string> =>
  config.queueBackend !== "postgres" ? [] : [
    ...(Option.isNone(config.databaseUrl) ? ["QUEUE_BACKEND=postgres needs DATABASE_URL (postgres://…)"] : []),
    // Another host taking a stopped host's job over polls secutools for it: a stand-in inside one daemon is not there.
    ...(config.secutoolsMode === "fake"
      ? [
        "SECUTOOLS_MODE=fake keeps its jobs inside this daemon, where other hosts of the shared queue cannot poll " +
        "them: use SECUTOOLS_MODE=http with a secutools URL, or QUEUE_BACKEND=fs"
      ]
      : [])
  ]

/**
 * Settings of sessions the daemon starts that contradict the others: an account in CLAUDE_CONFIG_DIRS that
 * TMUX_ACCOUNTS does not define would silently leave its sessions on the default configuration directory.
 */
export const sessionStartProblems = (config: AppConfig): ReadonlyArray<string> =>
  Option.match(config.claudeConfigDirs, {
    onNone: () => [],
    onSome: (dirs) =>
      [...dirs.keys()]
        .filter((account) =>
          !Option.exists(config.tmuxAccounts, (accounts) => accounts.has(account)) &&
          !Option.exists(config.headlessSlots, (slots) => typeof slots !== "number" && slots.has(account))
        )
        .map((account) =>
          `CLAUDE_CONFIG_DIRS names account '${account}', which neither TMUX_ACCOUNTS nor HEADLESS_SLOTS defines`
        )
  })

/**
 * Env names whose values no Claude Code session may inherit from the daemon (a tmux server the daemon starts copies
 * the daemon's environment): every secret setting, in its plain and `CLAUDE_FAILOVER_` spelling.
 */
export const secretEnvNames: ReadonlyArray<string> = Object.values(Settings as Record<string, Setting<unknown>>)
  .filter((entry) => entry.secret !== undefined && entry.secret !== false)
  .flatMap((entry) => [entry.env, `${ENV_PREFIX}${entry.env}`])

/** The largest unit that states the duration exactly, as an operator would write it: `30m`, `1500ms`. */
export const formatSettingDuration = (duration: Duration.Duration): string => {
  const ms = Duration.toMillis(duration)
  const unit = (["h", "m", "s"] as const).find((u) => ms > 0 && ms % unitMs[u] === 0) ?? "ms"
  return `${ms / unitMs[unit]}${unit}`
}

/** What of a setting's text may be shown: all of it, unless the setting conceals part of it. */
const concealed = (entry: Setting<unknown>, text: string): string =>
  typeof entry.secret === "function" ? entry.secret(text) : text

const show = (value: unknown): unknown => {
  if (Redacted.isRedacted(value)) return "<redacted>"
  if (Duration.isDuration(value)) return formatSettingDuration(value)
  if (Option.isOption(value)) return Option.match(value, { onNone: () => null, onSome: show })
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [k, show(v)]))
  return value
}

/** The resolved configuration by env name, for people: secrets redacted (SECUTOOLS_URL's credentials too), durations in ms. */
export const describeConfig = (config: AppConfig): Record<string, unknown> =>
  Object.fromEntries(
    (Object.keys(Settings) as Array<keyof AppConfig>).map((key) => {
      const shown = show(config[key])
      return [Settings[key].env, typeof shown === "string" ? concealed(Settings[key], shown) : shown]
    })
  )

/** The complexity map and failover provider as routing sees them. */
export const routingSettings = (config: AppConfig): {
  readonly delegationEnabled: boolean
  readonly complexityMap: ComplexityMap
  readonly failoverProvider: Provider
  readonly limitPolicy: LimitPolicy
} => ({
  // The in-process stand-in needs no key: staging can delegate without one.
  delegationEnabled: Option.isSome(config.secutoolsApiKey) || config.secutoolsMode === "fake",
  complexityMap: config.complexityMap,
  failoverProvider: config.failoverProvider,
  limitPolicy: config.limitPolicy
})

/** The resolved configuration as a service; the live layer reads `process.env`. */
export class Config extends Context.Service<Config, AppConfig>()("claude-failover/Config") {
  static readonly fromRecord = (source: Readonly<Record<string, string | undefined>>) =>
    Layer.effect(Config, Effect.fromResult(resolveConfig(source)))
  static readonly layer = Layer.effect(Config, Effect.suspend(() => Effect.fromResult(resolveConfig(process.env))))
  /**
   * The configuration file found from `--config` (see `findConfigFile`) under `process.env`, with `ConfigSource`
   * naming the file; the file's problems and the env's are reported together.
   */
  static readonly layerWithFile = (flag: Option.Option<string>) =>
    Layer.effectContext(Effect.suspend(() =>
      Effect.fromResult(loadConfigWithSource(flag, process.env)).pipe(
        Effect.map(({ config, file }) => Context.make(Config, config).pipe(Context.add(ConfigSource, file)))
      )
    ))
}

/** The configuration file the settings were read from, if any (`claude-failover config` names it). */
export class ConfigSource
  extends Context.Service<ConfigSource, Option.Option<string>>()("claude-failover/ConfigSource")
{}

/** The env name that names a configuration file when `--config` is not given. */
export const CONFIG_ENV = `${ENV_PREFIX}CONFIG`

/** `$XDG_CONFIG_HOME/claude-failover/config.yaml`, `~/.config/…` when XDG_CONFIG_HOME is unset or not absolute. */
export const defaultConfigFile = (env: Readonly<Record<string, string | undefined>>): string | undefined => {
  const xdg = env.XDG_CONFIG_HOME
  const base = nonBlank(xdg) && isAbsolute(xdg) ? xdg : nonBlank(env.HOME) ? join(env.HOME, ".config") : undefined
  return base === undefined ? undefined : join(base, "claude-failover", "config.yaml")
}

/**
 * Which configuration file to read: `--config`, else CLAUDE_FAILOVER_CONFIG, else the default location when a file
 * is there. A file named by the flag or the env must exist (a typo is an error, not silently no file); the default
 * location is read only if present.
 */
export const findConfigFile = (
  flag: Option.Option<string>,
  env: Readonly<Record<string, string | undefined>>,
  exists: (path: string) => boolean = existsSync
): Option.Option<string> => {
  if (Option.isSome(flag)) return Option.some(resolve(flag.value))
  const named = env[CONFIG_ENV]
  if (nonBlank(named)) return Option.some(resolve(named.trim()))
  const fallback = defaultConfigFile(env)
  return fallback !== undefined && exists(fallback) ? Option.some(fallback) : Option.none()
}

/** Settings that are paths: relative ones in a file are taken from the file's directory, not the working directory. */
const PATH_SETTINGS: ReadonlyArray<string> = [Settings.queueDir.env, Settings.sessionsCwd.env]

const anchoredTo = (file: string, settings: Readonly<Record<string, string>>): Record<string, string> =>
  Object.fromEntries(
    Object.entries(settings).map(([env, value]) =>
      PATH_SETTINGS.includes(env) && value.trim() !== "" && !isAbsolute(value.trim())
        ? [env, resolve(dirname(file), value.trim())]
        : [env, value]
    )
  )

/** Reads `file` (when given; a missing one is a problem) under `env`: a non-blank env value wins. */
export const loadConfig = (
  file: Option.Option<string>,
  env: Readonly<Record<string, string | undefined>>
): Result.Result<AppConfig, ConfigInvalid> => {
  if (Option.isNone(file)) return resolveConfig(env)
  const envNames = Object.values(Settings).map((entry) => entry.env)
  let text: string
  try {
    text = readFileSync(file.value, "utf8")
  } catch (error) {
    return Result.fail(
      new ConfigInvalid({
        problems: [`${file.value}: cannot read: ${error instanceof Error ? error.message : String(error)}`]
      })
    )
  }
  const fromFile = parseConfigFile(file.value, text, envNames)
  const resolved = resolveConfig(withEnvOver(anchoredTo(file.value, fromFile.settings), env))
  const problems = [...fromFile.problems, ...(Result.isFailure(resolved) ? resolved.failure.problems : [])]
  return problems.length > 0 ? Result.fail(new ConfigInvalid({ problems })) : resolved
}

/** `findConfigFile`, then `loadConfig`: the configuration and the file it came from. */
export const loadConfigWithSource = (
  flag: Option.Option<string>,
  env: Readonly<Record<string, string | undefined>>
): Result.Result<{ readonly config: AppConfig; readonly file: Option.Option<string> }, ConfigInvalid> => {
  const file = findConfigFile(flag, env)
  return Result.map(loadConfig(file, env), (config) => ({ config, file }))
}
