import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["test/isolated-env.ts"],
    // Vitest's default is one worker fewer than the cores (1 here): the end-to-end files mostly wait on processes
    // they started, so two at a time on 2 cores nearly halves the run.
    maxWorkers: 2,
    // End-to-end tests start real processes and tmux servers; give them room on a 2-core CI machine.
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
