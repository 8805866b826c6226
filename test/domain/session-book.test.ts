/** The session book's rules, as invariants over random sequences of facts. */
import { describe, expect, it } from "@effect/vitest"
import { Option } from "effect"
import fc from "fast-check"
import {
  apply,
  applyAll,
  type Book,
  type BookSettings,
  coolingUntil,
  effectiveState,
  emptyBook,
  type Fact,
  isFree,
  type SessionState,
  type Sighting
} from "../../src/domain/session-book.ts"
import { TaskName } from "../../src/domain/task.ts"
import { RUNS } from "./arbitraries.ts"

const SESSIONS = ["claude-1", "claude-2", "claude-3"] as const
/** claude-1 and claude-2 share an account; claude-3 is alone. */
const accountOf = (session: string) => session === "claude-3" ? "solo" : "shared"
const settings = (requeueAfterMs: Option.Option<number> = Option.none()): BookSettings => ({
  accountOf,
  limitCooldownMs: 5 * 3_600_000,
  staleAfterMs: 30 * 60_000,
  requeueAfterMs,
  graceMs: 15_000
})
const STATES: ReadonlyArray<SessionState> = ["idle", "busy", "permission_prompt", "usage_limited", "exited", "unknown", "missing"]
const TASKS = ["a.md", "b.md"].map((name) => TaskName.make(name))

const sighting: fc.Arbitrary<Sighting> = fc.record({
  session: fc.constantFrom(...SESSIONS),
  state: fc.constantFrom(...STATES),
  banner: fc.option(fc.constantFrom("limit A", "limit B"), { nil: undefined }).map(Option.fromNullishOr),
  resetAt: fc.option(fc.integer({ min: 0, max: 40_000_000 }), { nil: undefined }).map(Option.fromNullishOr),
  question: fc.option(fc.constantFrom("Do you want to proceed?"), { nil: undefined }).map(Option.fromNullishOr),
  inputBox: fc.option(fc.constantFrom("", "", "typed text"), { nil: undefined }).map(Option.fromNullishOr),
  fingerprint: fc.constantFrom("screen 1", "screen 2")
}).map((s) => ({
  ...s,
  // What a classifier gives: a banner only with a limit, a question only with a prompt.
  banner: s.state === "usage_limited" ? s.banner : Option.none(),
  resetAt: s.state === "usage_limited" ? s.resetAt : Option.none(),
  question: s.state === "permission_prompt" ? Option.orElse(s.question, () => Option.some("Do you want to proceed?")) : Option.none()
}))

/** Facts at non-decreasing instants. */
const facts: fc.Arbitrary<ReadonlyArray<Fact>> = fc.array(
  fc.tuple(
    fc.integer({ min: 0, max: 20 * 60_000 }),
    fc.oneof(
      sighting.map((s) => ({ kind: "Seen" as const, s })),
      fc.tuple(sighting, fc.constantFrom(...TASKS)).map(([s, task]) => ({ kind: "Supervised" as const, s, task })),
      fc.tuple(fc.constantFrom(...SESSIONS), fc.option(fc.constantFrom("limit A"), { nil: undefined })).map(([session, banner]) => ({
        kind: "Dispatched" as const,
        session,
        banner
      })),
      fc.tuple(fc.constantFrom(...SESSIONS), fc.boolean()).map(([session, blocked]) => ({ kind: "NotTaken" as const, session, blocked })),
      fc.constantFrom(...TASKS).map((task) => ({ kind: "TaskLeft" as const, task }))
    )
  ),
  { maxLength: 40 }
).map((steps) => {
  let at = 1_000_000
  return steps.map(([gap, step]): Fact => {
    at += gap
    switch (step.kind) {
      case "Seen":
        return { _tag: "Seen", at, sighting: step.s }
      case "Supervised":
        return { _tag: "Supervised", at, task: step.task, run: "r1", sighting: step.s }
      case "Dispatched":
        return { _tag: "Dispatched", at, session: step.session, banner: Option.fromNullishOr(step.banner) }
      case "NotTaken":
        return { _tag: "NotTaken", at, session: step.session, reason: "did not take it", restMs: 60_000, blocked: step.blocked }
      case "TaskLeft":
        return { _tag: "TaskLeft", task: step.task }
    }
  })
})

