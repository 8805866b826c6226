#!/usr/bin/env node
// A Node as new as package.json's engines.node runs the TypeScript sources directly (type stripping): no build step.
// The check comes first and the imports are dynamic: a static import of a .ts file fails on an old Node before any
// code runs.
import { readFileSync } from "node:fs"
import { onSupportedNode } from "./node-guard.js"

if (onSupportedNode("ccl-delegate")) {
  const [{ cclDelegate }, { runCli }] = await Promise.all([
    import("../src/adapters/cli/ccl-delegate.ts"),
    import("../src/adapters/cli/run-cli.ts")
  ])
  const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"))
  runCli("ccl-delegate", cclDelegate, version)
}
