/**
 * What people and agents ask of a task — done, fail, retry, cancel, requeue — decided against the task's current state
 * and run. Easy to get wrong: a completion names its run, and a completion for another run (a session that was given
 * up on, whose task now runs elsewhere) must change nothing; the caller must hold the queue's lock (the CLI) or the
 * task's lock (the daemon) while this runs; and a requeue stops the session's turn only when given a way to (the
 * daemon's `requeueTask`), otherwise the file alone changes and the answer says the session was not interrupted.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type { Task, TaskName } from "../domain/task.ts"
import { isResourceError, type Stage, TaskStore } from "../ports/task-store.ts"
import { settleFile } from "./recovery.ts"
import { applyEvent, finishLocalTask, millisBetween, nowIso, readTask, retryTask } from "./task-moves.ts"
import { TaskEvent } from "../domain/lifecycle.ts"
import { formatDuration, Outcome, renderFooter, sessionOnHost } from "../domain/footer.ts"

export const TaskOperation = Schema.Union([
  Schema.Struct({
    op: Schema.Literal("done"),
    task: Schema.String,
    run: Schema.optionalKey(Schema.String),
    summary: Schema.optionalKey(Schema.String)
  }),
  Schema.Struct({
    op: Schema.Literal("fail"),
    task: Schema.String,
    run: Schema.optionalKey(Schema.String),
    reason: Schema.String
  }),
  Schema.Struct({ op: Schema.Literal("retry"), task: Schema.String }),
  Schema.Struct({ op: Schema.Literal("cancel"), task: Schema.String }),
  Schema.Struct({ op: Schema.Literal("requeue"), task: Schema.String, run: Schema.optionalKey(Schema.String) })
])
export type TaskOperation = typeof TaskOperation.Type

/** Exit codes of the task commands: 0 done, 1 could not (not found, not in a state that allows it), 3 another run's. */
export const EXIT_REFUSED = 3

export interface OperationResult {
  /** 0 ok, 1 failure, 3 refused: the completion belongs to another run. */
  readonly code: 0 | 1 | 3
  readonly message: string
  /** Set when the failure is that no such task is in the queue (the status page answers 404 rather than 409). */
  readonly notFound?: true
}

const ok = (message: string): OperationResult => ({ code: 0, message })
const failure = (message: string): OperationResult => ({ code: 1, message })
const missing = (message: string): OperationResult => ({ code: 1, message, notFound: true })
const refused = (message: string): OperationResult => ({ code: EXIT_REFUSED, message })

/** Where to look first: a completion is for an active task, and an entry elsewhere must not hide it. */
const LOOK_IN: ReadonlyArray<Stage> = ["active", "pending", "done", "failed"]

/**
 * Where the task is now, if anywhere — after finishing a move a crash cut short (its state written, the file not yet
 * moved), as start-up recovery would: a command that takes over from a daemon that died sees what the daemon meant.
 * An entry that is not a task file (a directory or FIFO under the name) is passed over.
 */
const locate = Effect.fn("locate")(function*(name: TaskName) {
  const store = yield* TaskStore
  for (const stage of LOOK_IN) {
    if (!(yield* store.has(stage, name))) continue
    const read = yield* Effect.result(readTask(stage, name))
    if (read._tag === "Failure" && (read.failure._tag === "TaskNotFound" || read.failure._tag === "Unreadable"))
      continue
    if (read._tag === "Success" && Option.isSome(yield* settleFile(stage, name, read.success.task))) {
      for (const settled of LOOK_IN) if (yield* store.has(settled, name)) return Option.some<Stage>(settled)
      return Option.none<Stage>()
    }
    return Option.some<Stage>(stage)
  }
  return Option.none<Stage>()
})

const lastReason = (history: ReadonlyArray<{ readonly reason: string }> | undefined) =>
  history === undefined || history.length === 0 ? "" : `: ${history[history.length - 1]?.reason ?? ""}`

