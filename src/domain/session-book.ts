/**
 * The session book: what the daemon knows about its Claude Code sessions, and the rules that turn what it sees into
 * decisions — which session is free, how long an account rests after a usage limit, when an active task's run is
 * taken back, when a task is stale. Pure: facts in (sightings of a session, a dispatch, a prompt not taken), a new
 * book and decisions out; the dispatcher gathers the facts and carries the decisions out.
 * Easy to get wrong: a limit banner that was already on screen when a prompt was typed is old news for a while (the
 * prompt has not been read yet), and a session is free only when everything agrees — idle, empty input box, no task,
 * no cool-down, no rest, no question and no text it could not clear.
 */
import * as Option from "effect/Option"
import type { RunEndCause } from "./lifecycle.ts"
import type { IdlePolicy, LimitPolicy } from "./limit-policy.ts"
import type { TaskName } from "./task.ts"

/**
 * What a session is doing, as one look (its hooks, its screen, its liveness) says. `setup_dialog`: a trust, API-key
 * or onboarding dialog is up (never typed into); `turn_error`: its last turn ended in an API error (idle-looking).
 */
export type SessionState =
  | "idle"
  | "busy"
  | "permission_prompt"
  | "usage_limited"
  | "setup_dialog"
  | "turn_error"
  | "exited"
  | "unknown"
  | "missing"

/** One look at a session. */
export interface Sighting {
  readonly session: string
  readonly state: SessionState
  /** Where the state came from: the session's Claude Code hooks, its screen, or its headless process. */
  readonly signal: "hook" | "pane" | "process"
  /** What a person needs to know about a setup dialog or a turn error. */
  readonly detail: Option.Option<string>
  /** The limit banner on screen, when `usage_limited`. */
  readonly banner: Option.Option<string>
  readonly resetAt: Option.Option<number>
  /** `usage_limited` only: Claude Code will continue the interrupted turn by itself at the reset. */
  readonly autoContinue: boolean
  /** The question of a permission prompt on screen. */
  readonly question: Option.Option<string>
  /** The text in the input box ("" when empty); none when no input box is on screen. */
  readonly inputBox: Option.Option<string>
  /** The screen without what ticks while nothing happens (the spinner's clock): the watchdog compares these. */
  readonly fingerprint: string
}

export interface BookSettings {
  /** Sessions sharing a CLAUDE_CONFIG_DIR share a usage limit: the account a session belongs to. */
  readonly accountOf: (session: string) => string
  readonly limitCooldownMs: number
  readonly staleAfterMs: number
  readonly requeueAfterMs: Option.Option<number>
  /** How long after typing a banner that was already on screen is not taken as a new limit. */
  readonly graceMs: number
  /** How long a session stays idle with a task that did not report before the idle policy applies. */
  readonly idleGraceMs: number
}

export interface Cooldown {
  readonly until: number
  readonly banner: string
  readonly session: string
}

interface Watch {
  readonly fingerprint: string
  readonly since: number
  readonly reported: boolean
}

/** An active task whose session is limited and that stays with it (limit policy `wait`). */
export interface Wait {
  readonly session: string
  /** The reset: the session goes on after it. */
  readonly until: number
  /** Claude Code continues by itself; otherwise the daemon types "continue" at `until`. */
  readonly auto: boolean
  /** "continue" typed and not taken, so far. */
  readonly tries: number
  /** When "continue" was last typed. */
  readonly triedAt: number | undefined
  /** Why it waits rather than going back to the queue. */
  readonly why: string
}

/** A limit menu dismissed with Esc (so the session shows its input box again): which banner, when, how often. */
interface Dismissal {
  readonly banner: string
  readonly at: number
  readonly tries: number
}

