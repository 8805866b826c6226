/**
 * The hooks claude-failover puts into Claude Code's `settings.json` (with the permission rules that let an agent run
 * its completion lines without asking), and merging them in and out of a user's file.
 * Easy to get wrong: the file is the user's. Every key, every hook of theirs and their order stay as they were; ours
 * are recognised by what they carry (our session header, or the `hooks report` command), never by position; and
 * installing is "remove ours, add ours", so a second install changes nothing and a changed address replaces the old.
 */
import * as Data from "effect/Data"
import * as Result from "effect/Result"
import { parseJson } from "./claude-json.ts"
import { HookEnv } from "./hook-sender.ts"
import { shellQuote } from "./prompt.ts"

/** The events our hooks listen to. Claude Code runs only `command` hooks for SessionStart (it skips `http` ones). */
export const HOOKED_EVENTS = [
  "SessionStart",
  "UserPromptSubmit",
  "Stop",
  "StopFailure",
  "Notification",
  "SessionEnd"
] as const
export type HookedEvent = (typeof HOOKED_EVENTS)[number]

/** `http`: Claude Code POSTs each event itself (SessionStart still through the command); `command`: every event runs it. */
export type HookTransport = "http" | "command"

export interface HookTarget {
  /** The receiver, e.g. `http://127.0.0.1:7878/api/hooks` (used by `http`). */
  readonly url: string
  /** Send `Authorization: Bearer $CLAUDE_FAILOVER_API_TOKEN` (the status API has a token). */
  readonly token: boolean
  /** The report command's words: program, arguments, `hooks report`, `--queue-dir DIR` (quoted here). */
  readonly report: ReadonlyArray<string>
  /** The program of the completion lines (this Node, this checkout's CLI), as every prompt writes it. */
  readonly completion: ReadonlyArray<string>
  readonly transport: HookTransport
}

/** Seconds Claude Code waits for one of our hooks; a daemon that does not answer must not hold a session up. */
export const HTTP_HOOK_TIMEOUT_S = 5
export const COMMAND_HOOK_TIMEOUT_S = 15

/** The header that marks an `http` hook as ours (it carries the session's name). */
const OUR_HEADER = "X-Claude-Failover-Session"

type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }
type JsonObject = { readonly [key: string]: Json }

const httpHook = (target: HookTarget): JsonObject => ({
  type: "http",
  url: target.url,
  timeout: HTTP_HOOK_TIMEOUT_S,
  headers: {
    [OUR_HEADER]: `$${HookEnv.session}`,
    "X-Claude-Failover-Pane": `$${HookEnv.pane}`,
    "X-Claude-Failover-Tmux": `$${HookEnv.tmux}`,
    ...(target.token ? { Authorization: `Bearer $${HookEnv.token}` } : {})
  },
  allowedEnvVars: [HookEnv.session, HookEnv.pane, HookEnv.tmux, ...(target.token ? [HookEnv.token] : [])]
})

/**
 * The report command as a hook: in the background (it starts a Node process, which must never delay a prompt), its
 * stdout discarded (a UserPromptSubmit hook's stdout would be added to the prompt), and always exit 0 (exit 2 would
 * block the prompt or keep a turn going).
 */
export const reportCommandLine = (report: ReadonlyArray<string>): string =>
  `${report.map(shellQuote).join(" ")} >/dev/null || true`

const commandHook = (target: HookTarget): JsonObject => ({
  type: "command",
  command: reportCommandLine(target.report),
  timeout: COMMAND_HOOK_TIMEOUT_S,
  async: true
})

/** Our hook for one event. */
const hookFor = (event: HookedEvent, target: HookTarget): JsonObject =>
  event === "SessionStart" || target.transport === "command" ? commandHook(target) : httpHook(target)

/** One matcher group of settings.json: no `matcher` (every source, type or reason), our one hook. */
export interface HookGroup {
  readonly hooks: ReadonlyArray<JsonObject>
}

/**
 * Permission rules for the completion lines (`… task done NAME …`, `… task fail NAME …`): without them Claude Code
 * may stop at a permission prompt (or, in auto mode, refuse) before the agent can report, and the task waits for a
 * person. Prefix rules on exactly this program, so no other command gains anything.
 */
