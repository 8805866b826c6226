/**
 * Runs a CLI command as a process: usage errors exit 2, failures print one line on stderr and exit 1.
 * Easy to get wrong: stdout carries only the command's data (JSON), so every diagnostic goes to stderr — including
 * the usage printed for a bad command line (see usage-errors.ts).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Command from "effect/cli/Command"
import { UsageOnStderr } from "./usage-errors.ts"

export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

/**
 * The usage presenter has already printed the error and usage for these; only the exit code is left to set. With no
 * errors it is a command group run without its subcommand (a requested `--help` succeeds instead).
 */
const isUsageError = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "_tag" in error && error._tag === "ShowHelp"

/** Bad settings are a usage error too: exit 2, before anything has started. */
const isConfigError = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "_tag" in error && error._tag === "ConfigInvalid"

/** An error that names its own exit code (e.g. 3: a completion for another run). */
const exitCodeOf = (error: unknown): number | undefined =>
  typeof error === "object" && error !== null && "exitCode" in error && typeof error.exitCode === "number"
    ? error.exitCode
    : undefined

const describeFailure = (error: unknown): string =>
  error instanceof Error ? error.message : typeof error === "string" ? error : JSON.stringify(error)

const setExitCode = (code: number) =>
  Effect.sync(() => {
    process.exitCode = code
  })

export const runCli = <Name extends string, Input, CI, E>(
  program: string,
  command: Command.Command<Name, Input, CI, E, NodeServices.NodeServices>,
  version: string
): void =>
  Command.run(command, { version }).pipe(
    Effect.catchCause((cause) =>
      Option.match(Cause.findErrorOption(cause), {
        onSome: (error) =>
          isUsageError(error)
            ? setExitCode(EXIT_USAGE)
            : Effect.andThen(
              Console.error(`${program}: ${describeFailure(error)}`),
              setExitCode(isConfigError(error) ? EXIT_USAGE : exitCodeOf(error) ?? EXIT_FAILURE)
            ),
        onNone: () => Effect.andThen(Console.error(`${program}: ${Cause.pretty(cause)}`), setExitCode(EXIT_FAILURE))
      })
    ),
    Effect.provide([UsageOnStderr, NodeServices.layer]),
    (effect) => NodeRuntime.runMain(effect, { disableErrorReporting: true, teardown: stopCleanly })
  )

/** SIGTERM/SIGINT interrupt the program: for a daemon that is a requested, clean stop, so exit 0 (not 130). */
const stopCleanly: Runtime.Teardown = (exit, onExit) => {
  if (Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)) return onExit(Number(process.exitCode ?? 0))
  return Runtime.defaultTeardown(exit, onExit)
}
