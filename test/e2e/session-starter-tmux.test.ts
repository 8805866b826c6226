/**
 * The session starter against a real private tmux server (`tmux -L`, killed afterwards even on failure), with the
 * Claude Code stand-in as CLAUDE_COMMAND: missing sessions are created and show the input box, the session's name is
 * in its environment (and the daemon's secrets are not), and a session whose program exited is started again.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { chmodSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Layer, ManagedRuntime, Option } from "effect"
import { CliTmuxLayer } from "../../src/adapters/cli-tmux.ts"
import { classifyPane } from "../../src/domain/pane.ts"
import { Tmux } from "../../src/ports/tmux.ts"
import { SessionStarter, SessionStarterLayer, type StarterSettings } from "../../src/services/session-starter.ts"
import { ROOT, TmuxServer, waitFor } from "./support.ts"

const STANDIN = join(ROOT, "stand-ins/claude-code.ts")
const SECRET = "CF_STARTER_TEST_SECRET"

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const setUp = (overrides: Partial<StarterSettings> = {}) => {
  const server = new TmuxServer()
  const cwd = realpathSync(mkdtempSync(join(tmpdir(), "cf-starter-")))
  cleanups.push(() => server.kill(), () => rmSync(cwd, { recursive: true, force: true }))
  const settings: StarterSettings = {
    enabled: true,
    sessions: { names: Option.some(["cf-1", "cf-2", "cf-3"]), prefix: "cf-" },
    accounts: Option.some(new Map([["work", ["cf-1"]]])),
    configDirs: Option.some(new Map([["work", join(cwd, "claude-work")]])),
    command: [process.execPath, STANDIN],
    cwd,
    socket: Option.some(server.socket),
    extraEnv: {},
    policy: { firstDelayMs: 300, maxDelayMs: 2_000, stableAfterMs: 60_000, reportAfter: 3 },
    width: 120,
    height: 40,
    ...overrides
  }
  const tmuxLayer = CliTmuxLayer({ socket: server.socket, withholdEnv: [SECRET] }).pipe(
    Layer.provide(NodeServices.layer)
  )
  const runtime = ManagedRuntime.make(SessionStarterLayer(settings).pipe(Layer.provideMerge(tmuxLayer)))
  cleanups.push(() => runtime.dispose())
  const ensure = () => runtime.runPromise(SessionStarter.use((starter) => starter.ensure))
  const tmux = <A, E>(f: (tmux: Tmux["Service"]) => Effect.Effect<A, E>) => runtime.runPromise(Tmux.use(f))
  return { server, cwd, ensure, tmux, settings }
}

const panePid = (server: TmuxServer, session: string) =>
  server.tmux("display-message", "-p", "-t", `=${session}:`, "#{pane_pid}").trim()
const processEnv = (pid: string): Record<string, string> =>
  Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter((kv) => kv.includes("=")).map((kv) => {
      const at = kv.indexOf("=")
      return [kv.slice(0, at), kv.slice(at + 1)]
    })
  )
const showsInputBox = (server: TmuxServer, session: string) => {
  try {
    const screen = server.capture(session)
    return server.currentCommand(session) === "node" && screen.includes("? for shortcuts") &&
      classifyPane(screen, { now: Date.now(), timeZone: "UTC" })._tag === "idle"
  } catch {
    return false
  }
}
const hasSession = (server: TmuxServer, session: string) =>
  spawnSync("tmux", ["-L", server.socket, "has-session", "-t", `=${session}`], { stdio: "ignore" }).status === 0
/** Types `/exit` as a person would (the stand-in ignores an Enter within 100 ms of typed text). */
const exitStandin = async (server: TmuxServer, session: string) => {
  server.tmux("send-keys", "-t", `=${session}:`, "-l", "/exit")
  await new Promise((r) => setTimeout(r, 300))
  server.tmux("send-keys", "-t", `=${session}:`, "Enter")
}

