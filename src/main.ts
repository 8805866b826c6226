/** The daemon's entry point: `claude-failover` with no subcommand runs it in the foreground. */
import pkg from "../package.json" with { type: "json" }
import { claudeFailover } from "./adapters/cli/claude-failover.ts"
import { runCli } from "./adapters/cli/run-cli.ts"

runCli("claude-failover", claudeFailover, pkg.version)
