/**
 * Faults from outside the program, end to end: a second daemon on a queue, a completion from a run the daemon gave up
 * on, a full disk, a read-only or bind-mounted pending/, a restart in the middle of staging work, a flood of stalled
 * API clients. Each test adds a line of figures to the summary printed at the end.
 * Easy to get wrong: the disk and mount faults live in a private mount namespace (`unshare -Urm`), which the test
 * process cannot see; it looks and writes through `/proc/PID/root` and changes mounts with `nsenter`. And a task seen
 * in done/ may still have its active/ name for a moment (a move is link, fsync, unlink): wait for one stage only.
 */
import { afterAll, afterEach, describe, expect, it, onTestFailed } from "@effect/vitest"
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process"
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  unlinkSync,
  writeFileSync
} from "node:fs"
import { get } from "node:http"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { checkInvariants, type FakeCounters, readStandinLog } from "./invariants.ts"
import { Daemon, frontmatter, lastRequeue, Queue, ROOT, TmuxServer, waitFor } from "./support.ts"

const DAEMON = join(ROOT, "bin/claude-failover.js")
const STAGES = ["pending", "active", "done", "failed"] as const

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      await cleanup()
    } catch (error) {
      console.error("cleanup failed:", error)
    }
  }
})

/** One line per scenario, printed at the end. */
const summary: Array<string> = []
afterAll(() => {
  console.log(["fault scenarios:", ...summary.map((line) => `  ${line}`)].join("\n"))
})

/** The environment without any secutools setting of the caller's: delegation only where a test asks for it. */
const cleanEnv = (): Record<string, string> =>
  Object.fromEntries(
    Object.entries(process.env).flatMap(([key, value]) =>
      key.startsWith("SECUTOOLS_") || value === undefined ? [] : [[key, value]]
    )
  )
/** The caller's secutools settings blanked (blank counts as unset), for support's Daemon, which starts from process.env. */
const noSecutools = (): Record<string, string> =>
  Object.fromEntries(Object.keys(process.env).filter((key) => key.startsWith("SECUTOOLS_")).map((key) => [key, ""]))

const DAEMON_DEFAULTS = { POLL_INTERVAL: "250ms", SCAN_INTERVAL: "1s", SETTLE_AFTER: "300ms", API_PORT: "0" }

/** The daemon started through a wrapper (a mount namespace, a descriptor limit); otherwise like support's Daemon. */
class WrappedDaemon {
  readonly process: ChildProcess
  output = ""
  readonly exited: Promise<number | null>

  constructor(wrapper: ReadonlyArray<string>, env: Readonly<Record<string, string>>) {
    const [command = "", ...args] = wrapper
    this.process = spawn(command, [...args, process.execPath, DAEMON], {
      cwd: ROOT,
      env: { ...cleanEnv(), ...DAEMON_DEFAULTS, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    this.process.stdout?.on("data", (chunk: Buffer) => (this.output += chunk.toString()))
    this.process.stderr?.on("data", (chunk: Buffer) => (this.output += chunk.toString()))
    this.exited = new Promise((resolve) => this.process.on("exit", (code) => resolve(code)))
    cleanups.push(() => this.stop("SIGKILL"))
    showOnFailure(`daemon (${wrapper.join(" ").slice(0, 40)}…)`, this)
  }

  get pid(): number {
    return this.process.pid ?? -1
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill(signal)
    return this.exited
  }
}

/**
 * `sh -c 'SETUP && exec node DAEMON'` inside a new user and mount namespace: `unshare` and `sh` exec, so the pid is the
 * daemon's. `sh -c` gets node and the daemon as $0 and $1.
 */
const namespacedDaemon = (setup: string, env: Readonly<Record<string, string>>) =>
  new WrappedDaemon(["unshare", "-Urm", "sh", "-c", `${setup} && exec "$0" "$1"`], env)

/** A path as the namespaced process sees it. */
const inside = (daemon: WrappedDaemon, path: string) => `/proc/${daemon.pid}/root${path}`

/** Runs a shell command in the daemon's user and mount namespace (mount changes there). */
const nsenter = (daemon: WrappedDaemon, command: string) =>
  execFileSync("nsenter", ["-t", String(daemon.pid), "-U", "-m", "--preserve-credentials", "sh", "-c", command], {
    encoding: "utf8"
  })

/** utime + stime of a process, in seconds. */
const cpuSeconds = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  // After the command: state is field 3, utime 14, stime 15 (1-based), so 11 and 12 here.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}
const CLOCK_TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim())

interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** `claude-failover ARGS` as an agent runs it: this Node, this checkout. */
const cli = (args: ReadonlyArray<string>): Promise<CliResult> =>
  new Promise((resolve) => {
    execFile(
      process.execPath,
      [DAEMON, ...args],
      { cwd: ROOT, env: cleanEnv(), timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : null
        resolve({ code, stdout, stderr })
      }
    )
  })

const withDeadline = <A>(what: string, promise: Promise<A>, ms: number): Promise<A> =>
  Promise.race([
    promise,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms)
    )
  ])

