/**
 * This Node and this checkout's CLI, by absolute path: the program of every completion line and hook command, so
 * they run from any directory and without any of the daemon's variables.
 */
import { resolve } from "node:path"

export const cliProgram = (): ReadonlyArray<string> => [
  process.execPath,
  resolve(import.meta.dirname, "../../bin/claude-failover.js")
]
