/**
 * The demo's queue directory: created fresh under the temp directory, filled with the samples, read back at the end.
 * Easy to get wrong: the daemon's hidden temporary files and `.delegated` markers are not tasks; only `NAME.md` is.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { FinishedTask } from "./progress.ts"
import type { SampleTask } from "./tasks.ts"

const STAGES = ["pending", "active", "done", "failed"] as const
export type Stage = typeof STAGES[number]

export const createQueue = (): string => {
  const root = mkdtempSync(join(tmpdir(), "claude-failover-demo-"))
  for (const stage of STAGES) mkdirSync(join(root, stage))
  return root
}

export const writeSamples = (root: string, samples: ReadonlyArray<SampleTask>): void => {
  for (const sample of samples) writeFileSync(join(root, "pending", sample.name), sample.text)
}

/** Every visible entry of a stage: tasks, markers, `.error` files; not the hidden temporary files. */
export const entries = (root: string, stage: Stage): ReadonlyArray<string> =>
  existsSync(join(root, stage)) ? readdirSync(join(root, stage)).filter((name) => !name.startsWith(".")).sort() : []

const tasksIn = (root: string, stage: Stage) => entries(root, stage).filter((name) => name.endsWith(".md"))

export const readFinished = (root: string): ReadonlyArray<FinishedTask> =>
  (["done", "failed"] as const).flatMap((stage) =>
    tasksIn(root, stage).flatMap((name): ReadonlyArray<FinishedTask> => {
      // A file the daemon is moving may vanish between the listing and the read; the next poll sees it.
      try {
        const text = readFileSync(join(root, stage, name), "utf8")
        const errorPath = join(root, stage, `${name}.error`)
        const error = existsSync(errorPath) ? readFileSync(errorPath, "utf8") : undefined
        return [{ name, stage, text, ...(error === undefined ? {} : { error }) }]
      } catch {
        return []
      }
    })
  )
