/**
 * The completion line (`task done|fail NAME --run RUN --queue-dir DIR`) as agents run it: through a running daemon
 * without the full CLI, and, in every other case, exactly the full command's behaviour. Each run records which modules
 * it loaded (a resolve hook), so a test can tell which path answered.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from "@effect/vitest"
import { execFileSync, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { pathToFileURL } from "node:url"
import { Option, Schema } from "effect"
import fc from "fast-check"
import { isTaskName, parseCompletionLine } from "../../src/adapters/cli/quick-completion.ts"
import { RequestFile } from "../../src/adapters/request-files.ts"
import { doneCommand, failCommand } from "../../src/domain/prompt.ts"
import { type TaskName, taskNameFrom, taskNameProblem } from "../../src/domain/task.ts"
import { checkInvariants } from "../e2e/invariants.ts"
import { Daemon, frontmatter, Queue, ROOT, waitFor } from "../e2e/support.ts"

const BIN = join(ROOT, "bin/claude-failover.js")
const MAIN = join(ROOT, "src/main.ts")
const QUICK = join(ROOT, "src/adapters/cli/quick-completion.ts")
const TASK_COMMANDS = join(ROOT, "src/adapters/cli/task-commands.ts")

const scratch = mkdtempSync(join(tmpdir(), "cf-quick-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A module hook that appends every module URL the process resolves to `file`. */
const traceHook = (file: string): string => {
  const hook = join(scratch, `hook-${Math.random().toString(36).slice(2)}.mjs`)
  writeFileSync(
    hook,
    [
      `import { appendFileSync } from "node:fs"`,
      `import { registerHooks } from "node:module"`,
      `registerHooks({ resolve(specifier, context, next) {`,
      `  const resolved = next(specifier, context)`,
      `  appendFileSync(${JSON.stringify(file)}, resolved.url + "\\n")`,
      `  return resolved`,
      `} })`
    ].join("\n")
  )
  return pathToFileURL(hook).href
}

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  /** The modules it loaded, node: built-ins left out. */
  readonly loaded: ReadonlyArray<string>
}

/** The environment an agent's shell might have: none of the daemon's queue or secutools settings. */
const agentEnv = () =>
  Object.fromEntries(
    Object.entries(process.env).filter(([key]) => key !== "QUEUE_DIR" && !key.startsWith("SECUTOOLS_"))
  )

/** Starts `node ENTRY ARGS` from another directory; `started` has the child, `result` its end. */
const start = (entry: string, args: ReadonlyArray<string>) => {
  const trace = join(scratch, `trace-${Math.random().toString(36).slice(2)}.txt`)
  writeFileSync(trace, "")
  const child = spawn(process.execPath, ["--import", traceHook(trace), entry, ...args], {
    cwd: tmpdir(),
    env: agentEnv(),
    stdio: ["ignore", "pipe", "pipe"]
  })
  const loaded = () => readFileSync(trace, "utf8").split("\n").filter((url) => url !== "" && !url.startsWith("node:"))
  let stdout = ""
  let stderr = ""
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  const result = new Promise<Run>((resolve, reject) => {
    child.once("error", reject)
    child.once("close", (code) => resolve({ code, stdout, stderr, loaded: loaded() }))
  })
  return { child, result, loaded }
}
const cli = (args: ReadonlyArray<string>) => start(BIN, args).result
/** The full CLI, as every command ran before the quick path existed. */
const fullCli = (args: ReadonlyArray<string>) => start(MAIN, args).result

const fileUrl = (path: string) => pathToFileURL(path).href
/** What the quick path may load: the entry point, its Node check, and the quick module. */
const QUICK_ONLY = [join(ROOT, "bin/claude-failover.js"), join(ROOT, "bin/node-guard.js"), QUICK].map(fileUrl)
const handedOver = (run: Run) => run.loaded.includes(fileUrl(MAIN))
/** Answered by the quick module, which loaded nothing beyond node built-ins (no Effect, no yaml, no other module). */
const expectQuickOnly = (run: Run) => {
  expect(run.loaded).toContain(fileUrl(QUICK))
  expect(run.loaded.filter((url) => !QUICK_ONLY.includes(url))).toStrictEqual([])
}

