/**
 * `ccl-delegate`: the delegation contract for shell scripts. JSON on stdout, human errors (and retries) on stderr.
 * Easy to get wrong: delegation counts as enabled only when SECUTOOLS_API_KEY is set, exactly as in the daemon (the
 * same settings lookup, `--config` included); a resubmission must reuse the printed idempotency key, or secutools
 * runs the prompt twice; and `result`'s exit code is the contract scripts branch on (0 / 1 / 4, 2 for usage).
 */
import { randomUUID } from "node:crypto"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Path from "effect/Path"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import * as Argument from "effect/cli/Argument"
import * as CliError from "effect/cli/CliError"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import { Config, parseDuration, routingSettings } from "../../config.ts"
import { isTerminalJob } from "../../domain/job.ts"
import { parseProvider, Providers } from "../../domain/provider.ts"
import { decide } from "../../domain/routing.ts"
import { makeTask, parseTask, type Task, TaskName, withFieldPairs } from "../../domain/task.ts"
import { type JobView, Secutools, type SubmitRequest } from "../../ports/secutools.ts"
import { JobWaitTimeout, type OnRetry, pollSchedule } from "../../services/secutools-policy.ts"
import { SecutoolsFromConfig } from "../secutools-layer.ts"
import { configFlag } from "./config-flag.ts"
import { EXIT_FAILURE } from "./run-cli.ts"
import { stderrWaitProgress, type WaitObserver } from "./wait-progress.ts"

const FIELDS_SOURCE = "--field"

/** Input the command cannot use: an unreadable file, an empty prompt, or nothing to decide on. */
export class InputError extends Data.TaggedError("InputError")<{ readonly message: string }> {}

/** The task to decide for: the file if one is given, then each `--field` on top. */
const loadTask = Effect.fn("ccl-delegate.loadTask")(function*(
  file: Option.Option<string>,
  fields: Option.Option<Record<string, string>>
) {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const base: Task = yield* Option.match(file, {
    onNone: () => Effect.succeed(makeTask({ name: TaskName.make("fields.md") })),
    onSome: (filePath) =>
      fs.readFileString(filePath).pipe(
        Effect.mapError((error) => new InputError({ message: `${filePath}: cannot read: ${error.message}` })),
        Effect.flatMap((text) => Effect.fromResult(parseTask(path.basename(filePath), text)))
      )
  })
  return yield* Option.match(fields, {
    onNone: () => Effect.succeed(base),
    onSome: (pairs) => Effect.fromResult(withFieldPairs(base, pairs, FIELDS_SOURCE))
  })
})

export const decideCommand = Command.make(
  "decide",
  {
    file: Argument.String("file").pipe(
      Argument.withDescription("A task file (Markdown with YAML frontmatter)"),
      Argument.optional
    ),
    fields: Flag.KeyValuePair("field").pipe(
      Flag.withDescription("A frontmatter field as key=value (repeatable); overrides the file's"),
      Flag.optional
    ),
    localUnavailable: Flag.Boolean("local-unavailable").pipe(
      Flag.withDescription("Decide as if every local session were usage-limited or dead (routing rule 7)"),
      Flag.withDefault(false)
    )
  },
  Effect.fn("ccl-delegate.decide")(function*({ fields, file, localUnavailable }) {
    if (Option.isNone(file) && Option.isNone(fields)) {
      return yield* new InputError({ message: "give a task file, --field key=value pairs, or both" })
    }
    const task = yield* loadTask(file, fields)
    const config = yield* Config
    const decision = decide(task.fields, { ...routingSettings(config), localAvailable: !localUnavailable })
    yield* Console.log(JSON.stringify(decision))
  })
).pipe(
  Command.withDescription(
    "Print where a task would run, as the daemon would route it (same settings): {\"route\",\"provider\"?,\"reason\"}"
  )
)

/** Each retry goes to stderr, so stdout stays one JSON line; the API key is only ever a header, never in a message. */
const reportRetry: OnRetry = (error, delay) =>
  Console.error(`retrying: ${error.message}; next try in ${Duration.format(delay)}`)