export interface Book {
  /** By account. */
  readonly cooldowns: ReadonlyMap<string, Cooldown>
  /** The last prompt typed into each session: when, and the banner that was on screen then. */
  readonly dispatches: ReadonlyMap<string, { readonly at: number; readonly banner: Option.Option<string> }>
  /** Sessions left alone until an instant (a prompt they did not take), and why. */
  readonly resting: ReadonlyMap<string, { readonly until: number; readonly reason: string }>
  /** Per active task: since when its session's screen has looked the same. */
  readonly watch: ReadonlyMap<TaskName, Watch>
  /** Sessions showing a question: listed for a person, never answered. */
  readonly questions: ReadonlyMap<string, string>
  /** Sessions whose input box holds text the daemon could not clear: nothing is typed there until it is empty. */
  readonly blocked: ReadonlyMap<string, string>
  /** Sessions showing a setup dialog or an error that ended their turn: a person should look. */
  readonly troubled: ReadonlyMap<string, string>
  /** Active tasks waiting in their session for its usage limit to reset. */
  readonly waits: ReadonlyMap<TaskName, Wait>
  /** Per active task: Esc presses that did not cancel its session's automatic continue. */
  readonly cancelTries: ReadonlyMap<TaskName, number>
  /** By session: the limit menu last dismissed. */
  readonly dismissed: ReadonlyMap<string, Dismissal>
  /** Active tasks whose session's turn is over (idle) though they did not report: since when, and whether said. */
  readonly unreported: ReadonlyMap<
    TaskName,
    { readonly session: string; readonly since: number; readonly noted: boolean }
  >
}

export const emptyBook: Book = {
  cooldowns: new Map(),
  dispatches: new Map(),
  resting: new Map(),
  watch: new Map(),
  questions: new Map(),
  blocked: new Map(),
  troubled: new Map(),
  waits: new Map(),
  cancelTries: new Map(),
  dismissed: new Map(),
  unreported: new Map()
}

/** Esc presses that may fail to cancel an automatic continue before the task waits for the reset instead. */
export const CANCEL_TRIES = 3
/** "continue" typed this often without being taken, the waiting task goes back to the queue. */
export const CONTINUE_TRIES = 3
/** Between two tries of "continue", and between two Esc presses on a limit menu. */
export const RETRY_AFTER_MS = 30_000
/** Claude Code continues by itself up to a minute or so after the reset; after this, the daemon types "continue". */
export const AUTO_CONTINUE_GRACE_MS = 5 * 60_000
/** Esc presses on one limit menu before the session is listed for a person. */
export const DISMISS_TRIES = 3

export type Fact =
  /** A session was looked at (every session, every tick). */
  | { readonly _tag: "Seen"; readonly at: number; readonly sighting: Sighting }
  /**
   * The session of an active task was looked at; `policy`: the task's limit policy, `idlePolicy` what happens when its
   * turn ends unreported; `started`: the session accepted the prompt.
   */
  | {
    readonly _tag: "Supervised"
    readonly at: number
    readonly task: TaskName
    readonly run: string | undefined
    readonly policy: LimitPolicy
    readonly idlePolicy: IdlePolicy
    readonly started: boolean
    readonly sighting: Sighting
  }
  /** A prompt is being typed into the session. */
  | {
    readonly _tag: "Dispatched"
    readonly at: number
    readonly session: string
    readonly banner: Option.Option<string>
  }
  /** The session did not take a prompt: left alone a while; `blocked` when its input box could not be cleared. */
  | {
    readonly _tag: "NotTaken"
    readonly at: number
    readonly session: string
    readonly reason: string
    readonly restMs: number
    readonly blocked: boolean
  }
  /** The task is no longer active (finished or taken back). */
  | { readonly _tag: "TaskLeft"; readonly task: TaskName }
  /** Esc did not cancel the automatic continue of the task's session. */
  | { readonly _tag: "CancelFailed"; readonly at: number; readonly task: TaskName; readonly reason: string }
  /** "continue" was typed into the waiting task's session: taken, or not. */
  | {
    readonly _tag: "ContinueTyped"
    readonly at: number
    readonly task: TaskName
    readonly taken: boolean
    readonly reason: string
  }

