#!/usr/bin/env node
// A Node as new as package.json's engines.node runs the TypeScript sources directly (type stripping): no build step.
// The check comes first and the import is dynamic: a static import of a .ts file fails on an old Node before any
// code runs.
import { onSupportedNode } from "./node-guard.js"

if (onSupportedNode("claude-failover")) await import("../src/main.ts")
