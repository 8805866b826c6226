/**
 * Every change to a task file goes through here: read, apply the event to the state machine, write the new content
 * in place, then move the file to the stage its new state belongs in. Easy to get wrong: the order. The content is
 * rewritten first (atomically, in the old stage) and the move is a link + unlink, so after a crash at any point the
 * file is either where it was with its old or new state, or the same file (one identity) in two stages — both of
 * which recovery finishes from the file's own state. Nothing is ever overwritten: a taken name gets a free one.
 */
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { describeHeadless, type HeadlessFacts, Outcome, renderFooter, stripAppended } from "../domain/footer.ts"
import {
  afterUnfinishedRun,
  type IllegalTransition,
  type RunEndCause,
  TaskEvent,
  transition,
  unfinishedRuns
} from "../domain/lifecycle.ts"
import {
  appendToBody,
  parseTask,
  quarantineNameFor,
  renderTask,
  type Task,
  type TaskFields,
  TaskName,
  type TaskParseError,
  type TaskState,
  withFields
} from "../domain/task.ts"
import {
  type NameTaken,
  type Stage,
  Stages,
  type StoreError,
  TaskNotFound,
  TaskStore,
  type Unreadable
} from "../ports/task-store.ts"
import { type Failpoint, failpoint } from "./failpoints.ts"
import { Redaction } from "./redaction.ts"

/** What changing a task can fail with: the store, a file that no longer parses, or a state that forbids the change. */
export type TaskMoveError = StoreError | TaskNotFound | NameTaken | Unreadable | TaskParseError | IllegalTransition

export const nowIso = Effect.map(DateTime.now, DateTime.formatIso)

/** The stage a task in `state` lives in. */
export const homeOf = (state: TaskState): Stage =>
  state === "assigned"
    ? "active"
    : state === "done"
    ? "done"
    : state === "failed"
    ? "failed"
    : "pending"

export const readTask = Effect.fn("readTask")(function*(stage: Stage, name: TaskName) {
  const store = yield* TaskStore
  const stored = yield* store.read(stage, name)
  const task = yield* Effect.fromResult(parseTask(name, stored.text))
  return { stored, task }
})

const MAX_NAME_BYTES = 200

/** Whether a task in any stage, or a marker, has the name. */
export const nameInUse = Effect.fn("nameInUse")(function*(name: TaskName) {
  const store = yield* TaskStore
  for (const stage of Stages) if (yield* store.has(stage, name)) return true
  // Anything under the marker's name (even a file that is not a marker) makes the name taken.
  return yield* store.readMarker(name).pipe(
    Effect.map(Option.isSome),
    Effect.orElseSucceed(() => true)
  )
})

/** `fix.md` → `fix-2.md`, `fix-3.md`, …: the first name no stage and no marker uses. */
export const freeName = Effect.fn("freeName")(function*(name: TaskName) {
  const stem = name.slice(0, -".md".length)
  for (let n = 2;; n++) {
    const suffix = `-${n}.md`
    let cut = stem
    while (new TextEncoder().encode(cut + suffix).length > MAX_NAME_BYTES) cut = cut.slice(0, -1)
    const candidate = TaskName.make(cut + suffix)
    if (!(yield* nameInUse(candidate))) return candidate
  }
})

/** Moves `from/name` to `to/`, under a free name when `to/name` is taken; returns the name it has there. */
export const moveKeepingBoth = Effect.fn("moveKeepingBoth")(function*(from: Stage, to: Stage, name: TaskName) {
  const store = yield* TaskStore
  return yield* store.move(from, to, name).pipe(
    Effect.as(name),
    Effect.catchTag("NameTaken", () =>
      Effect.gen(function*() {
        // The name in `to` may be this very file: a move cut between its link and its unlink (a daemon killed there,
        // whose move a command or the next daemon now finishes). Then only the unlink is left to do.
        const here = yield* Effect.result(store.stat(from, name))
        const there = yield* Effect.result(store.stat(to, name))
        if (here._tag === "Success" && there._tag === "Success" && here.success.identity === there.success.identity) {
          yield* store.remove(from, name)
          return name
        }
        const other = yield* freeName(name)
        yield* store.move(from, to, name, other)
        yield* Effect.logWarning(`${to}/${name} already exists; ${from}/${name} moved to ${to}/${other} instead`).pipe(
          Effect.annotateLogs({ task: name })
        )
        return other
      }))
  )
})

export interface Applied {
  readonly task: Task
  /** Where the task is now (a clash in the destination gives it a free name). */
  readonly stage: Stage
  readonly name: TaskName
}

/**
 * Applies `event` to the task in `from`: the new content is written in place, then the file moves to the stage its
 * new state belongs in. `footer` (made from the task before the change) is appended to the body.
 */