export type Decision =
  /**
   * The run of an active task is over without finishing; `interrupt`: stop the session's turn first;
   * `cancelAutoContinue`: press Esc and see the automatic continue cancelled first, or leave the run as it is.
   */
  | {
    readonly _tag: "EndRun"
    readonly task: TaskName
    readonly run: string | undefined
    readonly session: string
    readonly cause: RunEndCause
    readonly reason: string
    readonly interrupt: boolean
    readonly cancelAutoContinue: boolean
  }
  /** Press Esc once in the session: it closes Claude Code's limit menu, which hides the input box. */
  | { readonly _tag: "DismissMenu"; readonly session: string }
  /** Type "continue" into the session of a task that waited for the reset. */
  | { readonly _tag: "Continue"; readonly task: TaskName; readonly run: string | undefined; readonly session: string }
  /** Something an operator should read in the log. */
  | {
    readonly _tag: "Note"
    readonly level: "info" | "warning"
    readonly message: string
    readonly session?: string
    readonly task?: TaskName
  }

const coolingOf = (book: Book, settings: BookSettings, session: string, at: number): Option.Option<Cooldown> => {
  const cooldown = book.cooldowns.get(settings.accountOf(session))
  return cooldown !== undefined && cooldown.until > at ? Option.some(cooldown) : Option.none()
}

/** Until when the session's account rests after a usage limit, if it does. */
export const coolingUntil = (book: Book, settings: BookSettings, session: string, at: number): Option.Option<number> =>
  Option.map(coolingOf(book, settings, session, at), (cooldown) => cooldown.until)

/** The state as the daemon acts on it: a banner that was on screen when the prompt was typed reads as busy a while. */
export const effectiveState = (book: Book, settings: BookSettings, sighting: Sighting, at: number): SessionState => {
  const dispatched = book.dispatches.get(sighting.session)
  if (
    sighting.state === "usage_limited" && dispatched !== undefined && at - dispatched.at < settings.graceMs &&
    Option.isSome(sighting.banner) && Option.isSome(dispatched.banner) &&
    sighting.banner.value === dispatched.banner.value
  ) return "busy"
  return sighting.state
}

/**
 * Free: it can be given a task now. Idle (or showing a limit whose account no longer rests: the old banner stays on
 * screen until new work comes), an empty input box, no task of its own, and nothing that holds it back.
 */
export const isFree = (
  book: Book,
  settings: BookSettings,
  sighting: Sighting,
  at: number,
  hasTask: boolean
): boolean => {
  const state = effectiveState(book, settings, sighting, at)
  return !hasTask && (state === "idle" || state === "usage_limited") &&
    Option.getOrElse(sighting.inputBox, () => "no input box") === "" &&
    Option.isNone(coolingOf(book, settings, sighting.session, at)) &&
    (book.resting.get(sighting.session)?.until ?? 0) <= at &&
    !book.questions.has(sighting.session) && !book.blocked.has(sighting.session) && !book.troubled.has(sighting.session)
}

/** Routing rule 7's question: is any local session alive and not resting after a limit? */
export const localAvailable = (
  book: Book,
  settings: BookSettings,
  sightings: ReadonlyArray<Sighting>,
  at: number
): boolean =>
  sightings.some((sighting) =>
    sighting.state !== "missing" && sighting.state !== "exited" &&
    Option.isNone(coolingOf(book, settings, sighting.session, at))
  )

/** Sessions a person should look at, and why. */
export const attention = (
  book: Book,
  at: number
): ReadonlyArray<{ readonly session: string; readonly reason: string }> => [
  ...[...book.questions, ...book.blocked, ...book.troubled].map(([session, reason]) => ({ session, reason })),
  ...[...book.unreported].filter(([, idle]) => idle.noted).map(([task, idle]) => ({
    session: idle.session,
    reason: unreportedReason(task)
  })),
  ...[...book.resting]
    .filter(([session, rest]) =>
      rest.until > at && !book.questions.has(session) && !book.blocked.has(session) && !book.troubled.has(session)
    )
    .map(([session, rest]) => ({
      session,
      reason: `resting until ${new Date(rest.until).toISOString()}: ${rest.reason}`
    }))
]

