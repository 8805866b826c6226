import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import { LimitPolicies } from "../../src/domain/limit-policy.ts"
import { Providers } from "../../src/domain/provider.ts"
import {
  decide,
  type Decision,
  DEFAULT_COMPLEXITY_MAP,
  parseComplexityMap,
  type Reason,
  type RoutingFields,
  type Situation
} from "../../src/domain/routing.ts"
import { complexityHint, preferredAi, RUNS } from "./arbitraries.ts"

const situation = (overrides: Partial<Situation> = {}): Situation => ({
  delegationEnabled: true,
  complexityMap: DEFAULT_COMPLEXITY_MAP,
  failoverProvider: "claude-api",
  localAvailable: true,
  limitPolicy: "requeue",
  ...overrides
})

/** The history a requeued task may carry: its last run ended in a usage limit, or for another reason. */
const lastRun = fc.constantFrom("usage_limit", "session_exited", "stale").map((cause) => [
  { at: "2026-11-24T18:00:00Z", event: "requeued", cause, reason: `the run ended: ${cause}` }
])

const routingFields: fc.Arbitrary<RoutingFields> = fc.record({
  needs_claude_code: fc.boolean(),
  preferred_ai: preferredAi,
  allow_delegation: fc.boolean(),
  complexity_hint: complexityHint,
  on_limit: fc.constantFrom(...LimitPolicies),
  history: lastRun
}, { requiredKeys: [] }).map((fields) => ({ ...fields }))

const situations: fc.Arbitrary<Situation> = fc.record({
  delegationEnabled: fc.boolean(),
  complexityMap: fc.record({
    low: fc.constantFrom(...Providers),
    medium: fc.constantFrom(...Providers),
    high: fc.constantFrom(...Providers)
  }),
  failoverProvider: fc.constantFrom(...Providers),
  localAvailable: fc.boolean(),
  limitPolicy: fc.constantFrom(...LimitPolicies)
})

const norm = (value: string | undefined) => value?.trim().toLowerCase()

/** DESIGN's conditions, restated independently of the implementation, in precedence order. */
const conditions: ReadonlyArray<readonly [Reason, (t: RoutingFields, s: Situation) => boolean]> = [
  ["needs_claude_code", (t) => t.needs_claude_code === true],
  ["preferred_claude_code", (t) => norm(t.preferred_ai) === "claude-code"],
  ["delegation_not_allowed", (t) => t.allow_delegation === false],
  ["delegation_disabled", (_, s) => !s.delegationEnabled],
  ["preferred_provider", (t) => (Providers as ReadonlyArray<string | undefined>).includes(norm(t.preferred_ai))],
  ["complexity_map", (t) =>
    norm(t.preferred_ai) === "auto" &&
    ["low", "medium", "high"].includes(norm(t.complexity_hint) ?? "medium")],
  ["local_unavailable", (t, s) => t.allow_delegation === true && !s.localAvailable],
  ["usage_limit", (t, s) => (t.on_limit ?? s.limitPolicy) === "delegate" && t.history?.at(-1)?.cause === "usage_limit"],
  ["fail_safe_local", () => true]
]

describe("routing invariants", () => {
  it("the reason is the first rule whose condition holds", () => {
    fc.assert(
      fc.property(routingFields, situations, (t, s) => {
        const first = conditions.find(([, holds]) => holds(t, s))
        expect(decide(t, s).reason).toBe(first?.[0])
      }),
      RUNS
    )
  })

  it("needs_claude_code ⇒ local, whatever else is set", () => {
    fc.assert(
      fc.property(routingFields, situations, (t, s) => {
        expect(decide({ ...t, needs_claude_code: true }, s)).toStrictEqual({
          route: "local",
          reason: "needs_claude_code"
        })
      }),
      RUNS
    )
  })

  it("a task without delegation fields ⇒ local, exactly as before delegation existed", () => {
    fc.assert(
      fc.property(situations, fc.boolean(), (s, needsClaudeCode) => {
        const t: RoutingFields = needsClaudeCode ? { needs_claude_code: false } : {}
        expect(decide(t, s).route).toBe("local")
      }),
      RUNS
    )
  })

  it("no API key ⇒ never delegate", () => {
    fc.assert(
      fc.property(routingFields, situations, (t, s) => {
        expect(decide(t, { ...s, delegationEnabled: false }).route).toBe("local")
      }),
      RUNS
    )
  })

  it("allow_delegation: false ⇒ never delegate", () => {
    fc.assert(
      fc.property(routingFields, situations, (t, s) => {
        expect(decide({ ...t, allow_delegation: false }, s).route).toBe("local")
      }),
      RUNS
    )
  })

  it("the limit policy delegate sends a task on after a usage limit, to the failover provider, and only then", () => {
    const limited = {
      at: "2026-11-24T19:00:00Z",
      event: "requeued",
      cause: "usage_limit",
      reason: "session claude-1 hit its usage limit"
    }
    fc.assert(
      fc.property(routingFields, situations, fc.constantFrom(...LimitPolicies), (t, s, policy) => {
        // A task no earlier rule decides: local by default, delegation neither asked for nor refused.
        const plain: RoutingFields = {
          ...(t.complexity_hint === undefined ? {} : { complexity_hint: t.complexity_hint })
        }
        const delegates = { route: "delegate", provider: s.failoverProvider, reason: "usage_limit" }
        const disabled = { route: "local", reason: "delegation_disabled" }
        expect(decide({ ...plain, on_limit: "delegate", history: [limited] }, s)).toStrictEqual(
          s.delegationEnabled ? delegates : disabled
        )
        // The daemon's LIMIT_POLICY stands in for a missing on_limit.
        expect(decide({ ...plain, history: [limited] }, { ...s, limitPolicy: policy }).route).toBe(
          s.delegationEnabled && policy === "delegate" ? "delegate" : "local"
        )
        // Another policy, a last run that ended otherwise, or allow_delegation: false keeps it local.
        expect(decide({ ...plain, on_limit: "wait", history: [limited] }, s).route).toBe("local")
        expect(decide({ ...plain, on_limit: "delegate", history: [{ ...limited, cause: "stale" }] }, s).route).toBe(
          "local"
        )
        expect(decide({ ...plain, on_limit: "delegate", allow_delegation: false, history: [limited] }, s).route).toBe(
          "local"
        )
      }),
      RUNS
    )
  })

  it("decide is total: every task gets exactly one well-formed route", () => {
    fc.assert(
      fc.property(routingFields, situations, (t, s) => {
        const decision: Decision = decide(t, s)
        if (decision.route === "delegate") expect(Providers).toContain(decision.provider)
        else expect(Object.keys(decision).sort()).toStrictEqual(["reason", "route"])
      }),
      RUNS
    )
  })

  it("preferred_ai and complexity_hint match case-insensitively after trimming", () => {
    const variants = (value: string) =>
      fc.tuple(fc.constantFrom("", " ", "\t"), fc.boolean()).map(([pad, upper]) =>
        `${pad}${upper ? value.toUpperCase() : value}${pad}`
      )
    fc.assert(
      fc.property(
        fc.constantFrom("claude-code", "auto", ...Providers).chain((ai) => fc.tuple(fc.constant(ai), variants(ai))),
        fc.constantFrom("low", "medium", "high").chain((hint) => fc.tuple(fc.constant(hint), variants(hint))),
        situations,
        ([ai, aiVariant], [hint, hintVariant], s) => {
          expect(decide({ preferred_ai: aiVariant, complexity_hint: hintVariant }, s)).toStrictEqual(
            decide({ preferred_ai: ai, complexity_hint: hint }, s)
          )
        }
      ),
      RUNS
    )
  })
})