const newQueue = () => {
  const queue = new Queue()
  cleanups.push(() => queue.remove())
  return queue
}

/** A dry-run daemon whose sessions never finish on their own: only the test's commands complete tasks. */
const startDaemon = async (root: string) => {
  // The caller's secutools settings blanked (blank counts as unset): every task stays local.
  const noSecutools = Object.keys(process.env).filter((key) => key.startsWith("SECUTOOLS_")).map((key) => [key, ""])
  const daemon = new Daemon({
    ...Object.fromEntries(noSecutools),
    QUEUE_DIR: root,
    SESSIONS_MODE: "dry-run",
    DRY_RUN_DELAY: "1h"
  })
  await daemon.ready()
  return daemon
}

/** Call inside a test: the daemon's output, printed if the test fails. */
const showOnFailure = (daemon: Daemon) =>
  onTestFailed(() => console.log(`--- daemon output ---\n${daemon.output}--- end of daemon output ---`))

const readIfThere = (path: string): string | undefined => {
  try {
    return readFileSync(path, "utf8")
  } catch {
    return undefined
  }
}

/** The run of `name` once it is active and its prompt was typed. */
const runOf = (queue: Queue, name: string) =>
  waitFor(`${name} active and started`, () => {
    const fields = frontmatter(readIfThere(join(queue.root, "active", name)) ?? "")
    return fields.started_at !== undefined && fields.run
  })

const requestFiles = (queue: Queue) =>
  existsSync(join(queue.root, "requests")) ? readdirSync(join(queue.root, "requests")) : []