export const applyEvent = Effect.fn("applyEvent")(function*(
  from: Stage,
  name: TaskName,
  event: TaskEvent,
  options: {
    readonly footer?: (task: Task) => string
    /** Rewrites the body, e.g. to drop an old footer on a retry. */
    readonly body?: (task: Task) => string
    readonly crashPoints?: { readonly written: Failpoint; readonly moved: Failpoint }
    /** For events that need more than the state machine (delegation rejects set allow_delegation). */
    readonly adjust?: (fields: Task["fields"]) => Task["fields"]
    /** The task as the caller read it under the task's lock it still holds: not read again. */
    readonly current?: { readonly stored: { readonly text: string }; readonly task: Task }
  } = {}
) {
  const store = yield* TaskStore
  // What the daemon adds to a file (footers, reasons from errors and agents) never carries a configured secret.
  const redact = Option.match(yield* Effect.serviceOption(Redaction), {
    onNone: () => (text: string) => text,
    onSome: (r) => r.redact
  })
  const { stored, task } = options.current ?? (yield* readTask(from, name))
  const fields = yield* Effect.fromResult(transition(task.fields, event))
  const adjusted = options.adjust === undefined ? fields : options.adjust(fields)
  const history = adjusted.history?.map((entry, index) =>
    index < (task.fields.history?.length ?? 0) ? entry : { ...entry, reason: redact(entry.reason) }
  )
  const rewritten: Task = { ...task, body: options.body === undefined ? task.body : options.body(task) }
  const footer = options.footer === undefined ? "" : redact(options.footer(task))
  const next = appendToBody(withFields(rewritten, history === undefined ? adjusted : { ...adjusted, history }), footer)
  const to = homeOf(adjusted.state ?? "pending")
  if (to === from) {
    yield* store.replace(from, name, renderTask(next))
    return { task: next, stage: from, name } satisfies Applied
  }
  // On a shared queue, the rewrite and the move are one transaction: another host never reads the new state still
  // in the old stage (and takes it for a crash to settle).
  return yield* store.atomically(Effect.gen(function*() {
    yield* store.replace(from, name, renderTask(next))
    if (options.crashPoints !== undefined) yield* failpoint(options.crashPoints.written)
    // A move that fails (a full disk, a stage that became a mount of its own) puts the old bytes back, so retrying it
    // later starts from where it was instead of from a half-done transition.
    const moved = yield* moveKeepingBoth(from, to, name).pipe(
      Effect.tapError(() => store.replace(from, name, stored.text).pipe(Effect.ignore))
    )
    if (options.crashPoints !== undefined) yield* failpoint(options.crashPoints.moved)
    return { task: { ...next, name: moved }, stage: to, name: moved } satisfies Applied
  }))
})

/** Milliseconds from `since` to `at` (ISO instants); undefined when `since` is missing or the span is not sensible. */
export const millisBetween = (since: string | null | undefined, at: string): number | undefined => {
  if (since === undefined || since === null) return undefined
  const elapsed = Date.parse(at) - Date.parse(since)
  return Number.isFinite(elapsed) && elapsed >= 0 ? elapsed : undefined
}

export type LocalResult =
  | { readonly _tag: "Done"; readonly summary?: string }
  | { readonly _tag: "Failed"; readonly reason: string }

/** A headless run's facts as task fields. */
export const headlessFields = (facts: HeadlessFacts): Partial<TaskFields> => ({
  ...(facts.claudeSession === undefined ? {} : { claude_session: facts.claudeSession }),
  ...(facts.costUsd === undefined ? {} : { cost_usd: facts.costUsd }),
  ...(facts.turns === undefined ? {} : { turns: facts.turns }),
  ...(facts.transcript === undefined ? {} : { transcript: facts.transcript })
})

/** `task done` / `task fail`: active → done|failed with finished_at and a footer naming session, run and duration. */
export const finishLocalTask = Effect.fn("finishLocalTask")(function*(
  name: TaskName,
  result: LocalResult,
  /** A headless run's own report, when the run's result finished the task. */
  headless?: HeadlessFacts
) {
  const at = yield* nowIso
  const footer = (task: Task) => {
    const durationMs = millisBetween(task.fields.assigned_at, at)
    const common = {
      at,
      runner: {
        _tag: "Session",
        session: task.fields.session ?? "unknown",
        ...(task.fields.host === undefined ? {} : { host: task.fields.host }),
        ...(headless === undefined ? {} : { headless })
      } as const,
      ...(durationMs === undefined ? {} : { durationMs })
    }
    return renderFooter(
      result._tag === "Done"
        ? Outcome.Done({ ...common, ...(result.summary === undefined ? {} : { summary: result.summary }) })
        : Outcome.Failed({ ...common, reason: result.reason })
    )
  }
  const crashPoints = { written: "complete:written", moved: "complete:moved" } as const
  return yield* applyEvent(
    "active",
    name,
    result._tag === "Done" ? TaskEvent.Complete({ at }) : TaskEvent.Fail({ at }),
    {
      footer,
      crashPoints,
      ...(headless === undefined ? {} : { adjust: (fields) => ({ ...fields, ...headlessFields(headless) }) })
    }
  )
})

/**
 * A headless run whose task its agent already finished (`task done|fail` came before the process ended): its facts
 * are added to the finished file, once, if the file still holds that run. False when it does not.
 */
