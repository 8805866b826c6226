/**
 * The hooks end to end with the real Claude Code 2.1.332 in a private tmux server, against the Anthropic API stand-in:
 * `claude-failover hooks install` into a fresh CLAUDE_CONFIG_DIR, the receiver served in-process on a real socket with
 * a token, and each event recorded for the right tmux session — SessionStart through the `hooks report` command, the
 * rest through http hooks placed by their pane. Every wait has a deadline; tmux, servers and temp dirs go even on failure.
 */
import { describe, expect, it } from "@effect/vitest"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Context, Effect, Exit, Layer, Option, Redacted, Scope } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { execFileSync, spawnSync } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { TmuxPaneSessionsLayer } from "../../src/adapters/http-api/hooks-panes.ts"
import { ApiRoutes } from "../../src/adapters/http-api/routes.ts"
import { inputBoxText } from "../../src/domain/pane.ts"
import { promptHeader } from "../../src/domain/prompt.ts"
import { TaskName } from "../../src/domain/task.ts"
import type { HookFact } from "../../src/domain/hooks.ts"
import { HookEvents, type HookRecord } from "../../src/services/hook-events.ts"
import { HookReceiver } from "../../src/services/hook-receiver.ts"
import { emptySnapshot, statusOf } from "../fixtures/status-snapshot.ts"
import { type AnthropicApi, startAnthropicApi } from "../../stand-ins/anthropic-api.ts"
import { CLAUDE_VERSION, claudeBinary, killClaudes, shellQuote } from "./real-claude.ts"
import { ROOT, TmuxServer, waitFor } from "./support.ts"

const VERSION = CLAUDE_VERSION
const BIN = join(ROOT, "bin/claude-failover.js")
const TOKEN = "hooks-e2e-token"
const SESSION = "cc-hooks"

interface Receiver {
  readonly url: string
  readonly port: number
  latest(session: string): Promise<ReadonlyArray<HookRecord>>
  sessions(): Promise<ReadonlyArray<string>>
  close(): Promise<void>
}

/** The status API's routes with the hook receiver, placing panes on the test's own tmux server. */
const serveReceiver = async (tmuxSocket: string): Promise<Receiver> => {
  const scope = await Effect.runPromise(Scope.make())
  try {
    const services = HookReceiver.layer.pipe(
      Layer.provideMerge(HookEvents.layerMemory()),
      Layer.provideMerge(TmuxPaneSessionsLayer({ socket: tmuxSocket })),
      Layer.provide(NodeServices.layer)
    )
    const context = await Effect.runPromise(Layer.buildWithScope(services, scope))
    const routes = ApiRoutes({
      token: Option.some(Redacted.make(TOKEN)),
      host: { bind: "127.0.0.1", allowedHosts: [] },
      hooks: Context.get(context, HookReceiver)
    })
    const server = HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
      Layer.provide(statusOf(emptySnapshot))
    )
    const built = await Effect.runPromise(Layer.buildWithScope(server, scope))
    const address = Context.get(built, HttpServer.HttpServer).address
    const events = Context.get(context, HookEvents)
    return {
      url: HttpServer.formatAddress(address),
      port: "port" in address ? address.port : 0,
      latest: (session) => Effect.runPromise(events.latest(session)),
      sessions: () => Effect.runPromise(events.sessions),
      close: () => Effect.runPromise(Scope.close(scope, Exit.void))
    }
  } catch (error) {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    throw error
  }
}

const tags = (records: ReadonlyArray<HookRecord>) => records.map((record) => record.fact._tag)