describe("the completion line while a daemon runs", () => {
  let queue: Queue
  let daemon: Daemon
  const runs: Record<string, string> = {}
  beforeAll(async () => {
    queue = new Queue()
    for (const name of ["fix-login.md", "flaky.md"]) writeFileSync(join(queue.root, "pending", name), `Do ${name}.\n`)
    daemon = await startDaemon(queue.root)
    for (const name of ["fix-login.md", "flaky.md"]) runs[name] = await runOf(queue, name)
  })
  afterAll(async () => {
    await daemon.stop("SIGKILL")
    queue.remove()
  })

  it("is answered by the daemon, loading nothing but node built-ins: another run's refused (exit 3), its own done", async () => {
    showOnFailure(daemon)
    const run = runs["fix-login.md"] ?? ""
    const before = queue.read("active", "fix-login.md")
    const late = await cli(["task", "done", "fix-login", "--run", "r-gone", "--queue-dir", queue.root])
    expect(late.code).toBe(3)
    expect(late.stdout).toBe("")
    expect(late.stderr).toMatch(
      new RegExp(
        `^claude-failover: refused: fix-login\\.md is now run ${run} on claude-[12]; this completion is for run ` +
          "r-gone, which the daemon already ended; nothing changed\\n$"
      )
    )
    expect(queue.read("active", "fix-login.md")).toBe(before)
    expectQuickOnly(late)

    const done = await cli(["task", "done", "fix-login", "--run", run, "--queue-dir", queue.root, "--summary", "ok"])
    expect(done.stderr).toBe("")
    expect(done.stdout).toMatch(/^fix-login\.md done \(session claude-[12], took [^)]+\)\n$/)
    expect(done.code).toBe(0)
    expectQuickOnly(done)
    expect(queue.tasks("done")).toContain("fix-login.md")
    expect(frontmatter(queue.read("done", "fix-login.md"))).toMatchObject({ state: "done", run })
    expect(queue.read("done", "fix-login.md")).toMatch(/\n\nok\n$/)
    // The daemon applied it, and logged who asked.
    await waitFor("the daemon to log the completion", () => daemon.output.includes("fix-login.md done ("))
    expect(daemon.output).toMatch(/fix-login\.md done \([^)]+\), asked by pid \d+/)
    expect(requestFiles(queue).filter((file) => file.endsWith(".json") || file.endsWith(".reply"))).toStrictEqual([])
  })

  it("fail, its flags in another order and as --flag=value: the task in failed/ with the reason", async () => {
    showOnFailure(daemon)
    const run = runs["flaky.md"] ?? ""
    const failed = await cli([
      "task",
      "fail",
      `--queue-dir=${queue.root}`,
      "--reason=tests do not pass",
      "flaky.md",
      "--run",
      run
    ])
    expect(failed.stderr).toBe("")
    expect(failed.stdout).toMatch(/^flaky\.md failed \(session claude-[12], took [^,]+, reason: tests do not pass\)\n$/)
    expect(failed.code).toBe(0)
    expectQuickOnly(failed)
    expect(frontmatter(queue.read("failed", "flaky.md"))).toMatchObject({ state: "failed", run })
    expect(queue.read("failed", "flaky.md")).toContain("Reason: tests do not pass\n")
  })

  it(
    "any other command line is the full command's, as before: help, list, no --run or --reason, a bad name, no queue",
    async () => {
      showOnFailure(daemon)
      const missing = join(tmpdir(), `cf-no-queue-${process.pid}`)
      const lines = [
        ["task", "done", "--help"],
        ["task", "list", "--json", "--queue-dir", queue.root],
        ["task", "done", "nope", "--queue-dir", queue.root],
        ["task", "fail", "nope", "--run", "r1", "--queue-dir", queue.root],
        ["task", "done", "nope", "--run", "r1", "--run", "r2", "--queue-dir", queue.root],
        ["task", "done", "a/b", "--run", "r1", "--queue-dir", queue.root],
        ["task", "done", "nope", "--run", "r1", "--queue-dir", missing],
        ["task", "done", "nope", "--run", "r1", "--summary", "-x", "--queue-dir", queue.root],
        ["task", "done", "nope", "--run", "r1", "--queue-dir", queue.root, "--config", join(missing, "config.yaml")]
      ]
      for (const line of lines) {
        const [now, before] = await Promise.all([cli(line), fullCli(line)])
        expect({ code: now.code, stdout: now.stdout, stderr: now.stderr }, line.join(" ")).toStrictEqual({
          code: before.code,
          stdout: before.stdout,
          stderr: before.stderr
        })
        expect(handedOver(now), line.join(" ")).toBe(true)
      }
    },
    120_000
  )
})

describe("the completion line with no daemon", () => {
  const ACTIVE =
    "---\nstate: assigned\nrun: r1\nsession: claude-2\nassigned_at: 2026-11-24T10:00:00.000Z\nattempts: 1\n" +
    "---\nFix the login redirect.\n"
  const withActiveTask = () => {
    const queue = newQueue()
    writeFileSync(join(queue.root, "active", "fix-login.md"), ACTIVE)
    return queue
  }

  it("is the full command's: it takes the queue's lock and moves the task itself", async () => {
    const queue = withActiveTask()
    const done = await cli(["task", "done", "fix-login", "--run", "r1", "--queue-dir", queue.root])
    expect(done.stderr).toBe("")
    expect(done.stdout).toMatch(/^fix-login\.md done \(session claude-2, took [^)]+\)\n$/)
    expect(done.code).toBe(0)
    expect(handedOver(done)).toBe(true)
    expect(queue.tasks("done")).toStrictEqual(["fix-login.md"])
    expect(existsSync(join(queue.root, ".lock"))).toBe(true)
    expect(existsSync(join(queue.root, ".lock.json"))).toBe(false)
    expect(requestFiles(queue)).toStrictEqual([])
  })

  it("a lock held by another command (not a daemon) is the full command's too: it waits, then says try again", async () => {
    const queue = withActiveTask()
    const lock = new DatabaseSync(join(queue.root, ".lock"))
    cleanups.push(() => lock.close())
    for (
      const statement of ["PRAGMA journal_mode=MEMORY", "PRAGMA locking_mode=EXCLUSIVE", "BEGIN EXCLUSIVE", "COMMIT"]
    )
      lock.exec(statement)
    writeFileSync(
      join(queue.root, ".lock.json"),
      JSON.stringify({
        pid: process.pid,
        host: "elsewhere",
        kind: "command",
        command: "task retry other.md",
        started_at: "2026-11-24T10:00:00.000Z",
        api: null
      })
    )
    const line = ["task", "done", "fix-login", "--run", "r1", "--queue-dir", queue.root]
    const [now, before] = await Promise.all([cli(line), fullCli(line)])
    expect(now.code).toBe(1)
    expect(now.stderr).toContain(`is locked by 'task retry other.md' (pid ${process.pid} on elsewhere`)
    expect(now.stderr).toContain("; try again")
    expect({ code: now.code, stdout: now.stdout, stderr: now.stderr }).toStrictEqual({
      code: before.code,
      stdout: before.stdout,
      stderr: before.stderr
    })
    expect(handedOver(now)).toBe(true)
    expect(queue.tasks("active")).toStrictEqual(["fix-login.md"])
    expect(requestFiles(queue)).toStrictEqual([])
  })
})

