/**
 * Runs before every test file: the tests and the processes they start never read the configuration of whoever runs
 * them — no config file from the home directory, no `CLAUDE_FAILOVER_` settings from the shell.
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

process.env.XDG_CONFIG_HOME = mkdtempSync(join(tmpdir(), "cf-xdg-"))
for (const key of Object.keys(process.env)) if (key.startsWith("CLAUDE_FAILOVER_")) delete process.env[key]
