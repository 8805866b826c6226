/**
 * The status page's actions (`POST /api/tasks/NAME/retry|cancel|requeue`) on a real socket over a real queue
 * directory, applied by the daemon's RequestInbox: the token and Host rules, the cross-site rule (Origin, the action
 * header), task-name checks, each action's answers, the requeue's stop-the-turn-first and its run check; and the
 * `reason` / `finished_at` of done/ and failed/ entries in GET /api/tasks.
 */
import { afterAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Layer, Option, Redacted, Schema, Scope } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  utimesSync,
  writeFileSync
} from "node:fs"
import { createServer, request } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ACTION_HEADER, TasksStatus } from "../../src/adapters/http-api/contract.ts"
import { ApiRoutes } from "../../src/adapters/http-api/routes.ts"
import { serveHttpApi } from "../../src/adapters/http-api/server.ts"
import { FsTaskStoreLayer } from "../../src/adapters/fs-task-store.ts"
import { TaskName } from "../../src/domain/task.ts"
import { makeRequestInbox } from "../../src/services/request-inbox.ts"
import { performOperation } from "../../src/services/task-operations.ts"
import { TaskLocks } from "../../src/services/task-locks.ts"
import { type Snapshot } from "../../src/services/status.ts"
import { emptySnapshot, statusOf } from "../fixtures/status-snapshot.ts"
import { frontmatter, taskFields } from "../e2e/support.ts"

const TOKEN = "action-token-31"
const AT = "2026-11-24T12:00:00.000Z"

const FILES = {
  failed:
    `---\nstate: failed\nattempts: 1\nfinished_at: ${AT}\n---\nFix it.\n\n---\nclaude-failover: failed · ${AT} · session claude-2\n\nReason: the tests do not pass\n`,
  done:
    `---\nstate: done\nattempts: 1\nsession: claude-1\nfinished_at: ${AT}\n---\nDone it.\n\n---\nclaude-failover: done · ${AT} · session claude-1 · took 41s\n`,
  pending: "---\npriority: 1\n---\nWaiting.\n",
  assigned:
    `---\nstate: assigned\nrun: r1\nsession: claude-1\nassigned_at: ${AT}\nstarted_at: ${AT}\nattempts: 2\n---\nRunning.\n`,
  delegated: "---\nstate: delegated_to_secutools\nrun: r2\nprovider: gemini\njob_id: j_7\nattempts: 1\n---\nRemote.\n"
} as const

interface ActionServer {
  readonly url: string
  readonly root: string
  /** The turns stopped (session and reason), in order. */
  readonly stopped: Array<readonly [string, string]>
  /** How often the dispatcher was woken. */
  changes(): number
  /** Runs inside a stop, e.g. the agent finishing meanwhile. */
  onStop: () => void
  write(stage: string, name: string, text: string): void
  close(): Promise<void>
}

/** The routes with actions, as the daemon serves them: RequestInbox over an FsTaskStore in a temporary queue. */
const serveActions = async (options: { readonly token?: string } = {}): Promise<ActionServer> => {
  const root = mkdtempSync(join(tmpdir(), "cf-actions-"))
  for (const stage of ["pending", "active", "done", "failed"]) mkdirSync(join(root, stage), { recursive: true })
  const scope = await Effect.runPromise(Scope.make())
  const stopped: Array<readonly [string, string]> = []
  let changes = 0
  const server: ActionServer = {
    url: "",
    root,
    stopped,
    changes: () => changes,
    onStop: () => {},
    write: (stage, name, text) => writeFileSync(join(root, stage, name), text),
    close: async () => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      rmSync(root, { recursive: true, force: true })
    }
  }
  const ports = Layer.mergeAll(FsTaskStoreLayer({ root }), TaskLocks.layer)
  const inbox = await Effect.runPromise(
    makeRequestInbox({
      root,
      interval: Duration.seconds(1),
      onChange: Effect.sync(() => changes++),
      stopTurn: (session, reason) =>
        Effect.sync(() => {
          stopped.push([session, reason])
          server.onStop()
        })
    }).pipe(Effect.provide(ports))
  )
  const routes = ApiRoutes({
    token: options.token === undefined ? Option.none() : Option.some(Redacted.make(options.token)),
    host: { bind: "127.0.0.1", allowedHosts: [] },
    actions: inbox.apply
  })
  const http = HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
    Layer.provide(statusOf(emptySnapshot))
  )
  const built = await Effect.runPromise(Layer.buildWithScope(http, scope))
  return Object.assign(server, { url: HttpServer.formatAddress(Context.get(built, HttpServer.HttpServer).address) })
}

