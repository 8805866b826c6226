/** `claude-failover task done|fail|retry|cancel|requeue|list|show` as an agent or a person runs it, with no daemon running. */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { spawn, spawnSync } from "node:child_process"
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { frontmatter, Queue } from "../e2e/support.ts"

const BIN = join(import.meta.dirname, "../../bin/claude-failover.js")
const queues: Array<Queue> = []
afterEach(() => {
  for (const queue of queues.splice(0)) queue.remove()
})

/** Runs the CLI from another directory, with none of the daemon's variables. */
const cli = (args: ReadonlyArray<string>) => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== "QUEUE_DIR"))
  const result = spawnSync(process.execPath, [BIN, ...args], { cwd: tmpdir(), env, encoding: "utf8" })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

const ACTIVE =
  "---\ntitle: Fix login\nowner: ana\nstate: assigned\nrun: r1\nsession: claude-2\nassigned_at: 2026-11-24T10:00:00.000Z\nattempts: 1\n---\nFix the login redirect.\n"

const withActiveTask = (text = ACTIVE) => {
  const queue = new Queue()
  queues.push(queue)
  writeFileSync(join(queue.root, "active", "fix-login.md"), text)
  return queue
}
const snapshot = (queue: Queue) =>
  ["pending", "active", "done", "failed"].map((stage) => [stage, readdirSync(join(queue.root, stage)).sort()])

