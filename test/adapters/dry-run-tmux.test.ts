/** Dry-run sessions: idle until a prompt is entered, busy for the delay, then the prompt's own done line runs. */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { doneLineOf, DryRunTmuxLayer } from "../../src/adapters/dry-run-tmux.ts"
import { classifyPane } from "../../src/domain/pane.ts"
import { TaskName } from "../../src/domain/task.ts"
import { renderPrompt } from "../../src/domain/prompt.ts"
import { Tmux } from "../../src/ports/tmux.ts"
import { tempDirs } from "../temp-dirs.ts"

const markerDir = tempDirs("cf-dry-")

const stateOf = (screen: string) => classifyPane(screen, { now: Date.now(), timeZone: "UTC" })._tag

describe("dry-run sessions", () => {
  it("finds the done line of a real prompt", () => {
    const prompt = renderPrompt({
      name: TaskName.make("fix it.md"),
      run: "r123",
      body: "Fix it.\n",
      taskPath: "/q/active/fix it.md",
      command: { program: ["/usr/bin/node", "/app/bin/claude-failover.js"], queueDir: "/q" }
    })
    expect(doneLineOf(prompt)).toBe(
      "/usr/bin/node /app/bin/claude-failover.js task done 'fix it.md' --run r123 --queue-dir /q"
    )
    expect(doneLineOf("no completion line here")).toBeUndefined()
  })

  it.live("idle, then busy for the delay after Enter, then runs the done line and is idle again", () =>
    Effect.gen(function*() {
      const tmux = yield* Tmux
      const marker = join(markerDir(), "ran")
      expect(yield* tmux.listSessions()).toStrictEqual(["claude-1", "claude-2"])
      expect(stateOf(yield* tmux.capturePane("claude-1"))).toBe("idle")
      yield* tmux.sendText("claude-1", `Do it.\n\`touch ${marker}; echo task done x.md\``)
      expect(stateOf(yield* tmux.capturePane("claude-1"))).toBe("idle")
      yield* tmux.sendEnter("claude-1")
      expect(stateOf(yield* tmux.capturePane("claude-1"))).toBe("busy")
      expect(stateOf(yield* tmux.capturePane("claude-2"))).toBe("idle")
      const deadline = Date.now() + 5_000
      while (!existsSync(marker) || stateOf(yield* tmux.capturePane("claude-1")) !== "idle") {
        if (Date.now() > deadline) throw new Error("the dry-run session never finished")
        yield* Effect.sleep(Duration.millis(20))
      }
      expect(yield* Effect.flip(tmux.capturePane("claude-9"))).toMatchObject({ _tag: "SessionNotFound" })
    }).pipe(Effect.provide(DryRunTmuxLayer({ sessions: ["claude-2", "claude-1"], workFor: Duration.millis(100) }))))
})