describe(`Claude Code ${VERSION}'s hooks reach the receiver, tagged with their tmux session`, () => {
  it(
    "SessionStart, UserPromptSubmit with the run, Stop; then a 5-hour limit → StopFailure rate_limit with the limit text",
    async () => {
      const root = mkdtempSync(join(tmpdir(), "cf-hooks-e2e-"))
      const tmux = new TmuxServer()
      let api: AnthropicApi | undefined
      let receiver: Receiver | undefined
      try {
        const claude = claudeBinary()
        const home = join(root, "home")
        const configDir = join(root, "claude-config")
        const work = join(root, "work")
        const queue = join(root, "queue")
        for (const dir of [home, configDir, work, queue]) mkdirSync(dir)
        // Onboarding done and the folder trusted: no dialog stands in the way. (CLAUDE_CONFIG_DIR holds .claude.json.)
        const seeded = JSON.stringify({
          hasCompletedOnboarding: true,
          projects: { [work]: { hasTrustDialogAccepted: true } }
        })
        writeFileSync(join(home, ".claude.json"), seeded)
        writeFileSync(join(configDir, ".claude.json"), seeded)

        api = await startAnthropicApi({ scenario: "text" })
        receiver = await serveReceiver(tmux.socket)
        // The report command finds the daemon through the queue's lock label, as it would a running daemon's.
        writeFileSync(
          join(queue, ".lock.json"),
          JSON.stringify({
            pid: process.pid,
            host: "test",
            kind: "daemon",
            command: "claude-failover",
            started_at: new Date().toISOString(),
            api: receiver.url
          })
        )

        const install = spawnSync(process.execPath, [BIN, "hooks", "install", "--config-dir", configDir], {
          env: { PATH: process.env.PATH ?? "", API_PORT: String(receiver.port), API_TOKEN: TOKEN, QUEUE_DIR: queue },
          encoding: "utf8"
        })
        expect(install.status, install.stderr).toBe(0)
        expect(readFileSync(join(configDir, "settings.json"), "utf8")).toContain(
          `http://127.0.0.1:${receiver.port}/api/hooks`
        )

        const env = {
          PATH: "/usr/local/bin:/usr/bin:/bin",
          HOME: home,
          CLAUDE_CONFIG_DIR: configDir,
          LANG: "C.UTF-8",
          TZ: "UTC",
          DISABLE_AUTOUPDATER: "1",
          ANTHROPIC_BASE_URL: api.url,
          CLAUDE_CODE_OAUTH_TOKEN: "sk-ant-oat01-standin-0000000000000000000000",
          CLAUDE_FAILOVER_API_TOKEN: TOKEN
        }
        // `env -i`: Claude Code sees only these variables and tmux's own two (how an http hook names its pane),
        // not the machine's. No CLAUDE_FAILOVER_SESSION: the session is found by its pane, as for one started by hand.
        const assignments = Object.entries(env).map(([k, v]) => shellQuote(`${k}=${v}`)).join(" ")
        const command = `exec env -i ${assignments} TMUX_PANE="$TMUX_PANE" TMUX="$TMUX" ${shellQuote(claude)}`
        tmux.tmux("new-session", "-d", "-s", SESSION, "-x", "120", "-y", "40", "-c", work, command)
        const screen = () => tmux.capture(SESSION)
        const box = () => Option.getOrUndefined(inputBoxText(screen()))
        const facts = async () => (receiver === undefined ? [] : receiver.latest(SESSION))
        const until = (what: string, test: (records: ReadonlyArray<HookRecord>) => boolean, ms: number) =>
          waitFor(what, async () => test(await facts()), ms)

        await waitFor("Claude Code's empty input box", () => box() === "", 60_000)
        // SessionStart runs `claude-failover hooks report` in the background: a Node start, so give it time.
        await until(
          "SessionStart (Started) through hooks report",
          (records) => tags(records).includes("Started"),
          30_000
        )

        /** Pastes a prompt and presses Enter until the UserPromptSubmit hook says it was accepted. */
        const submit = async (prompt: string, runsBefore: number) => {
          execFileSync("tmux", ["-L", tmux.socket, "load-buffer", "-b", "prompt", "-"], { input: prompt })
          tmux.tmux("paste-buffer", "-p", "-d", "-b", "prompt", "-t", `=${SESSION}:`)
          await waitFor("the paste in the input box", () => (box() ?? "") !== "", 10_000)
          let pressed = 0
          await until("UserPromptSubmit (PromptSubmitted)", (records) => {
            if (tags(records).filter((tag) => tag === "PromptSubmitted").length > runsBefore) return true
            if (Date.now() - pressed > 1000) {
              tmux.tmux("send-keys", "-t", `=${SESSION}:`, "Enter")
              pressed = Date.now()
            }
            return false
          }, 20_000)
        }

        const name = TaskName.make("say-hello.md")
        await submit(`${promptHeader(name, "r0123456789ab")}\n\nSay hello.`, 0)
        await until("Stop (TurnEnded)", (records) => tags(records).includes("TurnEnded"), 60_000)

        api.setScenario("limit-5h")
        await submit(`${promptHeader(name, "r0123456789cd")}\n\nSay hello again.`, 1)
        await until("StopFailure (TurnFailed)", (records) => tags(records).includes("TurnFailed"), 60_000)

        const records = await facts()
        expect(tags(records)).toStrictEqual([
          "Started",
          "PromptSubmitted",
          "TurnEnded",
          "PromptSubmitted",
          "TurnFailed"
        ])
        const [started, first, , second, failed] = records.map((record) => record.fact) as ReadonlyArray<HookFact>
        expect(started).toMatchObject({ _tag: "Started", source: "startup" })
        expect(first).toMatchObject({
          _tag: "PromptSubmitted",
          run: Option.some("r0123456789ab"),
          task: Option.some("say-hello.md")
        })
        expect(second).toMatchObject({ _tag: "PromptSubmitted", run: Option.some("r0123456789cd") })
        expect(failed).toMatchObject({ _tag: "TurnFailed", kind: "limit", error: "rate_limit" })
        expect(failed?._tag === "TurnFailed" ? failed.text : "").toMatch(
          /^You've hit your 5-hour limit · resets \d{1,2}(?::\d\d)?(?:am|pm) \(UTC\)$/
        )
        // Every event was placed: nothing recorded under another name.
        expect(await receiver.sessions()).toStrictEqual([SESSION])
      } finally {
        // Claude Code is the pane's process (`env` execs it): wait for it to go with the server, so nothing writes
        // into the directory while it is removed.
        await killClaudes(tmux)
        await receiver?.close()
        await api?.close()
        rmSync(root, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 })
      }
    },
    240_000
  )
})
