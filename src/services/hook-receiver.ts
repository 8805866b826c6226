/**
 * Receiving one hook call: the event decoded, its fact derived, the sending tmux session named, the fact recorded.
 * Easy to get wrong: user-level hooks fire in every Claude Code of the account, also outside tmux or on another tmux
 * server, so a call whose session cannot be named is answered like any other (an error would show as "hook failed"
 * in that person's session) and recorded nowhere.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import type { HookSender, PaneRef } from "../domain/hook-sender.ts"
import {
  describeFact,
  eventName,
  factOf,
  type HookFact,
  type HookInputInvalid,
  parseHookEvent
} from "../domain/hooks.ts"
import { HookEvents } from "./hook-events.ts"

/** Which session holds a tmux pane: the daemon's tmux server answers, for its own panes only. */
export class PaneSessions extends Context.Service<PaneSessions, {
  /** The name of the session holding `pane.pane`, when `pane.socket` is the daemon's tmux server and the pane exists. */
  readonly sessionOf: (pane: PaneRef) => Effect.Effect<Option.Option<string>>
}>()("claude-failover/services/PaneSessions") {
  /** No tmux to ask (dry-run sessions): only hooks that name their session are recorded. */
  static readonly none = Layer.succeed(PaneSessions, PaneSessions.of({ sessionOf: () => Effect.succeedNone }))
  /** A fixed table (tests): `SOCKET PANE` → session. */
  static readonly fixed = (table: Readonly<Record<string, string>>) =>
    Layer.succeed(
      PaneSessions,
      PaneSessions.of({ sessionOf: (ref) => Effect.succeed(Option.fromNullishOr(table[`${ref.socket} ${ref.pane}`])) })
    )
}

/** What one call came to. */
export interface HookReceipt {
  /** `hook_event_name` as sent ("" when it had none). */
  readonly event: string
  readonly fact: HookFact
  /** The session the fact was recorded for; none when the caller could not be placed (nothing was recorded). */
  readonly session: Option.Option<string>
}

export class HookReceiver extends Context.Service<HookReceiver, {
  /** Decodes `body` (the hook's JSON), names the session and records the fact; fails only on a body that is not a JSON object. */
  readonly receive: (sender: HookSender, body: string) => Effect.Effect<HookReceipt, HookInputInvalid>
}>()("claude-failover/services/HookReceiver") {
  /** Needs `HookEvents` (where facts go) and `PaneSessions` (how a pane is placed). */
  static readonly layer = Layer.effect(
    HookReceiver,
    Effect.gen(function*() {
      const events = yield* HookEvents
      const panes = yield* PaneSessions

      const sessionOf = (sender: HookSender): Effect.Effect<Option.Option<string>> => {
        switch (sender._tag) {
          case "Named":
            return Effect.succeed(Option.some(sender.session))
          case "Pane":
            return panes.sessionOf(sender.pane)
          case "Anonymous":
            return Effect.succeedNone
        }
      }

      return HookReceiver.of({
        receive: Effect.fn("HookReceiver.receive")(function*(sender: HookSender, body: string) {
          const decoded = parseHookEvent(body)
          if (Result.isFailure(decoded)) return yield* decoded.failure
          const event = decoded.success
          const fact = factOf(event)
          const session = yield* sessionOf(sender)
          if (Option.isSome(session)) {
            yield* events.record(session.value, fact, yield* Clock.currentTimeMillis)
            yield* Effect.logDebug(`hook ${eventName(event)} from ${session.value}: ${describeFact(fact)}`)
          } else {
            yield* Effect.logDebug(`hook ${eventName(event)} from no known tmux session (${sender._tag}); not recorded`)
          }
          return { event: eventName(event), fact, session }
        })
      })
    })
  )
}