describe("a daemon that dies while the command waits", () => {
  it("SIGKILL: the command withdraws its request, takes over, and the task is done exactly once", async () => {
    const queue = newQueue()
    writeFileSync(join(queue.root, "pending", "orphan.md"), "Do it.\n")
    const daemon = await startDaemon(queue.root)
    cleanups.push(() => daemon.stop("SIGKILL"))
    showOnFailure(daemon)
    const run = await runOf(queue, "orphan.md")
    const pid = daemon.process.pid ?? -1

    // Stopped, the daemon holds the lock but takes no request.
    process.kill(pid, "SIGSTOP")
    cleanups.push(() =>
      daemon.process.exitCode === null && daemon.process.signalCode === null && daemon.process.kill("SIGCONT")
    )
    const command = start(BIN, ["task", "done", "orphan.md", "--run", run, "--queue-dir", queue.root])
    const request = await waitFor("the command's request", () => requestFiles(queue).find((f) => f.endsWith(".json")))
    const text = readFileSync(join(queue.root, "requests", request), "utf8")
    // The file the full command writes: a RequestFile, its keys in the same order.
    const decoded = Schema.decodeUnknownSync(Schema.fromJsonString(RequestFile))(text)
    expect(text).toBe(JSON.stringify({
      id: request.slice(0, -".json".length),
      pid: command.child.pid,
      at: decoded.at,
      operation: { op: "done", task: "orphan.md", run }
    }))
    expect(queue.tasks("active")).toStrictEqual(["orphan.md"])

    process.kill(pid, "SIGKILL")
    await daemon.exited
    const done = await command.result
    expect(done.stderr).toBe("")
    expect(done.stdout).toMatch(/^orphan\.md done \(session claude-[12], took [^)]+\)\n$/)
    expect(done.code).toBe(0)
    expect(done.loaded).toContain(fileUrl(QUICK))
    // Applied by the command itself, with the lock it took held throughout: a daemon restarted meanwhile cannot
    // take the queue and be asked instead (the full CLI's entry is never loaded).
    expect(done.loaded).toContain(fileUrl(TASK_COMMANDS))
    expect(handedOver(done)).toBe(false)
    expect(queue.tasks("done")).toStrictEqual(["orphan.md"])
    const finished = queue.read("done", "orphan.md")
    expect(frontmatter(finished)).toMatchObject({ state: "done", run, attempts: "1" })
    expect(finished.match(/claude-failover: done · /g)).toHaveLength(1)
    expect(checkInvariants(queue.root, { names: ["orphan.md"], allFinished: true }).problems).toStrictEqual([])
  })
})