/** done / fail from an agent or a person: only the active run, or — without a run — whatever run is active. */
const finish = Effect.fn("finish")(function*(
  name: TaskName,
  run: string | undefined,
  result: { readonly _tag: "Done"; readonly summary?: string } | { readonly _tag: "Failed"; readonly reason: string }
) {
  const verb = result._tag === "Done" ? "done" : "failed"
  const where = yield* locate(name)
  if (Option.isNone(where)) return missing(`no task '${name}' in the queue; nothing changed`)
  const stage = where.value
  const found = yield* Effect.result(readTask(stage, name))
  if (found._tag === "Failure") return failure(`${stage}/${name}: ${found.failure.message}; nothing changed`)
  const { task } = found.success
  const current = task.fields.run
  if (stage === "active") {
    if (run !== undefined && current !== run) {
      return refused(
        `refused: ${name} is now run ${current ?? "(none)"} on ${sessionOf(task.fields) ?? "no session"}; ` +
          `this completion is for run ${run}, which the daemon already ended; nothing changed`
      )
    }
    const applied = yield* finishLocalTask(name, result)
    const took = millisBetween(task.fields.assigned_at, applied.task.fields.finished_at ?? (yield* nowIso))
    const facts = [
      ...(task.fields.session === undefined ? [] : [`session ${sessionOf(task.fields)}`]),
      ...(took === undefined ? [] : [`took ${formatDuration(took)}`]),
      ...(result._tag === "Failed" ? [`reason: ${result.reason}`] : [])
    ]
    return ok(
      `${name} ${verb}${facts.length === 0 ? "" : ` (${facts.join(", ")})`}` +
        (applied.name === name ? "" : ` (as ${applied.stage}/${applied.name}: the name was taken)`)
    )
  }
  if (run !== undefined && current === run && (stage === "done" || stage === "failed")) {
    return stage === (result._tag === "Done" ? "done" : "failed")
      ? ok(`${name} was already ${verb} (run ${run}); nothing changed`)
      : failure(`${name} already ended in ${stage}/ (run ${run}); nothing changed`)
  }
  const state = stage === "pending" ? `back in pending/${lastReason(task.fields.history)}` : `in ${stage}/`
  return run === undefined
    ? failure(`no active task '${name}' (it is ${state}); nothing changed`)
    : refused(`refused: ${name} is ${state}; run ${run} has ended; nothing changed`)
})

/** failed/ or done/ → pending/: the task runs again with its history kept. */
const retry = Effect.fn("retry")(function*(name: TaskName) {
  const where = yield* locate(name)
  if (Option.isNone(where)) return missing(`no task '${name}' in the queue`)
  const stage = where.value
  if (stage === "pending") {
    // A retry whose answer was lost (the daemon died after applying it) is already done.
    const { task } = yield* readTask("pending", name)
    if (task.fields.history?.at(-1)?.event === "retried") return ok(`${name} is already back in pending/`)
  }
  if (stage !== "failed" && stage !== "done") {
    return failure(`${name} is in ${stage}/; only a task in failed/ or done/ can be retried`)
  }
  const applied = yield* Effect.result(retryTask(stage, name, "operator", "retried by an operator"))
  if (applied._tag === "Failure") {
    return failure(
      applied.failure._tag === "TaskParseError"
        ? `${stage}/${name} does not parse (${applied.failure.message}); fix it and move it into pending/ by hand`
        : `${name}: ${applied.failure.message}`
    )
  }
  return ok(`${name} is back in pending/${applied.success.name === name ? "" : ` as ${applied.success.name}`}`)
})

/** pending → failed/ "cancelled by operator"; a task already sent to secutools is not cancelled here. */
const cancel = Effect.fn("cancel")(function*(name: TaskName) {
  const store = yield* TaskStore
  const where = yield* locate(name)
  if (Option.isNone(where)) return missing(`no task '${name}' in the queue`)
  if (where.value !== "pending") return failure(`${name} is in ${where.value}/; only a pending task can be cancelled`)
  if (Option.isSome(yield* store.readMarker(name))) {
    return failure(`${name} is delegated to secutools; it cannot be cancelled from here`)
  }
  const at = yield* nowIso
  const reason = "cancelled by operator"
  const applied = yield* Effect.result(applyEvent("pending", name, TaskEvent.Cancel({ at, reason }), {
    footer: () => renderFooter(Outcome.Failed({ at, reason }))
  }))
  if (applied._tag === "Failure") return failure(`${name}: ${applied.failure.message}`)
  return ok(`${name} cancelled`)
})

/** Stops a session's current turn (the daemon: Ctrl-C in tmux, or the headless run stopped). */
export type StopTurn = (session: string, reason: string) => Effect.Effect<void>

export const REQUEUE_REASON = "requeued by an operator"

/**
 * active/ → pending/, cause `operator` (not counted against MAX_ATTEMPTS): the assigned run observed is taken back.
 * With `stop` the session's turn is stopped first, so it cannot go on beside the next run; the file then changes only
 * if the task still has the run observed (a completion that got in first wins). A delegated task is refused: its job
 * runs remotely and would run twice.
 */
