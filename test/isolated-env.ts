/**
 * Runs before every test file: the tests and the processes they start never read the configuration of whoever runs
 * them — no config file from the home directory, no `CLAUDE_FAILOVER_` settings from the shell.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"

const configHome = mkdtempSync(join(tmpdir(), "cf-xdg-"))
process.env.XDG_CONFIG_HOME = configHome
// Set up per test file: removed after it, so a run leaves nothing behind in the temporary directory.
afterAll(() => rmSync(configHome, { recursive: true, force: true }))
for (const key of Object.keys(process.env)) if (key.startsWith("CLAUDE_FAILOVER_")) delete process.env[key]
