/** Temporary directories for one test file: each made under the system's temporary directory, all removed after it. */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"

/** Call at the top of a test file: returns a maker of new directories named `prefix…`, removed after the file. */
export const tempDirs = (prefix: string): () => string => {
  const made: Array<string> = []
  afterAll(() => {
    for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true })
  })
  return () => {
    const dir = mkdtempSync(join(tmpdir(), prefix))
    made.push(dir)
    return dir
  }
}