const run = (all: ReadonlyArray<Fact>, bookSettings: BookSettings = settings()) => applyAll(emptyBook, bookSettings, all)
const lastAt = (all: ReadonlyArray<Fact>) => all.reduce((at, fact) => ("at" in fact ? fact.at : at), 1_000_000)

describe("session book", () => {
  it("a free session is idle (or shows a limit its account no longer rests for), has an empty input box, no task, and nothing holding it back", () => {
    fc.assert(
      fc.property(facts, sighting, fc.boolean(), fc.integer({ min: 0, max: 10 * 3_600_000 }), (all, look, hasTask, later) => {
        const { book } = run(all)
        const at = lastAt(all) + later
        if (!isFree(book, settings(), look, at, hasTask)) return
        const state = effectiveState(book, settings(), look, at)
        expect(["idle", "usage_limited"]).toContain(state)
        expect(hasTask).toBe(false)
        expect(Option.getOrUndefined(look.inputBox)).toBe("")
        expect(Option.isNone(coolingUntil(book, settings(), look.session, at))).toBe(true)
        expect((book.resting.get(look.session)?.until ?? 0) <= at).toBe(true)
        expect(book.questions.has(look.session) || book.blocked.has(look.session)).toBe(false)
      }),
      RUNS
    )
  })

  it("a usage limit rests every session of the account until its reset (never before now), and no other account", () => {
    fc.assert(
      fc.property(facts, fc.constantFrom(...SESSIONS), fc.option(fc.integer({ min: 0, max: 40_000_000 }), { nil: undefined }), (all, session, resetAt) => {
        const at = lastAt(all) + 1
        const limit: Sighting = {
          session,
          state: "usage_limited",
          banner: Option.some("a brand new limit"),
          resetAt: Option.fromNullishOr(resetAt),
          question: Option.none(),
          inputBox: Option.some(""),
          fingerprint: "x"
        }
        const { book } = apply(run(all).book, settings(), { _tag: "Seen", at, sighting: limit })
        for (const other of SESSIONS) {
          const until = coolingUntil(book, settings(), other, at)
          if (accountOf(other) === accountOf(session)) {
            const expected = resetAt === undefined ? at + settings().limitCooldownMs : Math.max(resetAt, at)
            // A reset time already past means "try again now": no rest at all.
            if (expected > at) expect(Option.getOrUndefined(until)).toBe(expected)
            else expect(Option.isNone(until)).toBe(true)
            // Resting means not free, whatever its screen says, until the reset.
            const idle: Sighting = { ...limit, session: other, state: "idle", banner: Option.none(), resetAt: Option.none() }
            if (expected > at + 1) expect(isFree(book, settings(), idle, at + 1, false)).toBe(false)
          }
        }
      }),
      RUNS
    )
  })

  it("the banner that was on screen when a prompt was typed, seen again within the grace, neither rests the account nor ends the run", () => {
    const at = 1_000_000
    const limited: Sighting = {
      session: "claude-3",
      state: "usage_limited",
      banner: Option.some("old banner"),
      resetAt: Option.none(),
      question: Option.none(),
      inputBox: Option.some(""),
      fingerprint: "x"
    }
    const dispatched = apply(emptyBook, settings(), { _tag: "Dispatched", at, session: "claude-3", banner: Option.some("old banner") })
    const seen = applyAll(dispatched.book, settings(), [
      { _tag: "Seen", at: at + 5_000, sighting: limited },
      { _tag: "Supervised", at: at + 5_000, task: TASKS[0] ?? TaskName.make("a.md"), run: "r1", sighting: limited }
    ])
    expect(seen.decisions).toStrictEqual([])
    expect(Option.isNone(coolingUntil(seen.book, settings(), "claude-3", at + 5_000))).toBe(true)
    // After the grace, the same banner is a limit: the run ends.
    const later = apply(seen.book, settings(), { _tag: "Supervised", at: at + 20_000, task: TaskName.make("a.md"), run: "r1", sighting: limited })
    expect(later.decisions).toMatchObject([{ _tag: "EndRun", cause: "usage_limit" }])
  })

  it("a session gone, exited or limited ends its task's run with that cause; any other state never ends it without REQUEUE_AFTER", () => {
    fc.assert(
      fc.property(facts, sighting, (all, look) => {
        const before = run(all).book
        const at = lastAt(all) + 60_000
        const step = apply(before, settings(), { _tag: "Supervised", at, task: TaskName.make("a.md"), run: "r1", sighting: look })
        const ends = step.decisions.filter((decision) => decision._tag === "EndRun")
        const state = effectiveState(before, settings(), look, at)
        const expected = state === "missing"
          ? "session_gone"
          : state === "exited"
          ? "session_exited"
          : state === "usage_limited"
          ? "usage_limit"
          : undefined
        expect(ends.map((decision) => decision.cause)).toStrictEqual(expected === undefined ? [] : [expected])
      }),
      RUNS
    )
  })

  it("with REQUEUE_AFTER, a screen unchanged that long ends the run once, interrupting the turn; a changing screen never does", () => {
    const requeueAfter = settings(Option.some(10 * 60_000))
    const busy = (fingerprint: string): Sighting => ({
      session: "claude-1",
      state: "busy",
      banner: Option.none(),
      resetAt: Option.none(),
      question: Option.none(),
      inputBox: Option.some(""),
      fingerprint
    })
    const task = TaskName.make("a.md")
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1_000, max: 120_000 }), { minLength: 1, maxLength: 60 }), fc.boolean(), (gaps, changing) => {
        let at = 0
        let book: Book = emptyBook
        const ends: Array<unknown> = []
        gaps.forEach((gap, index) => {
          at += gap
          const step = apply(book, requeueAfter, { _tag: "Supervised", at, task, run: "r1", sighting: busy(changing ? `s${index}` : "same") })
          book = step.book
          ends.push(...step.decisions.filter((decision) => decision._tag === "EndRun"))
        })
        const span = gaps.slice(1).reduce((a, b) => a + b, 0)
        if (changing) expect(ends).toStrictEqual([])
        else if (span < 10 * 60_000) expect(ends).toStrictEqual([])
        else {
          expect(ends.length).toBeGreaterThanOrEqual(1)
          expect(ends[0]).toMatchObject({ cause: "stale", interrupt: true })
        }
      }),
      RUNS
    )
  })

  it("a session that did not take a prompt rests, and one that kept text in its box stays blocked until its box is seen empty", () => {
    const at = 1_000
    const blocked = apply(emptyBook, settings(), { _tag: "NotTaken", at, session: "claude-1", reason: "kept it", restMs: 60_000, blocked: true }).book
    const look = (inputBox: string): Sighting => ({
      session: "claude-1",
      state: "idle",
      banner: Option.none(),
      resetAt: Option.none(),
      question: Option.none(),
      inputBox: Option.some(inputBox),
      fingerprint: "x"
    })
    expect(isFree(blocked, settings(), look(""), at + 30_000, false)).toBe(false)
    const stillFull = apply(blocked, settings(), { _tag: "Seen", at: at + 90_000, sighting: look("leftover") }).book
    expect(isFree(stillFull, settings(), look(""), at + 90_000, false)).toBe(false)
    const emptied = apply(stillFull, settings(), { _tag: "Seen", at: at + 90_000, sighting: look("") }).book
    expect(isFree(emptied, settings(), look(""), at + 90_000, false)).toBe(true)
  })

  it("is total: any sequence of facts gives a book and decisions, at most one run end per supervision", () => {
    fc.assert(
      fc.property(facts, (all) => {
        let book: Book = emptyBook
        for (const fact of all) {
          const step = apply(book, settings(Option.some(60_000)), fact)
          expect(step.decisions.filter((decision) => decision._tag === "EndRun").length).toBeLessThanOrEqual(fact._tag === "Supervised" ? 1 : 0)
          book = step.book
        }
        // The watchdog keeps only tasks supervised and not left since.
        for (const task of book.watch.keys()) expect(TASKS).toContain(task)
      }),
      RUNS
    )
  })
})