const ACTION = { [ACTION_HEADER]: "1" }

/** Every task file in the queue, as `stage/name`. */
const readdirStages = (root: string) =>
  ["pending", "active", "done", "failed"].flatMap((stage) =>
    readdirSync(join(root, stage)).filter((name) => name.endsWith(".md")).sort().map((name) => `${stage}/${name}`)
  )

const post = async (
  server: ActionServer,
  path: string,
  headers: Record<string, string> = ACTION,
  init: RequestInit = {}
) => {
  const response = await fetch(`${server.url}${path}`, { method: "POST", headers, ...init })
  const text = await response.text()
  return {
    status: response.status,
    headers: response.headers,
    body: text === "" ? undefined : JSON.parse(text) as unknown
  }
}

/** POST with exactly these headers (Host included), on a connection of its own: fetch would set Host itself. */
const rawPost = (server: ActionServer, path: string, headers: Record<string, string>) =>
  new Promise<{ status: number; body: unknown }>((resolve, reject) => {
    const url = new URL(server.url)
    const req = request({
      host: url.hostname,
      port: url.port,
      path,
      method: "POST",
      headers,
      setHost: false,
      agent: false
    }, (response) => {
      let text = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => (text += chunk))
      response.on(
        "end",
        () => resolve({ status: response.statusCode ?? 0, body: text === "" ? undefined : JSON.parse(text) })
      )
    })
    req.on("error", reject)
    req.end()
  })

const servers: Array<ActionServer> = []
afterAll(async () => {
  for (const server of servers.splice(0)) await server.close()
})

let open: ActionServer
let guarded: ActionServer
beforeEach(async () => {
  for (const server of servers.splice(0)) await server.close()
  open = await serveActions()
  guarded = await serveActions({ token: TOKEN })
  servers.push(open, guarded)
})

const bearer = (token: string) => ({ ...ACTION, authorization: `Bearer ${token}` })

describe("the token and Host rules", () => {
  it("with API_TOKEN an action needs the bearer token: 401 without or with a wrong one, and nothing changes", async () => {
    guarded.write("failed", "t.md", FILES.failed)
    for (const headers of [ACTION, bearer("wrong"), { ...ACTION, authorization: TOKEN }]) {
      const refused = await post(guarded, "/api/tasks/t.md/retry", headers)
      expect(refused.status).toBe(401)
      expect(refused.headers.get("www-authenticate")).toBe("Bearer")
    }
    expect(existsSync(join(guarded.root, "failed", "t.md"))).toBe(true)
    const done = await post(guarded, "/api/tasks/t.md/retry", bearer(TOKEN))
    expect(done).toMatchObject({ status: 200, body: { ok: true, message: "t.md is back in pending/" } })
    expect(existsSync(join(guarded.root, "pending", "t.md"))).toBe(true)
  })

  it("a Host that is not the API's is 421 before anything else", async () => {
    open.write("failed", "t.md", FILES.failed)
    const port = new URL(open.url).port
    expect((await rawPost(open, "/api/tasks/t.md/retry", { host: `evil.example:${port}`, ...ACTION })).status).toBe(421)
    expect(existsSync(join(open.root, "failed", "t.md"))).toBe(true)
    expect((await rawPost(open, "/api/tasks/t.md/retry", { host: `localhost:${port}`, ...ACTION })).status).toBe(200)
  })
})

