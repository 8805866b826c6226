/**
 * The queue's promises, checked after crashes, faults and hostile input (docs/crash-states.md, "Invariants"): every
 * task in exactly one place, nothing lost, attempts consistent with the runs, at most one secutools job per key and
 * per run, no marker without its task, no debris, and — from the Claude Code stand-ins' event log — no run submitted
 * or completed twice. Returns the problems found, so a test can print them all at once.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { Result } from "effect"
import { parseTask } from "../../src/domain/task.ts"

const STAGES = ["pending", "active", "done", "failed"] as const

export interface StandinEvent {
  readonly event: "submitted" | "completion" | "interrupted" | "limit" | "exit"
  readonly session: string
  readonly run: string | null
  readonly command?: "done" | "fail"
  readonly exit?: number
  readonly at: number
}

export const readStandinLog = (file: string): ReadonlyArray<StandinEvent> =>
  existsSync(file)
    ? readFileSync(file, "utf8").split("\n").filter((line) => line.trim() !== "").map((line) =>
      JSON.parse(line) as StandinEvent
    )
    : []

export interface FakeCounters {
  readonly jobsByKey: Readonly<Record<string, number>>
  readonly jobsByTask: Readonly<Record<string, number>>
}

export interface InvariantOptions {
  /** Every task name dropped into the queue; each must be somewhere (under its name). */
  readonly names: ReadonlyArray<string>
  /** Every task must have reached done/ or failed/. */
  readonly allFinished: boolean
  readonly standinLog?: ReadonlyArray<StandinEvent>
  readonly secutools?: FakeCounters
}

export interface Census {
  readonly where: ReadonlyMap<string, ReadonlyArray<string>>
  readonly done: number
  readonly failed: number
  readonly runsSubmitted: number
  readonly completionsApplied: number
}

export const checkInvariants = (
  root: string,
  options: InvariantOptions
): { readonly problems: ReadonlyArray<string>; readonly census: Census } => {
  const problems: Array<string> = []
  const where = new Map<string, Array<string>>()
  const inodes = new Map<string, string>()
  for (const stage of STAGES) {
    for (const entry of readdirSync(join(root, stage))) {
      if (entry.startsWith(".cf-") && entry.endsWith(".tmp")) problems.push(`temporary file left: ${stage}/${entry}`)
      if (!entry.endsWith(".md") || entry.startsWith(".")) continue
      where.set(entry, [...(where.get(entry) ?? []), stage])
      const stat = statSync(join(root, stage, entry))
      const inode = `${stat.dev}:${stat.ino}`
      const other = inodes.get(inode)
      if (other !== undefined) problems.push(`one file under two names: ${other} and ${stage}/${entry}`)
      inodes.set(inode, `${stage}/${entry}`)
    }
  }
  for (const [name, stages] of where) if (stages.length > 1) problems.push(`${name} is in ${stages.join(" and ")}`)
  for (const name of options.names) {
    if (!where.has(name)) problems.push(`${name} is lost: in no stage`)
    else if (options.allFinished && !["done", "failed"].includes(where.get(name)?.[0] ?? "")) {
      problems.push(`${name} did not finish: it is in ${where.get(name)?.[0]}/`)
    }
  }

  // attempts = runs that ended (history lines naming a run) + the current run, if any.
  const runsOf = new Map<string, Set<string>>()
  const retriesOf = new Map<string, number>()
  for (const [name, stages] of where) {
    const stage = stages[0]
    if (stage === undefined) continue
    const parsed = parseTask(name, readFileSync(join(root, stage, name), "utf8"))
    if (Result.isFailure(parsed)) {
      if (stage !== "failed") problems.push(`${stage}/${name} does not parse: ${parsed.failure.message}`)
      continue
    }
    const fields = parsed.success.fields
    const ended = (fields.history ?? []).filter((entry) => entry.run !== undefined)
    const runs = new Set([...ended.map((entry) => entry.run ?? ""), ...(fields.run === undefined ? [] : [fields.run])])
    runsOf.set(name, runs)
    retriesOf.set(name, (fields.history ?? []).filter((entry) => entry.event === "retried").length)
    const expected = ended.length + (fields.run === undefined ? 0 : 1)
    if ((fields.attempts ?? 0) !== expected) {
      problems.push(
        `${stage}/${name}: attempts ${fields.attempts ?? 0}, but its history and state account for ${expected} runs`
      )
    }
    if (runs.size !== expected) problems.push(`${stage}/${name}: a run token was used twice`)
  }

  // Markers only beside their task; no request waiting.
  for (const entry of readdirSync(join(root, "pending"))) {
    if (!entry.endsWith(".md.delegated")) continue
    const task = entry.slice(0, -".delegated".length)
    if (!where.get(task)?.includes("pending")) problems.push(`marker ${entry} without its task in pending/`)
  }
  if (existsSync(join(root, "requests"))) {
    for (const entry of readdirSync(join(root, "requests"))) {
      if (entry.endsWith(".json")) problems.push(`request left waiting: requests/${entry}`)
      if (entry.startsWith(".cf-") && entry.endsWith(".tmp")) problems.push(`temporary file left: requests/${entry}`)
    }
  }

  // The stand-ins: each run submitted at most once, and at most one completion of each run applied.
  let runsSubmitted = 0
  let completionsApplied = 0
  if (options.standinLog !== undefined) {
    const submitted = new Map<string, number>()
    const applied = new Map<string, number>()
    for (const event of options.standinLog) {
      if (event.run === null) continue
      if (event.event === "submitted") submitted.set(event.run, (submitted.get(event.run) ?? 0) + 1)
      if (event.event === "completion" && event.exit === 0) applied.set(event.run, (applied.get(event.run) ?? 0) + 1)
    }
    for (const [run, count] of submitted) if (count > 1) problems.push(`run ${run} was submitted ${count} times`)
    runsSubmitted = submitted.size
    completionsApplied = [...applied.values()].reduce((a, b) => a + b, 0)
    // A completion that exited 0 twice for one run is the second one answering "already done": fine. Two different
    // runs of one task both completed is not — unless the task was retried in between (a new life, on purpose).
    for (const [name, runs] of runsOf) {
      const completedRuns = [...runs].filter((run) => (applied.get(run) ?? 0) > 0)
      if (completedRuns.length > 1 + (retriesOf.get(name) ?? 0)) {
        problems.push(`${name} was completed by ${completedRuns.length} runs: ${completedRuns.join(", ")}`)
      }
    }
  }

  if (options.secutools !== undefined) {
    for (const [key, jobs] of Object.entries(options.secutools.jobsByKey)) {
      if (jobs > 1) problems.push(`${jobs} secutools jobs for idempotency key ${key}`)
    }
  }

  const count = (stage: string) => [...where.values()].filter((stages) => stages[0] === stage).length
  return {
    problems,
    census: { where, done: count("done"), failed: count("failed"), runsSubmitted, completionsApplied }
  }
}