describe("which command lines are completion lines", () => {
  it("the prompt's done and fail lines, as a shell splits them", () => {
    const queueDir = "/srv/the queue's dir"
    const command = { program: [process.execPath, BIN], queueDir }
    const words = (line: string) =>
      execFileSync("sh", ["-c", `printf '%s\\0' ${line}`], { encoding: "utf8" }).split("\0").slice(2, -1)
    for (const raw of ["fix-login.md", "it's a \"task\" $HOME.md", "über `uname` — ünïcode.md"]) {
      const name: TaskName = Option.getOrThrow(taskNameFrom(raw))
      const run = "r3f9a1c2b7d04"
      expect(parseCompletionLine(words(doneCommand(command, name, run)))).toStrictEqual({
        queueDir,
        operation: { op: "done", task: name, run }
      })
      expect(parseCompletionLine(words(failCommand(command, name, run)))).toStrictEqual({
        queueDir,
        operation: { op: "fail", task: name, reason: "…", run }
      })
    }
  })

  it("flags in any order, as --flag value or --flag=value; anything else is left to the full CLI", () => {
    expect(parseCompletionLine(["task", "done", "--summary=a=b", "--run=r", "x", "--queue-dir", "q"])).toStrictEqual({
      queueDir: "q",
      operation: { op: "done", task: "x.md", run: "r", summary: "a=b" }
    })
    expect(parseCompletionLine(["task", "fail", "--reason", "", "--queue-dir=q", "--run", "r", "x.md"])).toStrictEqual({
      queueDir: "q",
      operation: { op: "fail", task: "x.md", reason: "", run: "r" }
    })
    const left = [
      ["task", "done", "x", "--queue-dir", "q"],
      ["task", "done", "x", "--run", "r"],
      ["task", "done", "x", "--run", "", "--queue-dir", "q"],
      ["task", "done", "x", "--run", "r", "--queue-dir="],
      ["task", "fail", "x", "--run", "r", "--queue-dir", "q"],
      ["task", "done", "x", "--run", "r", "--queue-dir", "q", "--reason", "no"],
      ["task", "fail", "x", "--run", "r", "--queue-dir", "q", "--reason", "r", "--summary", "s"],
      ["task", "done", "x", "y", "--run", "r", "--queue-dir", "q"],
      ["task", "done", "--run", "r", "--queue-dir", "q"],
      ["task", "done", "x", "--run", "r", "--run", "s", "--queue-dir", "q"],
      ["task", "done", "x", "--run", "r", "--queue-dir", "q", "--summary"],
      ["task", "done", "x", "--run", "r", "--queue-dir", "q", "--summary", "-s"],
      ["task", "done", "x", "--run", "r", "--queue-dir", "q", "--help"],
      ["task", "done", "x", "--run", "r", "--queue-dir", "q", "-h"],
      ["task", "done", "x", "--run", "r", "--queue-dir", "q", "--config", "c.yaml"],
      ["task", "done", "--", "x", "--run", "r", "--queue-dir", "q"],
      ["task", "done", "../x", "--run", "r", "--queue-dir", "q"],
      ["task", "retry", "x", "--run", "r", "--queue-dir", "q"],
      ["--config", "c.yaml", "task", "done", "x", "--run", "r", "--queue-dir", "q"],
      []
    ]
    for (const argv of left) expect(parseCompletionLine(argv), argv.join(" ")).toBeUndefined()
  })

  it("a task name is one exactly when the task file's rules say so, `.md` added as the full command adds it", () => {
    const piece = fc.oneof(
      fc.string({ unit: "binary", maxLength: 12 }),
      fc.constantFrom(".", "-", "/", "\\", ".md", "\u0085", "\ud800", "é", "中", "😀")
    )
    const long = fc.string({ unit: fc.constantFrom("a", "é", "中", "😀"), minLength: 40, maxLength: 120 })
    fc.assert(
      fc.property(fc.array(fc.oneof(piece, long), { maxLength: 4 }), (pieces) => {
        const input = pieces.join("")
        const withExtension = input.endsWith(".md") ? input : `${input}.md`
        expect(isTaskName(withExtension)).toBe(taskNameProblem(withExtension) === undefined)
        const line = parseCompletionLine(["task", "done", input, "--run", "r", "--queue-dir", "q"])
        expect(line?.operation.task).toBe(Option.getOrUndefined(taskNameFrom(input)))
      }),
      { numRuns: 2000 }
    )
  })
})
