/** fast-check generators for domain values, shared by the property tests. */
import fc from "fast-check"
import { Providers } from "../../src/domain/provider.ts"
import { makeTask, type Task, type TaskFields, TaskId, TaskName, TaskStates } from "../../src/domain/task.ts"

export const RUNS = { numRuns: Number(process.env.PROPERTY_RUNS ?? 200) } as const

const text = fc.string({ unit: "binary", maxLength: 40 })
/** A task file is text: a NUL byte anywhere makes it an error (frontmatter values are escaped, the body is not). */
const bodyText = fc.string({ unit: "binary", maxLength: 200 }).map((body) => body.replaceAll("\0", ""))
const timestamp = fc
  .date({ min: new Date("2000-01-01T00:00:00Z"), max: new Date("2100-01-01T00:00:00Z"), noInvalidDate: true })
  .map((date) => date.toISOString())

export const taskName = fc
  .stringMatching(/^[a-z0-9][a-z0-9._ -]{0,24}$/)
  .map((stem) => TaskName.make(`${stem}.md`))

/** Values an operator might write for a free-text choice: known ones in odd case and spacing, and anything else. */
export const choice = (known: ReadonlyArray<string>) =>
  fc.oneof(
    fc.constantFrom(...known),
    fc.tuple(fc.constantFrom(...known), fc.boolean(), fc.constantFrom("", " ", "\t", "  ")).map(
      ([value, upper, pad]) => `${pad}${upper ? value.toUpperCase() : value}${pad}`
    ),
    text
  )

export const preferredAi = choice(["claude-code", "auto", ...Providers])
export const complexityHint = choice(["low", "medium", "high"])

export const historyEntry = fc.record({
  at: timestamp,
  event: fc.constantFrom("requeued", "retried", "normalised", "cancelled"),
  cause: fc.oneof(fc.constantFrom("usage_limit", "session_exited", "stale", "operator"), text),
  run: text,
  session: text,
  provider: fc.constantFrom(...Providers),
  job_id: text,
  reason: text
}, { requiredKeys: ["at", "event", "reason"] }).map((entry) => ({ ...entry })) // fc.record's objects have no prototype

export const taskFields: fc.Arbitrary<TaskFields> = fc.record({
  id: fc.string({ unit: "binary", minLength: 1, maxLength: 20 }).map(TaskId.make),
  title: text,
  priority: fc.integer({ min: -1000, max: 1000 }),
  preferred_ai: preferredAi,
  allow_delegation: fc.boolean(),
  complexity_hint: complexityHint,
  needs_claude_code: fc.boolean(),
  created: timestamp,
  state: fc.constantFrom(...TaskStates),
  run: text,
  session: text,
  assigned_at: timestamp,
  started_at: timestamp,
  job_id: text,
  provider: fc.constantFrom(...Providers),
  cost_usd: fc.double({ min: 0, max: 1000, noNaN: true, noDefaultInfinity: true }).filter((n) => !Object.is(n, -0)),
  attempts: fc.nat({ max: 1000 }),
  finished_at: timestamp,
  history: fc.array(historyEntry, { maxLength: 3 })
}, { requiredKeys: [] }).map((fields) => ({ ...fields }))

const knownKeys = new Set([
  "id",
  "title",
  "priority",
  "preferred_ai",
  "allow_delegation",
  "complexity_hint",
  "needs_claude_code",
  "created",
  "state",
  "run",
  "session",
  "assigned_at",
  "started_at",
  "job_id",
  "provider",
  "cost_usd",
  "attempts",
  "finished_at",
  "history"
])

/** JSON-like values round-trip through YAML; `JSON.parse(JSON.stringify(…))` folds -0 into 0 as YAML readers do. */
const extraValue = fc.jsonValue({ maxDepth: 2 }).map((value) => JSON.parse(JSON.stringify(value)) as unknown)
const extraKey = fc.string({ unit: "binary", minLength: 1, maxLength: 16 }).filter((key) => !knownKeys.has(key))

export const task: fc.Arbitrary<Task> = fc
  .record({
    name: taskName,
    fields: taskFields,
    extra: fc.uniqueArray(fc.tuple(extraKey, extraValue), { selector: ([key]) => key, maxLength: 4 }),
    body: bodyText
  })
  .chain((input) => {
    const built = makeTask(input)
    return fc.shuffledSubarray([...built.order], { minLength: built.order.length }).map((order) =>
      makeTask({ ...input, order })
    )
  })
