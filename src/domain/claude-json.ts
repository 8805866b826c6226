/**
 * JSON that Claude Code writes for the daemon to read (hook events, headless output lines, settings files): parsed
 * without throwing, and decoded leniently, because Claude Code adds, drops and retypes fields between versions.
 * Easy to get wrong: a field of an unexpected type (or null) must read as absent, not fail the whole object.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"

/** A field Claude Code may leave out, or (another version) send with another type or null: then it reads as absent. */
export const lenient = <S extends Schema.Top>(schema: S) =>
  Schema.optionalKey(schema.pipe(Schema.catchDecoding(() => Effect.succeedNone)))

/** Fields no version of this module knows: kept as they came. */
export const Rest = [Schema.Record(Schema.String, Schema.Unknown)] as const

/** JSON text → its value, or why it is not JSON (the parser's message). */
export const parseJson = (text: string): Result.Result<unknown, string> => {
  try {
    return Result.succeed(JSON.parse(text))
  } catch (error) {
    return Result.fail(error instanceof Error ? error.message : String(error))
  }
}