const apiUrl = (output: string): string | undefined => /status API listening on (http:\/\/[\d.:]+)/.exec(output)?.[1]

const newQueue = () => {
  const queue = new Queue()
  cleanups.push(() => queue.remove())
  return queue
}

const dryRunDaemon = (root: string, env: Readonly<Record<string, string>> = {}) => {
  const daemon = new Daemon({
    ...noSecutools(),
    QUEUE_DIR: root,
    SESSIONS_MODE: "dry-run",
    DRY_RUN_DELAY: "300ms",
    ...env
  })
  cleanups.push(() => daemon.stop("SIGKILL"))
  showOnFailure(`dry-run daemon ${daemon.process.pid}`, daemon)
  return daemon
}

/** Every name in every stage of the queue at `root`, with the stages holding it. */
const census = (root: string) => {
  const where = new Map<string, Array<string>>()
  for (const stage of STAGES) {
    for (const entry of readdirSync(join(root, stage))) {
      if (entry.endsWith(".md") && !entry.startsWith(".")) where.set(entry, [...(where.get(entry) ?? []), stage])
    }
  }
  return where
}
const tasksIn = (root: string, stage: string) =>
  existsSync(join(root, stage))
    ? readdirSync(join(root, stage)).filter((f) => f.endsWith(".md") && !f.startsWith(".")).sort()
    : []

/** `.cf-*.tmp` files anywhere in the queue: the root, the stages and requests/. */
const tempFiles = (root: string) =>
  ["", ...STAGES, "requests"].flatMap((dir) =>
    existsSync(join(root, dir))
      ? readdirSync(join(root, dir)).filter((f) => f.startsWith(".cf-") && f.endsWith(".tmp")).map((f) => join(dir, f))
      : []
  )

/** A daemon's output, printed when the test fails: the first thing to read. */
const showOnFailure = (label: string, daemon: { readonly output: string }) =>
  onTestFailed(() => console.log(`--- ${label} output ---\n${daemon.output}--- end of ${label} output ---`))

/** GET /healthz on a fresh connection (no pooled keep-alive one that would dodge a full server): answered 200 in time? */
const healthz = (url: string, timeoutMs = 2_000): Promise<boolean> =>
  new Promise((resolve) => {
    const request = get(
      `${url}/healthz`,
      { agent: false, headers: { connection: "close" }, timeout: timeoutMs },
      (response) => {
        response.resume()
        resolve(response.statusCode === 200)
      }
    )
    request.on("timeout", () => request.destroy())
    request.on("error", () => resolve(false))
  })

/** A file of the queue that may be replaced or removed while it is read: undefined then. */
const readIfThere = (path: string): string | undefined => {
  try {
    return readFileSync(path, "utf8")
  } catch {
    return undefined
  }
}

const linesMatching = (output: string, pattern: RegExp) => output.split("\n").filter((line) => pattern.test(line))

