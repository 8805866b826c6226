/**
 * Merging our hooks into a user's settings.json and out again: install then uninstall gives the user's settings back,
 * installing twice is installing once, the user's hooks and keys are never removed or reordered.
 */
import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import {
  hasOurHooks,
  HOOKED_EVENTS,
  hooksFragment,
  type HookTarget,
  installHooks,
  isOurHook,
  isOurRule,
  parseSettings,
  renderSettings,
  uninstallHooks
} from "../../src/domain/hook-settings.ts"
import { RUNS } from "./arbitraries.ts"

const target = (over: Partial<HookTarget> = {}): HookTarget => ({
  url: "http://127.0.0.1:7878/api/hooks",
  token: false,
  report: [
    "/usr/bin/node",
    "/opt/claude-failover/bin/claude-failover.js",
    "hooks",
    "report",
    "--queue-dir",
    "/srv/queue"
  ],
  completion: ["/usr/bin/node", "/opt/claude-failover/bin/claude-failover.js"],
  transport: "http",
  ...over
})

const install = (settings: unknown, to: HookTarget = target()) => Result.getOrThrow(installHooks(settings, to))
const uninstall = (settings: unknown) => Result.getOrThrow(uninstallHooks(settings))

/** Hooks a user writes: commands and http hooks of their own, and entries of shapes we do not know. */
const userHook = fc.oneof(
  fc.record({ type: fc.constant("command"), command: fc.string().filter((c) => !c.includes("report")) }, {
    requiredKeys: ["type", "command"]
  }),
  fc.record({
    type: fc.constant("http"),
    url: fc.webUrl(),
    headers: fc.dictionary(fc.constantFrom("Authorization", "X-Mine", "X-Claude-Failover-Pane"), fc.string())
  }),
  fc.record({ type: fc.constantFrom("prompt", "agent", "mcp_tool"), prompt: fc.string() }),
  fc.jsonValue()
)
const group = fc.oneof(
  fc.record({
    matcher: fc.constantFrom("", "*", "Bash", "startup|resume"),
    hooks: fc.array(userHook, { maxLength: 3 })
  }, { requiredKeys: ["hooks"] }),
  fc.jsonValue()
)
const eventName = fc.oneof(fc.constantFrom(...HOOKED_EVENTS, "PreToolUse", "SubagentStop"), fc.string())
const userHooks = fc.dictionary(eventName, fc.array(group, { maxLength: 3 }), { maxKeys: 5 })
/** A user's settings.json as JSON.parse reads it: other keys of every JSON kind, with or without hooks. */
/** A user's own permission rules, and other permission settings. */
const userPermissions = fc.record({
  allow: fc.array(
    fc.constantFrom("Bash(npm test:*)", "Read(./src/**)", "WebFetch", "Bash(/usr/bin/node /x.js task done:*)"),
    { maxLength: 4 }
  ),
  deny: fc.array(fc.constantFrom("Bash(rm:*)"), { maxLength: 1 }),
  defaultMode: fc.constantFrom("default", "acceptEdits")
}, { requiredKeys: [] })
const userSettings = fc.record({
  rest: fc.dictionary(fc.string().filter((key) => key !== "hooks" && key !== "permissions"), fc.jsonValue(), {
    maxKeys: 5
  }),
  hooks: fc.option(userHooks, { nil: undefined }),
  permissions: fc.option(userPermissions, { nil: undefined })
}).map(({ hooks, permissions, rest }): Record<string, unknown> =>
  JSON.parse(
    JSON.stringify({
      ...rest,
      ...(hooks === undefined ? {} : { hooks }),
      ...(permissions === undefined ? {} : { permissions })
    })
  )
)

/**
 * Empty event lists, an empty `hooks`, an empty `permissions.allow` and an empty `permissions` mean nothing: the one
 * thing uninstall may not give back exactly.
 */
const normalized = (settings: Record<string, unknown>): Record<string, unknown> => {
  const { hooks, permissions, ...rest } = settings
  const out: Record<string, unknown> = { ...rest }
  if (typeof hooks === "object" && hooks !== null && !Array.isArray(hooks)) {
    const kept = Object.entries(hooks).filter(([, groups]) => !(Array.isArray(groups) && groups.length === 0))
    if (kept.length > 0) out.hooks = Object.fromEntries(kept)
  } else if (hooks !== undefined) out.hooks = hooks
  if (typeof permissions === "object" && permissions !== null && !Array.isArray(permissions)) {
    const { allow, ...others } = permissions as Record<string, unknown>
    const kept = Array.isArray(allow) && allow.length === 0
      ? others
      : { ...others, ...(allow === undefined ? {} : { allow }) }
    if (Object.keys(kept).length > 0) out.permissions = kept
  }
  return out
}