/** Secutools over HTTP as the settings configure it; without SECUTOOLS_API_KEY every call fails, nothing is sent. */
const SecutoolsFromSettings = Layer.unwrap(Effect.gen(function*() {
  return SecutoolsFromConfig(yield* Config, reportRetry)
}))

const nonEmpty = (name: string, description: string) =>
  Flag.String(name).pipe(
    Flag.withDescription(description),
    Flag.filter((value) => value.trim() !== "", () => "a non-empty value")
  )

/** A duration flag read with the daemon's own syntax; absent stays `None`, so the caller can tell it was not given. */
const durationFlag = (name: string, description: string) =>
  Flag.String(name).pipe(
    Flag.withDescription(description),
    Flag.filterMap((raw) => Result.getSuccess(parseDuration(raw)), () => "a duration such as 500ms, 30s, 5m or 1h"),
    Flag.optional
  )

const jobIdArgument = Argument.String("job-id").pipe(Argument.withDescription("The job_id that submit printed"))

/** The prompt sources of `submit`: exactly one of them must be given. */
interface PromptSources {
  readonly prompt: Option.Option<string>
  readonly promptFile: Option.Option<string>
  readonly task: Option.Option<string>
}

const exactlyOnePromptSource = ({ prompt, promptFile, task }: PromptSources) => {
  const given = [
    Option.as(prompt, "--prompt"),
    Option.as(promptFile, "--prompt-file"),
    Option.as(task, "a TASK.md file")
  ].flatMap(Option.toArray)
  return given.length === 1 ? Effect.void : Effect.fail(
    new CliError.ValidationError({
      message: given.length === 0
        ? "give the prompt: --prompt TEXT, --prompt-file FILE or a TASK.md file"
        : `give only one prompt source, not ${given.join(" and ")}`
    })
  )
}

/** What the prompt source says: the prompt, and the task id and complexity hint to use unless flags override them. */
interface Draft {
  readonly source: string
  readonly prompt: string
  readonly taskId: string
  readonly complexityHint: Option.Option<string>
}

const CLI_TASK_ID = "cli"

const draftFrom = Effect.fn("ccl-delegate.draftFrom")(function*({ prompt, promptFile, task }: PromptSources) {
  if (Option.isSome(task)) {
    const parsed = yield* loadTask(task, Option.none())
    return {
      source: task.value,
      prompt: parsed.body,
      taskId: parsed.fields.id ?? parsed.name.replace(/\.md$/, ""),
      complexityHint: Option.fromUndefinedOr(parsed.fields.complexity_hint)
    } satisfies Draft
  }
  if (Option.isSome(promptFile)) {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(promptFile.value).pipe(
      Effect.mapError((error) => new InputError({ message: `${promptFile.value}: cannot read: ${error.message}` }))
    )
    return {
      source: promptFile.value,
      prompt: text,
      taskId: CLI_TASK_ID,
      complexityHint: Option.none()
    } satisfies Draft
  }
  if (Option.isSome(prompt)) {
    return {
      source: "--prompt",
      prompt: prompt.value,
      taskId: CLI_TASK_ID,
      complexityHint: Option.none()
    } satisfies Draft
  }
  return yield* new InputError({ message: "no prompt given" })
})

/** A submit that may or may not have reached secutools: only the same key can resubmit it without a second job. */
export class SubmitUnconfirmed extends Data.TaggedError("SubmitUnconfirmed")<{
  readonly message: string
  readonly idempotencyKey: string
}> {}

