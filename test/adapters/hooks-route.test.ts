/**
 * `POST /api/hooks` on a real socket: the status API's token and Host rules, bad bodies, unknown events recorded as
 * Other, and how a call names its tmux session (our session header, else its pane on the daemon's tmux server).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Option, Redacted, Scope } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { createServer } from "node:http"
import { HOOKS_PATH } from "../../src/adapters/http-api/contract.ts"
import { HOOK_BODY_LIMIT_BYTES } from "../../src/adapters/http-api/hooks-route.ts"
import { ApiRoutes } from "../../src/adapters/http-api/routes.ts"
import { HookFact } from "../../src/domain/hooks.ts"
import { HookEvents, type HookRecord } from "../../src/services/hook-events.ts"
import { HookReceiver, PaneSessions } from "../../src/services/hook-receiver.ts"
import { emptySnapshot, statusOf } from "../fixtures/status-snapshot.ts"

const TOKEN = "hook-token-7"
const SOCKET = "/tmp/tmux-1000/default"

interface HookServer {
  readonly url: string
  latest(session: string): Promise<ReadonlyArray<HookRecord>>
  sessions(): Promise<ReadonlyArray<string>>
  close(): Promise<void>
}

/** The status API's routes with the hook receiver, on 127.0.0.1 and a free port, as the daemon serves them. */
const serveHooks = async (options: { readonly token?: string; readonly hooks?: boolean } = {}): Promise<HookServer> => {
  const scope = await Effect.runPromise(Scope.make())
  const services = HookReceiver.layer.pipe(
    Layer.provideMerge(HookEvents.layerMemory()),
    Layer.provideMerge(PaneSessions.fixed({ [`${SOCKET} %3`]: "claude-3" }))
  )
  const context = await Effect.runPromise(Layer.buildWithScope(services, scope))
  const routes = ApiRoutes({
    token: options.token === undefined ? Option.none() : Option.some(Redacted.make(options.token)),
    host: { bind: "127.0.0.1", allowedHosts: [] },
    ...(options.hooks === false ? {} : { hooks: Context.get(context, HookReceiver) })
  })
  const server = HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
    Layer.provide(statusOf(emptySnapshot))
  )
  const built = await Effect.runPromise(Layer.buildWithScope(server, scope))
  const events = Context.get(context, HookEvents)
  return {
    url: HttpServer.formatAddress(Context.get(built, HttpServer.HttpServer).address),
    latest: (session) => Effect.runPromise(events.latest(session)),
    sessions: () => Effect.runPromise(events.sessions),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const stopEvent = JSON.stringify({
  session_id: "s-1",
  hook_event_name: "Stop",
  stop_hook_active: false,
  last_assistant_message: "Done."
})

const post = async (server: HookServer, body: string, headers: Record<string, string> = {}) => {
  const response = await fetch(`${server.url}${HOOKS_PATH}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body
  })
  return { status: response.status, headers: response.headers, body: await response.text() }
}

const named = (session: string) => ({ "X-Claude-Failover-Session": session })
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

let open: HookServer
let guarded: HookServer
beforeAll(async () => {
  ;[open, guarded] = await Promise.all([serveHooks(), serveHooks({ token: TOKEN })])
})
afterAll(async () => {
  await Promise.all([open.close(), guarded.close()])
})

describe("POST /api/hooks: the token rule", () => {
  it("with API_TOKEN set: no token or a wrong one is 401 and records nothing; the right one is 202", async () => {
    expect((await post(guarded, stopEvent, named("claude-1"))).status).toBe(401)
    expect((await post(guarded, stopEvent, { ...named("claude-1"), ...bearer("wrong") })).status).toBe(401)
    expect(await guarded.latest("claude-1")).toStrictEqual([])
    const accepted = await post(guarded, stopEvent, { ...named("claude-1"), ...bearer(TOKEN) })
    expect(accepted.status).toBe(202)
    expect((await guarded.latest("claude-1")).map((r) => r.fact)).toStrictEqual([HookFact.TurnEnded()])
  })

  it("the Host check comes first: a foreign Host is 421, even with the token", async () => {
    const response = await new Promise<number>((resolve, reject) => {
      // fetch will not send another Host; node:http will.
      import("node:http").then(({ request }) => {
        const req = request(`${guarded.url}${HOOKS_PATH}`, {
          method: "POST",
          headers: { host: "evil.example", ...bearer(TOKEN), "content-type": "application/json" }
        }, (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        })
        req.on("error", reject)
        req.end(stopEvent)
      }, reject)
    })
    expect(response).toBe(421)
  })

  it("another method is 405 naming POST, without asking for the token (nothing is served)", async () => {
    const response = await fetch(`${guarded.url}${HOOKS_PATH}`)
    expect(response.status).toBe(405)
    expect(response.headers.get("allow")).toBe("POST")
  })

  it("without a receiver (hooks not wired) the path is 404, after the token rule", async () => {
    const bare = await serveHooks({ token: TOKEN, hooks: false })
    try {
      expect((await post(bare, stopEvent, named("claude-1"))).status).toBe(401)
      expect((await post(bare, stopEvent, { ...named("claude-1"), ...bearer(TOKEN) })).status).toBe(404)
    } finally {
      await bare.close()
    }
  })
})

describe("POST /api/hooks: bodies", () => {
  it("a recorded event is answered 202 with an empty JSON object, and headers saying what was recorded", async () => {
    const response = await post(open, stopEvent, named("claude-1"))
    expect(response.status).toBe(202)
    expect(response.body).toBe("{}")
    expect(response.headers.get("x-claude-failover-recorded")).toBe("TurnEnded")
    expect(response.headers.get("x-claude-failover-session")).toBe("claude-1")
  })

  it("text that is not JSON, or JSON that is not an object, is 400 with the reason, and nothing is recorded", async () => {
    const notJson = await post(open, "{\"hook_event_name\": ", named("claude-bad"))
    expect(notJson.status).toBe(400)
    expect(JSON.parse(notJson.body).error).toMatch(/^not a Claude Code hook event: not JSON/)
    const array = await post(open, "[]", named("claude-bad"))
    expect(array.status).toBe(400)
    expect(JSON.parse(array.body)).toStrictEqual({
      error: "not a Claude Code hook event: expected a JSON object, got an array"
    })
    expect(await open.latest("claude-bad")).toStrictEqual([])
  })

  it("an event it does not know is 202 and recorded as Other, named", async () => {
    const response = await post(
      open,
      JSON.stringify({ hook_event_name: "SubagentStop", agent_id: "a1" }),
      named("claude-2")
    )
    expect(response.status).toBe(202)
    expect(response.headers.get("x-claude-failover-recorded")).toBe("Other")
    expect((await open.latest("claude-2")).map((r) => r.fact)).toStrictEqual([
      HookFact.Other({ event: "SubagentStop", detail: "" })
    ])
  })

  it("a body over the limit is 413", async () => {
    const huge = JSON.stringify({ hook_event_name: "Stop", last_assistant_message: "x".repeat(HOOK_BODY_LIMIT_BYTES) })
    expect((await post(open, huge, named("claude-big"))).status).toBe(413)
    expect(await open.latest("claude-big")).toStrictEqual([])
  })
})

describe("POST /api/hooks: which session", () => {
  /** What Claude Code sends for our headers when CLAUDE_FAILOVER_SESSION is not set: an empty value. */
  const paneHeaders = (pane: string, tmux: string) => ({
    "X-Claude-Failover-Session": "",
    "X-Claude-Failover-Pane": pane,
    "X-Claude-Failover-Tmux": tmux
  })

  it("the pane on the daemon's tmux server names the session when the session header is empty", async () => {
    const response = await post(open, stopEvent, paneHeaders("%3", `${SOCKET},4242,2`))
    expect(response.headers.get("x-claude-failover-session")).toBe("claude-3")
    expect((await open.latest("claude-3")).map((r) => r.fact._tag)).toStrictEqual(["TurnEnded"])
  })

  it("the same pane id on another tmux server, or no tmux at all, is answered 202 and recorded nowhere", async () => {
    const before = await open.sessions()
    for (const headers of [paneHeaders("%3", "/tmp/tmux-1000/other,99,0"), paneHeaders("", ""), {}]) {
      const response = await post(open, stopEvent, headers)
      expect(response.status).toBe(202)
      expect(response.body).toBe("{}")
      expect(response.headers.get("x-claude-failover-recorded")).toBe("none")
    }
    expect(await open.sessions()).toStrictEqual(before)
  })

  it("the session header wins over the pane", async () => {
    await post(open, stopEvent, {
      ...paneHeaders("%3", `${SOCKET},4242,2`),
      "X-Claude-Failover-Session": "claude-named"
    })
    expect((await open.latest("claude-named")).length).toBe(1)
  })
})
