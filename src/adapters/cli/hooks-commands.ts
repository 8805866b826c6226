/**
 * `claude-failover hooks print|install|uninstall|report`: Claude Code's hooks that tell the daemon what a session
 * does (see README "Claude Code hooks"), and `report`, the command hook that delivers an event from a session.
 * Easy to get wrong: `report` runs inside Claude Code for every event, so it prints nothing on stdout (a
 * UserPromptSubmit hook's stdout would join the prompt) and always exits 0 (exit 2 would block the prompt); and the
 * `http` hooks need the API on a fixed port, so API_PORT=0 is refused for them.
 */
import { execFile } from "node:child_process"
import { resolve } from "node:path"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import { type AppConfig, Config } from "../../config.ts"
import { cliProgram } from "../cli-program.ts"
import { HookEnv, HookHeaders, sessionNameFrom } from "../../domain/hook-sender.ts"
import {
  HOOKED_EVENTS,
  hooksFragment,
  type HookTarget,
  type HookTransport,
  installHooks,
  renderSettings,
  uninstallHooks
} from "../../domain/hook-settings.ts"
import { defaultClaudeConfigDir, type SettingsUpdate, updateClaudeSettings } from "../claude-settings.ts"
import { HOOKS_PATH } from "../http-api/contract.ts"
import { HOOK_BODY_LIMIT_BYTES } from "../http-api/hooks-route.ts"
import { readHolder } from "../queue-lock.ts"

/** A hooks command that could not do what was asked: exit 1. */
export class HooksCommandError extends Data.TaggedError("HooksCommandError")<{ readonly message: string }> {
  get exitCode(): number {
    return 1
  }
}

/** This checkout's CLI, run by this Node: the command the report hook runs, by absolute path. */

/** The host part of a URL that reaches `API_HOST` from this machine (a wildcard bind is reached on loopback). */
export const hostForUrl = (apiHost: string): string => {
  const host = apiHost.trim().replace(/^\[(.*)\]$/, "$1")
  if (host === "0.0.0.0" || host === "") return "127.0.0.1"
  if (host === "::") return "[::1]"
  return host.includes(":") ? `[${host}]` : host
}

/** Where and how our hooks deliver, from the configuration; API_PORT=0 cannot be pointed at by `http` hooks. */
export const hookTarget = (
  config: AppConfig,
  transport: HookTransport
): Result.Result<HookTarget, HooksCommandError> => {
  if (transport === "http" && config.apiPort === 0) {
    return Result.fail(
      new HooksCommandError({
        message:
          "API_PORT=0 picks another port at every start, so http hooks cannot point at it: set a fixed API_PORT " +
          "(the default is 7878), or use --transport command (the hooks then find the daemon through QUEUE_DIR/.lock.json)"
      })
    )
  }
  return Result.succeed({
    url: `http://${hostForUrl(config.apiHost)}:${config.apiPort}${HOOKS_PATH}`,
    token: Option.isSome(config.apiToken),
    report: [...cliProgram(), "hooks", "report", "--queue-dir", resolve(config.queueDir)],
    completion: cliProgram(),
    transport
  })
}

const transportFlag = Flag.Literals("transport", ["http", "command"]).pipe(
  Flag.withDescription(
    "http (default): Claude Code posts each event to the status API itself (SessionStart, which it only runs as a " +
      "command, goes through `hooks report`); command: every event runs `claude-failover hooks report`"
  ),
  Flag.withDefault("http" as const)
)

const configDirFlag = Flag.String("config-dir").pipe(
  Flag.withDescription(
    "Claude Code's configuration directory, holding settings.json (default: $CLAUDE_CONFIG_DIR, else ~/.claude)"
  ),
  Flag.optional
)

const targetFrom = (transport: HookTransport) =>
  Effect.gen(function*() {
    return yield* Effect.fromResult(hookTarget(yield* Config, transport))
  })

/** What a person should know beyond the file: the token's variable, when the API has a token. */
const tokenHint = (target: HookTarget) =>
  target.token
    ? Console.error(
      `note: the status API has a token, so the hooks send $${HookEnv.token}: start the Claude Code sessions with it ` +
        `set (e.g. tmux set-environment -g ${HookEnv.token} …)`
    )
    : Effect.void

const printCommand = Command.make("print", { transport: transportFlag }, ({ transport }) =>
  Effect.gen(function*() {
    const target = yield* targetFrom(transport)
    yield* Console.log(renderSettings(hooksFragment(target)).trimEnd())
    yield* tokenHint(target)
  })).pipe(
    Command.withDescription(`Print the settings.json fragment: hooks for ${HOOKED_EVENTS.join(", ")}`)
  )

const settingsFailure = (error: { readonly message: string }) => new HooksCommandError({ message: error.message })

const describeUpdate = (update: SettingsUpdate, done: string, unchanged: string): string =>
  update.changed
    ? `${done} ${update.file}${
      Option.match(update.backup, { onNone: () => " (it did not exist)", onSome: (b) => ` (backup: ${b})` })
    }`
    : `${unchanged} ${update.file}; nothing changed`

