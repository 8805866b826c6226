/**
 * The session starter on the in-memory tmux, time moved with TestClock: missing sessions created with the right
 * command and environment, exited ones restarted after a growing wait, one that keeps dying reported, and the
 * one-line advice when no session can take work.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Option } from "effect"
import { TestClock } from "effect/testing"
import { DryRunTmuxLayer } from "../../src/adapters/dry-run-tmux.ts"
import { MemoryTmuxControl, MemoryTmuxLayer } from "../../src/adapters/memory-tmux.ts"
import { classifyPane } from "../../src/domain/pane.ts"
import { Tmux } from "../../src/ports/tmux.ts"
import {
  defaultStartPolicy,
  logStartActions,
  SessionStarter,
  SessionStarterLayer,
  type StartAction,
  type StarterSettings
} from "../../src/services/session-starter.ts"

const settings = (overrides: Partial<StarterSettings> = {}): StarterSettings => ({
  enabled: true,
  sessions: { names: Option.some(["claude-1", "claude-2"]), prefix: "claude-" },
  accounts: Option.some(new Map([["work", ["claude-1"]]])),
  configDirs: Option.some(new Map([["work", "/home/me/.claude-work"]])),
  command: ["claude", "--model", "opus"],
  cwd: "/srv/projects",
  socket: Option.none(),
  extraEnv: {},
  policy: defaultStartPolicy,
  width: 120,
  height: 40,
  ...overrides
})

const layer = (s: StarterSettings) => SessionStarterLayer(s).pipe(Layer.provideMerge(MemoryTmuxLayer))

const byAction = (actions: ReadonlyArray<StartAction>) => Object.fromEntries(actions.map((a) => [a.session, a.action]))

describe("SessionStarter.ensure", () => {
  it.effect("creates the missing sessions running CLAUDE_COMMAND, with their config dir and name in the environment", () =>
    Effect.gen(function*() {
      const starter = yield* SessionStarter
      const control = yield* MemoryTmuxControl
      yield* control.setPane("claude-2", { screen: "❯ " })
      const actions = yield* starter.ensure
      expect(byAction(actions)).toStrictEqual({ "claude-1": "created", "claude-2": "present" })
      expect(actions.find((a) => a.session === "claude-1")).toMatchObject({
        log: "info",
        detail: "started running claude --model opus in /srv/projects, CLAUDE_CONFIG_DIR=/home/me/.claude-work"
      })
      expect(yield* control.launches).toStrictEqual([{
        session: "claude-1",
        kind: "new-session",
        launch: {
          command: ["claude", "--model", "opus"],
          env: { CLAUDE_FAILOVER_SESSION: "claude-1", CLAUDE_CONFIG_DIR: "/home/me/.claude-work" },
          cwd: "/srv/projects",
          width: 120,
          height: 40
        }
      }])
      // The pane runs the program: its command is the program's basename, and nothing is started twice.
      expect((yield* control.panes).get("claude-1")?.command).toBe("claude")
      expect(byAction(yield* starter.ensure)).toStrictEqual({ "claude-1": "present", "claude-2": "present" })
      expect((yield* control.launches).length).toBe(1)
    }).pipe(Effect.provide(layer(settings()))))

  it.effect("restarts a session after it exits, 5 s later, then 10 s, 20 s … while it keeps dying", () =>
    Effect.gen(function*() {
      const starter = yield* SessionStarter
      const control = yield* MemoryTmuxControl
      yield* starter.ensure // creates claude-1 and claude-2
      const restartsOf = Effect.map(control.launches, (all) => all.filter((l) => l.session === "claude-1").length - 1)

      for (const wait of [5, 10, 20, 40]) {
        yield* control.killSession("claude-1")
        const seen = (yield* starter.ensure).find((a) => a.session === "claude-1")
        expect(seen?.action).toBe("backing-off")
        expect(seen?.detail.startsWith(`the session is gone; restart in ${wait}s`)).toBe(true)
        const before = yield* restartsOf
        yield* TestClock.adjust(Duration.seconds(wait - 1))
        expect((yield* starter.ensure).find((a) => a.session === "claude-1")).toMatchObject({
          action: "backing-off",
          log: "none"
        })
        expect(yield* restartsOf).toBe(before)
        yield* TestClock.adjust(Duration.seconds(1))
        expect((yield* starter.ensure).find((a) => a.session === "claude-1")?.action).toBe("restarted")
        expect(yield* restartsOf).toBe(before + 1)
      }
      const status = (yield* starter.status).find((s) => s.session === "claude-1")
      expect(status).toMatchObject({ restarts: 4, failures: 4, failing: true, nextTryAt: Option.none() })
      // claude-2 ran all along: never touched.
      expect((yield* control.launches).filter((l) => l.session === "claude-2").length).toBe(1)
    }).pipe(Effect.provide(layer(settings()))))

  it.effect("respawns a pane back at a shell in place, and reports a session that keeps exiting", () =>
    Effect.gen(function*() {
      const starter = yield* SessionStarter
      const control = yield* MemoryTmuxControl
      yield* starter.ensure
      let last: StartAction | undefined
      for (let i = 0; i < 3; i++) {
        yield* control.setPane("claude-2", { command: "bash" })
        const waiting = (yield* starter.ensure).find((a) => a.session === "claude-2")
        expect(waiting?.detail).toMatch(/^Claude Code exited \(back at a shell\); restart in \d+s/)
        yield* TestClock.adjust(Duration.minutes(5))
        last = (yield* starter.ensure).find((a) => a.session === "claude-2")
      }
      expect(last).toMatchObject({ action: "restarted", log: "warning" })
      expect(last?.detail).toContain("keeps exiting: restart 3 in a row without staying up 5m")
      const kinds = (yield* control.launches).filter((l) => l.session === "claude-2").map((l) => l.kind)
      expect(kinds).toStrictEqual(["new-session", "respawn", "respawn", "respawn"])
      expect((yield* control.panes).get("claude-2")?.command).toBe("claude")
      // Up for 5 minutes: healthy again, the wait starts over at 5 s.
      yield* starter.ensure
      yield* TestClock.adjust(Duration.minutes(5))
      yield* starter.ensure
      yield* control.setPane("claude-2", { command: "zsh" })
      expect((yield* starter.ensure).find((a) => a.session === "claude-2")?.detail).toContain("restart in 5s")
      expect((yield* starter.status).find((s) => s.session === "claude-2")).toMatchObject({
        failures: 0,
        failing: false
      })
    }).pipe(Effect.provide(layer(settings()))))

  it.effect("with only a prefix: starts PREFIX1 when no session exists, and keeps the ones it finds", () =>
    Effect.gen(function*() {
      const starter = yield* SessionStarter
      const control = yield* MemoryTmuxControl
      expect(byAction(yield* starter.ensure)).toStrictEqual({ "claude-1": "created" })
      yield* control.setPane("claude-7", { command: "bash" })
      yield* control.setPane("other", { command: "bash" })
      expect(byAction(yield* starter.ensure)).toStrictEqual({ "claude-1": "present", "claude-7": "backing-off" })
      // Its own session is recreated when it vanishes, though no longer listed.
      yield* control.killSession("claude-1")
      expect(byAction(yield* starter.ensure)).toMatchObject({ "claude-1": "backing-off" })
    }).pipe(Effect.provide(layer(settings({ sessions: { names: Option.none(), prefix: "claude-" } })))))

  it.effect("does nothing when SESSIONS_START is off", () =>
    Effect.gen(function*() {
      expect(yield* (yield* SessionStarter).ensure).toStrictEqual([])
      expect(yield* (yield* MemoryTmuxControl).launches).toStrictEqual([])
    }).pipe(Effect.provide(layer(settings({ enabled: false })))))

  it.effect("a start that fails waits its turn like a death, and says why", () =>
    Effect.gen(function*() {
      const starter = yield* SessionStarter
      yield* (yield* MemoryTmuxControl).setInstalled(false)
      const actions = yield* starter.ensure
      expect(actions[0]).toMatchObject({ session: "claude-1", action: "backing-off", log: "warning" })
      expect(actions[0]?.detail).toContain("could not start it: tmux is not installed")
      yield* logStartActions(actions)
    }).pipe(Effect.provide(layer(settings()))))
})

describe("SessionStarter.advise", () => {
  it.effect("one line when no session can take work, repeated only when the situation changes", () =>
    Effect.gen(function*() {
      const starter = yield* SessionStarter
      const control = yield* MemoryTmuxControl
      expect(yield* starter.advise).toStrictEqual(Option.some({
        problem: true,
        line: "no Claude Code session found (none of TMUX_SESSIONS (claude-1, claude-2) exists): start one with " +
          "tmux new-session -d -s claude-1 claude --model opus, or set SESSIONS_START=true"
      }))
      expect(yield* starter.advise).toStrictEqual(Option.none())
      yield* control.setPane("claude-2", { command: "bash" })
      expect(Option.map(yield* starter.advise, (a) => a.line)).toStrictEqual(Option.some(
        "no Claude Code session running: claude-2 is back at a shell (Claude Code exited): start it again with " +
          "tmux send-keys -t claude-2 'claude --model opus' Enter, or set SESSIONS_START=true"
      ))
      yield* control.setPane("claude-2", { command: "claude" })
      expect(Option.map(yield* starter.advise, (a) => a.problem)).toStrictEqual(Option.some(false))
      expect(yield* starter.advise).toStrictEqual(Option.none())
      yield* control.setInstalled(false)
      expect(Option.map(yield* starter.advise, (a) => a.line)).toStrictEqual(
        Option.some(
          "tmux is not installed: install it (apt-get install -y tmux), then start Claude Code sessions in it"
        )
      )
    }).pipe(Effect.provide(layer(settings({ enabled: false })))))
})

describe("starting sessions on the dry-run tmux", () => {
  it.effect("starts nothing: a new session simply exists from then on, idle; a taken name is SessionExists", () =>
    Effect.gen(function*() {
      const tmux = yield* Tmux
      const launch = { command: ["claude"], env: { CLAUDE_FAILOVER_SESSION: "claude-3" }, cwd: "/nowhere" }
      expect(yield* tmux.listSessions()).toStrictEqual(["claude-1", "claude-2"])
      yield* tmux.newSession("claude-3", launch)
      expect(yield* tmux.listSessions()).toStrictEqual(["claude-1", "claude-2", "claude-3"])
      expect(classifyPane(yield* tmux.capturePane("claude-3"), { now: 0, timeZone: "UTC" })._tag).toBe("idle")
      expect((yield* Effect.flip(tmux.newSession("claude-1", launch)))._tag).toBe("SessionExists")
      yield* tmux.respawn("claude-1", launch)
      expect((yield* Effect.flip(tmux.respawn("claude-9", launch)))._tag).toBe("SessionNotFound")
      expect(yield* tmux.version()).toBe("tmux (dry run)")
    }).pipe(Effect.provide(DryRunTmuxLayer({ sessions: ["claude-1", "claude-2"], workFor: Duration.seconds(1) }))))
})
