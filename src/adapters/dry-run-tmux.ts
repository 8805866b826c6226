/**
 * Sessions for staging (`SESSIONS_MODE=dry-run`): no tmux and no Claude account. Each session logs what it would
 * type, looks busy for a while, then runs the prompt's own `task done` line, as an agent would.
 * Easy to get wrong: completion goes through the real command in the prompt, so a dry run exercises the same path;
 * and the sessions outlive a restart of the daemon (their state is kept in a file), so a task typed before the
 * restart still finishes after it.
 */
import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import { basename, dirname } from "node:path"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Semaphore from "effect/Semaphore"
import { SessionExists, SessionNotFound, Tmux } from "../ports/tmux.ts"
import { writeAtomic } from "./fs-task-store.ts"

const box = (
  line: string
) => [`╭${"─".repeat(60)}╮`, `│ ${line.padEnd(59)}│`, `╰${"─".repeat(60)}╯`, "  ? for shortcuts"]

/** Draws `input` into the last input-box line of `screen` (`│ > …│`, `> …` or `❯ …`), as Claude Code shows typed text. */
export const drawInput = (screen: string, input: string): string => {
  if (input === "") return screen
  const lines = screen.split("\n")
  const inputLines = input.split("\n")
  const shown = inputLines.length > 1 ? `${inputLines[0] ?? ""} [+${inputLines.length - 1} lines]` : input
  for (let i = lines.length - 1; i >= 0; i--) {
    const match = /^(\s*(?:│\s*)?(?:>|❯))(\s*)(.*?)(\s*│?)$/.exec(lines[i] ?? "")
    if (match === null) continue
    lines[i] = `${match[1]} ${shown}${match[4]?.includes("│") === true ? " │" : ""}`
    return lines.join("\n")
  }
  return screen
}

const idle = (input: string) => drawInput(["✻ Welcome to Claude Code! (dry run)", "", ...box(">")].join("\n"), input)
const busy = (since: number, prompt: string) =>
  [
    `> ${prompt.split("\n")[0] ?? ""}`,
    `  (dry run) working since ${new Date(since).toISOString()}`,
    "",
    "✻ Working… (esc to interrupt)",
    "",
    ...box(">")
  ].join("\n")

/** The completion line the prompt ends with: `` `… task done NAME --run RUN --queue-dir DIR` `` (see domain/prompt.ts). */
export const doneLineOf = (prompt: string): string | undefined =>
  prompt.split("\n").map((line) => /^`(.+ task done .+)`$/.exec(line.trim())?.[1]).filter((line) => line !== undefined)
    .pop()

interface DryPane {
  /** Pasted, not yet submitted. */
  readonly input: string
  readonly busySince: number | undefined
  /** The submitted prompt the session is working on. */
  readonly prompt: string
}

export interface DryRunOptions {
  readonly sessions: ReadonlyArray<string>
  /** How long a session "works" on a task before it runs the done line. */
  readonly workFor: Duration.Duration
  /** Where the sessions' state is kept across restarts of the daemon; none keeps it in memory only. */
  readonly stateFile?: string
}

const loadState = (file: string | undefined): Record<string, { busySince: number; prompt: string }> => {
  if (file === undefined) return {}
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, "utf8"))
    return typeof parsed === "object" && parsed !== null
      ? parsed as Record<string, { busySince: number; prompt: string }>
      : {}
  } catch {
    return {}
  }
}