describe("claude-failover task done|fail", () => {
  it("done moves the task of its run to done/ with state, finished_at and a footer; unknown fields and body kept", () => {
    const queue = withActiveTask()
    const { code, stdout } = cli([
      "task",
      "done",
      "fix-login",
      "--run",
      "r1",
      "--queue-dir",
      queue.root,
      "--summary",
      "Redirect fixed"
    ])
    expect(code).toBe(0)
    expect(stdout.trim()).toMatch(/^fix-login\.md done \(session claude-2, took [^)]+\)$/)
    expect(queue.tasks("active")).toStrictEqual([])
    const text = queue.read("done", "fix-login.md")
    expect(frontmatter(text)).toMatchObject({
      owner: "ana",
      state: "done",
      run: "r1",
      session: "claude-2",
      attempts: "1"
    })
    expect(frontmatter(text).finished_at).toMatch(/^\d{4}-\d\d-\d\dT/)
    expect(text).toContain("Fix the login redirect.\n")
    expect(text).toMatch(/claude-failover: done · \S+ · session claude-2 · took [^\n]+\n\nRedirect fixed\n$/)
    // No lock and no request left behind.
    expect(readdirSync(queue.root).filter((f) => f.startsWith(".lock.json"))).toStrictEqual([])
    expect(readdirSync(join(queue.root, "requests"))).toStrictEqual([])
  })

  it("fail moves the task to failed/ with the reason", () => {
    const queue = withActiveTask()
    const { code } = cli([
      "task",
      "fail",
      "fix-login.md",
      "--run",
      "r1",
      "--queue-dir",
      queue.root,
      "--reason",
      "tests do not pass"
    ])
    expect(code).toBe(0)
    expect(frontmatter(queue.read("failed", "fix-login.md")).state).toBe("failed")
    expect(queue.read("failed", "fix-login.md")).toContain("Reason: tests do not pass\n")
  })

  it("a completion for another run is refused with exit 3 and changes nothing", () => {
    const queue = withActiveTask(ACTIVE.replace("run: r1", "run: r2").replace("claude-2", "claude-3"))
    const before = snapshot(queue)
    const late = cli(["task", "done", "fix-login", "--run", "r1", "--queue-dir", queue.root])
    expect(late.code).toBe(3)
    expect(late.stderr.trim()).toBe(
      "claude-failover: refused: fix-login.md is now run r2 on claude-3; this completion is for run r1, which the daemon already ended; nothing changed"
    )
    expect(snapshot(queue)).toStrictEqual(before)
    expect(queue.read("active", "fix-login.md")).toBe(
      ACTIVE.replace("run: r1", "run: r2").replace("claude-2", "claude-3")
    )
  })

  it("a completion for a run whose task went back to the queue is refused too", () => {
    const queue = new Queue()
    queues.push(queue)
    writeFileSync(
      join(queue.root, "pending", "t.md"),
      "---\nstate: pending\nattempts: 1\nhistory:\n  - at: 2026-11-24T10:00:00Z\n    event: requeued\n    cause: usage_limit\n    run: r1\n    reason: session claude-1 hit its usage limit\n---\nWork.\n"
    )
    const late = cli(["task", "done", "t.md", "--run", "r1", "--queue-dir", queue.root])
    expect(late.code).toBe(3)
    expect(late.stderr).toContain("t.md is back in pending/: session claude-1 hit its usage limit; run r1 has ended")
    expect(queue.tasks("pending")).toStrictEqual(["t.md"])
  })

  it("the same completion twice answers 'already done'; an unknown NAME is an error; nothing changes", () => {
    const queue = withActiveTask()
    const unknown = cli(["task", "done", "nope", "--queue-dir", queue.root])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr.trim()).toBe("claude-failover: no task 'nope.md' in the queue; nothing changed")

    expect(cli(["task", "done", "fix-login", "--run", "r1", "--queue-dir", queue.root]).code).toBe(0)
    const done = queue.read("done", "fix-login.md")
    const twice = cli(["task", "done", "fix-login", "--run", "r1", "--queue-dir", queue.root])
    expect(twice.code).toBe(0)
    expect(twice.stdout.trim()).toBe("fix-login.md was already done (run r1); nothing changed")
    const fail = cli(["task", "fail", "fix-login", "--run", "r1", "--queue-dir", queue.root, "--reason", "late"])
    expect(fail.code).toBe(1)
    expect(fail.stderr).toContain("already ended in done/ (run r1)")
    expect(queue.read("done", "fix-login.md")).toBe(done)
  })

  it("a name that cannot be a task (a leading dash, a slash) is refused before anything is read", () => {
    const queue = withActiveTask()
    for (const name of ["-x.md", "../escape.md", "a/b.md"]) {
      const result = cli(["task", "done", "--queue-dir", queue.root, "--", name])
      expect(result.code).toBe(1)
      expect(result.stderr).toContain(`'${name}' is not a task file name`)
    }
  })

  it("a queue directory that does not exist is an error, not a new queue", () => {
    const missing = join(tmpdir(), `cf-no-queue-${process.pid}`)
    const result = cli(["task", "done", "t", "--queue-dir", missing])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`no queue at ${missing}`)
  })

  it("fail without --reason is a usage error", () => {
    const queue = withActiveTask()
    expect(cli(["task", "fail", "fix-login", "--queue-dir", queue.root]).code).toBe(2)
    expect(queue.tasks("active")).toStrictEqual(["fix-login.md"])
  })
})

describe("claude-failover task retry|cancel", () => {
  it("retry puts a failed task back in pending/: run fields and the old footer go, attempts and history stay", () => {
    const queue = withActiveTask()
    cli(["task", "fail", "fix-login", "--run", "r1", "--queue-dir", queue.root, "--reason", "flaky network"])
    const retried = cli(["task", "retry", "fix-login", "--queue-dir", queue.root])
    expect(retried.code).toBe(0)
    expect(retried.stdout.trim()).toBe("fix-login.md is back in pending/")
    const text = queue.read("pending", "fix-login.md")
    expect(frontmatter(text)).toMatchObject({ state: "pending", attempts: "1", owner: "ana" })
    for (const field of ["run", "session", "assigned_at", "finished_at"])
      expect(frontmatter(text)).not.toHaveProperty(field)
    expect(text).toContain("event: retried")
    expect(text).toContain("run: r1")
    expect(text.endsWith("Fix the login redirect.\n")).toBe(true)
    // A second retry (say, after its answer was lost) changes nothing and says so.
    const again = cli(["task", "retry", "fix-login", "--queue-dir", queue.root])
    expect(again.code).toBe(0)
    expect(again.stdout.trim()).toBe("fix-login.md is already back in pending/")
    expect(queue.read("pending", "fix-login.md")).toBe(text)
  })

  it("cancel takes a pending task out of the queue into failed/, saying so", () => {
    const queue = new Queue()
    queues.push(queue)
    writeFileSync(join(queue.root, "pending", "later.md"), "Not now.\n")
    expect(cli(["task", "cancel", "later", "--queue-dir", queue.root]).code).toBe(0)
    const text = queue.read("failed", "later.md")
    expect(frontmatter(text)).toMatchObject({ state: "failed" })
    expect(text).toContain("Reason: cancelled by operator")
    expect(readFileSync(join(queue.root, "failed", "later.md"), "utf8")).toContain("event: cancelled")
  })
})

