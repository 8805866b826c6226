/**
 * The demo's sample tasks: one for every routing rule that can apply with delegation on, plus a malformed file.
 * Easy to get wrong: where a task may end is an expectation the demo checks, so a new sample needs its `expected`.
 */
import { Result } from "effect"
import {
  decide,
  type Decision,
  DEFAULT_COMPLEXITY_MAP,
  DEFAULT_FAILOVER_PROVIDER,
  type Situation
} from "../src/domain/routing.ts"
import { parseTask } from "../src/domain/task.ts"

/** Where a finished task ran: `local`, `secutools PROVIDER`, or `nowhere` (it never parsed). */
export type RanOn = "local" | `secutools ${string}` | "nowhere"

export interface SampleTask {
  readonly name: string
  readonly text: string
  readonly expected: {
    readonly stage: "done" | "failed"
    /** Any of these is fine: a task that allows delegation may fail over to secutools. */
    readonly ranOn: ReadonlyArray<RanOn>
  }
}

/** The daemon's view while it routes in the demo: delegation on, default map and failover provider. */
export const DEMO_SITUATION: Situation = {
  delegationEnabled: true,
  complexityMap: DEFAULT_COMPLEXITY_MAP,
  failoverProvider: DEFAULT_FAILOVER_PROVIDER,
  localAvailable: true,
  limitPolicy: "requeue"
}

const file = (frontmatter: ReadonlyArray<string>, body: string) =>
  frontmatter.length === 0 ? `${body}\n` : `---\n${frontmatter.join("\n")}\n---\n${body}\n`

const sample = (
  name: string,
  frontmatter: ReadonlyArray<string>,
  body: string,
  stage: "done" | "failed",
  ...ranOn: ReadonlyArray<RanOn>
): SampleTask => ({ name, text: file(frontmatter, body), expected: { stage, ranOn } })

/**
 * Priorities 1–4 go to the three sessions first; claude-2 is the quick one, so it takes `may-delegate.md` as its
 * second task and hits its usage limit in the middle of it: that task fails over.
 */
export const SAMPLE_TASKS: ReadonlyArray<SampleTask> = [
  sample(
    "needs-claude-code.md",
    ["priority: 1", "needs_claude_code: true", "preferred_ai: gpu"],
    "Refactor the session module; needs the local checkout.",
    "done",
    "local"
  ),
  sample(
    "prefers-claude-code.md",
    ["priority: 2", "preferred_ai: claude-code"],
    "Write the changelog entry for the last release.",
    "done",
    "local"
  ),
  sample(
    "no-delegation.md",
    ["priority: 3", "preferred_ai: gemini", "allow_delegation: false"],
    "Review the secrets handling; must not leave this host.",
    "done",
    "local"
  ),
  sample(
    "may-delegate.md",
    ["priority: 4", "allow_delegation: true"],
    "Tidy the test fixtures.",
    "done",
    "local",
    `secutools ${DEFAULT_FAILOVER_PROVIDER}`
  ),
  sample("plain.md", [], "Fix the typo in the README's set-up section.", "done", "local"),
  sample("prefers-gpu.md", ["priority: 5", "preferred_ai: gpu"], "Embed the support tickets.", "done", "secutools gpu"),
  sample(
    "prefers-gemini.md",
    ["priority: 5", "preferred_ai: gemini"],
    "Summarise the release notes.",
    "done",
    "secutools gemini"
  ),
  sample(
    "prefers-claude-api.md",
    ["priority: 5", "preferred_ai: claude-api"],
    "Draft a reply to the security report.",
    "done",
    "secutools claude-api"
  ),
  sample(
    "auto-low.md",
    ["priority: 6", "preferred_ai: auto", "complexity_hint: low"],
    "Classify these log lines by severity.",
    "done",
    "secutools gpu"
  ),
  sample(
    "auto-high.md",
    ["priority: 6", "preferred_ai: auto", "complexity_hint: high"],
    "Plan the database migration.",
    "done",
    "secutools claude-api"
  ),
  sample(
    "provider-fails.md",
    ["priority: 7", "preferred_ai: gemini"],
    "[fail] Translate the contract (the stand-in refuses prompts with [fail]).",
    "failed",
    "secutools gemini"
  ),
  sample(
    "malformed.md",
    ["priority: 8", "allow_delegation: \"yes\""],
    "A quoted \"yes\" is a string, not a boolean: this file is refused.",
    "failed",
    "nowhere"
  )
]

export type PlannedRoute =
  | { readonly _tag: "Decided"; readonly decision: Decision }
  | { readonly _tag: "Malformed"; readonly problem: string }

/** The route the daemon's own `decide` gives a task file, or why the file does not parse. */
export const planRoute = (name: string, text: string, situation: Situation = DEMO_SITUATION): PlannedRoute => {
  const parsed = parseTask(name, text)
  return Result.isSuccess(parsed)
    ? { _tag: "Decided", decision: decide(parsed.success.fields, situation) }
    : { _tag: "Malformed", problem: parsed.failure.message }
}
