/**
 * The facts Claude Code's hooks reported, per tmux session, in memory: the newest few per session, and a live feed
 * so the dispatcher wakes the moment a hook arrives.
 * Easy to get wrong: memory is bounded both ways (facts per session, and sessions: user-level hooks report every
 * Claude Code of the account, not only the daemon's), and the feed is only a wake-up: a subscriber that falls behind
 * loses the oldest entries, so the store (`latest`, `since`) is what a decision reads.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { HookFact } from "../domain/hooks.ts"

/** One fact about one session, with when the daemon received it (epoch ms). */
export interface HookRecord {
  readonly session: string
  readonly fact: HookFact
  readonly at: number
}

export interface HookEventsOptions {
  /** Facts kept per session (the newest); default 32. */
  readonly keep?: number
  /** Sessions kept (those reported most recently); default 256. */
  readonly sessions?: number
  /** Entries a slow subscriber of `changes` may fall behind before it loses the oldest; default 1024. */
  readonly backlog?: number
}

export const HOOK_FACTS_KEPT = 32
export const HOOK_SESSIONS_KEPT = 256
const FEED_BACKLOG = 1024

export class HookEvents extends Context.Service<HookEvents, {
  /** Stores a fact about `session`, received at `at` (epoch ms), and publishes it on `changes`. */
  readonly record: (session: string, fact: HookFact, at: number) => Effect.Effect<void>
  /** The facts kept for `session`, in the order they were recorded (the newest last); empty when none. */
  readonly latest: (session: string) => Effect.Effect<ReadonlyArray<HookRecord>>
  /** The kept facts of `session` received at or after `at`, in the order they were recorded. */
  readonly since: (session: string, at: number) => Effect.Effect<ReadonlyArray<HookRecord>>
  /** The sessions with kept facts, the most recently reported first. */
  readonly sessions: Effect.Effect<ReadonlyArray<string>>
  /**
   * Every fact recorded from the moment the stream is run; it never ends. To miss nothing, run it first, then read
   * `latest`.
   */
  readonly changes: Stream.Stream<HookRecord>
  /** The same feed as a subscription that lives as long as the scope (for `PubSub.take` loops). */
  readonly subscribe: Effect.Effect<PubSub.Subscription<HookRecord>, never, Scope.Scope>
}>()("claude-failover/services/HookEvents") {
  /** In memory (the only store: hooks are signals of the moment, not history worth keeping across restarts). */
  static readonly layerMemory = (options: HookEventsOptions = {}) =>
    Layer.effect(
      HookEvents,
      Effect.gen(function*() {
        const keep = Math.max(1, options.keep ?? HOOK_FACTS_KEPT)
        const maxSessions = Math.max(1, options.sessions ?? HOOK_SESSIONS_KEPT)
        const feed = yield* PubSub.sliding<HookRecord>(Math.max(1, options.backlog ?? FEED_BACKLOG))
        yield* Effect.addFinalizer(() => PubSub.shutdown(feed))
        // Insertion order of a Map is recency order: a session reported again is deleted and set anew.
        const bySession = new Map<string, ReadonlyArray<HookRecord>>()

        const store = (entry: HookRecord) =>
          Effect.sync(() => {
            const kept = bySession.get(entry.session) ?? []
            bySession.delete(entry.session)
            bySession.set(entry.session, [...kept, entry].slice(-keep))
            for (const oldest of bySession.keys()) {
              if (bySession.size <= maxSessions) break
              bySession.delete(oldest)
            }
          })

        const latest = (session: string) => Effect.sync(() => bySession.get(session) ?? [])

        return HookEvents.of({
          record: Effect.fn("HookEvents.record")(function*(session: string, fact: HookFact, at: number) {
            const entry: HookRecord = { session, fact, at }
            yield* store(entry)
            yield* PubSub.publish(feed, entry)
          }),
          latest,
          since: (session, at) => Effect.map(latest(session), (entries) => entries.filter((entry) => entry.at >= at)),
          sessions: Effect.sync(() => [...bySession.keys()].reverse()),
          changes: Stream.fromPubSub(feed),
          subscribe: PubSub.subscribe(feed)
        })
      })
    )
}