const unreportedReason = (task: TaskName) =>
  `its turn ended but ${task} reported neither done nor failed: read the session, then \`task done|fail|retry ${task}\``

/** Active tasks waiting in their session for its usage limit to reset. */
export const waitingTasks = (book: Book): ReadonlyArray<{ readonly task: TaskName } & Wait> =>
  [...book.waits].map(([task, wait]) => ({ task, ...wait }))

/** Active tasks reported stale, with how long their screen has not changed. */
export const staleTasks = (
  book: Book,
  at: number
): ReadonlyArray<{ readonly task: TaskName; readonly unchangedForMs: number }> =>
  [...book.watch].filter(([, seen]) => seen.reported).map(([task, seen]) => ({ task, unchangedForMs: at - seen.since }))

const withEntry = <K, V>(map: ReadonlyMap<K, V>, key: K, value: V | undefined): ReadonlyMap<K, V> => {
  const next = new Map(map)
  if (value === undefined) next.delete(key)
  else next.set(key, value)
  return next
}

type Step = { readonly book: Book; readonly decisions: ReadonlyArray<Decision> }

/** Why a person should look at a session in this state, if they should. */
const troubleOf = (sighting: Sighting): string | undefined => {
  const detail = Option.getOrElse(sighting.detail, () => "")
  if (sighting.state === "setup_dialog") return `a dialog waits for a person (never typed into): ${detail}`
  if (sighting.state === "turn_error") return `its last turn ended in an error: ${detail}`
  return undefined
}

/**
 * A sighting of any session: a new usage limit rests its account; an input box seen empty unblocks its session; a
 * setup dialog or a turn error is listed for a person (once, and no more once it is gone).
 */
const seen = (book: Book, settings: BookSettings, at: number, sighting: Sighting): Step => {
  const unblocked = Option.getOrElse(sighting.inputBox, () => "x") === "" && book.blocked.has(sighting.session)
  let next: Book = unblocked ? { ...book, blocked: withEntry(book.blocked, sighting.session, undefined) } : book
  const decisions: Array<Decision> = []
  // Claude Code's limit menu (2.1.197 always, 2.1.332 for weekly limits) hides the input box until it is answered:
  // Esc closes it, as "Stop and wait" would, so the session can take work (or "continue") after the reset.
  let menuStuck = false
  if (sighting.state === "usage_limited" && Option.isNone(sighting.inputBox) && !sighting.autoContinue) {
    const banner = Option.getOrElse(sighting.banner, () => "")
    const last = next.dismissed.get(sighting.session)
    const tries = last === undefined || last.banner !== banner ? 0 : last.tries
    if (tries === 0 || (tries < DISMISS_TRIES && at - (last?.at ?? 0) >= RETRY_AFTER_MS)) {
      decisions.push({ _tag: "DismissMenu", session: sighting.session })
      next = { ...next, dismissed: withEntry(next.dismissed, sighting.session, { banner, at, tries: tries + 1 }) }
    }
    menuStuck = tries >= DISMISS_TRIES
  }
  const trouble = troubleOf(sighting) ??
    (menuStuck ? `its usage-limit menu stays open after ${DISMISS_TRIES} presses of Esc; close it by hand` : undefined)
  if (trouble !== book.troubled.get(sighting.session)) {
    next = { ...next, troubled: withEntry(next.troubled, sighting.session, trouble) }
    if (trouble !== undefined)
      decisions.push({
        _tag: "Note",
        level: "warning",
        message: `session ${sighting.session}: ${trouble}`,
        session: sighting.session
      })
  }
  if (sighting.state === "usage_limited" && effectiveState(next, settings, sighting, at) === "usage_limited") {
    const banner = Option.getOrElse(sighting.banner, () => "")
    const account = settings.accountOf(sighting.session)
    const known = next.cooldowns.get(account)
    // The same banner from the same session is the limit already noted (until a dispatch spends it).
    if (known === undefined || known.banner !== banner || known.session !== sighting.session) {
      // A reset time already past means "try again now"; none at all means the configured cool-down.
      const until = Option.match(sighting.resetAt, {
        onNone: () => at + settings.limitCooldownMs,
        onSome: (resetAt) => Math.max(resetAt, at)
      })
      next = { ...next, cooldowns: withEntry(next.cooldowns, account, { until, banner, session: sighting.session }) }
      decisions.push({
        _tag: "Note",
        level: "warning",
        message: `session ${sighting.session} hit its usage limit; account ${account} rests until ${
          new Date(until).toISOString()
        }`,
        session: sighting.session
      })
    }
  }
  return { book: next, decisions }
}