/** The same as `cli`, without blocking: for the read-only commands, several at once. */
const cliAsync = (args: ReadonlyArray<string>) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== "QUEUE_DIR"))
    const child = spawn(process.execPath, [BIN, ...args], { cwd: tmpdir(), env, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.once("error", reject)
    child.once("close", (code) => resolve({ code, stdout, stderr }))
  })

const FAILED =
  "---\ntitle: Flaky\nstate: failed\nsession: claude-1\nattempts: 2\nfinished_at: 2026-11-24T11:00:00.000Z\n" +
  "history:\n  - at: 2026-11-24T10:30:00.000Z\n    event: requeued\n    cause: usage_limit\n    run: r1\n    session: claude-1\n" +
  "    reason: session claude-1 hit its usage limit\n---\nRun the suite.\n\n---\nclaude-failover: failed · " +
  "2026-11-24T11:00:00.000Z · session claude-1 · took 30m 0s\n\nReason: tests do not pass\n"
const DONE = "---\nstate: done\nprovider: gemini\njob_id: j_7\nattempts: 1\nfinished_at: 2026-11-24T12:00:00.000Z\n" +
  "history:\n  - at: 2026-11-24T11:50:00.000Z\n    event: requeued\n    cause: stale\n    reason: no output for 30m\n---\nSummarise.\n"
const BROKEN = "---\ntitle: x\nallow_delegation: \"yes\"\n---\nbody\n"

const withEveryStage = () => {
  const queue = withActiveTask()
  writeFileSync(join(queue.root, "pending", "later.md"), "Not now.\n")
  writeFileSync(join(queue.root, "pending", "broken.md"), BROKEN)
  writeFileSync(join(queue.root, "failed", "flaky.md"), FAILED)
  writeFileSync(join(queue.root, "done", "summary.md"), DONE)
  return queue
}

