/**
 * Which queue directory a `claude-failover task …` command works on: `--queue-dir`, else the QUEUE_DIR setting.
 * Easy to get wrong: these commands run from any directory (an agent's shell), so a relative default would silently
 * name a different queue; a directory without pending/ is refused instead of being taken for an empty queue.
 */
import { existsSync } from "node:fs"
import { join, resolve } from "node:path"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Flag from "effect/cli/Flag"
import { Config } from "../../config.ts"

export class QueueNotFound extends Data.TaggedError("QueueNotFound")<{ readonly root: string }> {
  override get message(): string {
    return `no queue at ${this.root} (it has no pending/ directory)`
  }
}

export const queueDirFlag = Flag.String("queue-dir").pipe(
  Flag.withDescription("The queue directory (default: QUEUE_DIR, then ./queue)"),
  Flag.optional
)

/** The queue's absolute path, checked to look like a queue. */
export const queueRootOf = Effect.fn("queueRootOf")(function*(queueDir: Option.Option<string>) {
  const root = resolve(Option.isSome(queueDir) ? queueDir.value : (yield* Config).queueDir)
  if (!existsSync(join(root, "pending"))) return yield* new QueueNotFound({ root })
  return root
})