/** The session of an active task: its run ends when the session is gone, exited or limited, or looks stuck too long. */
const supervised = (
  book: Book,
  settings: BookSettings,
  at: number,
  task: TaskName,
  run: string | undefined,
  policy: LimitPolicy,
  idlePolicy: IdlePolicy,
  started: boolean,
  sighting: Sighting
): Step => {
  const { session } = sighting
  const endRun = (cause: RunEndCause, reason: string, interrupt = false, cancelAutoContinue = false): Step => ({
    book: {
      ...book,
      watch: withEntry(book.watch, task, undefined),
      waits: withEntry(book.waits, task, undefined),
      unreported: withEntry(book.unreported, task, undefined)
    },
    decisions: [{ _tag: "EndRun", task, run, session, cause, reason, interrupt, cancelAutoContinue }]
  })
  const state = effectiveState(book, settings, sighting, at)
  if (state === "missing") return endRun("session_gone", `session ${session} is gone`)
  if (state === "exited") {
    return endRun("session_exited", `session ${session} ${Option.getOrElse(sighting.detail, () => "exited")}`)
  }
  const detail = Option.getOrElse(sighting.detail, () => "")
  if (state === "turn_error") return endRun("api_error", `the turn in session ${session} ended in an error: ${detail}`)
  if (state === "setup_dialog")
    return endRun("needs_person", `session ${session} shows a dialog a person must answer: ${detail}`)
  if (state === "usage_limited") {
    const cancelTries = book.cancelTries.get(task) ?? 0
    if (policy === "wait" || (sighting.autoContinue && cancelTries >= CANCEL_TRIES)) {
      return waitForReset(
        book,
        settings,
        at,
        task,
        run,
        sighting,
        policy === "wait"
          ? "its limit policy is wait"
          : `Esc did not cancel Claude Code's automatic continue (${cancelTries} tries)`
      )
    }
    const banner = Option.getOrElse(sighting.banner, () => "usage limit")
    const reset = Option.match(sighting.resetAt, {
      onNone: () => "",
      onSome: (ms) => `; it resets at ${new Date(ms).toISOString()}`
    })
    // The session would continue the old turn by itself at the reset, beside the task's next run: cancelled first.
    return endRun(
      "usage_limit",
      `session ${session} hit its usage limit (${banner})${reset}`,
      false,
      sighting.autoContinue
    )
  }
  const decisions: Array<Decision> = []
  let next = book
  // The turn is over and the task did not report: after a grace (the report may still be on its way), the idle
  // policy — a person looks, or the task goes back to the queue.
  const idle = state === "idle" && started && Option.getOrElse(sighting.inputBox, () => "") === ""
  const since = book.unreported.get(task)
  if (!idle) {
    if (since !== undefined) next = { ...next, unreported: withEntry(next.unreported, task, undefined) }
  } else if (since === undefined || since.session !== session) {
    next = { ...next, unreported: withEntry(next.unreported, task, { session, since: at, noted: false }) }
  } else if (at - since.since >= settings.idleGraceMs) {
    if (idlePolicy === "requeue") {
      return endRun(
        "turn_ended",
        `the turn in session ${session} ended ${
          Math.round((at - since.since) / 1000)
        }s ago and ${task} reported neither done nor failed`
      )
    }
    if (!since.noted) {
      decisions.push({
        _tag: "Note",
        level: "warning",
        message: `session ${session}: ${unreportedReason(task)}`,
        session,
        task
      })
      next = { ...next, unreported: withEntry(next.unreported, task, { ...since, noted: true }) }
    }
  }
  const waited = book.waits.get(task)
  if (waited !== undefined) {
    // The limit is off the screen: the turn went on, by itself or after "continue"; the watchdog starts afresh.
    next = { ...next, waits: withEntry(next.waits, task, undefined), watch: withEntry(next.watch, task, undefined) }
    decisions.push({
      _tag: "Note",
      level: "info",
      message: `${task} goes on in session ${session} after its usage limit`,
      session,
      task
    })
  }
  const question = Option.getOrUndefined(sighting.question)
  if (state === "permission_prompt" && question !== undefined) {
    if (book.questions.get(session) !== question) {
      decisions.push({
        _tag: "Note",
        level: "warning",
        message: `session ${session} is waiting at a prompt: ${question}`,
        session,
        task
      })
    }
    next = { ...next, questions: withEntry(next.questions, session, question) }
  } else if (book.questions.has(session)) {
    next = { ...next, questions: withEntry(next.questions, session, undefined) }
  }
  // Watchdog: how long has this screen looked the same (ignoring the spinner's clock)?
  const watched = next.watch.get(task)
  if (watched === undefined || watched.fingerprint !== sighting.fingerprint) {
    return {
      book: {
        ...next,
        watch: withEntry(next.watch, task, { fingerprint: sighting.fingerprint, since: at, reported: false })
      },
      decisions
    }
  }
  const unchanged = at - watched.since
  if (Option.isSome(settings.requeueAfterMs) && unchanged >= settings.requeueAfterMs.value) {
    const ended = endRun(
      "stale",
      `no progress in session ${session} for ${Math.round(unchanged / 60_000)} min; its turn was interrupted`,
      true
    )
    return { book: { ...ended.book, questions: next.questions }, decisions: [...decisions, ...ended.decisions] }
  }
  if (!watched.reported && unchanged >= settings.staleAfterMs) {
    decisions.push({
      _tag: "Note",
      level: "warning",
      message: `${task} looks stale: session ${session} unchanged for ${Math.round(unchanged / 1000)}s`,
      session,
      task
    })
    next = { ...next, watch: withEntry(next.watch, task, { ...watched, reported: true }) }
  }
  return { book: next, decisions }
}

