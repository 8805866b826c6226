/** The session book's rules, as invariants over random sequences of facts. */
import { describe, expect, it } from "@effect/vitest"
import { Option } from "effect"
import fc from "fast-check"
import {
  apply,
  applyAll,
  attention,
  AUTO_CONTINUE_GRACE_MS,
  type Book,
  type BookSettings,
  CANCEL_TRIES,
  CONTINUE_TRIES,
  coolingUntil,
  type Decision,
  DISMISS_TRIES,
  effectiveState,
  emptyBook,
  type Fact,
  isFree,
  RETRY_AFTER_MS,
  type SessionState,
  type Sighting
} from "../../src/domain/session-book.ts"
import { IdlePolicies, LimitPolicies, type LimitPolicy } from "../../src/domain/limit-policy.ts"
import { TaskName } from "../../src/domain/task.ts"
import { RUNS } from "./arbitraries.ts"
import { aSighting } from "./sightings.ts"

const SESSIONS = ["claude-1", "claude-2", "claude-3"] as const
/** claude-1 and claude-2 share an account; claude-3 is alone. */
const accountOf = (session: string) => session === "claude-3" ? "solo" : "shared"
const settings = (requeueAfterMs: Option.Option<number> = Option.none()): BookSettings => ({
  accountOf,
  limitCooldownMs: 5 * 3_600_000,
  staleAfterMs: 30 * 60_000,
  requeueAfterMs,
  graceMs: 15_000,
  idleGraceMs: 120_000
})
const STATES: ReadonlyArray<SessionState> = [
  "idle",
  "busy",
  "permission_prompt",
  "usage_limited",
  "setup_dialog",
  "turn_error",
  "exited",
  "unknown",
  "missing"
]
const TASKS = ["a.md", "b.md"].map((name) => TaskName.make(name))

const sighting: fc.Arbitrary<Sighting> = fc.record({
  session: fc.constantFrom(...SESSIONS),
  state: fc.constantFrom(...STATES),
  banner: fc.option(fc.constantFrom("limit A", "limit B"), { nil: undefined }).map(Option.fromNullishOr),
  resetAt: fc.option(fc.integer({ min: 0, max: 40_000_000 }), { nil: undefined }).map(Option.fromNullishOr),
  question: fc.option(fc.constantFrom("Do you want to proceed?"), { nil: undefined }).map(Option.fromNullishOr),
  inputBox: fc.option(fc.constantFrom("", "", "typed text"), { nil: undefined }).map(Option.fromNullishOr),
  autoContinue: fc.boolean(),
  fingerprint: fc.constantFrom("screen 1", "screen 2")
}).map((s) => ({
  ...s,
  signal: "pane" as const,
  detail: s.state === "setup_dialog" || s.state === "turn_error" ? Option.some("why") : Option.none<string>(),
  // What a classifier gives: a banner only with a limit, a question only with a prompt.
  banner: s.state === "usage_limited" ? s.banner : Option.none(),
  resetAt: s.state === "usage_limited" ? s.resetAt : Option.none(),
  autoContinue: s.state === "usage_limited" && s.autoContinue,
  question: s.state === "permission_prompt"
    ? Option.orElse(s.question, () => Option.some("Do you want to proceed?"))
    : Option.none()
}))

