#!/usr/bin/env node
// Node >= 22.18 runs the TypeScript sources directly (type stripping), so there is no build step.
import { cclDelegate } from "../src/adapters/cli/ccl-delegate.ts"
import { runCli } from "../src/adapters/cli/run-cli.ts"
import pkg from "../package.json" with { type: "json" }

runCli("ccl-delegate", cclDelegate, pkg.version)
