/**
 * `claude-failover task list|show|done|retry` with QUEUE_BACKEND=postgres and no daemon running: they read and change
 * the shared queue's rows (every host's), not the host's directory, and say where they looked.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as PgClient from "@effect/sql-pg/PgClient"
import { execFileSync, spawnSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { migrate } from "../../src/adapters/pg/schema.ts"
import { makePgTaskStore } from "../../src/adapters/pg/task-store.ts"
import { TaskName } from "../../src/domain/task.ts"
import { TEST_DATABASE_URL } from "../adapters/pg-database.ts"
import { Queue } from "../e2e/support.ts"

const BIN = join(import.meta.dirname, "../../bin/claude-failover.js")
const DATABASE = `cf_cli_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
/** TEST_DATABASE_URL's server, with another database in the path. */
const onDatabase = (database: string) => {
  const url = new URL(TEST_DATABASE_URL)
  url.pathname = `/${database}`
  return url.toString()
}
const databaseUrl = onDatabase(DATABASE)
const psql = (sql: string) => execFileSync("psql", [onDatabase("postgres"), "-c", sql], { stdio: "ignore" })

const ACTIVE =
  "---\nstate: assigned\nrun: r1\nsession: claude-1\nhost: box-2\nassigned_at: 2026-11-26T10:00:00.000Z\n" +
  "attempts: 1\n---\nFix the login redirect.\n"

const queue = new Queue()

beforeAll(async () => {
  psql(`CREATE DATABASE ${DATABASE}`)
  await Effect.runPromise(
    Effect.gen(function*() {
      yield* migrate
      const store = yield* makePgTaskStore()
      yield* store.create("pending", TaskName.make("waiting.md"), "Wait your turn.\n")
      yield* store.create("active", TaskName.make("fix-login.md"), ACTIVE)
    }).pipe(
      Effect.provide(Layer.mergeAll(PgClient.layer({ url: Redacted.make(databaseUrl) }), NodeServices.layer))
    )
  )
}, 30_000)

afterAll(() => {
  queue.remove()
  psql(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`)
})

/** The CLI as a person runs it on a host of the shared queue, from another directory. */
const cli = (args: ReadonlyArray<string>, url = databaseUrl) => {
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("QUEUE_"))),
    QUEUE_DIR: queue.root,
    QUEUE_BACKEND: "postgres",
    DATABASE_URL: url
  }
  const result = spawnSync(process.execPath, [BIN, ...args], { cwd: tmpdir(), env, encoding: "utf8" })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

describe("claude-failover task on a shared queue", () => {
  it("list and show read the shared queue's rows, naming each run's session with its host", () => {
    const listed = cli(["task", "list", "--json"])
    expect(listed.code, listed.stderr).toBe(0)
    const rows = JSON.parse(listed.stdout) as ReadonlyArray<{ readonly name: string; readonly session: string | null }>
    expect(rows.map((row) => [row.name, row.session])).toStrictEqual([
      ["waiting.md", null],
      ["fix-login.md", "claude-1 on box-2"]
    ])
    const shown = cli(["task", "show", "fix-login"])
    expect(shown.code).toBe(0)
    expect(shown.stdout).toContain("fix-login.md (active/)")
    expect(shown.stdout).toContain("host: box-2")
    // The Markdown as the row holds it, byte for byte: what `cat active/fix-login.md` shows on one host.
    expect(cli(["task", "show", "fix-login.md", "--raw"]).stdout).toBe(ACTIVE)
    const missing = cli(["task", "show", "nope"])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain("no task 'nope.md' in the shared queue")
  })

  it("with no daemon running, a completion is applied to the row, checked against its run", () => {
    const stale = cli(["task", "done", "fix-login", "--run", "r0"])
    expect(stale.code).toBe(3)
    expect(stale.stderr).toContain("claude-1 on box-2")
    const done = cli(["task", "done", "fix-login", "--run", "r1"])
    expect(done.code, done.stderr).toBe(0)
    expect(done.stdout).toContain("fix-login.md done (session claude-1 on box-2")
    const shown = cli(["task", "show", "fix-login", "--json"])
    const fields = JSON.parse(shown.stdout) as { readonly stage: string; readonly body: string }
    expect(fields.stage).toBe("done")
    expect(fields.body).toContain("session claude-1 on box-2")
    // The host's directory was not touched.
    expect(queue.tasks("done")).toStrictEqual([])
  })

  it("add puts a file into the shared queue as a row, under a free name when any host's task has it", () => {
    const file = join(queue.root, "waiting.md")
    writeFileSync(file, "---\npriority: 1\n---\nAdded from the command line.\n")
    const added = cli(["task", "add", file])
    expect(added.code, added.stderr).toBe(0)
    expect(added.stdout).toBe(
      "added as waiting-2.md to pending/ of the shared queue (waiting.md is another task's name)\n"
    )
    const shown = cli(["task", "show", "waiting-2", "--json"])
    expect(JSON.parse(shown.stdout)).toMatchObject({ stage: "pending", body: "Added from the command line.\n" })
    // A NUL byte, which the shared queue cannot hold: refused, nothing written.
    writeFileSync(file, "Half\u0000way.\n")
    const refused = cli(["task", "add", file, "--name", "nul"])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain("NUL")
    expect(cli(["task", "show", "nul"]).code).toBe(1)
    // The host's directory is only its drop box: the row is not a file there.
    expect(queue.tasks("pending")).toStrictEqual([])
  })

  it("a database that cannot be reached is said, without the URL's password", () => {
    const down = cli(["task", "list"], "postgres://app:hunter2@127.0.0.1:1/none")
    expect(down.code).toBe(1)
    expect(down.stderr).toContain("Failed to connect")
    expect(down.stderr).not.toContain("hunter2")
  })
})