describe("SessionStarter on a real tmux server", () => {
  it("creates the missing sessions running the stand-in, names them in their environment, and restarts them after exit", async () => {
    const { cwd, ensure, server } = setUp()

    // cf-3 is an operator's: Claude Code typed into a shell. It is left alone while it runs.
    server.startStandin("cf-3")
    await waitFor("the operator's stand-in in cf-3", () => showsInputBox(server, "cf-3"))

    const first = await ensure()
    expect(Object.fromEntries(first.map((a) => [a.session, a.action])))
      .toStrictEqual({ "cf-1": "created", "cf-2": "created", "cf-3": "present" })
    await waitFor(
      "the stand-in's input box in cf-1 and cf-2",
      () => showsInputBox(server, "cf-1") && showsInputBox(server, "cf-2")
    )

    // The session's name and account directory are in its environment: tmux's and the program's.
    expect(server.tmux("show-environment", "-t", "=cf-1", "CLAUDE_FAILOVER_SESSION").trim()).toBe(
      "CLAUDE_FAILOVER_SESSION=cf-1"
    )
    const env = processEnv(panePid(server, "cf-1"))
    expect(env).toMatchObject({ CLAUDE_FAILOVER_SESSION: "cf-1", CLAUDE_CONFIG_DIR: join(cwd, "claude-work") })
    expect(processEnv(panePid(server, "cf-2")).CLAUDE_FAILOVER_SESSION).toBe("cf-2")
    expect(processEnv(panePid(server, "cf-2")).CLAUDE_CONFIG_DIR).toBeUndefined()
    expect(server.tmux("display-message", "-p", "-t", "=cf-1:", "#{pane_current_path}").trim()).toBe(cwd)
    expect(server.capture("cf-1")).toContain(`cwd: ${cwd}`)

    // The program exits: the session goes with it, and comes back after its wait.
    const oldPid = panePid(server, "cf-1")
    await exitStandin(server, "cf-1")
    await waitFor("cf-1 to end with its program", () => !hasSession(server, "cf-1"))
    const waiting = (await ensure()).find((a) => a.session === "cf-1")
    expect(waiting).toMatchObject({ action: "backing-off", detail: "the session is gone; restart in 1s" })
    const restarted = await waitFor(
      "cf-1 to be restarted",
      async () => (await ensure()).find((a) => a.session === "cf-1" && a.action === "restarted"),
      10_000
    )
    expect(restarted.detail).toContain("restart 1")
    await waitFor("the stand-in's input box in cf-1 again", () => showsInputBox(server, "cf-1"))
    expect(panePid(server, "cf-1")).not.toBe(oldPid)
    expect(processEnv(panePid(server, "cf-1")).CLAUDE_FAILOVER_SESSION).toBe("cf-1")

    // The operator's Claude Code exits to its shell: the pane is respawned in place, running CLAUDE_COMMAND.
    await exitStandin(server, "cf-3")
    await waitFor("cf-3 back at its shell", () => server.currentCommand("cf-3") === "bash")
    await waitFor(
      "cf-3 to be respawned",
      async () => (await ensure()).find((a) => a.session === "cf-3" && a.action === "restarted"),
      10_000
    )
    await waitFor("the stand-in's input box in cf-3", () => showsInputBox(server, "cf-3"))
    expect(processEnv(panePid(server, "cf-3")).CLAUDE_FAILOVER_SESSION).toBe("cf-3")
  })

  it("passes every argument through untouched: no shell, no tmux command separator, no format expansion", async () => {
    // This adapter starts the server: the daemon's secrets stay out of it, so out of every pane.
    process.env[SECRET] = "sk-must-not-reach-the-sessions"
    cleanups.push(() => delete process.env[SECRET])
    const { cwd, server, tmux } = setUp()
    const out = join(cwd, "argv.json")
    const script = join(cwd, "dump-argv.js")
    writeFileSync(
      script,
      `require("fs").writeFileSync(${
        JSON.stringify(out)
      }, JSON.stringify({ argv: process.argv.slice(2), env: process.env }))\n` +
        "setTimeout(() => {}, 30_000)\n"
    )
    const args = ["a;", ";", "b\\;", "$HOME", "`id`", "#{session_name}", "~", "x y", "", "'\"", "-c", "--"]
    await tmux((t) =>
      t.newSession("odd#{pid};", { command: [process.execPath, script, ...args], env: { V: "v;#{pid}" }, cwd })
    )
    const written = await waitFor("the script's argv", () => {
      try {
        return JSON.parse(readFileSync(out, "utf8")) as { argv: ReadonlyArray<string>; env: Record<string, string> }
      } catch {
        return undefined
      }
    }, 10_000)
    expect(written.argv).toStrictEqual(args)
    expect(written.env.V).toBe("v;#{pid}")
    expect(written.env[SECRET]).toBeUndefined()
    expect(server.tmux("list-sessions", "-F", "#{session_name}")).toContain("odd#{pid};")
    // A command of one word goes through no shell either (sh would choke on this name).
    const oneWord = join(cwd, "one word $X;.sh")
    writeFileSync(oneWord, `#!/bin/sh\necho ran > ${JSON.stringify(join(cwd, "one-word.out"))}\n`)
    chmodSync(oneWord, 0o755)
    await tmux((t) => t.newSession("one-word", { command: [oneWord], env: {}, cwd }))
    await waitFor("the one-word command to run", () => {
      try {
        return readFileSync(join(cwd, "one-word.out"), "utf8") === "ran\n"
      } catch {
        return false
      }
    }, 10_000)
    // A taken name is SessionExists; a missing directory is refused (tmux would start the pane elsewhere).
    const exists = await tmux((t) =>
      Effect.flip(
        t.newSession("cf-x", { command: ["sleep", "30"], env: {}, cwd }).pipe(
          Effect.andThen(t.newSession("cf-x", { command: ["sleep", "30"], env: {}, cwd }))
        )
      )
    )
    expect(exists._tag).toBe("SessionExists")
    const noDir = await tmux((t) =>
      Effect.flip(t.newSession("cf-y", { command: ["sleep", "30"], env: {}, cwd: join(cwd, "nope") }))
    )
    expect(noDir.message).toContain("nope")
    expect(await tmux((t) => t.version())).toMatch(/^tmux \d/)
    expect(hasSession(server, "cf-y")).toBe(false)
  })
})