/** Facts at non-decreasing instants. */
const facts: fc.Arbitrary<ReadonlyArray<Fact>> = fc.array(
  fc.tuple(
    fc.integer({ min: 0, max: 20 * 60_000 }),
    fc.oneof(
      sighting.map((s) => ({ kind: "Seen" as const, s })),
      fc.tuple(
        sighting,
        fc.constantFrom(...TASKS),
        fc.constantFrom(...LimitPolicies),
        fc.constantFrom(...IdlePolicies),
        fc.boolean()
      )
        .map(([s, task, policy, idlePolicy, started]) => ({
          kind: "Supervised" as const,
          s,
          task,
          policy,
          idlePolicy,
          started
        })),
      fc.constantFrom(...TASKS).map((task) => ({ kind: "CancelFailed" as const, task })),
      fc.tuple(fc.constantFrom(...TASKS), fc.boolean()).map(([task, taken]) => ({
        kind: "ContinueTyped" as const,
        task,
        taken
      })),
      fc.tuple(fc.constantFrom(...SESSIONS), fc.option(fc.constantFrom("limit A"), { nil: undefined })).map((
        [session, banner]
      ) => ({
        kind: "Dispatched" as const,
        session,
        banner
      })),
      fc.tuple(fc.constantFrom(...SESSIONS), fc.boolean()).map(([session, blocked]) => ({
        kind: "NotTaken" as const,
        session,
        blocked
      })),
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
        return {
          _tag: "Supervised",
          at,
          task: step.task,
          run: "r1",
          policy: step.policy,
          idlePolicy: step.idlePolicy,
          started: step.started,
          sighting: step.s
        }
      case "CancelFailed":
        return { _tag: "CancelFailed", at, task: step.task, reason: "Esc did not cancel it" }
      case "ContinueTyped":
        return { _tag: "ContinueTyped", at, task: step.task, taken: step.taken, reason: step.taken ? "" : "not taken" }
      case "Dispatched":
        return { _tag: "Dispatched", at, session: step.session, banner: Option.fromNullishOr(step.banner) }
      case "NotTaken":
        return {
          _tag: "NotTaken",
          at,
          session: step.session,
          reason: "did not take it",
          restMs: 60_000,
          blocked: step.blocked
        }
      case "TaskLeft":
        return { _tag: "TaskLeft", task: step.task }
    }
  })
})

const run = (all: ReadonlyArray<Fact>, bookSettings: BookSettings = settings()) =>
  applyAll(emptyBook, bookSettings, all)
const lastAt = (all: ReadonlyArray<Fact>) => all.reduce((at, fact) => ("at" in fact ? fact.at : at), 1_000_000)

