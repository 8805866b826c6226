/**
 * A throw-away queue directory for one scenario, with a staging directory beside it on the same filesystem, so a task
 * is written there and renamed into pending/ (the README's "instant pickup").
 * Easy to get wrong: a file changed less than SETTLE_AFTER ago is left alone by the daemon, so every file written here
 * is given an mtime an hour back; and the root is removed at exit even when the scenario fails.
 */
import {
  closeSync,
  futimesSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { onCleanup } from "./cleanup.ts"
import { nowMs } from "./wait.ts"

export const STAGES = ["pending", "active", "done", "failed"] as const
export type Stage = (typeof STAGES)[number]

/** An hour ago, in seconds, as utimes wants it: long settled. */
const settledTime = () => Date.now() / 1000 - 3600

const writeSettled = (path: string, text: string) => {
  const fd = openSync(path, "w")
  try {
    writeSync(fd, text)
    const when = settledTime()
    futimesSync(fd, when, when)
  } finally {
    closeSync(fd)
  }
}

export class BenchQueue {
  readonly root: string
  readonly dir: string
  readonly staging: string
  readonly #release: () => void

  constructor(label: string) {
    this.root = mkdtempSync(join(tmpdir(), `cf-bench-${label}-`))
    this.dir = join(this.root, "queue")
    this.staging = join(this.root, "staging")
    for (const stage of STAGES) mkdirSync(join(this.dir, stage), { recursive: true })
    mkdirSync(this.staging)
    const root = this.root
    this.#release = onCleanup(`queue ${root}`, () => rmSync(root, { recursive: true, force: true }))
  }

  path(stage: Stage, name: string): string {
    return join(this.dir, stage, name)
  }

  /** Writes a task straight into a stage (before the daemon runs), already settled. */
  write(stage: Stage, name: string, text: string): void {
    writeSettled(this.path(stage, name), text)
  }

  /** Writes a task into the staging directory, ready to be dropped. */
  stage(name: string, text: string): void {
    writeSettled(join(this.staging, name), text)
  }

  /** Renames a staged task into pending/; returns the instant just before the rename (epoch ms). */
  drop(name: string): number {
    const at = nowMs()
    renameSync(join(this.staging, name), this.path("pending", name))
    return at
  }

  /** Task files (`*.md`, not hidden) in a stage. */
  tasks(stage: Stage): ReadonlyArray<string> {
    return readdirSync(join(this.dir, stage)).filter((name) => name.endsWith(".md") && !name.startsWith("."))
  }

  count(stage: Stage): number {
    return this.tasks(stage).length
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true })
    this.#release()
  }
}

/** A task file: frontmatter fields (flat scalars) and a body. */
export const taskText = (fields: Readonly<Record<string, string | number | boolean>>, body: string): string => {
  const lines = Object.entries(fields).map(([key, value]) => `${key}: ${String(value)}`)
  return lines.length === 0 ? `${body}\n` : `---\n${lines.join("\n")}\n---\n${body}\n`
}

/** Zero-padded task names, so they sort as they are numbered: `prefix-00042.md`. */
export const taskName = (prefix: string, i: number, width = 6): string =>
  `${prefix}-${String(i).padStart(width, "0")}.md`
