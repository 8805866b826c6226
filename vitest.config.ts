import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["test/isolated-env.ts"],
    // End-to-end tests start real processes and tmux servers; give them room on a 2-core CI machine.
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
