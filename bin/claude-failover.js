#!/usr/bin/env node
// A Node as new as package.json's engines.node runs the TypeScript sources directly (type stripping): no build step.
// The check comes first and the imports are dynamic: a static import of a .ts file fails on an old Node before any
// code runs.
import { onSupportedNode } from "./node-guard.js"

/**
 * The completion line every agent runs once per task: while a daemon runs, it is answered without loading the CLI
 * (see quick-completion.ts); in every other case, and for every other command, the full CLI runs it.
 */
const completedQuickly = async (argv) => {
  if (argv[0] !== "task" || (argv[1] !== "done" && argv[1] !== "fail")) return false
  const { completeThroughDaemon } = await import("../src/adapters/cli/quick-completion.ts")
  return completeThroughDaemon(argv)
}

if (onSupportedNode("claude-failover") && !(await completedQuickly(process.argv.slice(2)))) {
  await import("../src/main.ts")
}