describe("claude-failover task list|show", () => {
  it("list reads every stage: state, runner, attempts, and for finished tasks when and why; a broken file is listed with its error", async () => {
    const queue = withEveryStage()
    const before = snapshot(queue)
    const [json, table, failedOnly] = await Promise.all([
      cliAsync(["task", "list", "--json", "--queue-dir", queue.root]),
      cliAsync(["task", "list", "--queue-dir", queue.root]),
      cliAsync(["task", "list", "--stage", "failed", "--json", "--queue-dir", queue.root])
    ])
    expect([json.code, table.code, failedOnly.code], json.stderr + table.stderr).toStrictEqual([0, 0, 0])
    const none = {
      title: null,
      session: null,
      provider: null,
      job_id: null,
      finished_at: null,
      reason: null,
      error: null
    }
    expect(JSON.parse(json.stdout)).toStrictEqual([
      {
        ...none,
        stage: "pending",
        name: "broken.md",
        state: null,
        attempts: 0,
        error: "pending/broken.md:3:1: field 'allow_delegation': Expected boolean, got string \"yes\""
      },
      { ...none, stage: "pending", name: "later.md", state: null, attempts: 0 },
      {
        ...none,
        stage: "active",
        name: "fix-login.md",
        state: "assigned",
        title: "Fix login",
        session: "claude-2",
        attempts: 1
      },
      {
        ...none,
        stage: "done",
        name: "summary.md",
        state: "done",
        provider: "gemini",
        job_id: "j_7",
        attempts: 1,
        finished_at: "2026-11-24T12:00:00.000Z",
        reason: "no output for 30m"
      },
      // The footer's reason, not the earlier requeue's.
      {
        ...none,
        stage: "failed",
        name: "flaky.md",
        state: "failed",
        title: "Flaky",
        session: "claude-1",
        attempts: 2,
        finished_at: "2026-11-24T11:00:00.000Z",
        reason: "tests do not pass"
      }
    ])
    expect(JSON.parse(failedOnly.stdout).map((row: { name: string }) => row.name)).toStrictEqual(["flaky.md"])
    const rows = table.stdout.trimEnd().split("\n").map((line) => line.split(/ {2,}/))
    expect(rows[0]).toStrictEqual(["STAGE", "NAME", "STATE", "SESSION/PROVIDER", "ATTEMPTS", "FINISHED", "REASON"])
    expect(rows.slice(1).map((row) => row.slice(0, 4))).toStrictEqual([
      ["pending", "broken.md", "unreadable", "-"],
      ["pending", "later.md", "-", "-"],
      ["active", "fix-login.md", "assigned", "claude-2"],
      ["done", "summary.md", "done", "gemini j_7"],
      ["failed", "flaky.md", "failed", "claude-1"]
    ])
    expect(rows[5]?.slice(4)).toStrictEqual(["2", "2026-11-24T11:00:00.000Z", "tests do not pass"])
    // Read only: nothing moved, no lock taken.
    expect(snapshot(queue)).toStrictEqual(before)
    expect(readdirSync(queue.root).filter((f) => f.startsWith(".lock"))).toStrictEqual([])
  })

  it("show prints stage, fields in file order, history and body; --json the same as data", async () => {
    const queue = withEveryStage()
    const [text, json] = await Promise.all([
      cliAsync(["task", "show", "flaky", "--queue-dir", queue.root]),
      cliAsync(["task", "show", "fix-login.md", "--json", "--queue-dir", queue.root])
    ])
    expect([text.code, json.code], text.stderr + json.stderr).toStrictEqual([0, 0])
    expect(text.stdout).toBe([
      "flaky.md (failed/)",
      "",
      "Fields",
      "  title: Flaky",
      "  state: failed",
      "  session: claude-1",
      "  attempts: 2",
      "  finished_at: 2026-11-24T11:00:00.000Z",
      "",
      "History",
      "  2026-11-24T10:30:00.000Z requeued (usage_limit) run r1 on claude-1: session claude-1 hit its usage limit",
      "",
      "Body",
      "Run the suite.\n\n---\nclaude-failover: failed · 2026-11-24T11:00:00.000Z · session claude-1 · took 30m 0s\n\nReason: tests do not pass",
      ""
    ].join("\n"))
    expect(JSON.parse(json.stdout)).toStrictEqual({
      name: "fix-login.md",
      stage: "active",
      fields: {
        title: "Fix login",
        owner: "ana",
        state: "assigned",
        run: "r1",
        session: "claude-2",
        assigned_at: "2026-11-24T10:00:00.000Z",
        attempts: 1
      },
      history: [],
      body: "Fix the login redirect.\n"
    })
  })

  it("show: a file that does not parse → exit 1 naming file, line and field; no such task → exit 1 saying so", async () => {
    const queue = withEveryStage()
    const [broken, missing] = await Promise.all([
      cliAsync(["task", "show", "broken", "--queue-dir", queue.root]),
      cliAsync(["task", "show", "nope", "--queue-dir", queue.root])
    ])
    expect(broken.code).toBe(1)
    expect(broken.stdout).toBe("")
    expect(broken.stderr.trim()).toBe(
      `claude-failover: ${queue.root}/pending/broken.md:3:1: field 'allow_delegation': Expected boolean, got string "yes"`
    )
    expect(missing.code).toBe(1)
    expect(missing.stdout).toBe("")
    expect(missing.stderr.trim()).toBe(
      `claude-failover: no task 'nope.md' in ${queue.root} (pending/, active/, done/, failed/)`
    )
  })
})

