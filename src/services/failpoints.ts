/**
 * Crash points for tests: `CLAUDE_FAILOVER_FAILPOINT=NAME` (or `NAME:N`, the Nth time) makes the process kill
 * itself with SIGKILL when it reaches NAME, right after a durable step of a transition. docs/crash-states.md lists
 * every point with what start-up recovery does after it. Easy to get wrong: a point marks the moment AFTER a step
 * is on disk and BEFORE the next one starts, so the test sees exactly the state the table describes.
 */
import * as Effect from "effect/Effect"

export const Failpoints = [
  "assign:written",
  "assign:moved",
  "type:pasted",
  "type:entered",
  "type:started",
  "complete:written",
  "complete:moved",
  "requeue:written",
  "requeue:moved",
  "delegate:marker",
  "delegate:written",
  "submit:accepted",
  "submit:marker",
  "reap:written",
  "reap:moved",
  "retry:written",
  "retry:moved",
  "quarantine:error"
] as const
export type Failpoint = typeof Failpoints[number]

/** `assign:moved` or `assign:moved:3`. */
const parse = (raw: string | undefined): { readonly name: string; readonly nth: number } | undefined => {
  const match = /^(.+?)(?::(\d+))?$/.exec(raw?.trim() ?? "")
  return match?.[1] === undefined ? undefined : { name: match[1], nth: Math.max(1, Number(match[2] ?? 1)) }
}

const armed = parse(process.env.CLAUDE_FAILOVER_FAILPOINT)
let hits = 0

/** Reaching a crash point: a no-op unless the environment names it. */
export const failpoint = (name: Failpoint): Effect.Effect<void> =>
  armed === undefined
    ? Effect.void
    : Effect.sync(() => {
      if (armed.name === name && ++hits >= armed.nth) process.kill(process.pid, "SIGKILL")
    })
