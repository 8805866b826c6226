/**
 * Sessions for staging (`SESSIONS_MODE=dry-run`): no tmux and no Claude account. Each session logs what it would
 * type, looks busy for a while, then runs the prompt's own `task done` line, as an agent would.
 * Easy to get wrong: completion goes through the real command in the prompt, so a dry run exercises the same path.
 */
import { execFile } from "node:child_process"
import { Duration, Effect, Layer, Ref } from "effect"
import { SessionNotFound, Tmux } from "../ports/tmux.ts"

const box = (line: string) => [`╭${"─".repeat(60)}╮`, `│ ${line.padEnd(59)}│`, `╰${"─".repeat(60)}╯`, "  ? for shortcuts"]
const IDLE = ["✻ Welcome to Claude Code! (dry run)", "", ...box(">")].join("\n")
const busy = (since: number) =>
  [`> (dry run) working since ${new Date(since).toISOString()}`, "", "✻ Working… (esc to interrupt)", "", ...box(">")].join(
    "\n"
  )

/** The completion line the prompt ends with: `` `… task done NAME --queue-dir DIR` `` (see domain/prompt.ts). */
export const doneLineOf = (prompt: string): string | undefined =>
  prompt.split("\n").map((line) => /^`(.+ task done .+)`$/.exec(line.trim())?.[1]).find((line) => line !== undefined)

interface DryPane {
  readonly typed: string
  readonly busySince: number | undefined
}

export interface DryRunOptions {
  readonly sessions: ReadonlyArray<string>
  /** How long a session "works" on a task before it runs the done line. */
  readonly workFor: Duration.Duration
}

export const DryRunTmuxLayer = (options: DryRunOptions) =>
  Layer.effect(Tmux, Effect.gen(function*() {
    const panes = yield* Ref.make<ReadonlyMap<string, DryPane>>(
      new Map(options.sessions.map((session) => [session, { typed: "", busySince: undefined }]))
    )
    const withPane = <A>(session: string, f: (pane: DryPane) => A) =>
      Effect.flatMap(Ref.get(panes), (current) => {
        const pane = current.get(session)
        return pane === undefined ? Effect.fail(new SessionNotFound({ session })) : Effect.succeed(f(pane))
      })
    const update = (session: string, pane: DryPane) => Ref.update(panes, (current) => new Map(current).set(session, pane))

    /** The agent's turn: wait, then run the done line through sh, exactly as it stands in the prompt. */
    const work = (session: string, prompt: string) =>
      Effect.gen(function*() {
        yield* Effect.sleep(options.workFor)
        const line = doneLineOf(prompt)
        if (line === undefined) {
          yield* Effect.logWarning(`dry run: ${session} found no 'task done' line in its prompt`)
        } else {
          yield* Effect.callback<void>((resume) => {
            execFile("sh", ["-c", line], (error) => resume(error === null ? Effect.void : Effect.logWarning(`dry run: ${line}: ${error.message}`)))
          })
        }
        yield* update(session, { typed: "", busySince: undefined })
      })

    return Tmux.of({
      listSessions: () => Effect.succeed([...options.sessions].sort()),
      hasSession: (session) => Effect.succeed(options.sessions.includes(session)),
      capturePane: (session) => withPane(session, (pane) => (pane.busySince === undefined ? IDLE : busy(pane.busySince))),
      paneCommand: (session) => withPane(session, () => "claude"),
      sendText: (session, text) =>
        Effect.gen(function*() {
          const pane = yield* withPane(session, (p) => p)
          yield* update(session, { ...pane, typed: pane.typed + text })
          yield* Effect.logInfo(`dry run: would type into ${session}: ${text.split("\n")[0]?.slice(0, 100) ?? ""}`).pipe(
            Effect.annotateLogs({ session })
          )
        }),
      sendEnter: (session) =>
        Effect.gen(function*() {
          const pane = yield* withPane(session, (p) => p)
          if (pane.busySince !== undefined || pane.typed === "") return
          yield* update(session, { typed: "", busySince: Date.now() })
          yield* Effect.forkDetach(work(session, pane.typed))
        })
    })
  }))
