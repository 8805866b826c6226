/**
 * The text typed into a Claude Code session: the task's body, where the file lives, and the exact shell
 * commands the agent runs when it is finished. Easy to get wrong: the commands must work from any directory
 * and with none of the daemon's variables, so they carry absolute paths and the queue directory themselves.
 */
import type { TaskName } from "./task.ts"

/** Single-quotes a word for POSIX sh: `it's` → `'it'\''s'`. */
export const shellQuote = (word: string): string =>
  /^[\w./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`

export interface CompletionCommand {
  /** The program and its leading arguments, e.g. [node, /abs/bin/claude-failover.js]. */
  readonly program: ReadonlyArray<string>
  readonly queueDir: string
}

export const doneCommand = (command: CompletionCommand, name: TaskName): string =>
  [...command.program, "task", "done", name, "--queue-dir", command.queueDir].map(shellQuote).join(" ")

export const failCommand = (command: CompletionCommand, name: TaskName): string =>
  `${[...command.program, "task", "fail", name, "--queue-dir", command.queueDir].map(shellQuote).join(" ")} --reason "…"`

/** The prompt: body first, then the completion lines, each on a line of its own in backticks. */
export const renderPrompt = (input: {
  readonly name: TaskName
  readonly body: string
  readonly taskPath: string
  readonly command: CompletionCommand
}): string =>
  [
    input.body.trim(),
    "",
    `(Task file: ${input.taskPath})`,
    "When you have finished, run this shell command, exactly as written:",
    `\`${doneCommand(input.command, input.name)}\``,
    "If you cannot finish it, run this instead, with the reason in the quotes:",
    `\`${failCommand(input.command, input.name)}\``
  ].join("\n")
