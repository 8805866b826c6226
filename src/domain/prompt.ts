/**
 * The text typed into a Claude Code session: a header naming the task and its run, the task's body, where the file
 * lives, and the exact shell commands the agent runs when it is finished. Easy to get wrong: the text reaches a
 * terminal, so control bytes (ESC starts the paste-end sequence, ^C, …) are removed, and the commands must work
 * from any directory with none of the daemon's variables, so they carry absolute paths and the queue directory.
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

/**
 * Text that can be pasted into a terminal and arrive as text only: CRLF and lone CR become LF, and every other
 * C0 control, DEL and C1 control is dropped (ESC would let `ESC[201~` end the paste early and the rest arrive as
 * keystrokes; ^C, ^D, ^Z act on the session). Tabs and newlines stay.
 */
export const pasteSafe = (text: string): string =>
  // eslint-disable-next-line no-control-regex
  text.replace(/\r\n?/g, "\n").replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, "")

const completion = (command: CompletionCommand, verb: "done" | "fail", name: TaskName, run: string) =>
  [...command.program, "task", verb, name, "--run", run, "--queue-dir", command.queueDir].map(shellQuote).join(" ")

export const doneCommand = (command: CompletionCommand, name: TaskName, run: string): string =>
  completion(command, "done", name, run)

export const failCommand = (command: CompletionCommand, name: TaskName, run: string): string =>
  `${completion(command, "fail", name, run)} --reason "…"`

/** The first line of every prompt; it names the run, so a screen shows whether this run's prompt was submitted. */
export const promptHeader = (name: TaskName, run: string): string =>
  `Task ${name} from the claude-failover queue (run ${run}):`

/** The prompt: header, body, then the completion lines, each on a line of its own in backticks. */
export const renderPrompt = (input: {
  readonly name: TaskName
  readonly run: string
  readonly body: string
  /** Where the task's file is; none on a shared queue, where the task is a database row. */
  readonly taskPath?: string | undefined
  readonly command: CompletionCommand
}): string =>
  pasteSafe(
    [
      promptHeader(input.name, input.run),
      "",
      input.body.trim(),
      "",
      ...(input.taskPath === undefined ? [] : [`(Task file: ${input.taskPath})`]),
      "When you have finished, run this shell command, exactly as written:",
      `\`${doneCommand(input.command, input.name, input.run)}\``,
      "If you cannot finish it, run this instead, with the reason in the quotes:",
      `\`${failCommand(input.command, input.name, input.run)}\``
    ].join("\n")
  )
