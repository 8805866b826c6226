/** The daemon's start line: one line naming the queue, the sessions found (or why none), delegation, the page and the file. */
import { describe, expect, it } from "@effect/vitest"
import { Option } from "effect"
import { type StartFacts, startLine } from "../../src/services/start-line.ts"

const facts = (over: Partial<StartFacts> = {}): StartFacts => ({
  version: "1.2.3",
  queueDir: "/srv/queue",
  mode: "tmux",
  sessions: { _tag: "Found", names: ["claude-1", "claude-2"] },
  selection: { names: Option.none(), prefix: "claude-" },
  headlessSlots: [],
  delegation: { enabled: false, mode: "http", url: "http://127.0.0.1:8787" },
  api: "http://127.0.0.1:7878",
  configFile: Option.none(),
  ...over
})

describe("start line", () => {
  it("names the queue, the sessions found, delegation, the status page and the configuration file", () => {
    expect(startLine(facts())).toBe(
      "claude-failover 1.2.3 started on /srv/queue; tmux sessions claude-1, claude-2; " +
        "delegation off (SECUTOOLS_API_KEY is not set); status page http://127.0.0.1:7878/; no configuration file"
    )
    expect(startLine(facts({
      delegation: { enabled: true, mode: "http", url: "https://secutools.example" },
      configFile: Option.some("/home/op/.config/claude-failover/config.yaml")
    }))).toContain(
      "delegation on (secutools https://secutools.example); status page http://127.0.0.1:7878/; configuration /home/op/"
    )
  })

  it("says why there are no sessions: none up yet (and what it looks for), or tmux cannot list them", () => {
    expect(startLine(facts({ sessions: { _tag: "Found", names: [] } }))).toContain(
      "tmux sessions: none up yet (looking for sessions named claude-*)"
    )
    expect(
      startLine(
        facts({
          sessions: { _tag: "Found", names: [] },
          selection: { names: Option.some(["a", "b"]), prefix: "claude-" }
        })
      )
    )
      .toContain("none up yet (looking for TMUX_SESSIONS a, b)")
    expect(startLine(facts({ sessions: { _tag: "Unlisted", problem: "tmux is not installed or not on PATH" } })))
      .toContain("tmux sessions: cannot list them (tmux is not installed or not on PATH)")
  })

  it("lists headless slots, alone in headless mode, and stays one line", () => {
    expect(startLine(facts({ mode: "headless", headlessSlots: ["headless-1"] }))).toContain(
      "started on /srv/queue; headless slots headless-1;"
    )
    expect(startLine(facts({ headlessSlots: ["headless-1"] }))).toContain(
      "tmux sessions claude-1, claude-2; headless slots headless-1;"
    )
    expect(startLine(facts({ mode: "dry-run", delegation: { enabled: true, mode: "fake", url: "" } })))
      .toContain("dry-run sessions claude-1, claude-2; delegation on (the in-process secutools stand-in)")
    expect(startLine(facts())).not.toContain("\n")
  })
})