/**
 * Limit policy `wait`: the task stays with its limited session. Claude Code continues by itself where it does (a
 * little after the reset); otherwise — or when it has not by a grace period after the reset — "continue" is typed
 * once the input box shows, and retried a few times before the task goes back to the queue.
 */
const waitForReset = (
  book: Book,
  settings: BookSettings,
  at: number,
  task: TaskName,
  run: string | undefined,
  sighting: Sighting,
  why: string
): Step => {
  const { session } = sighting
  const before = book.waits.get(task)
  const until = Option.getOrElse(sighting.resetAt, () => before?.until ?? at + settings.limitCooldownMs)
  let wait: Wait = {
    session,
    until,
    auto: sighting.autoContinue,
    tries: before?.tries ?? 0,
    triedAt: before?.triedAt,
    why
  }
  const decisions: Array<Decision> = []
  if (before === undefined) {
    const how = wait.auto ? "Claude Code continues it by itself" : "the daemon types \"continue\" then"
    decisions.push({
      _tag: "Note",
      level: "info",
      message: `${task} waits in session ${session} for its usage limit to reset at ${
        new Date(until).toISOString()
      } (${why}); ${how}`,
      session,
      task
    })
  }
  const due = at >= until + (wait.auto ? AUTO_CONTINUE_GRACE_MS : 0)
  const ready = Option.getOrElse(sighting.inputBox, () => "no input box") === ""
  if (due && ready && (wait.triedAt === undefined || at - wait.triedAt >= RETRY_AFTER_MS)) {
    if (wait.tries >= CONTINUE_TRIES) {
      return {
        book: { ...book, watch: withEntry(book.watch, task, undefined), waits: withEntry(book.waits, task, undefined) },
        decisions: [...decisions, {
          _tag: "EndRun",
          task,
          run,
          session,
          cause: "usage_limit",
          reason: `session ${session} did not take "continue" after its usage limit reset (${wait.tries} tries)`,
          interrupt: false,
          // Still set to continue by itself (late): cancelled first, as for `requeue`.
          cancelAutoContinue: wait.auto
        }]
      }
    }
    decisions.push({ _tag: "Continue", task, run, session })
    wait = { ...wait, triedAt: at }
  }
  // Waiting is no lack of progress: the watchdog starts afresh when the session goes on.
  return {
    book: { ...book, waits: withEntry(book.waits, task, wait), watch: withEntry(book.watch, task, undefined) },
    decisions
  }
}