describe("the cross-site rule (no token: the loopback default)", () => {
  it("a form-like POST without the action header is 403, and the task stays where it is", async () => {
    open.write("failed", "t.md", FILES.failed)
    const form = await post(open, "/api/tasks/t.md/retry", { "content-type": "application/x-www-form-urlencoded" }, {
      body: "a=1"
    })
    expect(form.status).toBe(403)
    expect(form.body).toStrictEqual({
      error: `an action needs the header ${ACTION_HEADER}: 1 (a cross-site form cannot send it)`
    })
    expect(existsSync(join(open.root, "failed", "t.md"))).toBe(true)
    expect(open.changes()).toBe(0)
  })

  it("an Origin other than the API's own is 403, even with the header; its own origin (or none) is accepted", async () => {
    open.write("failed", "t.md", FILES.failed)
    const port = new URL(open.url).port
    for (
      const origin of [
        "https://evil.example",
        `http://evil.example:${port}`,
        `http://127.0.0.1:${Number(port) + 1}`,
        "null",
        "file://"
      ]
    ) {
      const refused = await post(open, "/api/tasks/t.md/retry", { ...ACTION, origin })
      expect(refused.status, origin).toBe(403)
      expect(refused.body, origin).toStrictEqual({
        error: `Origin ${JSON.stringify(origin)} is not this API's own: actions are taken only from its own page`
      })
    }
    expect(existsSync(join(open.root, "failed", "t.md"))).toBe(true)
    expect((await post(open, "/api/tasks/t.md/retry", { ...ACTION, origin: open.url })).status).toBe(200)
  })

  it("other methods are 405 with Allow: POST (a CORS preflight is never granted); unknown actions 404", async () => {
    open.write("failed", "t.md", FILES.failed)
    for (const method of ["GET", "PUT", "DELETE", "OPTIONS"]) {
      const response = await fetch(`${open.url}/api/tasks/t.md/retry`, {
        method,
        headers: { origin: "https://evil.example", "access-control-request-method": "POST" }
      })
      expect(response.status, method).toBe(405)
      expect(response.headers.get("allow")).toBe("POST")
      expect(response.headers.get("access-control-allow-origin")).toBeNull()
    }
    expect(await post(open, "/api/tasks/t.md/done")).toMatchObject({
      status: 404,
      body: { error: "no action 'done' on a task; there are retry, cancel, requeue" }
    })
    expect(existsSync(join(open.root, "failed", "t.md"))).toBe(true)
  })
})

describe("task names", () => {
  it("a name the queue would refuse is 400, whatever its encoding", async () => {
    for (
      const [raw, name] of [
        ["%2E%2E%2Fetc%2Fpasswd", "../etc/passwd"],
        ["a%2Fb.md", "a/b.md"],
        [".hidden.md", ".hidden.md"],
        ["-rf.md", "-rf.md"],
        ["x%0Ay.md", "x\ny.md"],
        ["%E2%80%AE.md", undefined]
      ] as const
    ) {
      const response = await post(open, `/api/tasks/${raw}/retry`)
      if (name === undefined) {
        // U+202E is a name the queue takes (only control characters are refused): it is simply not there.
        expect(response.status, raw).toBe(404)
        continue
      }
      expect(response, raw).toMatchObject({
        status: 400,
        body: { error: `${JSON.stringify(name)} is not a task file name` }
      })
    }
  })

  it("NAME without .md names NAME.md; names with spaces and markup arrive as written", async () => {
    const name = "fix <img src=x onerror=alert(1)> & co.md"
    open.write("failed", name, FILES.failed)
    const response = await post(open, `/api/tasks/${encodeURIComponent(name.slice(0, -3))}/retry`)
    expect(response).toMatchObject({ status: 200, body: { ok: true, message: `${name} is back in pending/` } })
    expect(existsSync(join(open.root, "pending", name))).toBe(true)
  })
})

