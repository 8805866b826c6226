/**
 * The queue's lock as a starting daemon meets it: a command holding it is waited out, a live daemon is not, and the
 * label a SIGKILLed daemon left behind does not make a command that holds the lock since look like a daemon.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { hostname, tmpdir } from "node:os"
import { join } from "node:path"
import {
  acquireQueueLock,
  acquireQueueLockPatiently,
  HOLDER_FILE,
  type LockHolder
} from "../../src/adapters/queue-lock.ts"

const daemon = { kind: "daemon", command: "claude-failover" } as const
const command = { kind: "command", command: "task done x.md" } as const

/** A pid that was a process and is not any more. */
const deadPid = (): number => {
  const ran = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" })
  return Number(ran.stdout)
}

const label = (root: string, holder: Partial<LockHolder>) =>
  writeFileSync(
    join(root, HOLDER_FILE),
    JSON.stringify({
      pid: process.pid,
      host: hostname(),
      kind: "daemon",
      command: "claude-failover",
      started_at: new Date().toISOString(),
      api: null,
      ...holder
    })
  )

/** Holds the lock as `who` in a scope of its own until the returned effect releases it. */
const hold = (root: string, who: typeof daemon | typeof command) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Scope.provide(acquireQueueLock(root, who), scope)
    return Scope.close(scope, Exit.void)
  })

const withQueue = <A, E>(body: (root: string) => Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "cf-lock-"))),
    body,
    (root) => Effect.sync(() => rmSync(root, { recursive: true, force: true }))
  )

describe("a daemon taking the queue's lock", () => {
  it.live("waits out a command that holds the lock while the label still names a SIGKILLed daemon", () =>
    withQueue((root) =>
      Effect.gen(function*() {
        const release = yield* hold(root, command)
        // The moment after a daemon died: a command has the lock, the dead daemon's label is still on the file.
        label(root, { pid: deadPid(), kind: "daemon" })
        const taken = yield* Deferred.make<void>()
        const waiting = yield* Effect.scoped(
          Effect.andThen(acquireQueueLockPatiently(root, daemon, 10_000), Deferred.succeed(taken, undefined))
        ).pipe(Effect.forkChild)
        // Still waiting, not refused: the lock is held and the label is stale.
        expect(yield* Deferred.isDone(taken)).toBe(false)
        expect(waiting.pollUnsafe()).toBeUndefined()
        yield* release
        yield* Deferred.await(taken).pipe(Effect.timeout("5 seconds"))
        expect(Exit.isSuccess(yield* Fiber.await(waiting))).toBe(true)
      })
    ))

  it.live("is refused at once by a live daemon's lock, naming it", () =>
    withQueue((root) =>
      Effect.gen(function*() {
        const release = yield* hold(root, daemon)
        const refused = yield* Effect.scoped(acquireQueueLockPatiently(root, daemon, 10_000)).pipe(Effect.flip)
        expect(refused).toMatchObject({ _tag: "QueueLocked", holder: { kind: "daemon", pid: process.pid } })
        yield* release
      })
    ))
})