describe("claude-failover task requeue", () => {
  it("takes an active task back to pending/ as an operator's requeue, saying no session was interrupted", () => {
    const queue = withActiveTask()
    const result = cli(["task", "requeue", "fix-login", "--queue-dir", queue.root])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toContain("fix-login.md is back in pending/")
    expect(result.stdout).toContain("NOT interrupted")
    const text = queue.read("pending", "fix-login.md")
    expect(text).toContain("event: requeued")
    expect(text).toContain("cause: operator")
  })
})

describe("claude-failover task add", () => {
  const fileOf = (name: string, text: string | Uint8Array) => {
    const queue = new Queue()
    queues.push(queue)
    const path = join(queue.root, name)
    writeFileSync(path, text)
    return path
  }

  it("adds the file to pending/ as it is; a name any task uses gets a free one, never overwriting", () => {
    const queue = withActiveTask()
    const text = "---\npriority: 2\n---\nWrite the release notes.\n"
    const path = fileOf("notes.md", text)
    const added = cli(["task", "add", path, "--queue-dir", queue.root])
    expect(added.code, added.stderr).toBe(0)
    expect(added.stdout).toBe(`added notes.md to pending/ of ${queue.root}\n`)
    expect(queue.read("pending", "notes.md")).toBe(text)
    // Taken in pending/ by the first, and in active/ by a running task: each added under a free name.
    expect(cli(["task", "add", path, "--queue-dir", queue.root]).stdout).toContain("added as notes-2.md")
    const clash = cli(["task", "add", path, "--name", "fix-login", "--queue-dir", queue.root])
    expect(clash.stdout).toBe(
      `added as fix-login-2.md to pending/ of ${queue.root} (fix-login.md is another task's name)\n`
    )
    expect(queue.read("active", "fix-login.md")).toBe(ACTIVE)
    expect(snapshot(queue)).toStrictEqual([
      ["pending", ["fix-login-2.md", "notes-2.md", "notes.md"]],
      ["active", ["fix-login.md"]],
      ["done", []],
      ["failed", []]
    ])
  })

  it("refuses what the daemon could not read, naming the file and the problem; nothing is written", () => {
    const queue = withActiveTask()
    const cases: ReadonlyArray<readonly [string, string | Uint8Array, RegExp, ReadonlyArray<string>?]> = [
      ["bad-field.md", "---\npriority: urgent\n---\nSoon.\n", /bad-field\.md: .*priority/],
      ["latin1.md", Uint8Array.from([0x66, 0xe9, 0x65, 0x0a]), /latin1\.md: .*UTF-8/],
      ["huge.md", "x".repeat(2048), /huge\.md is 2048 bytes; task files may have at most 1024/, [
        "MAX_TASK_SIZE",
        "1024"
      ]]
    ]
    for (const [name, text, problem, env] of cases) {
      const path = fileOf(name, text)
      const args = ["task", "add", path, "--queue-dir", queue.root]
      const run = env === undefined ? cli(args) : cliWith(args, { [env[0] ?? ""]: env[1] ?? "" })
      expect(run.code, name).toBe(1)
      expect(run.stderr, name).toMatch(problem)
    }
    const hidden = cli(["task", "add", fileOf("plain.md", "Plain.\n"), "--name", ".hidden", "--queue-dir", queue.root])
    expect(hidden.stderr).toMatch(/'\.hidden' cannot be a task's name/)
    expect(cli(["task", "add", join(queue.root, "missing.md"), "--queue-dir", queue.root]).stderr).toMatch(
      /missing\.md: ENOENT/
    )
    expect(snapshot(queue)[0]).toStrictEqual(["pending", []])
  })
})

/** As `cli`, with some settings of the environment. */
const cliWith = (args: ReadonlyArray<string>, extra: Record<string, string>) => {
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== "QUEUE_DIR")), ...extra }
  const result = spawnSync(process.execPath, [BIN, ...args], { cwd: tmpdir(), env, encoding: "utf8" })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}