describe("session book", () => {
  it("a free session is idle (or shows a limit its account no longer rests for), has an empty input box, no task, and nothing holding it back", () => {
    fc.assert(
      fc.property(
        facts,
        sighting,
        fc.boolean(),
        fc.integer({ min: 0, max: 10 * 3_600_000 }),
        (all, look, hasTask, later) => {
          const { book } = run(all)
          const at = lastAt(all) + later
          if (!isFree(book, settings(), look, at, hasTask)) return
          const state = effectiveState(book, settings(), look, at)
          expect(["idle", "usage_limited"]).toContain(state)
          expect(hasTask).toBe(false)
          expect(Option.getOrUndefined(look.inputBox)).toBe("")
          expect(Option.isNone(coolingUntil(book, settings(), look.session, at))).toBe(true)
          expect((book.resting.get(look.session)?.until ?? 0) <= at).toBe(true)
          expect(book.questions.has(look.session) || book.blocked.has(look.session) || book.troubled.has(look.session))
            .toBe(false)
        }
      ),
      RUNS
    )
  })

  it("a usage limit rests every session of the account until its reset (never before now), and no other account", () => {
    fc.assert(
      fc.property(
        facts,
        fc.constantFrom(...SESSIONS),
        fc.option(fc.integer({ min: 0, max: 40_000_000 }), { nil: undefined }),
        (all, session, resetAt) => {
          const at = lastAt(all) + 1
          const limit = aSighting({
            session,
            state: "usage_limited",
            banner: Option.some("a brand new limit"),
            resetAt: Option.fromNullishOr(resetAt)
          })
          const { book } = apply(run(all).book, settings(), { _tag: "Seen", at, sighting: limit })
          for (const other of SESSIONS) {
            const until = coolingUntil(book, settings(), other, at)
            if (accountOf(other) === accountOf(session)) {
              const expected = resetAt === undefined ? at + settings().limitCooldownMs : Math.max(resetAt, at)
              // A reset time already past means "try again now": no rest at all.
              if (expected > at) expect(Option.getOrUndefined(until)).toBe(expected)
              else expect(Option.isNone(until)).toBe(true)
              // Resting means not free, whatever its screen says, until the reset.
              const idle: Sighting = {
                ...limit,
                session: other,
                state: "idle",
                banner: Option.none(),
                resetAt: Option.none()
              }
              if (expected > at + 1) expect(isFree(book, settings(), idle, at + 1, false)).toBe(false)
            }
          }
        }
      ),
      RUNS
    )
  })

  it("the banner that was on screen when a prompt was typed, seen again within the grace, neither rests the account nor ends the run", () => {
    const at = 1_000_000
    const limited: Sighting = aSighting({
      session: "claude-3",
      state: "usage_limited",
      banner: Option.some("old banner")
    })
    const dispatched = apply(emptyBook, settings(), {
      _tag: "Dispatched",
      at,
      session: "claude-3",
      banner: Option.some("old banner")
    })
    const seen = applyAll(dispatched.book, settings(), [
      { _tag: "Seen", at: at + 5_000, sighting: limited },
      {
        _tag: "Supervised",
        at: at + 5_000,
        task: TASKS[0] ?? TaskName.make("a.md"),
        run: "r1",
        policy: "requeue",
        idlePolicy: "attention",
        started: true,
        sighting: limited
      }
    ])
    expect(seen.decisions).toStrictEqual([])
    expect(Option.isNone(coolingUntil(seen.book, settings(), "claude-3", at + 5_000))).toBe(true)
    // After the grace, the same banner is a limit: the run ends.
    const later = apply(seen.book, settings(), {
      _tag: "Supervised",
      at: at + 20_000,
      task: TaskName.make("a.md"),
      run: "r1",
      policy: "requeue",
      idlePolicy: "attention",
      started: true,
      sighting: limited
    })
    expect(later.decisions).toMatchObject([{ _tag: "EndRun", cause: "usage_limit" }])
  })

  it("a session gone, exited, limited (policy requeue or delegate), at a setup dialog or after a turn error ends its task's run with that cause; no other state does without REQUEUE_AFTER", () => {
    fc.assert(
      fc.property(facts, sighting, fc.constantFrom<LimitPolicy>("requeue", "delegate"), (all, look, policy) => {
        const before = run(all).book
        const at = lastAt(all) + 60_000
        const task = TaskName.make("a.md")
        const step = apply(before, settings(), {
          _tag: "Supervised",
          at,
          task,
          run: "r1",
          policy,
          idlePolicy: "attention",
          started: true,
          sighting: look
        })
        const ends = step.decisions.filter((decision) => decision._tag === "EndRun")
        const state = effectiveState(before, settings(), look, at)
        // Where Esc failed to cancel the automatic continue often enough, the task waits instead.
        const keptForAuto = look.autoContinue && (before.cancelTries.get(task) ?? 0) >= CANCEL_TRIES
        const expected = state === "missing"
          ? "session_gone"
          : state === "exited"
          ? "session_exited"
          : state === "usage_limited"
          ? keptForAuto ? undefined : "usage_limit"
          : state === "turn_error"
          ? "api_error"
          : state === "setup_dialog"
          ? "needs_person"
          : undefined
        expect(ends.map((decision) => decision.cause)).toStrictEqual(expected === undefined ? [] : [expected])
        // An automatic continue is cancelled before a limited run is taken back, and only then.
        for (const end of ends) expect(end.cancelAutoContinue).toBe(state === "usage_limited" && look.autoContinue)
      }),
      RUNS
    )
  })

  it("limit policy wait: the task stays while the limit lasts; \"continue\" only after the reset (and the automatic continue's grace), into an empty box, spaced out, and the run ends only after it was refused often enough", () => {
    const task = TaskName.make("a.md")
    const limited = (autoContinue: boolean, inputBox: string | undefined, resetAt: number): Sighting =>
      aSighting({
        session: "claude-3",
        state: "usage_limited",
        banner: Option.some("You've hit your 5-hour limit · resets 3pm"),
        resetAt: Option.some(resetAt),
        autoContinue,
        inputBox: Option.fromNullishOr(inputBox),
        fingerprint: "same"
      })
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4 * 3_600_000 }),
        fc.array(
          fc.tuple(
            fc.integer({ min: 1_000, max: 40 * 60_000 }),
            fc.boolean(),
            fc.constantFrom("", "", "typed", undefined),
            fc.boolean()
          ),
          {
            maxLength: 40
          }
        ),
        (resetIn, steps) => {
          const start = 1_000_000
          const resetAt = start + resetIn
          let book: Book = emptyBook
          let at = start
          let refused = 0
          let lastContinue: number | undefined
          const all: Array<Decision> = []
          for (const [gap, auto, box, taken] of steps) {
            at += gap
            const step = apply(book, settings(Option.some(10 * 60_000)), {
              _tag: "Supervised",
              at,
              task,
              run: "r1",
              policy: "wait",
              idlePolicy: "attention",
              started: true,
              sighting: limited(auto, box, resetAt)
            })
            book = step.book
            all.push(...step.decisions)
            const continues = step.decisions.filter((d) => d._tag === "Continue")
            const ends = step.decisions.filter((d) => d._tag === "EndRun")
            for (const _ of continues) {
              expect(at).toBeGreaterThanOrEqual(resetAt + (auto ? AUTO_CONTINUE_GRACE_MS : 0))
              expect(box).toBe("")
              if (lastContinue !== undefined) expect(at - lastContinue).toBeGreaterThanOrEqual(RETRY_AFTER_MS)
              lastContinue = at
              const typed = apply(book, settings(), {
                _tag: "ContinueTyped",
                at,
                task,
                taken,
                reason: taken ? "" : "not taken"
              })
              book = typed.book
              if (!taken) refused++
            }
            if (ends.length > 0) {
              expect(refused).toBeGreaterThanOrEqual(CONTINUE_TRIES)
              expect(ends[0]).toMatchObject({ cause: "usage_limit", cancelAutoContinue: auto })
              break
            }
            // While it waits, the watchdog neither reports nor takes it back, however long the screen stays the same.
            expect(book.watch.has(task)).toBe(false)
            expect(book.waits.get(task)?.until).toBe(resetAt)
          }
          expect(all.filter((d) => d._tag === "Note" && d.message.includes("looks stale"))).toStrictEqual([])
        }
      ),
      RUNS
    )
  })

  it("a turn that ended without a report: after IDLE_GRACE of unbroken idleness, listed once (attention) or taken back (requeue); never before, never for a prompt not yet accepted", () => {
    const task = TaskName.make("a.md")
    const look = (state: SessionState): Sighting => aSighting({ state, fingerprint: state })
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.integer({ min: 1_000, max: 90_000 }), fc.constantFrom<SessionState>("idle", "idle", "busy")),
          { maxLength: 30 }
        ),
        fc.constantFrom(...IdlePolicies),
        fc.boolean(),
        (looks, idlePolicy, started) => {
          let book: Book = emptyBook
          let at = 0
          let idleSince: number | undefined
          let notes = 0
          for (const [gap, state] of looks) {
            at += gap
            const step = apply(book, settings(), {
              _tag: "Supervised",
              at,
              task,
              run: "r1",
              policy: "requeue",
              idlePolicy,
              started,
              sighting: look(state)
            })
            book = step.book
            idleSince = state === "idle" ? idleSince ?? at : undefined
            const idleFor = idleSince === undefined ? 0 : at - idleSince
            const ends = step.decisions.filter((d) => d._tag === "EndRun")
            notes += step.decisions.filter((d) => d._tag === "Note" && d.message.includes("reported neither")).length
            const due = started && idleFor >= 120_000
            if (idlePolicy === "requeue") {
              expect(ends.map((d) => d.cause)).toStrictEqual(due ? ["turn_ended"] : [])
              if (due) break
            } else {
              expect(ends).toStrictEqual([])
              expect(attention(book, at).some((a) => a.reason.includes("reported neither"))).toBe(due)
            }
          }
          // Said at most once per stretch of idleness (a busy look in between starts a new one).
          const stretches = looks.filter(([, state], i) => state === "idle" && looks[i - 1]?.[1] !== "idle").length
          expect(notes).toBeLessThanOrEqual(idlePolicy === "attention" && started ? stretches : 0)
        }
      ),
      RUNS
    )
  })

  it("requeue with an automatic continue: Esc first; after CANCEL_TRIES failed presses the task waits for the reset instead of running twice", () => {
    const task = TaskName.make("a.md")
    const limited: Sighting = aSighting({
      state: "usage_limited",
      banner: Option.some("You've hit your 5-hour limit · resets 3pm"),
      resetAt: Option.some(9_000_000),
      autoContinue: true
    })
    let book: Book = emptyBook
    for (let tries = 0; tries < CANCEL_TRIES; tries++) {
      const step = apply(book, settings(), {
        _tag: "Supervised",
        at: 1_000 + tries,
        task,
        run: "r1",
        policy: "requeue",
        idlePolicy: "attention",
        started: true,
        sighting: limited
      })
      expect(step.decisions).toMatchObject([{ _tag: "EndRun", cancelAutoContinue: true }])
      book = apply(step.book, settings(), { _tag: "CancelFailed", at: 1_000 + tries, task, reason: "no" }).book
    }
    const after = apply(book, settings(), {
      _tag: "Supervised",
      at: 2_000,
      task,
      run: "r1",
      policy: "requeue",
      idlePolicy: "attention",
      started: true,
      sighting: limited
    })
    expect(after.decisions.filter((d) => d._tag === "EndRun")).toStrictEqual([])
    expect(after.book.waits.get(task)).toMatchObject({ auto: true, until: 9_000_000 })
  })

  it("a limit menu (no input box) is closed with one Esc per banner, tried again no sooner than RETRY_AFTER_MS and at most DISMISS_TRIES times, then listed for a person", () => {
    const menu = (banner: string): Sighting =>
      aSighting({ session: "claude-2", state: "usage_limited", banner: Option.some(banner), inputBox: Option.none() })
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 100, max: 60_000 }), fc.constantFrom("limit A", "limit B")), {
          maxLength: 40
        }),
        (looks) => {
          let book: Book = emptyBook
          let at = 0
          const presses = new Map<string, Array<number>>()
          let previous: string | undefined
          for (const [gap, banner] of looks) {
            at += gap
            if (banner !== previous) presses.set(banner, [])
            previous = banner
            const step = apply(book, settings(), { _tag: "Seen", at, sighting: menu(banner) })
            book = step.book
            const times = presses.get(banner) ?? []
            for (const d of step.decisions) if (d._tag === "DismissMenu") times.push(at)
            presses.set(banner, times)
            expect(times.length).toBeLessThanOrEqual(DISMISS_TRIES)
            times.slice(1).forEach((time, i) => expect(time - (times[i] ?? 0)).toBeGreaterThanOrEqual(RETRY_AFTER_MS))
            // A new banner is closed at once.
            expect(times.length).toBeGreaterThanOrEqual(1)
            // Seen again after the last press it may make: a person must close it.
            const pressedNow = step.decisions.some((d) => d._tag === "DismissMenu")
            expect(book.troubled.has("claude-2")).toBe(times.length === DISMISS_TRIES && !pressedNow)
          }
        }
      ),
      RUNS
    )
  })

  it("with REQUEUE_AFTER, a screen unchanged that long ends the run once, interrupting the turn; a changing screen never does", () => {
    const requeueAfter = settings(Option.some(10 * 60_000))
    const busy = (fingerprint: string): Sighting => aSighting({ state: "busy", fingerprint })
    const task = TaskName.make("a.md")
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1_000, max: 120_000 }), { minLength: 1, maxLength: 60 }),
        fc.boolean(),
        (gaps, changing) => {
          let at = 0
          let book: Book = emptyBook
          const ends: Array<unknown> = []
          gaps.forEach((gap, index) => {
            at += gap
            const step = apply(book, requeueAfter, {
              _tag: "Supervised",
              at,
              task,
              run: "r1",
              policy: "requeue",
              idlePolicy: "attention",
              started: true,
              sighting: busy(changing ? `s${index}` : "same")
            })
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
        }
      ),
      RUNS
    )
  })

  it("a session that did not take a prompt rests, and one that kept text in its box stays blocked until its box is seen empty", () => {
    const at = 1_000
    const blocked = apply(emptyBook, settings(), {
      _tag: "NotTaken",
      at,
      session: "claude-1",
      reason: "kept it",
      restMs: 60_000,
      blocked: true
    }).book
    const look = (inputBox: string): Sighting => aSighting({ inputBox: Option.some(inputBox) })
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
          expect(step.decisions.filter((decision) => decision._tag === "EndRun").length).toBeLessThanOrEqual(
            fact._tag === "Supervised" ? 1 : 0
          )
          book = step.book
        }
        // The watchdog keeps only tasks supervised and not left since.
        for (const task of book.watch.keys()) expect(TASKS).toContain(task)
      }),
      RUNS
    )
  })
})
