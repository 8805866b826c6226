/**
 * The session book: what the daemon knows about its Claude Code sessions, and the rules that turn what it sees into
 * decisions — which session is free, how long an account rests after a usage limit, when an active task's run is
 * taken back, when a task is stale. Pure: facts in (sightings of a session, a dispatch, a prompt not taken), a new
 * book and decisions out; the dispatcher gathers the facts and carries the decisions out.
 * Easy to get wrong: a limit banner that was already on screen when a prompt was typed is old news for a while (the
 * prompt has not been read yet), and a session is free only when everything agrees — idle, empty input box, no task,
 * no cool-down, no rest, no question and no text it could not clear.
 */
import { Option } from "effect"
import type { RunEndCause } from "./lifecycle.ts"
import type { TaskName } from "./task.ts"

/** What a session is doing, as one look (screen, liveness, later hooks) says. */
export type SessionState = "idle" | "busy" | "permission_prompt" | "usage_limited" | "exited" | "unknown" | "missing"

/** One look at a session. */
export interface Sighting {
  readonly session: string
  readonly state: SessionState
  /** The limit banner on screen, when `usage_limited`. */
  readonly banner: Option.Option<string>
  readonly resetAt: Option.Option<number>
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
}

export const emptyBook: Book = {
  cooldowns: new Map(),
  dispatches: new Map(),
  resting: new Map(),
  watch: new Map(),
  questions: new Map(),
  blocked: new Map()
}

export type Fact =
  /** A session was looked at (every session, every tick). */
  | { readonly _tag: "Seen"; readonly at: number; readonly sighting: Sighting }
  /** The session of an active task was looked at. */
  | { readonly _tag: "Supervised"; readonly at: number; readonly task: TaskName; readonly run: string | undefined; readonly sighting: Sighting }
  /** A prompt is being typed into the session. */
  | { readonly _tag: "Dispatched"; readonly at: number; readonly session: string; readonly banner: Option.Option<string> }
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

export type Decision =
  /** The run of an active task is over without finishing; `interrupt`: stop the session's turn first. */
  | {
    readonly _tag: "EndRun"
    readonly task: TaskName
    readonly run: string | undefined
    readonly session: string
    readonly cause: RunEndCause
    readonly reason: string
    readonly interrupt: boolean
  }
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
    Option.isSome(sighting.banner) && Option.isSome(dispatched.banner) && sighting.banner.value === dispatched.banner.value
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
    !book.questions.has(sighting.session) && !book.blocked.has(sighting.session)
}

/** Routing rule 7's question: is any local session alive and not resting after a limit? */
export const localAvailable = (
  book: Book,
  settings: BookSettings,
  sightings: ReadonlyArray<Sighting>,
  at: number
): boolean =>
  sightings.some((sighting) =>
    sighting.state !== "missing" && sighting.state !== "exited" && Option.isNone(coolingOf(book, settings, sighting.session, at))
  )

/** Sessions a person should look at, and why. */
export const attention = (book: Book, at: number): ReadonlyArray<{ readonly session: string; readonly reason: string }> => [
  ...[...book.questions, ...book.blocked].map(([session, reason]) => ({ session, reason })),
  ...[...book.resting]
    .filter(([session, rest]) => rest.until > at && !book.questions.has(session) && !book.blocked.has(session))
    .map(([session, rest]) => ({ session, reason: `resting until ${new Date(rest.until).toISOString()}: ${rest.reason}` }))
]

/** Active tasks reported stale, with how long their screen has not changed. */
export const staleTasks = (book: Book, at: number): ReadonlyArray<{ readonly task: TaskName; readonly unchangedForMs: number }> =>
  [...book.watch].filter(([, seen]) => seen.reported).map(([task, seen]) => ({ task, unchangedForMs: at - seen.since }))

const withEntry = <K, V>(map: ReadonlyMap<K, V>, key: K, value: V | undefined): ReadonlyMap<K, V> => {
  const next = new Map(map)
  if (value === undefined) next.delete(key)
  else next.set(key, value)
  return next
}

type Step = { readonly book: Book; readonly decisions: ReadonlyArray<Decision> }

/** A sighting of any session: a new usage limit rests its account; an input box seen empty unblocks its session. */
const seen = (book: Book, settings: BookSettings, at: number, sighting: Sighting): Step => {
  const unblocked = Option.getOrElse(sighting.inputBox, () => "x") === "" && book.blocked.has(sighting.session)
  let next: Book = unblocked ? { ...book, blocked: withEntry(book.blocked, sighting.session, undefined) } : book
  const decisions: Array<Decision> = []
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
        message: `session ${sighting.session} hit its usage limit; account ${account} rests until ${new Date(until).toISOString()}`,
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
  sighting: Sighting
): Step => {
  const { session } = sighting
  const endRun = (cause: RunEndCause, reason: string, interrupt = false): Step => ({
    book: { ...book, watch: withEntry(book.watch, task, undefined) },
    decisions: [{ _tag: "EndRun", task, run, session, cause, reason, interrupt }]
  })
  const state = effectiveState(book, settings, sighting, at)
  if (state === "missing") return endRun("session_gone", `session ${session} is gone`)
  if (state === "exited") return endRun("session_exited", `session ${session} exited`)
  if (state === "usage_limited") {
    return endRun("usage_limit", `session ${session} hit its usage limit (${Option.getOrElse(sighting.banner, () => "usage limit")})`)
  }
  const decisions: Array<Decision> = []
  let next = book
  const question = Option.getOrUndefined(sighting.question)
  if (state === "permission_prompt" && question !== undefined) {
    if (book.questions.get(session) !== question) {
      decisions.push({ _tag: "Note", level: "warning", message: `session ${session} is waiting at a prompt: ${question}`, session, task })
    }
    next = { ...next, questions: withEntry(next.questions, session, question) }
  } else if (book.questions.has(session)) {
    next = { ...next, questions: withEntry(next.questions, session, undefined) }
  }
  // Watchdog: how long has this screen looked the same (ignoring the spinner's clock)?
  const watched = next.watch.get(task)
  if (watched === undefined || watched.fingerprint !== sighting.fingerprint) {
    return { book: { ...next, watch: withEntry(next.watch, task, { fingerprint: sighting.fingerprint, since: at, reported: false }) }, decisions }
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

export const apply = (book: Book, settings: BookSettings, fact: Fact): Step => {
  switch (fact._tag) {
    case "Seen":
      return seen(book, settings, fact.at, fact.sighting)
    case "Supervised":
      return supervised(book, settings, fact.at, fact.task, fact.run, fact.sighting)
    case "Dispatched": {
      // The banner on screen now is spent: if the same text shows again after this prompt, it is a new limit.
      const account = settings.accountOf(fact.session)
      const cooldown = book.cooldowns.get(account)
      return {
        book: {
          ...book,
          dispatches: withEntry(book.dispatches, fact.session, { at: fact.at, banner: fact.banner }),
          cooldowns: cooldown?.session === fact.session ? withEntry(book.cooldowns, account, { ...cooldown, banner: "" }) : book.cooldowns
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
      return { book: { ...book, watch: withEntry(book.watch, fact.task, undefined) }, decisions: [] }
  }
}

/** Applies facts in order; the decisions of all of them, in order. */
export const applyAll = (book: Book, settings: BookSettings, facts: ReadonlyArray<Fact>): Step =>
  facts.reduce<Step>((step, fact) => {
    const next = apply(step.book, settings, fact)
    return { book: next.book, decisions: [...step.decisions, ...next.decisions] }
  }, { book, decisions: [] })