/** Per event, the user's hooks (not ours) in file order. */
const userHooksOf = (settings: Record<string, unknown>) => {
  const hooks = (settings.hooks ?? {}) as Record<string, ReadonlyArray<unknown>>
  return Object.fromEntries(
    Object.entries(hooks)
      .map(([event, groups]) =>
        [
          event,
          groups.flatMap((g) => {
            const inner = typeof g === "object" && g !== null && !Array.isArray(g)
              ? (g as { hooks?: unknown }).hooks
              : undefined
            return Array.isArray(inner) ? inner.filter((h) => !isOurHook(h)) : [g]
          })
        ] as const
      )
      .filter(([, list]) => list.length > 0)
  )
}

describe("installing and uninstalling our hooks", () => {
  it("install then uninstall gives back the user's settings", () => {
    fc.assert(
      fc.property(userSettings, (settings) => {
        expect(normalized(uninstall(install(settings)))).toStrictEqual(normalized(settings))
      }),
      RUNS
    )
  })

  it("installing twice is installing once, to the byte", () => {
    fc.assert(
      fc.property(userSettings, (settings) => {
        const once = install(settings)
        expect(renderSettings(install(once))).toBe(renderSettings(once))
      }),
      RUNS
    )
  })

  it("the user's hooks are never removed or reordered, and their other keys keep their order", () => {
    fc.assert(
      fc.property(userSettings, (settings) => {
        const installed = install(settings)
        expect(userHooksOf(installed)).toStrictEqual(userHooksOf(settings))
        const others = (value: Record<string, unknown>) =>
          Object.keys(value).filter((key) => key !== "hooks" && key !== "permissions")
        expect(others(installed)).toStrictEqual(others(settings))
      }),
      RUNS
    )
  })

  it("installed, every hooked event has exactly one hook of ours, the one for the target", () => {
    fc.assert(
      fc.property(userSettings, (settings) => {
        const installed = install(settings) as {
          hooks: Record<string, ReadonlyArray<{ hooks?: ReadonlyArray<unknown> }>>
        }
        const expected = hooksFragment(target()).hooks
        for (const event of HOOKED_EVENTS) {
          const ours = (installed.hooks[event] ?? []).flatMap((
            g
          ) => (Array.isArray(g?.hooks) ? g.hooks.filter(isOurHook) : []))
          expect(ours).toStrictEqual(expected[event]?.[0]?.hooks)
        }
        expect(hasOurHooks(installed)).toBe(true)
        expect(hasOurHooks(uninstall(installed))).toBe(false)
      }),
      RUNS
    )
  })

  it("installing for a new address replaces the hooks for the old one", () => {
    const old = install({}, target({ url: "http://127.0.0.1:7000/api/hooks" }))
    const moved = install(old, target({ url: "http://127.0.0.1:7878/api/hooks", token: true }))
    expect(moved).toStrictEqual(install({}, target({ url: "http://127.0.0.1:7878/api/hooks", token: true })))
    expect(renderSettings(moved)).not.toContain(":7000")
  })

  it("uninstall leaves a file without our hooks exactly as it was, and removes a hook of ours from a user's own group", () => {
    fc.assert(
      fc.property(userSettings, (settings) => {
        expect(uninstall(settings)).toBe(settings)
      }),
      RUNS
    )
    const ourStop = hooksFragment(target()).hooks.Stop?.[0]?.hooks?.[0]
    const mixed = {
      hooks: { Stop: [{ matcher: "", hooks: [{ type: "command", command: "notify-send done" }, ourStop] }] }
    }
    expect(uninstall(mixed)).toStrictEqual({
      hooks: { Stop: [{ matcher: "", hooks: [{ type: "command", command: "notify-send done" }] }] }
    })
  })
})