describe("faults", () => {
  it("one daemon per queue: a second exits 2 naming the first, a SIGKILLed one frees the queue at once, commands go through the daemon", async () => {
    const queue = newQueue()
    const a = dryRunDaemon(queue.root)
    await waitFor("daemon A to listen", () => apiUrl(a.output), 20_000)

    const bStarted = Date.now()
    const b = dryRunDaemon(queue.root)
    expect(await withDeadline("daemon B to exit", b.exited, 10_000)).toBe(2)
    const bTook = Date.now() - bStarted
    expect(b.output).toContain(`is locked by a daemon (pid ${a.process.pid} `)
    expect(apiUrl(b.output)).toBeUndefined()

    // A is unaffected.
    writeFileSync(join(queue.root, "pending", "after-b.md"), "A task dropped after the second daemon gave up.\n")
    await waitFor("after-b.md in done/", () => queue.tasks("done").includes("after-b.md"), 20_000)

    // SIGKILL: no finalizer runs, .lock.json stays behind naming A. Two daemons started at the same instant on it.
    // First A's dry-run session must have noted that it is idle again, or the next daemon finds it still "working".
    await waitFor(
      "A's dry-run sessions idle",
      () => readIfThere(join(queue.root, ".dry-run-sessions.json")) === "{}",
      10_000
    )
    a.process.kill("SIGKILL")
    await a.exited
    expect(existsSync(join(queue.root, ".lock.json"))).toBe(true)
    const racers = [0, 1].map(() => dryRunDaemon(queue.root, { DRY_RUN_DELAY: "60s" }))
    const raceStarted = Date.now()
    const loserIndex = await withDeadline(
      "one of the two racing daemons to exit",
      Promise.race(racers.map((daemon, index) => daemon.exited.then(() => index))),
      15_000
    )
    const loser = racers[loserIndex]
    const winner = racers[1 - loserIndex]
    if (loser === undefined || winner === undefined) throw new Error("unreachable")
    expect(await loser.exited).toBe(2)
    await waitFor("the winner to listen", () => apiUrl(winner.output), 20_000)
    const winnerUp = Date.now() - raceStarted
    expect(winner.process.exitCode).toBeNull()
    const loserSaid = /is locked by ([^;]+);/.exec(loser.output)?.[1] ?? loser.output.trim()
    // It names the winner (or nobody, if it looked before the winner wrote its label), never A's stale label.
    expect(loserSaid).toMatch(new RegExp(`^(a daemon \\(pid ${winner.process.pid} |another process)`))

    // `task done --run` while a daemon runs: through requests/, applied and logged by the daemon.
    for (const name of ["one.md", "two.md"]) writeFileSync(join(queue.root, "pending", name), `Task ${name}.\n`)
    await waitFor(
      "both tasks active and started",
      () =>
        ["one.md", "two.md"].every((name) =>
          queue.tasks("active").includes(name) && frontmatter(queue.read("active", name)).started_at !== undefined
        ),
      20_000
    )
    const runOne = frontmatter(queue.read("active", "one.md")).run ?? ""
    const runTwo = frontmatter(queue.read("active", "two.md")).run ?? ""
    const through = await cli(["task", "done", "one.md", "--run", runOne, "--queue-dir", queue.root])
    expect(through.code).toBe(0)
    expect(through.stdout).toMatch(/^one\.md done \(session claude-[12], took \d+m?s\)\n$/)
    expect(queue.tasks("done")).toContain("one.md")
    await waitFor("the daemon to log the completion", () => winner.output.includes("one.md done"), 5_000)

    // No daemon: the command takes the lock and does it itself.
    expect(await winner.stop()).toBe(0)
    expect(existsSync(join(queue.root, ".lock.json"))).toBe(false)
    const alone = await cli(["task", "done", "two.md", "--run", runTwo, "--queue-dir", queue.root])
    expect(alone.code).toBe(0)
    expect(alone.stdout).toMatch(/^two\.md done \(session claude-[12], took \d+m?s\)\n$/)
    expect(frontmatter(queue.read("done", "two.md"))).toMatchObject({ state: "done", run: runTwo })

    const { problems } = checkInvariants(queue.root, { names: ["after-b.md", "one.md", "two.md"], allFinished: true })
    expect(problems).toStrictEqual([])
    summary.push(
      `one daemon per queue: 2nd daemon exit 2 after ${bTook} ms naming pid ${a.process.pid}; after SIGKILL two racers → ` +
        `one up in ${winnerUp} ms, the other exit 2 ("${loserSaid}"); task done via daemon and alone: exit 0`
    )
  })

  it("a late completion from a run the watchdog gave up on is refused (exit 3) and logged; the new run's result stands", async () => {
    const tmux = new TmuxServer()
    const queue = newQueue()
    cleanups.push(() => tmux.kill())
    const log = join(queue.root, "standin.log")
    // claude-1 works longer than REQUEUE_AFTER, claude-2 less: long enough to send a completion while its run is active.
    tmux.startStandin("claude-1", { STANDIN_WORK_MS: "8000", STANDIN_NAME: "claude-1", STANDIN_LOG: log })
    tmux.startStandin("claude-2", { STANDIN_WORK_MS: "2500", STANDIN_NAME: "claude-2", STANDIN_LOG: log })
    await waitFor(
      "the stand-ins to show their input box",
      () =>
        ["claude-1", "claude-2"].every((s) =>
          tmux.currentCommand(s) === "node" && tmux.capture(s).includes("? for shortcuts")
        )
    )

    writeFileSync(join(queue.root, "pending", "late.md"), "A task whose first session is slow.\n")
    const daemon = new Daemon({
      ...noSecutools(),
      QUEUE_DIR: queue.root,
      TMUX_SOCKET: tmux.socket,
      STALE_AFTER: "1s",
      REQUEUE_AFTER: "4s"
    })
    cleanups.push(() => daemon.stop("SIGKILL"))
    showOnFailure("daemon", daemon)
    onTestFailed(() => console.log(`--- stand-in log ---\n${readIfThere(log) ?? "(none)"}`))

    const submitted = (session: string) =>
      readStandinLog(log).find((e) => e.session === session && e.event === "submitted")?.run ?? undefined
    const oldRun = await waitFor("claude-1 to get the task", () => submitted("claude-1"), 20_000)
    const newRun = await waitFor("claude-2 to get it after the watchdog", () => submitted("claude-2"), 20_000)
    expect(newRun).not.toBe(oldRun)
    // The completion line of the old run, exactly as its prompt gives it to the agent.
    const oldCompletion = ["task", "done", "late.md", "--run", oldRun, "--queue-dir", queue.root]

    // While the new run is active.
    expect(frontmatter(queue.read("active", "late.md"))).toMatchObject({ run: newRun, session: "claude-2" })
    const whileActive = await cli(oldCompletion)
    expect(whileActive.code).toBe(3)
    expect(whileActive.stderr).toContain(`is now run ${newRun} on claude-2`)
    expect(frontmatter(queue.read("active", "late.md"))).toMatchObject({ state: "assigned", run: newRun })

    // After the new run finished.
    await waitFor("late.md in done/ only", () => census(queue.root).get("late.md")?.join() === "done", 30_000)
    const afterDone = await cli(oldCompletion)
    expect(afterDone.code).toBe(3)
    expect(afterDone.stderr).toContain(`run ${oldRun} has ended`)
    // The new run's own completion, repeated (a retry after a lost answer): "already done", exit 0, nothing changed.
    const repeated = await cli(["task", "done", "late.md", "--run", newRun, "--queue-dir", queue.root])
    expect(repeated).toMatchObject({ code: 0, stdout: `late.md was already done (run ${newRun}); nothing changed\n` })
    await waitFor(
      "claude-1 to end its turn",
      () =>
        readStandinLog(log).find((e) =>
          e.session === "claude-1" && (e.event === "interrupted" || e.event === "completion")
        ),
      10_000
    )
    expect(await daemon.stop()).toBe(0)

    const text = queue.read("done", "late.md")
    expect(frontmatter(text)).toMatchObject({ state: "done", session: "claude-2", run: newRun, attempts: "2" })
    expect(lastRequeue("late.md", text)).toContain("no progress in session claude-1")
    expect(text.match(/claude-failover: done/g)).toHaveLength(1)
    // claude-1's own turn: interrupted when the watchdog took the run back, or — had it gone on — refused like above.
    const events = readStandinLog(log)
    const oldTurn = events.filter((e) => e.session === "claude-1" && e.run === oldRun && e.event !== "submitted")
    expect(oldTurn.every((e) => e.event === "interrupted" || (e.event === "completion" && e.exit === 3))).toBe(true)
    const refusals = linesMatching(daemon.output, /refused/)
    expect(refusals.filter((line) => line.includes(`run ${oldRun}`) && line.includes("late.md"))).toHaveLength(2)

    const { census: counted, problems } = checkInvariants(queue.root, {
      names: ["late.md"],
      allFinished: true,
      standinLog: events
    })
    expect(problems).toStrictEqual([])
    expect(counted.completionsApplied).toBe(1)
    summary.push(
      `late completion: requeued from claude-1 by the watchdog (claude-1's turn: ${
        oldTurn.map((e) => e.event).join(", ") || "none"
      }), ` +
        `done by claude-2; old run's completion exit ${whileActive.code} while the new run was active and exit ${afterDone.code} ` +
        `after it was done, the new run's repeated exit ${repeated.code}; ${refusals.length} refusal lines logged, e.g. ` +
        `"${refusals[0]?.trim().slice(0, 150)}"`
    )
  })

  it("disk full: dispatch pauses with a growing wait and a few log lines, leaves no temporary file, and runs the tasks once space returns", async () => {
    const root = mkdtempSync(join(tmpdir(), "cf-full-"))
    cleanups.push(() => rmSync(root, { recursive: true, force: true }))
    const daemon = namespacedDaemon(`mount -t tmpfs -o size=256k tmpfs "$QUEUE_DIR"`, {
      QUEUE_DIR: root,
      SESSIONS_MODE: "dry-run",
      DRY_RUN_DELAY: "200ms"
    })
    // Started, not only listening: its start-up writes (the lock's label) come before the start line.
    await waitFor("the daemon to start", () => daemon.output.includes(" started on "), 20_000)
    const queue = inside(daemon, root)
    expect(statfsSync(queue).blocks * statfsSync(queue).bsize).toBe(256 * 1024)

    // The tasks wait beside the stages until the disk is full (writing them afterwards would need space), then are
    // renamed into pending/, which needs none.
    const names = [1, 2, 3, 4].map((i) => `full-${i}.md`)
    mkdirSync(join(queue, "incoming"))
    for (const [i, name] of names.entries()) {
      writeFileSync(join(queue, "incoming", name), `---\npriority: ${i + 1}\n---\nA task dropped on a full disk.\n`)
    }
    try {
      writeFileSync(join(queue, "filler"), Buffer.alloc(1024 * 1024))
    } catch (error) {
      expect(String(error)).toContain("ENOSPC")
    }
    expect(statfsSync(queue).bavail).toBe(0)

    const cpuBefore = cpuSeconds(daemon.pid)
    const fullAt = Date.now()
    for (const name of names) renameSync(join(queue, "incoming", name), join(queue, "pending", name))
    // The fault has to last: the disk stays full for 6 s, looked at every 100 ms.
    const seenTemps = new Set<string>()
    while (Date.now() - fullAt < 6_000) {
      for (const temp of tempFiles(queue)) seenTemps.add(temp)
      for (const [name, stages] of census(queue)) {
        expect(stages, `${name} while the disk is full`).toStrictEqual(["pending"])
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const cpuWhileFull = cpuSeconds(daemon.pid) - cpuBefore
    const fullFor = Date.now() - fullAt
    const failureLines = linesMatching(daemon.output, /ENOSPC|no space left/i)
    expect(tasksIn(queue, "pending")).toStrictEqual(names)

    unlinkSync(join(queue, "filler"))
    const freedAt = Date.now()
    await waitFor(
      "the 4 tasks in done/, none elsewhere",
      () => tasksIn(queue, "done").length === 4 && tasksIn(queue, "active").length === 0,
      40_000
    )
    const resumedAfter = Date.now() - freedAt
    expect(daemon.output).toContain("queue writes work again; dispatch resumes")
    // The last completion's answer to its command may be being written (requests/.cf-….tmp) as the task lands in done/.
    await waitFor("no temporary file left", () => tempFiles(queue).length === 0, 5_000)
    const { problems } = checkInvariants(queue, { names, allFinished: true })
    expect(problems).toStrictEqual([])
    expect(await daemon.stop()).toBe(0)

    // Backing off, not hot-looping: a first wait of 1 s that doubles gives at most a handful of attempts in 6 s.
    expect(failureLines.length).toBeGreaterThanOrEqual(1)
    expect(failureLines.length).toBeLessThanOrEqual(6)
    summary.push(
      `disk full: ${names.length} tasks, ${failureLines.length} failure line(s) logged in ${
        (fullFor / 1000).toFixed(1)
      } s full, ` +
        `CPU ${cpuWhileFull.toFixed(2)} s while full, ${seenTemps.size} temp file(s) seen while full, 0 left; ` +
        `all done ${(resumedAfter / 1000).toFixed(1)} s after space returned`
    )
  })

  it("read-only pending/: nothing reaches active/, one stage per task throughout, and the task runs once pending/ is writable", async () => {
    const queue = newQueue()
    // A task is taken once it has been left alone 2 s: time to make pending/ read-only after dropping it.
    const daemon = namespacedDaemon("true", {
      QUEUE_DIR: queue.root,
      SESSIONS_MODE: "dry-run",
      DRY_RUN_DELAY: "200ms",
      SETTLE_AFTER: "2s"
    })
    const url = await waitFor("the daemon to listen", () => apiUrl(daemon.output), 20_000)
    const pending = join(queue.root, "pending")
    writeFileSync(join(pending, "ro.md"), "A task whose pending/ turns read-only.\n")
    const droppedAt = Date.now()
    nsenter(daemon, `mount --bind '${pending}' '${pending}' && mount -o remount,bind,ro '${pending}'`)
    expect(Date.now() - droppedAt).toBeLessThan(1_500)
    expect(() => writeFileSync(join(inside(daemon, pending), "probe.txt"), "")).toThrow(/EROFS/)

    await waitFor("the daemon to hit the read-only pending/", () => /EROFS|read-only/i.test(daemon.output), 10_000)
    const failedAt = Date.now()
    // The fault has to last: pending/ stays read-only for 5 s, looked at every 100 ms.
    let looks = 0
    while (Date.now() - failedAt < 5_000) {
      expect(census(queue.root).get("ro.md")).toStrictEqual(["pending"])
      expect(tasksIn(queue.root, "active")).toStrictEqual([])
      looks++
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const roLines = linesMatching(daemon.output, /EROFS|read-only/i)
    // No session is held for it.
    const { sessions } = await (await fetch(`${url}/api/sessions`)).json() as {
      sessions: ReadonlyArray<{ task: string | null }>
    }
    expect(sessions.map((session) => session.task)).toStrictEqual([null, null])

    // Writable again by removing the read-only bind mount. (`mount -o remount,bind,rw` would leave pending/ a mount
    // of its own, across which link() fails with EXDEV: see the bind-mount test below.)
    nsenter(daemon, `umount '${pending}'`)
    const writableAt = Date.now()
    await waitFor("ro.md in done/ only", () => census(queue.root).get("ro.md")?.join() === "done", 40_000)
    const resumedAfter = Date.now() - writableAt
    expect(daemon.output).toContain("queue writes work again; dispatch resumes")
    // Stopped first: a stop completes the write in progress (the answer to the task's completion command).
    expect(await daemon.stop()).toBe(0)
    const { problems } = checkInvariants(queue.root, { names: ["ro.md"], allFinished: true })
    expect(problems).toStrictEqual([])
    expect(frontmatter(queue.read("done", "ro.md")).attempts).toBe("1")
    expect(roLines.length).toBeGreaterThanOrEqual(1)
    expect(roLines.length).toBeLessThanOrEqual(5)
    summary.push(
      `read-only pending/: ${roLines.length} failure line(s) in 5 s read-only, ${looks} looks with the task only in pending/; ` +
        `done ${(resumedAfter / 1000).toFixed(1)} s after pending/ was writable, attempts 1`
    )
    // Regression (was: src/services/dispatcher.ts `noteFailure` means to say a problem once ("say so once"), but compares the
    // whole error message with the last one, and the message names the random temporary file
    // (`open '…/pending/.cf-PID-N-XXXXXX.tmp'`; for ENOSPC it names the task, so two tasks alternate): every retry of
    // the same problem is logged again, once per backoff step, then once a minute for as long as it lasts.
    expect(roLines).toHaveLength(1)
  })

  it("pending/ as a bind mount of the same filesystem: refused at start (exit 2); made so while running: dispatch backs off", async () => {
    // What a container bind-mounting pending/ gives, or `mount -o remount,bind,rw` after a read-only spell: the same
    // filesystem (the same st_dev), but a mount of its own, across which a move (a hard link) fails with EXDEV.
    const before = newQueue()
    const pendingBefore = join(before.root, "pending")
    const refused = namespacedDaemon(`mount --bind '${pendingBefore}' '${pendingBefore}'`, {
      QUEUE_DIR: before.root,
      SESSIONS_MODE: "dry-run"
    })
    expect(await refused.exited).toBe(2)
    expect(refused.output).toContain("cannot be linked into active/")

    const queue = newQueue()
    const pending = join(queue.root, "pending")
    const daemon = namespacedDaemon("true", { QUEUE_DIR: queue.root, SESSIONS_MODE: "dry-run", DRY_RUN_DELAY: "200ms" })
    await waitFor("the daemon to listen", () => apiUrl(daemon.output), 20_000)
    nsenter(daemon, `mount --bind '${pending}' '${pending}'`)
    writeFileSync(join(inside(daemon, pending), "bound.md"), "A task in a bind-mounted pending/.\n")
    await waitFor("the first failed move", () => daemon.output.includes("EXDEV"), 10_000)
    const cpuBefore = cpuSeconds(daemon.pid)
    // The fault lasts: 3 s of it, then count.
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    const cpu = cpuSeconds(daemon.pid) - cpuBefore
    const exdevLines = linesMatching(daemon.output, /EXDEV/)
    const text = readFileSync(join(inside(daemon, pending), "bound.md"), "utf8")
    const historyLines = (text.match(/never typed/g) ?? []).length
    summary.push(
      `bind-mounted pending/: refused at start (exit 2); made so while running: ${exdevLines.length} EXDEV line(s), ` +
        `${historyLines} "never typed" history line(s), CPU ${cpu.toFixed(2)} s in 3 s`
    )
    expect(daemon.output).not.toContain("EMFILE")
    expect(exdevLines.length).toBeLessThanOrEqual(2)
    expect(historyLines).toBe(0)
    // Put back, the task runs. The daemon may have a file of pending/ open at that instant (umount: target is busy).
    await waitFor("the bind mount to be removed", () => {
      try {
        nsenter(daemon, `umount '${pending}'`)
        return true
      } catch (error) {
        if (String(error).includes("target is busy")) return false
        throw error
      }
    }, 10_000)
    await waitFor(
      "bound.md done after the mount is gone",
      () => tasksIn(queue.root, "done").includes("bound.md"),
      90_000
    )
  })

  it("staging restart: SIGTERM with local tasks typed and delegated jobs running; the next daemon finishes every task", async () => {
    const queue = newQueue()
    const local = [1, 2, 3, 4].map((i) => `local-${i}.md`)
    const remote = [1, 2, 3].map((i) => `remote-${i}.md`)
    for (const name of remote)
      writeFileSync(join(queue.root, "pending", name), `---\npreferred_ai: gemini\n---\nRemote task ${name}.\n`)
    const env = { SECUTOOLS_MODE: "fake", DRY_RUN_DELAY: "3s", REAP_INTERVAL: "200ms" }
    const markers = () =>
      queue.list("pending").filter((f) => f.endsWith(".md.delegated")).flatMap((f) => {
        const text = readIfThere(join(queue.root, "pending", f))
        return text === undefined
          ? []
          : [JSON.parse(text) as { readonly state: string; readonly job_id: string | null }]
      })
    const started = () =>
      queue.tasks("active").filter((name) =>
        readIfThere(join(queue.root, "active", name))?.includes("\nstarted_at: ") === true
      )

    const first = dryRunDaemon(queue.root, env)
    // One local task at a time until both sessions are busy: two typed at the same instant hit the race of the
    // dry-run sessions' state file (the next test); this one is about the restart.
    writeFileSync(join(queue.root, "pending", "local-1.md"), "Local task local-1.md.\n")
    await waitFor("local-1.md typed", () => started().length === 1, 20_000)
    for (const name of local.slice(1)) writeFileSync(join(queue.root, "pending", name), `Local task ${name}.\n`)
    await waitFor(
      "2 local tasks typed and 3 jobs submitted",
      () => started().length === 2 && markers().length === 3 && markers().every((m) => m.state === "submitted"),
      20_000
    )
    const stoppedAt = Date.now()
    expect(await first.stop()).toBe(0)
    const stopTook = Date.now() - stoppedAt
    const atStop = {
      active: queue.tasks("active").length,
      jobs: markers().filter((m) => m.state === "submitted").length,
      done: queue.tasks("done").length
    }
    expect(checkInvariants(queue.root, { names: [...local, ...remote], allFinished: false }).problems).toStrictEqual([])

    const second = dryRunDaemon(queue.root, env)
    const restartedAt = Date.now()
    await waitFor(
      "all 7 tasks in done/, nothing elsewhere",
      () =>
        queue.tasks("done").length === 7 && queue.tasks("active").length === 0 && queue.tasks("pending").length === 0,
      40_000
    )
    const finishedAfter = Date.now() - restartedAt
    expect(await second.stop()).toBe(0)

    expect(queue.tasks("failed")).toStrictEqual([])
    expect(second.output).not.toMatch(/\b404\b/)
    for (const name of remote)
      expect(frontmatter(queue.read("done", name))).toMatchObject({ state: "done", provider: "gemini" })
    // The stand-in's jobs, kept across the restart beside the queue: one job per task and per idempotency key.
    const jobs = (JSON.parse(queue.read("", ".fake-secutools.json")) as {
      readonly jobs: ReadonlyArray<{ readonly idempotencyKey: string; readonly body: { readonly task_id: string } }>
    }).jobs
    const count = (keys: ReadonlyArray<string>) =>
      keys.reduce<Record<string, number>>((acc, key) => ({ ...acc, [key]: (acc[key] ?? 0) + 1 }), {})
    const secutools: FakeCounters = {
      jobsByKey: count(jobs.map((job) => job.idempotencyKey)),
      jobsByTask: count(jobs.map((job) => job.body.task_id))
    }
    expect(Object.values(secutools.jobsByTask)).toStrictEqual([1, 1, 1])
    const { problems } = checkInvariants(queue.root, { names: [...local, ...remote], allFinished: true, secutools })
    expect(problems).toStrictEqual([])
    summary.push(
      `staging restart: stopped in ${stopTook} ms with ${atStop.active} local tasks typed, ${atStop.jobs} jobs submitted, ` +
        `${atStop.done} done; after the restart all 7 done in ${
          (finishedAfter / 1000).toFixed(1)
        } s, ${jobs.length} secutools jobs, 0 failed`
    )
  })

  it("status API under 1,500 stalled clients: tasks keep finishing, no EMFILE, /healthz answers once the stalls time out", async () => {
    const queue = newQueue()
    // The usual descriptor limit of a service, not this machine's generous one.
    const daemon = new WrappedDaemon(["sh", "-c", `ulimit -n 1024 && exec "$0" "$1"`], {
      QUEUE_DIR: queue.root,
      SESSIONS_MODE: "dry-run",
      DRY_RUN_DELAY: "200ms"
    })
    const url = await waitFor("the daemon to listen", () => apiUrl(daemon.output), 20_000)
    expect(await healthz(url)).toBe(true)
    const port = Number(new URL(url).port)
    const descriptors = () => readdirSync(`/proc/${daemon.pid}/fd`).length
    const fdsBefore = descriptors()

    const floodAt = Date.now()
    const clients = Array.from({ length: 1_500 }, () => {
      const client = { socket: connect({ host: "127.0.0.1", port }), connected: false, closed: false }
      client.socket.on("connect", () => {
        client.connected = true
        // Half a request line, then nothing.
        client.socket.write("GET /healthz HT")
      })
      client.socket.on("error", () => undefined)
      // Read what the server says (a 408 when it gives up), or its closing would never be noticed.
      client.socket.on("data", () => undefined)
      client.socket.on("close", () => (client.closed = true))
      return client
    })
    cleanups.push(() => clients.forEach((client) => client.socket.destroy()))
    const held = () => clients.filter((client) => client.connected && !client.closed).length
    await waitFor(
      "every flood connection to be held or turned away",
      () => clients.every((client) => client.closed || client.connected) && held() > 0,
      15_000
    )
    const heldAtStart = held()
    let maxFds = descriptors()
    expect(await healthz(url)).toBe(false)

    const names = [1, 2, 3, 4, 5, 6].map((i) => `flood-${i}.md`)
    for (const name of names) writeFileSync(join(queue.root, "pending", name), `A task during the flood: ${name}.\n`)
    await waitFor("the 6 tasks in done/", () => {
      maxFds = Math.max(maxFds, descriptors())
      return queue.tasks("done").length === 6 && queue.tasks("active").length === 0
    }, 30_000)
    const tasksDoneAt = Date.now() - floodAt
    const heldWhenDone = held()
    // Finished while the stalled clients still held the API's slots: the daemon's own work did not wait for them.
    expect(heldWhenDone).toBeGreaterThanOrEqual(200)

    await waitFor("/healthz to answer again", () => healthz(url), 40_000)
    const healthyAfter = Date.now() - floodAt
    // Not before the stalled clients were cut off (HEADERS_TIMEOUT, 10 s), and every one of them is, soon after.
    expect(held()).toBeLessThan(heldAtStart)
    await waitFor("every stalled client cut off", () => held() === 0, 15_000)
    expect(daemon.output).not.toContain("EMFILE")
    expect(await daemon.stop()).toBe(0)
    summary.push(
      `API flood: 1500 stalled clients, ${heldAtStart} held by the server (the rest turned away), daemon fds ${fdsBefore} → max ` +
        `${maxFds} of 1024; 6 tasks done ${
          (tasksDoneAt / 1000).toFixed(1)
        } s into the flood with ${heldWhenDone} still held; ` +
        `/healthz back after ${(healthyAfter / 1000).toFixed(1)} s; no EMFILE`
    )
  })

  it("staging restart right after sessions were typed into at the same instant: every typed task still finishes", async () => {
    const sessions = Array.from({ length: 8 }, (_, i) => `claude-${i + 1}`)
    // More libuv threads let the sessions' file writes overtake one another as they would on a busy disk: the race
    // below shows up in most rounds instead of one in three.
    const env = { TMUX_SESSIONS: sessions.join(","), DRY_RUN_DELAY: "3s", UV_THREADPOOL_SIZE: "32" }
    /** Types 8 tasks at once into 8 sessions, stops the daemon: which sessions does the state file still call busy? */
    const round = async () => {
      const queue = newQueue()
      for (let i = 1; i <= sessions.length; i++)
        writeFileSync(join(queue.root, "pending", `same-instant-${i}.md`), "Local task.\n")
      const daemon = dryRunDaemon(queue.root, env)
      await waitFor(
        "8 tasks typed",
        () =>
          queue.tasks("active").filter((name) =>
            readIfThere(join(queue.root, "active", name))?.includes("\nstarted_at: ") === true
          )
            .length === 8,
        20_000
      )
      expect(await daemon.stop()).toBe(0)
      const saved = Object.keys(JSON.parse(queue.read("", ".dry-run-sessions.json")) as Record<string, unknown>).sort()
      const typedInto = queue.tasks("active").map((name) => frontmatter(queue.read("active", name)).session ?? "?")
        .sort()
      return { queue, saved, typedInto }
    }
    // The race does not lose a session every time: up to 5 rounds.
    let last = await round()
    let rounds = 1
    while (last.saved.length === last.typedInto.length && rounds < 5) {
      last = await round()
      rounds++
    }
    summary.push(
      `same-instant typing then restart: round ${rounds}: ${last.typedInto.length} sessions busy, ` +
        `${last.saved.length} of them in .dry-run-sessions.json`
    )
    // Regression (was: src/adapters/dry-run-tmux.ts `persist` (called from `sendEnter`): each session's fiber snapshots the panes
    // and writes the whole file; concurrent writes race and the last rename can carry an older snapshot, so a busy
    // session drops out of the file. After a restart that session is idle, and its task — typed, `started_at` set —
    // stays in active/ for good (recovery never re-runs a typed task on an idle session; REQUEUE_AFTER is off).
    const again = dryRunDaemon(last.queue.root, env)
    // A healthy restart finishes them all ~3 s (DRY_RUN_DELAY) after the stop; a loaded machine takes longer, and a
    // stuck task never finishes, so the deadline only bounds how long a failure takes to show.
    // (A move is a link then an unlink: the last task is in done/ a moment before it has left active/.)
    await waitFor(
      "every task in done/, none left in active/",
      () => last.queue.tasks("done").length === 8 && last.queue.tasks("active").length === 0,
      60_000
    ).catch(() => undefined)
    // (A task may still move on to done/ between the listing and the read: then it is not stuck.)
    const stuck = last.queue.tasks("active").flatMap((name) => {
      const text = readIfThere(join(last.queue.root, "active", name))
      return text === undefined ? [] : [`${name} (${frontmatter(text).session ?? "?"})`]
    })
    expect(await again.stop()).toBe(0)
    expect(stuck, `typed tasks stuck in active/ after the restart; the state file kept ${last.saved.join(", ")}`)
      .toStrictEqual([])
  })
})
