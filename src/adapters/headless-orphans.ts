/**
 * Headless runs a previous daemon left behind (it was killed with kill -9, its children were not): found by the
 * environment tag every run carries, and stopped with their process groups before recovery gives their tasks back.
 * Easy to get wrong: only processes of this queue are touched (the tag names the queue root), and a group is sent
 * SIGKILL only when SIGTERM did not end it, so a run stopped here cannot go on beside the task's next run.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { readdirSync, readFileSync, realpathSync } from "node:fs"
import { isRunning } from "./processes.ts"

/** Set in every headless run's environment: `<queue root>\t<slot>\t<run>`; how orphans are recognised. */
export const RUN_TAG_ENV = "CLAUDE_FAILOVER_HEADLESS_RUN"

export interface Orphan {
  readonly pid: number
  readonly slot: string
  readonly run: string
}

/** The queue root as every daemon spells it in the tag, however QUEUE_DIR reached it (a symlink, `..`). */
export const canonicalRoot = (queueRoot: string): string => {
  try {
    return realpathSync(queueRoot)
  } catch {
    return queueRoot
  }
}

/** The processes whose environment carries this queue's run tag (Linux `/proc`; elsewhere none are found). */
export const findOrphans = (queueRoot: string): ReadonlyArray<Orphan> => {
  let pids: Array<number>
  try {
    pids = readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).map(Number)
  } catch {
    return []
  }
  const prefix = `${RUN_TAG_ENV}=${canonicalRoot(queueRoot)}\t`
  return pids.flatMap((pid) => {
    if (pid === process.pid) return []
    try {
      const tag = readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").find((entry) => entry.startsWith(prefix))
      if (tag === undefined) return []
      const [slot = "", run = ""] = tag.slice(prefix.length).split("\t")
      return [{ pid, slot, run }]
    } catch {
      // Gone meanwhile, or another user's process.
      return []
    }
  })
}

/** Sends `signal` to the process's group (runs are started as group leaders), or to the process alone. */
const signal = (pid: number, name: NodeJS.Signals) => {
  try {
    process.kill(-pid, name)
  } catch {
    try {
      process.kill(pid, name)
    } catch {
      // Already gone.
    }
  }
}

/** Stops every orphan of the queue: SIGTERM, then SIGKILL for those still there after `grace`. */
export const stopOrphans = (queueRoot: string, grace: Duration.Duration = Duration.seconds(5)) =>
  Effect.gen(function*() {
    const orphans = findOrphans(queueRoot)
    if (orphans.length === 0) return orphans
    for (const orphan of orphans) signal(orphan.pid, "SIGTERM")
    const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(grace)
    while (orphans.some((orphan) => isRunning(orphan.pid)) && (yield* Clock.currentTimeMillis) < deadline) {
      yield* Effect.sleep(Duration.millis(50))
    }
    for (const orphan of orphans) if (isRunning(orphan.pid)) signal(orphan.pid, "SIGKILL")
    return orphans
  })