describe("each action's answers", () => {
  it("retry: failed → 200 and back in pending/; a pending task → 409; an unknown one → 404", async () => {
    open.write("failed", "f.md", FILES.failed)
    open.write("pending", "p.md", FILES.pending)
    expect(await post(open, "/api/tasks/f.md/retry")).toMatchObject({
      status: 200,
      body: { ok: true, message: "f.md is back in pending/" }
    })
    expect(frontmatter(readFileSync(join(open.root, "pending", "f.md"), "utf8")).state).toBe("pending")
    expect(open.changes()).toBe(1)
    expect(await post(open, "/api/tasks/p.md/retry")).toMatchObject({
      status: 409,
      body: { error: "p.md is in pending/; only a task in failed/ or done/ can be retried" }
    })
    expect(await post(open, "/api/tasks/nope.md/retry")).toMatchObject({
      status: 404,
      body: { error: "no task 'nope.md' in the queue" }
    })
    expect(open.changes()).toBe(1)
  })

  it("cancel: pending → 200 and in failed/; an active task → 409; a delegated one → 409", async () => {
    open.write("pending", "p.md", FILES.pending)
    open.write("active", "a.md", FILES.assigned)
    expect(await post(open, "/api/tasks/p.md/cancel")).toMatchObject({
      status: 200,
      body: { ok: true, message: "p.md cancelled" }
    })
    expect(frontmatter(readFileSync(join(open.root, "failed", "p.md"), "utf8")).state).toBe("failed")
    expect(await post(open, "/api/tasks/a.md/cancel")).toMatchObject({
      status: 409,
      body: { error: "a.md is in active/; only a pending task can be cancelled" }
    })
    expect(existsSync(join(open.root, "active", "a.md"))).toBe(true)
  })

  it("requeue: the session's turn is stopped first, then the task is back in pending/ with the attempt not counted", async () => {
    open.write("active", "a.md", FILES.assigned)
    let seenDuringStop = ""
    open.onStop = () => (seenDuringStop = readdirStages(open.root).join(","))
    const response = await post(open, "/api/tasks/a.md/requeue")
    expect(response).toMatchObject({
      status: 200,
      body: {
        ok: true,
        message:
          "a.md is back in pending/: run r1 was taken back from session claude-1, whose turn was interrupted; the attempt is not counted"
      }
    })
    expect(open.stopped).toStrictEqual([["claude-1", "requeued by an operator"]])
    // When the turn was stopped, the task was still in active/: the stop comes first.
    expect(seenDuringStop).toBe("active/a.md")
    const fields = taskFields("a.md", readFileSync(join(open.root, "pending", "a.md"), "utf8"))
    expect(fields.state).toBe("pending")
    expect(fields.run).toBeUndefined()
    expect(fields.session).toBeUndefined()
    expect(fields.attempts).toBe(2)
    expect(fields.history?.at(-1)).toMatchObject({
      event: "requeued",
      cause: "operator",
      run: "r1",
      session: "claude-1",
      reason: "requeued by an operator"
    })
    expect(open.changes()).toBe(1)
    // Asked again (an answer lost): already done, nothing stopped twice.
    expect(await post(open, "/api/tasks/a.md/requeue")).toMatchObject({
      status: 200,
      body: { message: "a.md is already back in pending/" }
    })
    expect(open.stopped).toHaveLength(1)
  })

  it("requeue of a delegated task is refused (its job runs remotely); of a failed one, refused; of none, 404", async () => {
    // Delegated tasks wait in pending/; one found in active/ (a crash mid-move) is refused the same way.
    open.write("pending", "d.md", FILES.delegated)
    open.write(
      "pending",
      "d.md.delegated",
      JSON.stringify({
        task: "d.md",
        provider: "gemini",
        run: "r2",
        idempotency_key: "k-1",
        state: "submitted",
        job_id: "j_7",
        created_at: AT,
        submitted_at: AT,
        polls: 3
      })
    )
    open.write("active", "d2.md", FILES.delegated.replace("j_7", "j_8"))
    open.write("failed", "f.md", FILES.failed)
    expect(await post(open, "/api/tasks/d.md/requeue")).toMatchObject({
      status: 409,
      body: {
        error:
          "d.md is delegated to secutools (job j_7); its job runs remotely, and requeueing it could run it twice; nothing changed"
      }
    })
    expect(await post(open, "/api/tasks/d2.md/requeue")).toMatchObject({
      status: 409,
      body: {
        error:
          "d2.md is delegated to secutools (job j_8); its job runs remotely, and requeueing it could run it twice; nothing changed"
      }
    })
    expect(await post(open, "/api/tasks/f.md/requeue")).toMatchObject({
      status: 409,
      body: {
        error: "f.md is in failed/; only an active task can be requeued (use retry for a finished one); nothing changed"
      }
    })
    expect(await post(open, "/api/tasks/x.md/requeue")).toMatchObject({ status: 404 })
    expect(open.stopped).toStrictEqual([])
    expect(existsSync(join(open.root, "pending", "d.md"))).toBe(true)
  })

  it("requeue applies to the run observed: a task finished while its turn was being stopped stays finished", async () => {
    open.write("active", "a.md", FILES.assigned)
    // The agent's completion lands as the turn is stopped (written as the daemon would, without the lock).
    open.onStop = () => {
      writeFileSync(join(open.root, "active", "a.md"), FILES.assigned.replace("state: assigned", "state: done"))
      renameSync(join(open.root, "active", "a.md"), join(open.root, "done", "a.md"))
    }
    expect(await post(open, "/api/tasks/a.md/requeue")).toMatchObject({
      status: 409,
      body: { error: "a.md ended while its session was being interrupted (see its stage now); nothing changed" }
    })
    expect(readdirStages(open.root)).toStrictEqual(["done/a.md"])
    expect(open.changes()).toBe(0)
  })
})

