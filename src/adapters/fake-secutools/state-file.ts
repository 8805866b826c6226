/**
 * The fake secutools' jobs on disk, so a restarted stand-in (staging's daemon, `npm run fake-secutools`) still knows them.
 * Easy to get wrong: the file is replaced whole by a rename, never rewritten in place, so a crash mid-write leaves the
 * previous state rather than half a JSON document; and a file that is there but unreadable stops the start, loudly.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import * as Schema from "effect/Schema"
import { type BookState, Outcomes, Providers } from "./jobs.ts"

const StateFile = Schema.Struct({
  version: Schema.Literal(1),
  jobs: Schema.Array(Schema.Struct({
    id: Schema.String,
    idempotencyKey: Schema.String,
    body: Schema.Struct({
      task_id: Schema.String,
      provider: Schema.Literals(Providers),
      prompt: Schema.String,
      complexity_hint: Schema.optionalKey(Schema.String),
      metadata: Schema.optionalKey(Schema.Record(Schema.String, Schema.String))
    }),
    outcome: Schema.Literals(Outcomes),
    createdAt: Schema.Finite,
    finishesAt: Schema.Finite
  }))
})
const decodeStateFile = Schema.decodeUnknownSync(Schema.fromJsonString(StateFile))

/** The state in `file`, or undefined when there is no such file; throws, naming the file, when it cannot be used. */
export const loadBookState = (file: string): BookState | undefined => {
  let text: string
  try {
    text = readFileSync(file, "utf8")
  } catch (error) {
    if (error instanceof Error && "code" in error && error.code === "ENOENT") return undefined
    throw new Error(`fake secutools state file ${file}: cannot read: ${String(error)}`, { cause: error })
  }
  try {
    return { jobs: decodeStateFile(text).jobs }
  } catch (error) {
    throw new Error(
      `fake secutools state file ${file}: not a state file: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error
      }
    )
  }
}

let writes = 0

/** Writes `state` to a temporary file beside `file`, then renames it over `file`. */
export const saveBookState = (file: string, state: BookState): void => {
  const directory = dirname(file)
  mkdirSync(directory, { recursive: true })
  const temporary = join(directory, `.${basename(file)}.${process.pid}.${++writes}.tmp`)
  try {
    writeFileSync(temporary, `${JSON.stringify({ version: 1, jobs: state.jobs }, null, 2)}\n`)
    renameSync(temporary, file)
  } catch (error) {
    rmSync(temporary, { force: true })
    throw error
  }
}