export const requeueTask = Effect.fn("requeueTask")(
  function*(name: TaskName, run: string | undefined, stop: Option.Option<StopTurn>) {
    const store = yield* TaskStore
    const where = yield* locate(name)
    if (Option.isNone(where)) return missing(`no task '${name}' in the queue; nothing changed`)
    const stage = where.value
    const delegated = (task: Task) =>
      failure(
        `${name} is delegated to secutools${
          task.fields.job_id === undefined ? "" : ` (job ${task.fields.job_id})`
        }; its job runs ` +
          "remotely, and requeueing it could run it twice; nothing changed"
      )
    if (stage === "pending") {
      const { task } = yield* readTask("pending", name)
      // Delegated tasks wait in pending/ (with a marker) while their job runs.
      if (task.fields.state === "delegated_to_secutools" || Option.isSome(yield* store.readMarker(name)))
        return delegated(task)
      // A requeue whose answer was lost (the daemon died after applying it) is already done.
      const last = task.fields.history?.at(-1)
      if (last?.event === "requeued" && last.cause === "operator" && (run === undefined || last.run === run)) {
        return ok(`${name} is already back in pending/`)
      }
    }
    if (stage !== "active") {
      const only = `only an active task can be requeued${
        stage === "failed" || stage === "done" ? " (use retry for a finished one)" : ""
      }`
      return run === undefined
        ? failure(`${name} is in ${stage}/; ${only}; nothing changed`)
        : refused(`refused: ${name} is in ${stage}/; run ${run} has ended; nothing changed`)
    }
    const { task } = yield* readTask("active", name)
    const observed = task.fields.run
    if (run !== undefined && observed !== run) {
      return refused(`refused: ${name} is now run ${observed ?? "(none)"}; run ${run} has ended; nothing changed`)
    }
    if (task.fields.state === "delegated_to_secutools" || Option.isSome(yield* store.readMarker(name)))
      return delegated(task)
    if (task.fields.state !== "assigned")
      return failure(`${name} is ${task.fields.state ?? "pending"} in active/; nothing changed`)
    const session = task.fields.session
    const interrupted = session !== undefined && Option.isSome(stop)
    if (interrupted) yield* stop.value(session, REQUEUE_REASON)
    // The run observed must still be the task's: its agent may have finished it while the turn was being stopped.
    const now = yield* Effect.result(readTask("active", name))
    if (now._tag === "Failure" || now.success.task.fields.run !== observed) {
      return failure(`${name} ended while its session was being interrupted (see its stage now); nothing changed`)
    }
    const at = yield* nowIso
    yield* applyEvent("active", name, TaskEvent.Requeue({ at, cause: "operator", reason: REQUEUE_REASON }), {
      crashPoints: { written: "requeue:written", moved: "requeue:moved" }
    })
    const from = session === undefined ? "" : ` from session ${session}`
    return ok(
      interrupted
        ? `${name} is back in pending/: run ${
          observed ?? "?"
        } was taken back${from}, whose turn was interrupted; the attempt is not counted`
        : `${name} is back in pending/: run ${
          observed ?? "?"
        } was taken back${from}, which was NOT interrupted (no daemon ` +
          "is running): stop its turn yourself if it is still working; the attempt is not counted"
    )
  }
)

/** A resource error is tried again every half second for 30 s: well within the minute a command waits for its answer. */
const OUTAGE_RETRY_EVERY = Duration.millis(500)
const OUTAGE_RETRIES = 60

/** The run's session, with its host on a shared queue: `claude-1 on box-2`. */
const sessionOf = (fields: Task["fields"]): string | undefined =>
  fields.session === undefined ? undefined : sessionOnHost(fields.session, fields.host)

/** Applies `operation`; `stop` is how a requeue stops the session's turn (the daemon has one, a command alone does not). */
export const performOperation = (
  name: TaskName,
  operation: TaskOperation,
  stop?: StopTurn
): Effect.Effect<OperationResult, never, TaskStore> => {
  const run = (() => {
    switch (operation.op) {
      case "done":
        return finish(name, operation.run, {
          _tag: "Done",
          ...(operation.summary === undefined ? {} : { summary: operation.summary })
        })
      case "fail":
        return finish(name, operation.run, { _tag: "Failed", reason: operation.reason })
      case "retry":
        return retry(name)
      case "cancel":
        return cancel(name)
      case "requeue":
        return requeueTask(name, operation.run, Option.fromUndefinedOr(stop))
    }
  })()
  return run.pipe(
    // A short outage (the database restarting, a disk full for a moment) is waited out while the command still waits
    // for its answer, rather than failing a completion the agent will not send again.
    Effect.retry({ while: isResourceError, schedule: Schedule.spaced(OUTAGE_RETRY_EVERY), times: OUTAGE_RETRIES }),
    Effect.catch((error) => Effect.succeed(failure(`${name}: ${error.message}; nothing changed`)))
  )
}
