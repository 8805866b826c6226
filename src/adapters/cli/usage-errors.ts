/**
 * How a command line that cannot run is reported: the error, the command's usage line and a hint, all on stderr.
 * Easy to get wrong: stdout belongs to the command's data (scripts read JSON from it), so only a requested `--help`
 * (and `--version`) print there; a group run without its subcommand is a usage error too, never help on stdout.
 */
import * as Console from "effect/Console"
import type * as CliError from "effect/cli/CliError"
import * as CliOutput from "effect/cli/CliOutput"
import type * as HelpDoc from "effect/cli/HelpDoc"

/** Messages echo what was typed: a control character must not drive the terminal. */
const plain = CliOutput.defaultFormatter({ colors: false })

const subcommandsOf = (doc: HelpDoc.HelpDoc): ReadonlyArray<HelpDoc.SubcommandDoc> =>
  (doc.subcommands ?? []).flatMap((group) => group.commands)

/** `claude-failover task done: <error>`, usage, and where to read more: the lines printed for a bad command line. */
export const describeInvalidInvocation = (
  commandPath: ReadonlyArray<string>,
  doc: HelpDoc.HelpDoc,
  errors: ReadonlyArray<CliError.CliError>
): ReadonlyArray<string> => {
  const command = commandPath.join(" ")
  return [
    ...errors.map((error) => `${command}: ${plain.formatCliError(error)}`),
    `Usage: ${doc.usage}`,
    `Run '${command} --help' for the flags.`
  ]
}

/** A command group (`ccl-delegate`, `claude-failover task`) run without one of its subcommands. */
export const describeMissingSubcommand = (
  commandPath: ReadonlyArray<string>,
  doc: HelpDoc.HelpDoc
): ReadonlyArray<string> => {
  const command = commandPath.join(" ")
  const subcommands = subcommandsOf(doc)
  const width = Math.max(0, ...subcommands.map((sub) => sub.name.length))
  return [
    `${command}: a subcommand is required`,
    `Usage: ${doc.usage}`,
    "Subcommands:",
    ...subcommands.map((sub) => `  ${sub.name.padEnd(width)}  ${sub.shortDescription ?? sub.description}`),
    `Run '${command} SUBCOMMAND --help' for a subcommand's flags.`
  ]
}

/**
 * Effect's CLI presents help and parse errors through this: `--help` and `--version` as usual on stdout, every
 * invocation error only on stderr. The run still fails with `ShowHelp`, which the runner turns into exit 2.
 */
export const UsageOnStderr = CliOutput.layerPresenter({
  present: (event) => {
    switch (event._tag) {
      case "InvalidInvocation":
        return Console.error(describeInvalidInvocation(event.commandPath, event.helpDoc, event.errors).join("\n"))
      case "Help":
        // "Implicit" help is what Effect shows for a command without a handler: a group missing its subcommand.
        return event.reason === "Requested"
          ? CliOutput.defaultPresenter.present(event)
          : Console.error(describeMissingSubcommand(event.commandPath, event.helpDoc).join("\n"))
      case "Version":
        return CliOutput.defaultPresenter.present(event)
    }
  }
})