export const DryRunTmuxLayer = (options: DryRunOptions) =>
  Layer.effect(
    Tmux,
    Effect.gen(function*() {
      const saved = loadState(options.stateFile)
      const panes = yield* Ref.make<ReadonlyMap<string, DryPane>>(
        new Map(options.sessions.map((session) => {
          const was = saved[session]
          return [session, { input: "", busySince: was?.busySince, prompt: was?.prompt ?? "" }]
        }))
      )
      // One writer at a time, each with a snapshot taken under the permit: an older snapshot can never land last.
      const writing = yield* Semaphore.make(1)
      const persist = writing.withPermit(Effect.gen(function*() {
        if (options.stateFile === undefined) return
        const file = options.stateFile
        const busyPanes = Object.fromEntries(
          [...(yield* Ref.get(panes))].flatMap(([session, pane]) =>
            pane.busySince === undefined ? [] : [[session, { busySince: pane.busySince, prompt: pane.prompt }]]
          )
        )
        yield* Effect.uninterruptible(
          Effect.promise(() =>
            writeAtomic(dirname(file), basename(file), JSON.stringify(busyPanes)).catch(() => undefined)
          )
        )
      }))
      const withPane = <A>(session: string, f: (pane: DryPane) => A) =>
        Effect.flatMap(Ref.get(panes), (current) => {
          const pane = current.get(session)
          return pane === undefined ? Effect.fail(new SessionNotFound({ session })) : Effect.succeed(f(pane))
        })
      const update = (session: string, pane: DryPane) =>
        Ref.update(panes, (current) => new Map(current).set(session, pane))

      /** The agent's turn: wait out the rest of the work, then run the done line through sh, exactly as written. */
      const work = (session: string, prompt: string, since: number) =>
        Effect.gen(function*() {
          yield* Effect.sleep(Duration.millis(Math.max(0, since + Duration.toMillis(options.workFor) - Date.now())))
          // Interrupted meanwhile (or started again on another prompt): this turn is over.
          if ((yield* withPane(session, (pane) => pane.busySince)) !== since) return
          const line = doneLineOf(prompt)
          if (line === undefined) {
            yield* Effect.logWarning(`dry run: ${session} found no 'task done' line in its prompt`)
          } else {
            yield* Effect.callback<void>((resume) => {
              execFile(
                "sh",
                ["-c", line],
                (error) =>
                  resume(error === null ? Effect.void : Effect.logWarning(`dry run: ${line}: ${error.message}`))
              )
            })
          }
          yield* update(session, { input: "", busySince: undefined, prompt: "" })
          yield* persist
        })

      for (const [session, was] of Object.entries(saved)) {
        if (options.sessions.includes(session)) yield* Effect.forkDetach(work(session, was.prompt, was.busySince))
      }

      return Tmux.of({
        // The configured sessions, and any `newSession` added since.
        listSessions: () => Effect.map(Ref.get(panes), (current) => [...current.keys()].sort()),
        capturePane: (session) =>
          withPane(
            session,
            (pane) => (pane.busySince === undefined ? idle(pane.input) : busy(pane.busySince, pane.prompt))
          ),
        lookAtPane: (session) =>
          withPane(session, (pane) => ({
            command: "claude",
            screen: pane.busySince === undefined ? idle(pane.input) : busy(pane.busySince, pane.prompt)
          })),
        sendText: (session, text) =>
          Effect.gen(function*() {
            const pane = yield* withPane(session, (p) => p)
            yield* update(session, { ...pane, input: pane.input + text })
            yield* Effect.logInfo(`dry run: would type into ${session}: ${text.split("\n")[0]?.slice(0, 100) ?? ""}`)
              .pipe(
                Effect.annotateLogs({ session })
              )
          }),
        sendEnter: (session) =>
          Effect.gen(function*() {
            const pane = yield* withPane(session, (p) => p)
            if (pane.busySince !== undefined || pane.input === "") return
            const since = Date.now()
            yield* update(session, { input: "", busySince: since, prompt: pane.input })
            yield* persist
            yield* Effect.forkDetach(work(session, pane.input, since))
          }),
        clearInput: (session) =>
          Effect.flatMap(withPane(session, (p) => p), (pane) => update(session, { ...pane, input: "" })),
        // A dry-run session never hits a limit: there is no menu to close and nothing to cancel.
        sendEscape: (session) => Effect.asVoid(withPane(session, (p) => p)),
        interrupt: (session) =>
          Effect.flatMap(
            withPane(session, (p) => p),
            (pane) => Effect.andThen(update(session, { ...pane, busySince: undefined, prompt: "" }), persist)
          ),
        // Nothing is started: the session simply exists from now on, idle, as if Claude Code had come up.
        newSession: (session, launch) =>
          Effect.gen(function*() {
            if ((yield* Ref.get(panes)).has(session)) return yield* new SessionExists({ session })
            yield* update(session, { input: "", busySince: undefined, prompt: "" })
            yield* Effect.logInfo(`dry run: would start ${session} running ${launch.command.join(" ")}`).pipe(
              Effect.annotateLogs({ session })
            )
          }),
        respawn: (session, launch) =>
          Effect.gen(function*() {
            yield* withPane(session, () => undefined)
            yield* update(session, { input: "", busySince: undefined, prompt: "" })
            yield* persist
            yield* Effect.logInfo(`dry run: would restart ${session} running ${launch.command.join(" ")}`).pipe(
              Effect.annotateLogs({ session })
            )
          }),
        version: () => Effect.succeed("tmux (dry run)")
      })
    })
  )
