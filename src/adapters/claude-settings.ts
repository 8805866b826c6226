/**
 * Claude Code's `settings.json` on disk: read, changed by a pure function, backed up and written back atomically.
 * Easy to get wrong: the file is the user's. A file that is not JSON is never touched; the backup (the original bytes)
 * is written before anything changes; the new text replaces the old in one rename, with the old file's mode; a
 * symlinked settings.json (dotfiles) is written through, so the link stays a link; and no change means no write.
 */
import { randomBytes } from "node:crypto"
import { constants, promises as fs } from "node:fs"
import { homedir } from "node:os"
import { basename, dirname, join } from "node:path"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import { parseSettings, renderSettings, type SettingsUnusable } from "../domain/hook-settings.ts"

export const SETTINGS_FILE = "settings.json"

/** Where Claude Code keeps user settings: `$CLAUDE_CONFIG_DIR`, else `~/.claude`. */
export const defaultClaudeConfigDir = (env: Readonly<Record<string, string | undefined>> = process.env): string => {
  const dir = env.CLAUDE_CONFIG_DIR?.trim() ?? ""
  return dir === "" ? join(homedir(), ".claude") : dir
}

/** The file could not be read, used or written; `problem` says which, and whether it was left as it was. */
export class ClaudeSettingsError extends Data.TaggedError("ClaudeSettingsError")<{
  readonly file: string
  readonly problem: string
}> {
  override get message(): string {
    return `${this.file}: ${this.problem}`
  }
}

export interface SettingsUpdate {
  /** The file as named (a symlink is written through to its target). */
  readonly file: string
  /** False when the change left the settings as they were: nothing was written. */
  readonly changed: boolean
  /** The backup of the previous file, when there was one and it changed. */
  readonly backup: Option.Option<string>
}

const problemOf = (error: unknown): string => error instanceof Error ? error.message : String(error)

const isMissing = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "code" in error && error.code === "ENOENT"

/** `20261125T190012Z`: sortable, and no characters a file name or a shell minds. */
export const backupStamp = (now: Date): string => now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")

/** The file a symlink points at (followed all the way), or the path itself. */
const realTarget = async (file: string): Promise<string> => {
  try {
    return await fs.realpath(file)
  } catch (error) {
    if (isMissing(error)) return file
    throw error
  }
}

const writeFileSynced = async (path: string, content: string | Buffer, mode: number, flags: string): Promise<void> => {
  const handle = await fs.open(path, flags, mode)
  try {
    await handle.writeFile(content)
    await handle.chmod(mode)
    await handle.sync()
  } finally {
    await handle.close()
  }
}

const syncDirectory = async (dir: string): Promise<void> => {
  const handle = await fs.open(dir, constants.O_RDONLY)
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** `settings.json.bak-STAMP`, or `…-2`, `…-3` when that exists: an older backup is never overwritten. */
const writeBackup = async (target: string, original: Buffer, mode: number, now: Date): Promise<string> => {
  const base = `${target}.bak-${backupStamp(now)}`
  for (let n = 1;; n++) {
    const candidate = n === 1 ? base : `${base}-${n}`
    try {
      await writeFileSynced(candidate, original, mode, "wx")
      return candidate
    } catch (error) {
      if (!(typeof error === "object" && error !== null && "code" in error && error.code === "EEXIST")) throw error
    }
  }
}

const replaceAtomically = async (target: string, content: string, mode: number): Promise<void> => {
  const dir = dirname(target)
  const temp = join(dir, `.${basename(target)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`)
  try {
    await writeFileSynced(temp, content, mode, "wx")
    await fs.rename(temp, target)
  } catch (error) {
    await fs.rm(temp, { force: true }).catch(() => undefined)
    throw error
  }
  await syncDirectory(dir)
}

/**
 * Applies `change` to `DIR/settings.json` (a missing file reads as `{}`; the directory is created when needed). The
 * file is written only when the settings differ: first the backup, then the new file in one rename.
 */
export const updateClaudeSettings = (
  dir: string,
  change: (settings: unknown) => Result.Result<unknown, SettingsUnusable>,
  now: Date = new Date()
): Effect.Effect<SettingsUpdate, ClaudeSettingsError> => {
  const file = join(dir, SETTINGS_FILE)
  const fail = (problem: string) => Effect.fail(new ClaudeSettingsError({ file, problem }))
  return Effect.gen(function*() {
    const target = yield* Effect.tryPromise({
      try: () => realTarget(file),
      catch: (error) => new ClaudeSettingsError({ file, problem: `cannot resolve it: ${problemOf(error)}` })
    })
    const existing = yield* Effect.tryPromise({
      try: async () => {
        try {
          const [bytes, stat] = await Promise.all([fs.readFile(target), fs.stat(target)])
          return Option.some({ bytes, mode: stat.mode & 0o7777 })
        } catch (error) {
          if (isMissing(error)) return Option.none<{ bytes: Buffer; mode: number }>()
          throw error
        }
      },
      catch: (error) => new ClaudeSettingsError({ file, problem: `cannot read it: ${problemOf(error)}` })
    })
    const text = Option.match(existing, { onNone: () => "", onSome: (e) => e.bytes.toString("utf8") })
    const parsed = parseSettings(text)
    if (Result.isFailure(parsed)) return yield* fail(`${parsed.failure.problem}; fix it by hand, nothing was changed`)
    const next = change(parsed.success)
    if (Result.isFailure(next)) return yield* fail(`${next.failure.problem}; fix it by hand, nothing was changed`)
    if (JSON.stringify(next.success) === JSON.stringify(parsed.success)) {
      return { file, changed: false, backup: Option.none() } satisfies SettingsUpdate
    }
    const mode = Option.match(existing, { onNone: () => 0o600, onSome: (e) => e.mode })
    const backup = yield* Effect.tryPromise({
      try: async () => {
        await fs.mkdir(dirname(target), { recursive: true })
        return Option.isSome(existing)
          ? Option.some(await writeBackup(target, existing.value.bytes, mode, now))
          : Option.none<string>()
      },
      catch: (error) =>
        new ClaudeSettingsError({ file, problem: `cannot write the backup, nothing was changed: ${problemOf(error)}` })
    })
    yield* Effect.tryPromise({
      try: () => replaceAtomically(target, renderSettings(next.success), mode),
      catch: (error) =>
        new ClaudeSettingsError({ file, problem: `cannot write it, it was left as it was: ${problemOf(error)}` })
    })
    return { file, changed: true, backup } satisfies SettingsUpdate
  })
}