export const recordHeadlessFacts = Effect.fn("recordHeadlessFacts")(function*(
  name: TaskName,
  run: string,
  facts: HeadlessFacts
) {
  const store = yield* TaskStore
  for (const stage of ["done", "failed"] as const) {
    if (!(yield* store.has(stage, name))) continue
    const { task } = yield* readTask(stage, name)
    if (task.fields.run !== run || task.fields.transcript !== undefined) return false
    const line = ["", `Headless run: ${describeHeadless(facts).join(" · ")}`, ""].join("\n")
    yield* store.replace(
      stage,
      name,
      renderTask(appendToBody(withFields(task, { ...task.fields, ...headlessFields(facts) }), line))
    )
    return true
  }
  return false
})

/**
 * A local run ended without finishing: back to pending with a history line, or — when this is the task's
 * `maxAttempts`-th run to end that way (see lifecycle's afterUnfinishedRun) — to failed/ with the reason.
 */
export const endUnfinishedRun = Effect.fn("endUnfinishedRun")(function*(
  name: TaskName,
  cause: RunEndCause,
  reason: string,
  maxAttempts: number,
  /** The run that ended; when the task has another run by now, nothing is changed. */
  run?: string
) {
  const { task } = yield* readTask("active", name)
  if (run !== undefined && task.fields.run !== run) return yield* new TaskNotFound({ stage: "active", name })
  const at = yield* nowIso
  if (afterUnfinishedRun(task.fields, cause, maxAttempts) === "fail") {
    const runs = unfinishedRuns(task.fields) + 1
    const why =
      `gave up after ${runs} runs that ended without finishing (MAX_ATTEMPTS=${maxAttempts}); the last: ${reason}`
    const footer = (before: Task) =>
      renderFooter(Outcome.Failed({
        at,
        runner: {
          _tag: "Session",
          session: before.fields.session ?? "unknown",
          ...(before.fields.host === undefined ? {} : { host: before.fields.host })
        },
        reason: why
      }))
    const applied = yield* applyEvent("active", name, TaskEvent.Fail({ at }), {
      footer,
      crashPoints: { written: "requeue:written", moved: "requeue:moved" }
    })
    return { ...applied, gaveUp: true as const, reason: why }
  }
  const applied = yield* applyEvent("active", name, TaskEvent.Requeue({ at, cause, reason }), {
    crashPoints: { written: "requeue:written", moved: "requeue:moved" }
  })
  return { ...applied, gaveUp: false as const, reason }
})

/** A finished task (or one put back into pending/ by hand) runs again: run fields and the old footer go, history stays. */
export const retryTask = Effect.fn("retryTask")(function*(
  stage: Stage,
  name: TaskName,
  cause: RunEndCause,
  reason: string
) {
  const at = yield* nowIso
  return yield* applyEvent(stage, name, TaskEvent.Retry({ at, cause, reason }), {
    body: (task) => stripAppended(task.body, task.fields.provider),
    crashPoints: { written: "retry:written", moved: "retry:moved" }
  })
})

/**
 * A file that is not a task the daemon can run: moved to failed/ byte-for-byte (under a free name when failed/ has
 * the name already), with NAME.md.error beside it saying why.
 */
export const quarantine = Effect.fn("quarantine")(function*(stage: Stage, name: TaskName, reason: string) {
  const store = yield* TaskStore
  const target = (yield* store.has("failed", name)) ? yield* freeName(name) : name
  yield* store.writeError(target, target === name ? reason : `${reason}\n(the file was ${stage}/${name})`)
  yield* failpoint("quarantine:error")
  yield* store.move(stage, "failed", name, target)
  yield* Effect.logWarning(`${stage}/${name} cannot be run: ${reason}; moved to failed/${target} with ${target}.error`)
    .pipe(
      Effect.annotateLogs({ task: name })
    )
  return target
})

/**
 * Regular files in pending/ with names that cannot be tasks go to failed/ under a usable name, with a `.error` saying
 * so; other entries (directories, sockets) are reported through `report` (keyed, so said once) and left alone. Returns
 * how many files were moved.
 */
export const quarantineStrays = Effect.fn("quarantineStrays")(function*(
  report: (key: string, message: string) => Effect.Effect<void>
) {
  const store = yield* TaskStore
  let moved = 0
  for (const stray of yield* store.strays("pending")) {
    if (stray.kind === "not-a-file") {
      yield* report(
        `stray:${stray.display}`,
        `pending/${JSON.stringify(stray.display).slice(1, -1)} ${stray.problem}; ignored`
      )
      continue
    }
    const target = quarantineNameFor(stray.display)
    const free = (yield* store.has("failed", target)) ? yield* freeName(target) : target
    yield* store.writeError(
      free,
      `the file name ${
        JSON.stringify(stray.display)
      } cannot be a task name: ${stray.problem}; the file was renamed ${free}`
    )
    yield* store.quarantineStray(stray, free)
    moved++
    yield* Effect.logWarning(`pending/${JSON.stringify(stray.display)}: ${stray.problem}; moved to failed/${free}`)
  }
  return moved
})
