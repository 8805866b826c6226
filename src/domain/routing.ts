/**
 * Where a task runs: DESIGN's eight routing rules, in order; the first that applies decides and names the reason.
 * Easy to get wrong: a task with no delegation fields must stay local, and `decide` must never throw.
 */
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import { lastRunHitLimit, type LimitPolicy, limitPolicyOf } from "./limit-policy.ts"
import { normalizeChoice, parseProvider, type Provider, Providers } from "./provider.ts"
import type { TaskFields } from "./task.ts"

export const Complexities = ["low", "medium", "high"] as const
export type Complexity = typeof Complexities[number]
export type ComplexityMap = Readonly<Record<Complexity, Provider>>

export const DEFAULT_COMPLEXITY_MAP: ComplexityMap = { low: "gpu", medium: "gemini", high: "claude-api" }
export const DEFAULT_FAILOVER_PROVIDER: Provider = "claude-api"

/** What the daemon knows about itself when it routes. */
export interface Situation {
  readonly delegationEnabled: boolean
  readonly complexityMap: ComplexityMap
  readonly failoverProvider: Provider
  /** False when every local session is usage-limited or dead (or none exists). */
  readonly localAvailable: boolean
  /** LIMIT_POLICY: what a task without `on_limit` does after a usage limit. */
  readonly limitPolicy: LimitPolicy
}

export type RoutingFields = Pick<
  TaskFields,
  "needs_claude_code" | "preferred_ai" | "allow_delegation" | "complexity_hint" | "on_limit" | "history" | "state"
>

export type LocalReason =
  | "needs_claude_code"
  | "preferred_claude_code"
  | "delegation_not_allowed"
  | "delegation_disabled"
  | "fail_safe_local"
export type DelegateReason = "preferred_provider" | "complexity_map" | "local_unavailable" | "usage_limit"
export type Reason = LocalReason | DelegateReason

export type Decision =
  | { readonly route: "local"; readonly reason: LocalReason }
  | { readonly route: "delegate"; readonly provider: Provider; readonly reason: DelegateReason }

const local = (reason: LocalReason): Decision => ({ route: "local", reason })
const delegate = (reason: DelegateReason, provider: Provider): Decision => ({ route: "delegate", provider, reason })

const preferred = (task: RoutingFields): string | undefined =>
  task.preferred_ai === undefined ? undefined : normalizeChoice(task.preferred_ai)

/** A missing hint means `medium`; a hint that is not low/medium/high gives no provider (the rule does not apply). */
export const complexityOf = (task: RoutingFields): Option.Option<Complexity> => {
  const hint = task.complexity_hint === undefined ? "medium" : normalizeChoice(task.complexity_hint)
  return Option.fromNullishOr(Complexities.find((complexity) => complexity === hint))
}

type Rule = (task: RoutingFields, situation: Situation) => Decision | undefined

/** The rules in precedence order; each line is one rule of DESIGN's "Routing" section. */
const rules: ReadonlyArray<Rule> = [
  (task) => task.needs_claude_code === true ? local("needs_claude_code") : undefined,
  (task) => preferred(task) === "claude-code" ? local("preferred_claude_code") : undefined,
  (task) => task.allow_delegation === false ? local("delegation_not_allowed") : undefined,
  (_, situation) => situation.delegationEnabled ? undefined : local("delegation_disabled"),
  (task) =>
    Option.match(parseProvider(task.preferred_ai ?? ""), {
      onNone: () => undefined,
      onSome: (provider) => delegate("preferred_provider", provider)
    }),
  (task, situation) =>
    preferred(task) === "auto"
      ? Option.match(complexityOf(task), {
        onNone: () => undefined,
        onSome: (complexity) => delegate("complexity_map", situation.complexityMap[complexity])
      })
      : undefined,
  (task, situation) =>
    task.allow_delegation === true && !situation.localAvailable
      ? delegate("local_unavailable", situation.failoverProvider)
      : limitPolicyOf(task, situation.limitPolicy) === "delegate" && lastRunHitLimit(task)
      // The limit policy `delegate` is the operator's consent: it does not wait for every session to be limited.
      ? delegate("usage_limit", situation.failoverProvider)
      : undefined
]

/** Each reason as a log line says it: why the task went where it went. */
const reasonTexts: Readonly<Record<Reason, string>> = {
  needs_claude_code: "it needs Claude Code",
  preferred_claude_code: "it prefers Claude Code",
  delegation_not_allowed: "it does not allow delegation",
  delegation_disabled: "delegation is off: SECUTOOLS_API_KEY is not set",
  fail_safe_local: "no rule sends it to secutools",
  preferred_provider: "it names this provider",
  complexity_map: "its complexity, by COMPLEXITY_MAP",
  local_unavailable: "no local session is available and it allows delegation",
  usage_limit: "its last run hit a usage limit and its limit policy is delegate"
}

export const routingReason = (reason: Reason): string => reasonTexts[reason]

export const decide = (task: RoutingFields, situation: Situation): Decision => {
  for (const rule of rules) {
    const decision = rule(task, situation)
    if (decision !== undefined) return decision
  }
  return local("fail_safe_local")
}

/** Parses `low=gpu,medium=gemini,high=claude-api`; keys not given keep their default. */
export const parseComplexityMap = (text: string): Result.Result<ComplexityMap, string> => {
  const map: Record<Complexity, Provider> = { ...DEFAULT_COMPLEXITY_MAP }
  for (const entry of text.split(",").map((part) => part.trim()).filter((part) => part.length > 0)) {
    const [rawKey = "", rawValue = "", ...more] = entry.split("=")
    const key = Complexities.find((complexity) => complexity === normalizeChoice(rawKey))
    const provider = parseProvider(rawValue)
    if (more.length > 0 || key === undefined) {
      return Result.fail(`'${entry}': expected low|medium|high=PROVIDER`)
    }
    if (Option.isNone(provider)) {
      return Result.fail(`'${entry}': unknown provider '${rawValue.trim()}' (known: ${Providers.join(", ")})`)
    }
    map[key] = provider.value
  }
  return Result.succeed(map)
}