describe("requeue without a daemon (a command holding the queue's lock)", () => {
  it("changes the file alone and says the session was not interrupted", async () => {
    open.write("active", "a.md", FILES.assigned)
    const result = await Effect.runPromise(
      performOperation(TaskName.make("a.md"), { op: "requeue", task: "a.md" }).pipe(
        Effect.provide(FsTaskStoreLayer({ root: open.root }))
      )
    )
    expect(result).toStrictEqual({
      code: 0,
      message:
        "a.md is back in pending/: run r1 was taken back from session claude-1, which was NOT interrupted (no daemon is " +
        "running): stop its turn yourself if it is still working; the attempt is not counted"
    })
    expect(existsSync(join(open.root, "pending", "a.md"))).toBe(true)
  })

  it("with --run of an ended run, is refused (exit 3) and changes nothing", async () => {
    open.write("active", "a.md", FILES.assigned)
    const result = await Effect.runPromise(
      performOperation(TaskName.make("a.md"), { op: "requeue", task: "a.md", run: "r0" }).pipe(
        Effect.provide(FsTaskStoreLayer({ root: open.root }))
      )
    )
    expect(result).toStrictEqual({ code: 3, message: "refused: a.md is now run r1; run r0 has ended; nothing changed" })
    expect(existsSync(join(open.root, "active", "a.md"))).toBe(true)
  })
})

describe("GET /api/tasks with the queue at hand", () => {
  it("done/ and failed/ entries carry reason and finished_at from their files", async () => {
    open.write("done", "d.md", FILES.done)
    open.write("failed", "f.md", FILES.failed)
    open.write("failed", "plain.md", "No frontmatter, no footer.\n")
    const snapshot: Snapshot = {
      ...emptySnapshot,
      tasks: {
        pending: [],
        active: [],
        done: [{ name: TaskName.make("d.md"), state: "done" }],
        failed: [{ name: TaskName.make("f.md"), state: "failed" }, { name: TaskName.make("plain.md"), state: "failed" }]
      }
    }
    const scope = await Effect.runPromise(Scope.make())
    try {
      const url = await Effect.runPromise(
        serveHttpApi({ host: "127.0.0.1", port: 0, token: Option.none() }).pipe(
          Scope.provide(scope),
          Effect.provide(Layer.merge(statusOf(snapshot), FsTaskStoreLayer({ root: open.root })))
        )
      )
      const body = Schema.decodeUnknownSync(TasksStatus)(await (await fetch(`${url}/api/tasks`)).json(), {
        onExcessProperty: "error"
      })
      expect(body.done).toStrictEqual([{
        name: "d.md",
        state: "done",
        reason: "session claude-1 · took 41s",
        finished_at: AT
      }])
      expect(body.failed).toStrictEqual([
        { name: "f.md", state: "failed", reason: "the tests do not pass", finished_at: AT },
        { name: "plain.md", state: "failed" }
      ])
      // The page at / is served without a token, with a policy that allows only its own script and origin.
      const page = await fetch(`${url}/`)
      expect(page.status).toBe(200)
      expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8")
      expect(page.headers.get("content-security-policy")).toMatch(
        /script-src 'sha256-[A-Za-z0-9+/=]+'; .*connect-src 'self'.*frame-ancestors 'none'/
      )
      expect(await page.text()).toContain("<title>claude-failover status</title>")
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  })

  it("order=recent lists a finished stage latest first, by the file's time, and is refused elsewhere", async () => {
    const names = ["a.md", "b.md", "c.md", "d.md"]
    // Finished in the order c, a, d, b: name order and finish order differ.
    const finishedAt = { "c.md": 1_000, "a.md": 2_000, "d.md": 3_000, "b.md": 4_000 } as const
    for (const name of names) {
      open.write("done", name, FILES.done)
      const at = new Date(Date.parse(AT) + finishedAt[name as keyof typeof finishedAt])
      utimesSync(join(open.root, "done", name), at, at)
    }
    const snapshot: Snapshot = {
      ...emptySnapshot,
      tasks: {
        pending: [],
        active: [],
        done: names.map((name) => ({ name: TaskName.make(name), state: "done" })),
        failed: []
      }
    }
    const scope = await Effect.runPromise(Scope.make())
    try {
      const url = await Effect.runPromise(
        serveHttpApi({ host: "127.0.0.1", port: 0, token: Option.none() }).pipe(
          Scope.provide(scope),
          Effect.provide(Layer.merge(statusOf(snapshot), FsTaskStoreLayer({ root: open.root })))
        )
      )
      const recent = async (query: string) => {
        const response = await fetch(`${url}/api/tasks?${query}`)
        return { status: response.status, body: await response.json() as { done?: ReadonlyArray<{ name: string }> } }
      }
      expect((await recent("stage=done&order=recent&limit=3")).body.done?.map((t) => t.name)).toStrictEqual([
        "b.md",
        "d.md",
        "a.md"
      ])
      expect((await recent("stage=done&limit=3")).body.done?.map((t) => t.name)).toStrictEqual(["a.md", "b.md", "c.md"])
      for (const query of ["order=recent", "stage=pending&order=recent", "stage=done&order=recent&after=a.md"]) {
        expect((await recent(query)).status).toBe(400)
      }
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  })
})
