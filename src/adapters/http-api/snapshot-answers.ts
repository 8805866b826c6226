/**
 * The status API's answers, each built once per status snapshot and served as the same bytes to every request that
 * asks the same thing while that snapshot is current. Easy to get wrong: an answer is remembered by the snapshot
 * object itself (the live layer makes a new one per take), so it goes with it; requests arriving while an answer is
 * being built wait for that build rather than start their own; and the number of different questions remembered per
 * snapshot is bounded (`after` can be anything), past which answers are built per request.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import type { Snapshot } from "../../services/status.ts"

/** A response body, encoded. */
export interface Answer {
  readonly body: Uint8Array
  readonly contentType: string
}

export const jsonAnswer = (value: unknown): Answer => ({
  body: Buffer.from(JSON.stringify(value), "utf8"),
  contentType: "application/json"
})

export const textAnswer = (text: string, contentType: string): Answer => ({
  body: Buffer.from(text, "utf8"),
  contentType
})

/** A response of its own for each request; the bytes are shared. */
export const respond = (answer: Answer): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.uint8Array(answer.body, { contentType: answer.contentType })

/** Different questions remembered per snapshot: the status page asks five, a scraper one or two. */
export const QUESTIONS_PER_SNAPSHOT = 32

/** `answer(snapshot, question, build)`: the answer `build` made for this snapshot and question, built at most once. */
export type SnapshotAnswers = (
  snapshot: Snapshot,
  question: string,
  build: Effect.Effect<Answer>
) => Effect.Effect<Answer>

export const makeSnapshotAnswers = (): SnapshotAnswers => {
  const bySnapshot = new WeakMap<Snapshot, Map<string, Deferred.Deferred<Answer>>>()
  return (snapshot, question, build) =>
    Effect.suspend(() => {
      let answers = bySnapshot.get(snapshot)
      if (answers === undefined) {
        answers = new Map()
        bySnapshot.set(snapshot, answers)
      }
      const known = answers.get(question)
      if (known !== undefined) return Deferred.await(known)
      if (answers.size >= QUESTIONS_PER_SNAPSHOT) return build
      const answer = Deferred.makeUnsafe<Answer>()
      const remembered = answers
      remembered.set(question, answer)
      // Built on a fiber of its own: a request that gives up does not take the answer from the others waiting.
      const built = Effect.onExit(build, (exit) => {
        // A build that did not finish is forgotten, so the next request builds it again.
        if (!Exit.isSuccess(exit)) remembered.delete(question)
        return Deferred.done(answer, exit)
      })
      return Effect.andThen(Effect.forkDetach(built, { startImmediately: true }), Deferred.await(answer))
    })
}
