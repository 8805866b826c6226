/**
 * One session's state from its two signals: its Claude Code hooks (what the program says happened, the moment it
 * happened) and its screen (what is on it now). Easy to get wrong: each is right about different things. Liveness
 * and what is drawn right now (a dialog, a spinner) come from the screen; the course of a turn (accepted, ended,
 * ended in a limit or an error) comes from the hooks — a limit the screen shows only in a footer, an error that
 * leaves an idle-looking screen. A hook's word goes stale: when the screen has disagreed with it for a while (hooks
 * uninstalled, a missed event), the screen wins.
 */
import * as Option from "effect/Option"
import { type HookFact, limitResetAt } from "./hooks.ts"
import type { ClassifyOptions } from "./pane.ts"
import type { Sighting } from "./session-book.ts"

export interface HookSeen {
  readonly fact: HookFact
  readonly at: number
}

/** How long a hook's word outlives a screen that says otherwise. */
export const HOOK_TRUST_MS = 5 * 60_000

const fromHook = (pane: Sighting, change: Partial<Sighting>): Sighting => ({ ...pane, ...change, signal: "hook" })

/** The session as its hooks and its screen together say it is; `hooks` oldest first. */
export const mergeSignals = (pane: Sighting, hooks: ReadonlyArray<HookSeen>, options: ClassifyOptions): Sighting => {
  // Liveness is the screen's: a session gone or back at a shell is gone, whatever it said before.
  if (pane.state === "missing" || pane.state === "exited") return pane
  // The newest fact about the turn (not "Other"/"Started", which say nothing about it).
  const latest = [...hooks].reverse().find((seen) => seen.fact._tag !== "Other")
  if (latest === undefined) return pane
  const fresh = options.now - latest.at < HOOK_TRUST_MS
  const fact = latest.fact
  switch (fact._tag) {
    case "Started":
      return pane
    case "Ended":
      // The screen already says whether the program runs (a shell back in the pane reads "exited"); the hook only
      // helps when the screen says nothing clear.
      return fresh && pane.state === "unknown" ? fromHook(pane, { state: "exited" }) : pane
    case "TurnFailed": {
      if (!(fresh || pane.state === "idle" || pane.state === "unknown")) return pane
      // A dialog or new work on screen came after the failure.
      if (pane.state === "busy" || pane.state === "permission_prompt" || pane.state === "setup_dialog") return pane
      if (fact.kind === "limit") {
        return fromHook(pane, {
          state: "usage_limited",
          banner: Option.some(fact.text === "" ? `usage limit (${fact.error})` : fact.text),
          resetAt: limitResetAt(fact, options)
        })
      }
      return fromHook(pane, { state: "turn_error", detail: Option.some(fact.text === "" ? fact.error : fact.text) })
    }
    case "PromptSubmitted":
    case "AutoResume":
      // The turn runs (or resumes by itself after a limit): busy, unless the screen shows something a person must
      // see, or has shown an idle, empty prompt for longer than a hook is trusted.
      if (fact._tag === "AutoResume" && fact.kind !== "fired") return pane
      if (pane.state === "permission_prompt" || pane.state === "setup_dialog" || pane.state === "usage_limited")
        return pane
      return fresh || pane.state !== "idle" ? fromHook(pane, { state: "busy" }) : pane
    case "NeedsPerson":
      // The notification comes seconds after the dialog; what is on screen now says whether it is still up.
      return pane.state === "permission_prompt" ? fromHook(pane, {}) : pane
    case "TurnEnded":
      return pane.state === "idle" || pane.state === "unknown" ? fromHook(pane, { state: "idle" }) : pane
    case "Other":
      return pane
  }
}
