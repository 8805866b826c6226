import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["test/isolated-env.ts"],
    // End-to-end tests start real processes and tmux servers; give them room on a 2-core CI machine.
    testTimeout: 60_000,
    // Two files at a time (vitest's default is one on 2 cores): most of an end-to-end test's time is spent waiting on
    // its processes, and one after another the suite took 16 min instead of 11.
    maxWorkers: 2,
    hookTimeout: 60_000
  }
})