export const submitCommand = Command.make(
  "submit",
  {
    provider: Flag.String("provider").pipe(
      Flag.withDescription(`The secutools provider: ${Providers.join(", ")}`),
      Flag.filterMap(parseProvider, () => `one of ${Providers.join(", ")}`)
    ),
    prompt: Flag.String("prompt").pipe(Flag.withDescription("The prompt text"), Flag.optional),
    promptFile: Flag.String("prompt-file").pipe(
      Flag.withDescription("A file whose whole text is the prompt"),
      Flag.optional
    ),
    task: Argument.String("task").pipe(
      Argument.withDescription("A task file (TASK.md): its body is the prompt, its id (or file name) the task_id"),
      Argument.optional
    ),
    idempotencyKey: nonEmpty(
      "idempotency-key",
      "Reuse the key a previous submit printed, to get its job instead of a new one (default: a fresh UUID)"
    ).pipe(Flag.optional),
    taskId: nonEmpty("task-id", "The task_id to report (default: the task file's id or name, else \"cli\")").pipe(
      Flag.optional
    ),
    complexityHint: nonEmpty("complexity-hint", "The complexity_hint to send (default: the task file's)").pipe(
      Flag.optional
    )
  },
  Effect.fn("ccl-delegate.submit")(function*(input) {
    const draft = yield* draftFrom(input)
    if (draft.prompt.trim() === "") return yield* new InputError({ message: `${draft.source}: the prompt is empty` })
    const complexityHint = Option.orElse(input.complexityHint, () => draft.complexityHint)
    const request: SubmitRequest = {
      task_id: Option.getOrElse(input.taskId, () => draft.taskId),
      provider: input.provider,
      prompt: draft.prompt,
      ...Option.match(complexityHint, { onNone: () => ({}), onSome: (hint) => ({ complexity_hint: hint }) })
    }
    const idempotencyKey = Option.isSome(input.idempotencyKey)
      ? input.idempotencyKey.value
      : yield* Effect.sync(() => randomUUID())
    const secutools = yield* Secutools
    const answer = yield* secutools.submit(request, idempotencyKey).pipe(
      Effect.mapError((error) =>
        error.retryable
          ? new SubmitUnconfirmed({
            message: `${error.message}; the job may exist: resubmit with --idempotency-key ${idempotencyKey}`,
            idempotencyKey
          })
          : error
      )
    )
    yield* Console.log(
      JSON.stringify({ job_id: answer.job_id, status: answer.status, idempotency_key: idempotencyKey })
    )
  })
).pipe(
  (command) => Command.validate(command, exactlyOnePromptSource),
  Command.withDescription(
    "Submit a prompt to secutools; print {\"job_id\",\"status\",\"idempotency_key\"}. The prompt is exactly one of " +
      "--prompt, --prompt-file or a TASK.md file"
  ),
  Command.provide(SecutoolsFromSettings)
)

export const getCommand = Command.make(
  "get",
  { jobId: jobIdArgument },
  Effect.fn("ccl-delegate.get")(function*({ jobId }) {
    const secutools = yield* Secutools
    yield* Console.log(JSON.stringify(yield* secutools.get(jobId)))
  })
).pipe(
  Command.withDescription("Print a job as secutools reports it: {\"job_id\",\"status\",\"provider\",\"result\"?,...}"),
  Command.provide(SecutoolsFromSettings)
)

/** `result`'s exit codes: what a script branches on. Usage and settings errors are 2, as for every command. */
export const ResultExit = {
  completed: 0,
  /** Failed or cancelled: secutools gave its final answer, and it is not a result. */
  failedOrCancelled: EXIT_FAILURE,
  /** Queued or running: without --wait, or when --wait ran out of time; asking again later may succeed. */
  notFinished: 4
} as const

/** The job did not complete; `exitCode` tells a failed or cancelled job (1) from an unfinished one (4). */
export class JobNotCompleted extends Data.TaggedError("JobNotCompleted")<{
  readonly message: string
  readonly exitCode: number
  readonly job: JobView
}> {
  static of(job: JobView, waited?: Duration.Duration): JobNotCompleted {
    if (isTerminalJob(job.status)) {
      return new JobNotCompleted({
        message: `job ${job.job_id} ${job.status}: ${job.error ?? "secutools gave no reason"}`,
        exitCode: ResultExit.failedOrCancelled,
        job
      })
    }
    const message = waited === undefined
      ? `job ${job.job_id} is still ${job.status} (use --wait)`
      : new JobWaitTimeout({ jobId: job.job_id, afterMs: Duration.toMillis(waited), lastStatus: job.status }).message
    return new JobNotCompleted({ message, exitCode: ResultExit.notFinished, job })
  }
}

