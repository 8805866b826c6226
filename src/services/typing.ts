/**
 * Typing a prompt into a Claude Code session so that it is submitted exactly once or provably not at all.
 * Easy to get wrong: every step is checked on the screen. Paste only into an idle session whose input box is empty
 * (leftover text would be glued to the prompt); Enter only once the paste is in the input box; the prompt counts as
 * accepted when the input box no longer holds it — not when the pane "left idle", which a quick turn never shows.
 */
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { inputBoxText } from "../domain/pane.ts"
import { Tmux } from "../ports/tmux.ts"
import { failpoint } from "./failpoints.ts"
import { observeSession } from "./sessions.ts"

export type TypingOutcome = Data.TaggedEnum<{
  /** The input box took the prompt and gave it up on Enter: the session has it. */
  Accepted: {}
  /** Nothing was submitted: the session was not ready, or the paste never reached its input box. */
  NotTyped: { readonly reason: string }
  /** Pasted, but Enter after Enter left it in the input box; `cleared` says whether the box is empty again. */
  NotAccepted: { readonly reason: string; readonly cleared: boolean }
}>
export const TypingOutcome = Data.taggedEnum<TypingOutcome>()

export interface TypingSettings {
  readonly timeZone: string
  /** Claude Code drops an Enter that arrives with the text: wait this long (more for long pastes) before Enter. */
  readonly enterDelay: Duration.Duration
  /** Whether the session's own hook already reported this prompt submitted (no hooks: never). */
  readonly submitted?: Effect.Effect<boolean>
}

const ENTER_TRIES = 3
const LOOK_INTERVAL = Duration.millis(100)
const PASTE_WAIT = Duration.seconds(2)
const SUBMIT_WAIT = Duration.millis(400)
/** After the last Enter, how long the input box may take to give the prompt up before the daemon calls it refused. */
const LAST_SUBMIT_WAIT = Duration.seconds(3)

const look = (session: string, timeZone: string) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => observeSession(session, { now, timeZone }))

/** Polls the input box until `done` holds or `within` passes; the last box seen (none: no input box on screen). */
const watchInputBox = (
  session: string,
  timeZone: string,
  within: Duration.Duration,
  done: (box: Option.Option<string>) => boolean
) =>
  Effect.gen(function*() {
    const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(within)
    for (;;) {
      const seen = yield* look(session, timeZone)
      const box = seen.state === "missing" || seen.state === "exited"
        ? Option.none<string>()
        : inputBoxText(seen.screen)
      if (done(box) || (yield* Clock.currentTimeMillis) >= deadline) return { box, seen }
      yield* Effect.sleep(LOOK_INTERVAL)
    }
  })

export const typePrompt = Effect.fn("typePrompt")(function*(session: string, prompt: string, settings: TypingSettings) {
  const tmux = yield* Tmux
  const before = yield* look(session, settings.timeZone)
  // A limited session is typed into only when the caller judged its reset passed (it shows the old banner until then).
  if (before.state !== "idle" && before.state !== "usage_limited") {
    return TypingOutcome.NotTyped({ reason: `session ${session} is ${before.state}` })
  }
  const box = inputBoxText(before.screen)
  if (Option.isNone(box)) return TypingOutcome.NotTyped({ reason: `no input box on ${session}'s screen` })
  if (box.value !== "") return TypingOutcome.NotTyped({ reason: `${session}'s input box already holds text` })

  const pasted = yield* Effect.result(tmux.sendText(session, prompt))
  if (pasted._tag === "Failure")
    return TypingOutcome.NotTyped({ reason: `typing into ${session} failed: ${pasted.failure.message}` })
  yield* failpoint("type:pasted")
  const lines = prompt.split("\n").length
  yield* Effect.sleep(Duration.sum(settings.enterDelay, Duration.millis(Math.min(1000, lines * 5))))
  const arrived = yield* watchInputBox(
    session,
    settings.timeZone,
    PASTE_WAIT,
    (seen) => Option.getOrElse(seen, () => "") !== ""
  )
  if (Option.getOrElse(arrived.box, () => "") === "") {
    return TypingOutcome.NotTyped({ reason: `the prompt never appeared in ${session}'s input box` })
  }

  const hookSaysSubmitted = settings.submitted ?? Effect.succeed(false)
  for (let attempt = 1; attempt <= ENTER_TRIES; attempt++) {
    yield* tmux.sendEnter(session).pipe(Effect.ignore)
    if (attempt === 1) yield* failpoint("type:entered")
    if (yield* hookSaysSubmitted) return TypingOutcome.Accepted()
    // Accepted once the input box gives the text up (empty, or replaced by a dialog the turn opened).
    const wait = attempt === ENTER_TRIES ? LAST_SUBMIT_WAIT : SUBMIT_WAIT
    const after = yield* watchInputBox(
      session,
      settings.timeZone,
      wait,
      (seen) => Option.getOrElse(seen, () => "") === ""
    )
    if (yield* hookSaysSubmitted) return TypingOutcome.Accepted()
    if (Option.getOrElse(after.box, () => "") === "") {
      return after.seen.state === "missing" || after.seen.state === "exited"
        ? TypingOutcome.NotAccepted({
          reason: `session ${session} ${after.seen.state === "missing" ? "vanished" : "exited"} on Enter`,
          cleared: true
        })
        : TypingOutcome.Accepted()
    }
  }
  // Ctrl-C clears the box of an idle session — and would interrupt a busy one, so look once more right before.
  const last = yield* look(session, settings.timeZone)
  if (last.state === "busy" || Option.getOrElse(inputBoxText(last.screen), () => "") === "")
    return TypingOutcome.Accepted()
  yield* tmux.clearInput(session).pipe(Effect.ignore)
  const cleared = yield* watchInputBox(
    session,
    settings.timeZone,
    SUBMIT_WAIT,
    (seen) => Option.getOrElse(seen, () => "x") === ""
  )
  return TypingOutcome.NotAccepted({
    reason: `${session} kept the prompt in its input box after ${ENTER_TRIES} Enters`,
    cleared: Option.getOrElse(cleared.box, () => "x") === ""
  })
})