const configDir = (flag: Option.Option<string>) => resolve(Option.getOrElse(flag, () => defaultClaudeConfigDir()))

const installCommand = Command.make(
  "install",
  { configDir: configDirFlag, transport: transportFlag },
  (flags) =>
    Effect.gen(function*() {
      const target = yield* targetFrom(flags.transport)
      const update = yield* updateClaudeSettings(
        configDir(flags.configDir),
        (settings) => installHooks(settings, target)
      ).pipe(
        Effect.mapError(settingsFailure)
      )
      yield* Console.log(
        describeUpdate(update, "installed claude-failover's hooks in", "claude-failover's hooks are already in")
      )
      yield* tokenHint(target)
    })
).pipe(
  Command.withDescription(
    "Merge the hooks into DIR/settings.json: the user's own hooks and keys stay, a backup settings.json.bak-TIME is " +
      "written first, installing again changes nothing"
  )
)

const uninstallCommand = Command.make("uninstall", { configDir: configDirFlag }, (flags) =>
  Effect.gen(function*() {
    const update = yield* updateClaudeSettings(configDir(flags.configDir), uninstallHooks).pipe(
      Effect.mapError(settingsFailure)
    )
    yield* Console.log(describeUpdate(update, "removed claude-failover's hooks from", "no claude-failover hooks in"))
  })).pipe(
    Command.withDescription("Remove claude-failover's hooks (only ours) from DIR/settings.json, with a backup first")
  )

// ---------------------------------------------------------------------------------------------------------------------
// report

const readStdin = Effect.promise(async () => {
  if (process.stdin.isTTY) return ""
  const chunks: Array<Buffer> = []
  let size = 0
  for await (const chunk of process.stdin) {
    const buffer = Buffer.from(chunk)
    size += buffer.length
    if (size > HOOK_BODY_LIMIT_BYTES) break
    chunks.push(buffer)
  }
  return Buffer.concat(chunks).toString("utf8")
})

/** The session holding `$TMUX_PANE`, asked of the tmux server `$TMUX` names (tmux reads it itself). */
const paneSession = (pane: string) =>
  Effect.promise(() =>
    new Promise<Option.Option<string>>((done) => {
      execFile("tmux", ["display-message", "-p", "-t", pane, "#{session_name}"], { timeout: 2000 }, (error, stdout) => {
        done(error === null ? sessionNameFrom(stdout.replace(/\n$/, "")) : Option.none())
      })
    })
  )

const reportCommand = Command.make("report", {
  queueDir: Flag.String("queue-dir").pipe(
    Flag.withDescription(
      "The daemon's queue directory; its .lock.json names the status API (default: QUEUE_DIR, then ./queue)"
    ),
    Flag.optional
  )
}, ({ queueDir }) =>
  Effect.gen(function*() {
    const config = yield* Config
    const root = resolve(Option.getOrElse(queueDir, () => config.queueDir))
    const body = yield* readStdin
    const api = Option.flatMap(readHolder(root), (holder) => Option.fromNullishOr(holder.api))
    if (Option.isNone(api))
      return yield* Console.error(`claude-failover hooks report: no daemon serves ${root}; event dropped`)
    const env = process.env
    const pane = env[HookEnv.pane]
    const tmux = env[HookEnv.tmux]
    const named = sessionNameFrom(env[HookEnv.session])
    const session = Option.isSome(named) || pane === undefined ? named : yield* paneSession(pane)
    const given = env[HookEnv.token]?.trim() ?? ""
    const token = given === "" ? config.apiToken : Option.some(Redacted.make(given))
    const headers: Record<string, string> = {
      "content-type": "application/json",
      ...Option.match(session, { onNone: () => ({}), onSome: (name) => ({ [HookHeaders.session]: name }) }),
      ...(pane === undefined ? {} : { [HookHeaders.pane]: pane }),
      ...(tmux === undefined ? {} : { [HookHeaders.tmux]: tmux }),
      ...Option.match(token, { onNone: () => ({}), onSome: (t) => ({ authorization: `Bearer ${Redacted.value(t)}` }) })
    }
    const response = yield* Effect.tryPromise(() =>
      fetch(`${api.value}${HOOKS_PATH}`, { method: "POST", headers, body, signal: AbortSignal.timeout(5000) })
    )
    if (!response.ok) {
      const answer = yield* Effect.promise(() => response.text())
      yield* Console.error(
        `claude-failover hooks report: ${api.value}${HOOKS_PATH} answered ${response.status}: ${answer}`
      )
    }
  }).pipe(
    // Whatever went wrong, the session must go on: report on stderr, exit 0.
    Effect.catchCause((cause) => Console.error(`claude-failover hooks report: ${Cause.pretty(cause)}`))
  )).pipe(
    Command.withDescription(
      "Deliver one hook event (JSON on stdin) to the daemon, as a Claude Code command hook; prints nothing, always exits 0"
    )
  )

export const hooksCommand = Command.make("hooks").pipe(
  Command.withDescription(
    "Claude Code hooks that report each session's prompts, turns, limits and dialogs to the daemon"
  ),
  Command.withSubcommands([printCommand, installCommand, uninstallCommand, reportCommand])
)