export const completionRules = (program: ReadonlyArray<string>): ReadonlyArray<string> =>
  (["done", "fail"] as const).map((verb) => `Bash(${program.map(shellQuote).join(" ")} task ${verb}:*)`)

/** Ours: a Bash prefix rule for a claude-failover completion line. */
export const isOurRule = (rule: unknown): boolean =>
  typeof rule === "string" && /^Bash\(.*claude-failover\S* task (?:done|fail):\*\)$/.test(rule)

/** The `settings.json` fragment: one matcher group per event, holding our one hook; the completion lines allowed. */
export const hooksFragment = (target: HookTarget): {
  readonly hooks: Readonly<Record<string, ReadonlyArray<HookGroup>>>
  readonly permissions: { readonly allow: ReadonlyArray<string> }
} => ({
  hooks: Object.fromEntries(HOOKED_EVENTS.map((event) => [event, [{ hooks: [hookFor(event, target)] }]])),
  permissions: { allow: completionRules(target.completion) }
})

// ---------------------------------------------------------------------------------------------------------------------
// Merging

/** A settings file whose shape we must not guess at: the user fixes it, nothing is written. */
export class SettingsUnusable extends Data.TaggedError("SettingsUnusable")<{ readonly problem: string }> {}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Ours: an http hook carrying our session header, or a command hook running `claude-failover … hooks report`. */
export const isOurHook = (hook: unknown): boolean => {
  if (!isObject(hook)) return false
  if (hook.type === "http") {
    return isObject(hook.headers) &&
      Object.keys(hook.headers).some((name) => name.toLowerCase() === OUR_HEADER.toLowerCase())
  }
  return hook.type === "command" && typeof hook.command === "string" && /claude-failover/.test(hook.command) &&
    /(?:^|\s)hooks\s+report(?:\s|$)/.test(hook.command)
}

/** A settings object and its `hooks`, checked: an object of lists (undefined when the file has none). */
interface Checked {
  readonly settings: Record<string, unknown>
  readonly hooks: Readonly<Record<string, ReadonlyArray<unknown>>> | undefined
}

const checked = (settings: unknown): Result.Result<Checked, SettingsUnusable> => {
  if (!isObject(settings)) return Result.fail(new SettingsUnusable({ problem: "it is not a JSON object" }))
  const permissions = settings.permissions
  if (permissions !== undefined && !isObject(permissions)) {
    return Result.fail(new SettingsUnusable({ problem: "its \"permissions\" is not an object" }))
  }
  if (isObject(permissions) && permissions.allow !== undefined && !Array.isArray(permissions.allow)) {
    return Result.fail(new SettingsUnusable({ problem: "its \"permissions.allow\" is not a list" }))
  }
  const hooks = settings.hooks
  if (hooks === undefined) return Result.succeed({ settings, hooks: undefined })
  if (!isObject(hooks)) return Result.fail(new SettingsUnusable({ problem: "its \"hooks\" is not an object" }))
  const lists: Array<readonly [string, ReadonlyArray<unknown>]> = []
  for (const [event, groups] of Object.entries(hooks)) {
    if (!Array.isArray(groups))
      return Result.fail(new SettingsUnusable({ problem: `its "hooks.${event}" is not a list` }))
    lists.push([event, groups])
  }
  return Result.succeed({ settings, hooks: Object.fromEntries(lists) })
}

/** A group with our hooks taken out; `removed` tells whether it held any. */
const withoutOurs = (group: unknown): { readonly group: unknown; readonly removed: boolean } => {
  if (!isObject(group) || !Array.isArray(group.hooks)) return { group, removed: false }
  const kept = group.hooks.filter((hook) => !isOurHook(hook))
  return kept.length === group.hooks.length
    ? { group, removed: false }
    : { group: { ...group, hooks: kept }, removed: true }
}

const isEmptyGroup = (group: unknown): boolean =>
  isObject(group) && Array.isArray(group.hooks) && group.hooks.length === 0

interface Stripped {
  /** Each event's list without our hooks, in the file's order; a group that only our removal emptied is gone. */
  readonly events: ReadonlyArray<readonly [string, ReadonlyArray<unknown>]>
  /** The events whose list held one of ours. */
  readonly touched: ReadonlySet<string>
}