describe("the completion lines allowed", () => {
  it("install adds a rule for `task done` and `task fail` of exactly this program after the user's rules, once; uninstall removes only them", () => {
    const rules = [
      "Bash(/usr/bin/node /opt/claude-failover/bin/claude-failover.js task done:*)",
      "Bash(/usr/bin/node /opt/claude-failover/bin/claude-failover.js task fail:*)"
    ]
    fc.assert(
      fc.property(userSettings, (settings) => {
        const installed = install(settings) as { permissions: { allow: ReadonlyArray<unknown> } }
        const before = ((settings.permissions as { allow?: ReadonlyArray<unknown> } | undefined)?.allow ?? []).filter((
          r
        ) => !isOurRule(r))
        expect(installed.permissions.allow).toStrictEqual([...before, ...rules])
        const removed = uninstall(installed) as { permissions?: { allow?: ReadonlyArray<unknown> } }
        expect(removed.permissions?.allow ?? []).toStrictEqual(before)
      }),
      RUNS
    )
    expect(rules.every(isOurRule)).toBe(true)
    expect(
      ["Bash(npm test:*)", "Bash(/usr/bin/claude-failover status:*)", "Bash(claude-failover task done)", 42].some(
        isOurRule
      )
    ).toBe(false)
  })

  it("a path with spaces is quoted as the prompt quotes it", () => {
    const spaced = hooksFragment(
      target({ completion: ["/opt/my node/bin/node", "/srv/claude-failover/bin/claude-failover.js"] })
    )
    expect(spaced.permissions.allow[0]).toBe(
      "Bash('/opt/my node/bin/node' /srv/claude-failover/bin/claude-failover.js task done:*)"
    )
  })
})

describe("what is ours", () => {
  it("an http hook carrying our session header, or a command running `claude-failover … hooks report`", () => {
    for (const [, groups] of Object.entries(hooksFragment(target()).hooks))
      expect(groups[0]?.hooks?.every(isOurHook)).toBe(true)
    for (const [, groups] of Object.entries(hooksFragment(target({ transport: "command" })).hooks)) {
      expect(groups[0]?.hooks?.every(isOurHook)).toBe(true)
    }
    expect(isOurHook({ type: "http", url: "http://127.0.0.1:7878/api/hooks" })).toBe(false)
    expect(isOurHook({ type: "http", url: "http://x/api/hooks", headers: { "x-claude-failover-session": "$S" } })).toBe(
      true
    )
    expect(isOurHook({ type: "command", command: "/usr/bin/claude-failover task done x" })).toBe(false)
    expect(isOurHook({ type: "command", command: "my-hooks report" })).toBe(false)
  })

  it("SessionStart is a command hook in the background (Claude Code skips http hooks for it), the rest http", () => {
    const { hooks } = hooksFragment(target({ token: true }))
    expect(hooks.SessionStart?.[0]?.hooks?.[0]).toStrictEqual({
      type: "command",
      command:
        "/usr/bin/node /opt/claude-failover/bin/claude-failover.js hooks report --queue-dir /srv/queue >/dev/null || true",
      timeout: 15,
      async: true
    })
    expect(hooks.StopFailure?.[0]?.hooks?.[0]).toStrictEqual({
      type: "http",
      url: "http://127.0.0.1:7878/api/hooks",
      timeout: 5,
      headers: {
        "X-Claude-Failover-Session": "$CLAUDE_FAILOVER_SESSION",
        "X-Claude-Failover-Pane": "$TMUX_PANE",
        "X-Claude-Failover-Tmux": "$TMUX",
        Authorization: "Bearer $CLAUDE_FAILOVER_API_TOKEN"
      },
      allowedEnvVars: ["CLAUDE_FAILOVER_SESSION", "TMUX_PANE", "TMUX", "CLAUDE_FAILOVER_API_TOKEN"]
    })
  })
})

describe("settings we must not guess at", () => {
  it.each([
    ["[]", "it is not a JSON object"],
    ["42", "it is not a JSON object"],
    ["{\"hooks\": []}", "its \"hooks\" is not an object"],
    ["{\"hooks\": {\"Stop\": {\"type\": \"command\"}}}", "its \"hooks.Stop\" is not a list"],
    ["{\"permissions\": []}", "its \"permissions\" is not an object"],
    ["{\"permissions\": {\"allow\": \"Bash\"}}", "its \"permissions.allow\" is not a list"]
  ])("%s is refused: %s", (text, problem) => {
    const parsed = Result.getOrThrow(parseSettings(text))
    for (const change of [installHooks(parsed, target()), uninstallHooks(parsed)]) {
      expect(Result.isFailure(change) && change.failure.problem).toBe(problem)
    }
  })

  it("text that is not JSON is refused; an empty file is no settings", () => {
    const broken = parseSettings("{\"hooks\": ")
    expect(Result.isFailure(broken) && broken.failure.problem).toMatch(/^it is not valid JSON \(/)
    expect(parseSettings(" \n")).toStrictEqual(Result.succeed({}))
  })
})