export const apply = (book: Book, settings: BookSettings, fact: Fact): Step => {
  switch (fact._tag) {
    case "Seen":
      return seen(book, settings, fact.at, fact.sighting)
    case "Supervised":
      return supervised(
        book,
        settings,
        fact.at,
        fact.task,
        fact.run,
        fact.policy,
        fact.idlePolicy,
        fact.started,
        fact.sighting
      )
    case "Dispatched": {
      // The banner on screen now is spent: if the same text shows again after this prompt, it is a new limit.
      const account = settings.accountOf(fact.session)
      const cooldown = book.cooldowns.get(account)
      return {
        book: {
          ...book,
          dispatches: withEntry(book.dispatches, fact.session, { at: fact.at, banner: fact.banner }),
          cooldowns: cooldown?.session === fact.session
            ? withEntry(book.cooldowns, account, { ...cooldown, banner: "" })
            : book.cooldowns
        },
        decisions: []
      }
    }
    case "NotTaken":
      return {
        book: {
          ...book,
          resting: withEntry(book.resting, fact.session, { until: fact.at + fact.restMs, reason: fact.reason }),
          blocked: fact.blocked
            ? withEntry(
              book.blocked,
              fact.session,
              `input box holds a prompt the daemon could not clear; nothing is typed into ${fact.session} until it is empty`
            )
            : book.blocked
        },
        decisions: []
      }
    case "TaskLeft":
      return {
        book: {
          ...book,
          watch: withEntry(book.watch, fact.task, undefined),
          waits: withEntry(book.waits, fact.task, undefined),
          cancelTries: withEntry(book.cancelTries, fact.task, undefined),
          unreported: withEntry(book.unreported, fact.task, undefined)
        },
        decisions: []
      }
    case "CancelFailed": {
      const tries = (book.cancelTries.get(fact.task) ?? 0) + 1
      return {
        book: { ...book, cancelTries: withEntry(book.cancelTries, fact.task, tries) },
        decisions: [{
          _tag: "Note",
          level: "warning",
          message: tries >= CANCEL_TRIES
            ? `${fact.task}: ${fact.reason}; it stays with its session, which continues it after the reset`
            : `${fact.task}: ${fact.reason}; trying again`,
          task: fact.task
        }]
      }
    }
    case "ContinueTyped": {
      const wait = book.waits.get(fact.task)
      if (wait === undefined || fact.taken) return { book, decisions: [] }
      return {
        book: { ...book, waits: withEntry(book.waits, fact.task, { ...wait, tries: wait.tries + 1 }) },
        decisions: [{
          _tag: "Note",
          level: "warning",
          message: `${fact.task}: "continue" was not taken: ${fact.reason}`,
          task: fact.task
        }]
      }
    }
  }
}

/** Applies facts in order; the decisions of all of them, in order. */
export const applyAll = (book: Book, settings: BookSettings, facts: ReadonlyArray<Fact>): Step =>
  facts.reduce<Step>((step, fact) => {
    const next = apply(step.book, settings, fact)
    return { book: next.book, decisions: [...step.decisions, ...next.decisions] }
  }, { book, decisions: [] })