const strip = (hooks: Readonly<Record<string, ReadonlyArray<unknown>>>): Stripped => {
  const touched = new Set<string>()
  const events = Object.entries(hooks).map(([event, groups]) => {
    const kept = groups.flatMap((group) => {
      const result = withoutOurs(group)
      if (!result.removed) return [group]
      touched.add(event)
      return isEmptyGroup(result.group) ? [] : [result.group]
    })
    return [event, kept] as const
  })
  return { events, touched }
}

/**
 * The settings with every hook of ours removed. A group, an event list or `hooks` itself that only our removal left
 * empty goes too; what the user left empty stays.
 */
export const uninstallHooks = (settings: unknown): Result.Result<Record<string, unknown>, SettingsUnusable> =>
  Result.map(checked(settings), ({ hooks, settings: base }) => {
    const withoutRules = withAllowed(base, (allow) => allow.filter((rule) => !isOurRule(rule)))
    if (hooks === undefined) return withoutRules
    const { events, touched } = strip(hooks)
    if (touched.size === 0) return withoutRules
    const kept = events.filter(([event, groups]) => !(touched.has(event) && groups.length === 0))
    const { hooks: _, ...rest } = withoutRules
    return kept.length === 0 ? rest : { ...rest, hooks: Object.fromEntries(kept) }
  })

/**
 * The settings with `permissions.allow` changed by `change`. A list (or `permissions` itself) that only our change
 * left empty goes; what the user left empty stays; a settings object whose rules `change` keeps is returned as it was.
 */
const withAllowed = (
  settings: Record<string, unknown>,
  change: (allow: ReadonlyArray<unknown>) => ReadonlyArray<unknown>
): Record<string, unknown> => {
  const permissions = isObject(settings.permissions) ? settings.permissions : undefined
  const before = Array.isArray(permissions?.allow) ? permissions.allow : []
  const after = change(before)
  if (after.length === before.length && after.every((rule, i) => rule === before[i])) return settings
  const { allow: _, ...otherPermissions } = permissions ?? {}
  const nextPermissions = after.length > 0 ? { ...otherPermissions, allow: after } : otherPermissions
  const { permissions: __, ...rest } = settings
  return Object.keys(nextPermissions).length > 0 || permissions === undefined && after.length > 0
    ? { ...rest, permissions: nextPermissions }
    : rest
}

/**
 * The settings with our hooks for `target` added, after removing any of ours already there: each event's list keeps
 * its place and gets our group at its end; events the file lacks are added after the others.
 */
export const installHooks = (
  settings: unknown,
  target: HookTarget
): Result.Result<Record<string, unknown>, SettingsUnusable> =>
  Result.map(checked(settings), ({ hooks, settings: base }) => {
    const fragment = hooksFragment(target)
    const ours = fragment.hooks
    const { events } = strip(hooks ?? {})
    const present = new Set(events.map(([event]) => event))
    const merged = Object.fromEntries([
      ...events.map(([event, groups]) =>
        [event, Object.hasOwn(ours, event) ? [...groups, ...(ours[event] ?? [])] : groups] as const
      ),
      ...HOOKED_EVENTS.filter((event) => !present.has(event)).map((event) => [event, ours[event] ?? []] as const)
    ])
    const allowed = withAllowed(
      base,
      (allow) => [...allow.filter((rule) => !isOurRule(rule)), ...fragment.permissions.allow]
    )
    return { ...allowed, hooks: merged }
  })

/** Whether `settings` holds any hook of ours. */
export const hasOurHooks = (settings: unknown): boolean =>
  Result.match(checked(settings), {
    onFailure: () => false,
    onSuccess: ({ hooks }) => hooks !== undefined && strip(hooks).touched.size > 0
  })

/** The settings file's text as Claude Code writes it: two-space JSON and a final newline. */
export const renderSettings = (settings: unknown): string => `${JSON.stringify(settings, null, 2)}\n`

/** `settings.json` text → its value; empty (or blank) text is an empty file, i.e. `{}`. */
export const parseSettings = (text: string): Result.Result<unknown, SettingsUnusable> => {
  if (text.trim() === "") return Result.succeed({})
  return Result.mapError(
    parseJson(text),
    (problem) => new SettingsUnusable({ problem: `it is not valid JSON (${problem})` })
  )
}