/** What a script needs of a job: its status and, once finished, the outcome; absent fields are left out. */
const outcomeOf = (job: JobView) => ({
  job_id: job.job_id,
  status: job.status,
  ...(job.result === undefined || job.result === null ? {} : { result: job.result }),
  ...(job.error === undefined || job.error === null ? {} : { error: job.error }),
  ...(job.cost_usd === undefined || job.cost_usd === null ? {} : { cost_usd: job.cost_usd })
})

const DEFAULT_INTERVAL = Duration.seconds(2)
const DEFAULT_TIMEOUT = Duration.minutes(10)

/**
 * Polls the job (pollSchedule: quickly at first, then every `interval`) until it is completed, failed or cancelled,
 * telling `observer` each step; at the deadline it returns the last answer, unfinished. Only a first answer that
 * never comes is an error (the request's own).
 */
const waitForJob = Effect.fn("ccl-delegate.waitForJob")(function*(
  jobId: string,
  options: { readonly interval: Duration.Duration; readonly timeout: Duration.Duration },
  observer: WaitObserver
) {
  const secutools = yield* Secutools
  let last: JobView | undefined
  const poll = Effect.andThen(observer.polling, secutools.get(jobId)).pipe(
    Effect.tap((job) => Effect.andThen(Effect.sync(() => (last = job)), observer.answered(job.status)))
  )
  return yield* poll.pipe(
    Effect.repeat({
      schedule: pollSchedule(options.interval).pipe(Schedule.tap(({ duration }) => observer.nextPollIn(duration))),
      until: (job: JobView) => isTerminalJob(job.status)
    }),
    Effect.timeoutOrElse({
      duration: options.timeout,
      orElse: () =>
        last === undefined
          ? Effect.fail(
            new JobWaitTimeout({ jobId, afterMs: Duration.toMillis(options.timeout), lastStatus: "unknown" })
          )
          : Effect.succeed(last)
    })
  )
})

export const resultCommand = Command.make(
  "result",
  {
    jobId: jobIdArgument,
    wait: Flag.Boolean("wait").pipe(
      Flag.withDescription(
        "Poll until the job is completed, failed or cancelled; on a terminal, stderr shows the status, time waited " +
          "and next poll"
      ),
      Flag.withDefault(false)
    ),
    timeout: durationFlag("timeout", "With --wait: give up after this long, exit 4 (default 10m)"),
    interval: durationFlag("interval", "With --wait: poll at most this far apart (default 2s)")
  },
  Effect.fn("ccl-delegate.result")(function*({ interval, jobId, timeout, wait }) {
    const waited = Option.getOrElse(timeout, () => DEFAULT_TIMEOUT)
    const job = wait
      ? yield* Effect.scoped(
        Effect.flatMap(stderrWaitProgress(jobId), (observer) =>
          waitForJob(jobId, {
            interval: Option.getOrElse(interval, () => DEFAULT_INTERVAL),
            timeout: waited
          }, observer))
      )
      : yield* (yield* Secutools).get(jobId)
    yield* Console.log(JSON.stringify(outcomeOf(job)))
    if (job.status !== "completed")
      return yield* JobNotCompleted.of(job, wait ? waited : undefined)
  })
).pipe(
  (command) =>
    Command.validate(
      command,
      ({ interval, timeout, wait }) =>
        !wait && (Option.isSome(timeout) || Option.isSome(interval))
          ? Effect.fail(new CliError.ValidationError({ message: "--timeout and --interval apply only with --wait" }))
          : Effect.void
    ),
  Command.withDescription(
    "Print {\"job_id\",\"status\",\"result\"?,\"error\"?,\"cost_usd\"?}. Exit 0: completed; 1: failed or " +
      "cancelled; 4: not finished (queued or running, or --wait ran out of time); 2: usage or settings error"
  ),
  Command.provide(SecutoolsFromSettings)
)

export const cclDelegate = Command.make("ccl-delegate").pipe(
  Command.withDescription(
    "Delegate agent tasks to secutools from shell scripts: JSON on stdout, messages on stderr.\n" +
      "  Reads the daemon's settings (env, or the config file: see --config), so decide answers as the daemon would."
  ),
  Command.withSharedFlags({ config: configFlag }),
  Command.withSubcommands([decideCommand, submitCommand, getCommand, resultCommand]),
  Command.provide(({ config }) => Config.layerWithFile(config))
)