describe("each routing rule", () => {
  const cases: ReadonlyArray<readonly [string, RoutingFields, Partial<Situation>, Decision]> = [
    ["1 needs_claude_code beats a preferred provider", { needs_claude_code: true, preferred_ai: "gemini" }, {}, {
      route: "local",
      reason: "needs_claude_code"
    }],
    ["2 preferred claude-code", { preferred_ai: "Claude-Code", allow_delegation: true }, { localAvailable: false }, {
      route: "local",
      reason: "preferred_claude_code"
    }],
    ["3 delegation not allowed", { preferred_ai: "gpu", allow_delegation: false }, {}, {
      route: "local",
      reason: "delegation_not_allowed"
    }],
    ["4 delegation disabled without an API key", { preferred_ai: "gpu" }, { delegationEnabled: false }, {
      route: "local",
      reason: "delegation_disabled"
    }],
    ["5 preferred provider", { preferred_ai: " GEMINI " }, {}, {
      route: "delegate",
      provider: "gemini",
      reason: "preferred_provider"
    }],
    ["6 auto with a hint", { preferred_ai: "auto", complexity_hint: "low" }, {}, {
      route: "delegate",
      provider: "gpu",
      reason: "complexity_map"
    }],
    ["6 auto without a hint means medium", { preferred_ai: "auto" }, {}, {
      route: "delegate",
      provider: "gemini",
      reason: "complexity_map"
    }],
    ["6 auto follows the configured map", { preferred_ai: "auto", complexity_hint: "high" }, {
      complexityMap: { low: "gpu", medium: "gpu", high: "gemini" }
    }, { route: "delegate", provider: "gemini", reason: "complexity_map" }],
    ["7 local unavailable fails over", { allow_delegation: true }, { localAvailable: false, failoverProvider: "gpu" }, {
      route: "delegate",
      provider: "gpu",
      reason: "local_unavailable"
    }],
    ["8 allowed but local available stays local", { allow_delegation: true }, {}, {
      route: "local",
      reason: "fail_safe_local"
    }],
    ["8 unknown preferred_ai", { preferred_ai: "gpt-9" }, { localAvailable: false }, {
      route: "local",
      reason: "fail_safe_local"
    }],
    ["8 auto with an unknown hint", { preferred_ai: "auto", complexity_hint: "extreme" }, {}, {
      route: "local",
      reason: "fail_safe_local"
    }]
  ]

  it.each(cases)("rule %s", (_, fields, overrides, expected) => {
    expect(decide(fields, situation(overrides))).toStrictEqual(expected)
  })
})

describe("complexity map", () => {
  it("parses the default form and keeps defaults for missing keys", () => {
    expect(Result.getOrThrow(parseComplexityMap("low=gpu,medium=gemini,high=claude-api"))).toStrictEqual(
      DEFAULT_COMPLEXITY_MAP
    )
    expect(Result.getOrThrow(parseComplexityMap(" HIGH = Gemini "))).toStrictEqual({
      ...DEFAULT_COMPLEXITY_MAP,
      high: "gemini"
    })
  })

  it("names the bad entry", () => {
    expect(parseComplexityMap("low=gpt")).toStrictEqual(
      Result.fail("'low=gpt': unknown provider 'gpt' (known: gpu, gemini, claude-api)")
    )
    expect(parseComplexityMap("tiny=gpu")).toStrictEqual(Result.fail("'tiny=gpu': expected low|medium|high=PROVIDER"))
  })
})
