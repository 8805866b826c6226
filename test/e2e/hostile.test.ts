/**
 * Hostile and malformed input against the daemon as a real process, a private tmux server with Claude Code stand-ins
 * and a real queue directory: bad files are quarantined once, byte for byte; things that are not files are ignored
 * with one line; nothing stops the daemon, blocks the other tasks, or reaches outside QUEUE_DIR.
 */
import { afterAll, afterEach, describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync
} from "node:fs"
import { open } from "node:fs/promises"
import { homedir, tmpdir } from "node:os"
import { join } from "node:path"
import { checkInvariants, readStandinLog } from "./invariants.ts"
import { Daemon, frontmatter, Queue, ROOT, taskFields, TmuxServer, waitFor } from "./support.ts"

const HOSTILE = join(ROOT, "test/fixtures/hostile")

interface HostileCase {
  readonly file: string
  readonly name?: string
  readonly outcome: "error" | "task"
  readonly problem?: string
  readonly field?: string
  readonly line?: number
}
const cases: ReadonlyArray<HostileCase> = JSON.parse(readFileSync(join(HOSTILE, "cases.json"), "utf8"))

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** What the whole file tried, for the summary line. */
const tally = { tried: 0, quarantined: 0, ignored: 0, ran: 0, problems: [] as Array<string> }
afterAll(() => {
  const verdict = tally.problems.length === 0
    ? "nothing lost, nothing run twice"
    : `PROBLEMS: ${tally.problems.join("; ")}`
  console.log(
    `hostile input: ${tally.tried} files tried, ${tally.quarantined} quarantined, ` +
      `${tally.ignored} ignored (not regular files, hidden or not .md), ` +
      `${tally.ran} ran to done/; ${verdict}`
  )
})

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const setUp = (sessions: Readonly<Record<string, Readonly<Record<string, string>>>>) => {
  const tmux = new TmuxServer()
  const queue = new Queue()
  const logDir = mkdtempSync(join(tmpdir(), "cf-hostile-log-"))
  const standinLog = join(logDir, "standins.jsonl")
  cleanups.push(() => tmux.kill(), () => queue.remove(), () => rmSync(logDir, { recursive: true, force: true }))
  for (const [session, env] of Object.entries(sessions)) {
    tmux.startStandin(session, { STANDIN_WORK_MS: "300", STANDIN_LOG: standinLog, STANDIN_NAME: session, ...env })
  }
  return { tmux, queue, standinLog, logDir }
}

const startDaemon = (queue: Queue, tmux: TmuxServer, env: Record<string, string> = {}) => {
  const daemon = new Daemon({
    QUEUE_DIR: queue.root,
    TMUX_SOCKET: tmux.socket,
    POLL_INTERVAL: "250ms",
    SETTLE_AFTER: "300ms",
    MAX_TASK_SIZE: "1MB",
    API_PORT: "0",
    ...env
  })
  cleanups.push(() => daemon.stop("SIGKILL"))
  return daemon
}

const waitForStandins = (tmux: TmuxServer, sessions: ReadonlyArray<string>) =>
  waitFor(
    "the stand-ins to show their input box",
    () => sessions.every((s) => tmux.currentCommand(s) === "node" && tmux.capture(s).includes("? for shortcuts")),
    20_000
  )

const apiUrl = (daemon: Daemon) =>
  waitFor("the status API's address", () => /status API listening on (http:\/\/\S+)/.exec(daemon.output)?.[1], 20_000)

/** Polls /healthz and /api/tasks until stopped; every answer's status (or -1 and the error) is kept. */
const pollApi = (url: string) => {
  let running = true
  const answers: Array<{ readonly path: string; readonly status: number; readonly error?: string }> = []
  const loop = (async () => {
    while (running) {
      for (const path of ["/healthz", "/api/tasks"]) {
        try {
          const response = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(5000) })
          await response.arrayBuffer()
          answers.push({ path, status: response.status })
        } catch (error) {
          answers.push({ path, status: -1, error: String(error) })
        }
      }
      await pause(100) // a poll rate, not a synchronisation
    }
  })()
  return async () => {
    running = false
    await loop
    return answers
  }
}

const pendingPath = (queue: Queue, name: string) => join(queue.root, "pending", name)
const occurrences = (haystack: string, needle: string) => haystack.split(needle).length - 1
const finished = (queue: Queue) => new Set([...queue.tasks("done"), ...queue.tasks("failed")])

/** A line the daemon printed that says a loop broke or a tick failed: none may appear, whatever the input. */
const LOOP_TROUBLE = /loop stopped unexpectedly|dispatcher tick failed|Fiber terminated|Unhandled/

/** How many times the stand-ins saw each run submitted, by run token ("(no run)": text submitted without a header). */
const submittedRuns = (standinLog: string) => {
  const counts = new Map<string, number>()
  for (const event of readStandinLog(standinLog)) {
    if (event.event === "submitted") counts.set(event.run ?? "(no run)", (counts.get(event.run ?? "(no run)") ?? 0) + 1)
  }
  return counts
}

/** A log line without its timestamp, so two lines saying the same thing compare equal. */
const withoutTimestamp = (line: string) => line.replace(/^\S+\s+/, "")

/** Keeps the problems checkInvariants found, for the summary line. */
const record = (result: ReturnType<typeof checkInvariants>) => {
  tally.problems.push(...result.problems)
  return result
}

describe("hostile input against the running daemon", () => {
  it("a running daemon fed the hostile corpus and generated monsters quarantines each once and keeps working", async () => {
    const { logDir, queue, standinLog, tmux } = setUp({ "claude-1": {}, "claude-2": {} })
    await waitForStandins(tmux, ["claude-1", "claude-2"])
    const normal = ["normal-1.md", "normal-2.md", "normal-3.md"]
    for (const [i, name] of normal.entries())
      writeFileSync(pendingPath(queue, name), `---\npriority: ${i + 1}\n---\nNormal task ${i}.\n`)
    const daemon = startDaemon(queue, tmux)
    const url = await apiUrl(daemon)
    const stopPolling = pollApi(url)

    // The corpus, under its own file names. Cases with a `name` are about that name, which case 2 uses; under their
    // fixture names they are ordinary tasks, so they are not dropped here.
    // keys-256-ok.md has its own test below (it must keep parsing once the daemon adds its fields).
    const corpus = cases.filter((c) => c.name === undefined && c.file !== "keys-256-ok.md")
    const expected = new Map<
      string,
      { readonly bytes: Buffer; readonly outcome: "error" | "task"; readonly problems: ReadonlyArray<string> }
    >()
    for (const c of corpus) {
      const bytes = readFileSync(join(HOSTILE, c.file))
      const problems = [c.problem ?? "", ...(c.field === undefined ? [] : [`field '${c.field}'`])].filter((p) =>
        p !== ""
      )
      expected.set(c.file, { bytes, outcome: c.outcome, problems })
    }

    // Generated ones.
    const manyKeys = `---\n${
      Array.from({ length: 50_000 }, (_, i) => `key${i}: ${i}`).join("\n")
    }\n---\nFifty thousand keys.\n`
    const levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for (let i = 1; i < 10; i++) {
      const prev = String.fromCharCode(96 + i)
      const next = String.fromCharCode(97 + i)
      levels.push(`${next}: &${next} [${Array(9).fill(`*${prev}`).join(", ")}]`)
    }
    const aliasBomb = `---\n${levels.join("\n")}\n---\nBillion laughs.\n`
    const twoMb = Buffer.concat([
      Buffer.from("---\ntitle: huge\n---\n"),
      Buffer.alloc(2 * 1024 * 1024, "x"),
      Buffer.from("\n")
    ])
    const png = Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52]),
      Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 151 + 7) % 256))
    ])
    const generated: ReadonlyArray<readonly [string, Buffer, "error" | "task", ReadonlyArray<string>]> = [
      ["gen-50000-keys.md", Buffer.from(manyKeys), "error", ["frontmatter is", "the limit is 65536"]],
      ["gen-alias-bomb.md", Buffer.from(aliasBomb), "error", ["YAML aliases (*a) are not allowed", "field 'b'"]],
      ["gen-2mb.md", twoMb, "error", [`is ${twoMb.length} bytes; task files may have at most`, "MAX_TASK_SIZE"]],
      ["gen-png.md", png, "error", ["not UTF-8 text (invalid byte at offset 0)"]],
      ["gen-invalid-utf8.md", Buffer.from("---\ntitle: caf\xe9\n---\nbody\n", "latin1"), "error", [
        "not UTF-8 text (invalid byte at offset 14)"
      ]],
      ["gen-nul.md", Buffer.from("---\ntitle: x\n---\nbody\0with a NUL\n"), "error", ["contains NUL bytes"]],
      ["gen-crlf.md", Buffer.from("---\r\ntitle: crlf\r\npriority: 50\r\n---\r\nline one\r\nline two\r\n"), "task", []]
    ]
    for (const [name, bytes, outcome, problems] of generated) expected.set(name, { bytes, outcome, problems })

    // Each file appears whole (hidden temporary name, then rename), as a careful producer writes: what a daemon makes of
    // a file still being written is the SETTLE_AFTER regression test's subject, not this one's.
    for (const [name, { bytes }] of expected) {
      writeFileSync(pendingPath(queue, `.tmp-${name}`), bytes)
      renameSync(pendingPath(queue, `.tmp-${name}`), pendingPath(queue, name))
    }
    // And 500 KB copied in by cp, which writes it in pieces.
    const bigBody = `${
      Array.from({ length: 6000 }, (_, i) => `Line ${i} of a long task: ${"lorem ipsum ".repeat(6)}`).join("\n")
    }\nEND OF BIG TASK\n`
    const bigSource = join(logDir, "big.md")
    writeFileSync(bigSource, `---\ntitle: big\n---\n${bigBody}`)
    expect(statSync(bigSource).size).toBeGreaterThan(500_000)
    execFileSync("cp", [bigSource, pendingPath(queue, "gen-500kb-cp.md")])
    tally.tried += expected.size + 1

    const all = [...normal, ...expected.keys(), "gen-500kb-cp.md"]
    await waitFor(
      "every task to finish or be quarantined",
      () => all.every((name) => finished(queue).has(name)),
      60_000
    )
    // Every run's completion reached the daemon (the last one may still be on its way when the file lands).
    await waitFor("no task in active/", () => queue.tasks("active").length === 0, 10_000)
    const answers = await stopPolling()
    expect(await daemon.stop()).toBe(0)

    for (const name of normal) expect(queue.tasks("done")).toContain(name)
    const wrong: Array<string> = []
    for (const [name, { bytes, outcome, problems }] of expected) {
      if (outcome === "task") {
        if (queue.tasks("failed").includes(name))
          wrong.push(`${name}: expected done/, is in failed/: ${queue.read("failed", `${name}.error`)}`)
        continue
      }
      if (!queue.tasks("failed").includes(name)) {
        wrong.push(`${name}: expected failed/, is in done/`)
        continue
      }
      if (!readFileSync(join(queue.root, "failed", name)).equals(bytes)) wrong.push(`${name}: bytes changed in failed/`)
      const error = existsSync(join(queue.root, "failed", `${name}.error`))
        ? queue.read("failed", `${name}.error`)
        : "(no .error)"
      for (const problem of problems)
        if (!error.includes(problem)) wrong.push(`${name}.error lacks ${JSON.stringify(problem)}: ${error}`)
      const lines = occurrences(daemon.output, `pending/${name} cannot be run:`)
      if (lines !== 1) wrong.push(`${name}: ${lines} quarantine lines in the daemon's output, expected 1`)
    }
    expect(wrong).toStrictEqual([])
    expect(queue.read("done", "gen-500kb-cp.md")).toContain(bigBody)
    // The CRLF body is kept byte for byte in done/ (the frontmatter the daemon rewrote has its own line ends).
    expect(queue.read("done", "gen-crlf.md")).toContain("\n---\nline one\r\nline two\r\n")
    expect(queue.read("done", "crlf.md")).toContain("\n---\nbody\r\n")

    // The API answered 200 throughout, and it was asked often.
    expect(answers.filter((a) => a.status !== 200)).toStrictEqual([])
    expect(answers.filter((a) => a.path === "/api/tasks").length).toBeGreaterThan(10)
    expect(daemon.output).not.toMatch(LOOP_TROUBLE)

    const result = record(
      checkInvariants(queue.root, { names: all, allFinished: true, standinLog: readStandinLog(standinLog) })
    )
    expect(result.problems).toStrictEqual([])
    const ran = [...expected.values()].filter((e) => e.outcome === "task").length + 1
    tally.quarantined += expected.size + 1 - ran
    tally.ran += ran
    expect(result.census.runsSubmitted).toBe(normal.length + ran)
  })

  it("files with names that cannot be tasks go to failed/ under a usable name with a .error quoting the original", async () => {
    const { queue, standinLog, tmux } = setUp({ "claude-1": {}, "claude-2": {} })
    await waitForStandins(tmux, ["claude-1", "claude-2"])
    const content = Buffer.from("---\ntitle: name case\n---\nbody\n")
    const pending = Buffer.from(`${join(queue.root, "pending")}/`)
    /** Raw name → the problem its .error must name. */
    const bad = new Map<string, { readonly raw: Buffer; readonly problem: string }>()
    const add = (raw: Buffer, problem: string) => bad.set(raw.toString("utf8"), { raw, problem })
    add(Buffer.from("-rf.md"), "must not start with '-'")
    add(Buffer.from("a\nb.md"), "must not contain control characters (U+000A at character 2)")
    add(Buffer.from(`${"n".repeat(247)}.md`), "must be at most 200 bytes in UTF-8")
    add(Buffer.from("caf\xe9.md", "latin1"), "is not valid UTF-8")
    // A lone surrogate cannot be written through a JS string (it becomes U+FFFD); its WTF-8 bytes are not UTF-8.
    add(Buffer.from([0x61, 0xed, 0xa0, 0x80, 0x62, 0x2e, 0x6d, 0x64]), "is not valid UTF-8")
    // The corpus's names that a file system can hold; the ones with '/' cannot exist, and hidden or non-.md names are
    // not even looked at (README: hidden files and non-.md files are ignored).
    const ignoredNames: Array<string> = []
    for (const c of cases) {
      if (c.name === undefined || c.outcome !== "error" || c.name.includes("/") || c.name === "..") continue
      if (c.name === "a\ud800b.md") continue // written above as raw bytes
      if (c.name.startsWith(".") || !c.name.endsWith(".md")) {
        ignoredNames.push(c.name)
        continue
      }
      add(Buffer.from(c.name), (c.problem ?? "").replace(/^not a task file name: /, ""))
    }
    for (const { raw } of bad.values()) writeFileSync(Buffer.concat([pending, raw]), content)
    for (const name of ignoredNames) writeFileSync(pendingPath(queue, name), content)
    writeFileSync(pendingPath(queue, "a..b.md"), "Dots inside a name are fine.\n")
    writeFileSync(pendingPath(queue, "normal.md"), "A normal task.\n")
    tally.tried += bad.size + ignoredNames.length + 1

    const daemon = startDaemon(queue, tmux)
    await waitFor(
      "normal.md and a..b.md in done/",
      () => ["normal.md", "a..b.md"].every((n) => queue.tasks("done").includes(n)),
      30_000
    )
    await waitFor(
      "every bad name out of pending/",
      () =>
        readdirSync(join(queue.root, "pending"), { encoding: "buffer" }).every((raw) => !bad.has(raw.toString("utf8"))),
      15_000
    )
    // A few more ticks and a full scan (SCAN_INTERVAL=1s) pass while a later task runs: nothing is repeated.
    writeFileSync(pendingPath(queue, "later.md"), "A later task.\n")
    await waitFor("later.md in done/", () => queue.tasks("done").includes("later.md"), 30_000)
    await waitFor("no task in active/", () => queue.tasks("active").length === 0, 10_000)
    expect(await daemon.stop()).toBe(0)

    const errors = queue.list("failed").filter((n) => n.endsWith(".md.error")).map((n) => ({
      n,
      text: queue.read("failed", n)
    }))
    const wrong: Array<string> = []
    const quarantinedAs: Array<string> = []
    for (const [display, { problem }] of bad) {
      const quoted = JSON.stringify(display)
      const notes = errors.filter((e) => e.text.includes(quoted))
      if (notes.length !== 1) {
        wrong.push(`${quoted}: ${notes.length} .error files quote it`)
        continue
      }
      const target = notes[0]?.n.slice(0, -".error".length) ?? ""
      quarantinedAs.push(target)
      if (!notes[0]?.text.includes(problem))
        wrong.push(`${target}.error lacks ${JSON.stringify(problem)}: ${notes[0]?.text}`)
      if (!readFileSync(join(queue.root, "failed", target)).equals(content)) wrong.push(`${target}: bytes changed`)
      const lines = occurrences(daemon.output, `moved to failed/${target}`)
      if (lines !== 1) wrong.push(`${quoted}: ${lines} lines in the daemon's output, expected 1`)
    }
    expect(wrong).toStrictEqual([])
    expect(new Set(quarantinedAs).size).toBe(bad.size)
    // Hidden and non-.md files stay where they are, untouched.
    for (const name of ignoredNames) expect(readFileSync(pendingPath(queue, name)).equals(content)).toBe(true)
    expect(daemon.output).not.toMatch(LOOP_TROUBLE)

    const result = record(checkInvariants(queue.root, {
      names: ["normal.md", "a..b.md", "later.md", ...quarantinedAs],
      allFinished: true,
      standinLog: readStandinLog(standinLog)
    }))
    expect(result.problems).toStrictEqual([])
    tally.quarantined += quarantinedAs.length
    tally.ignored += ignoredNames.length
    tally.ran += 1
  })

  it("a directory, a symlink out of the queue and FIFOs are ignored with one line each; nothing hangs or follows", async () => {
    // Slow sessions: both are busy while tasks turn into FIFOs, so none of those is dispatched before its swap.
    const { logDir, queue, standinLog, tmux } = setUp({
      "claude-1": { STANDIN_WORK_MS: "2000" },
      "claude-2": { STANDIN_WORK_MS: "2000" }
    })
    await waitForStandins(tmux, ["claude-1", "claude-2"])
    const secret = `secret-${process.pid}-${Math.random().toString(36).slice(2)}`
    const target = join(logDir, "outside.md")
    writeFileSync(target, `---\ntitle: ${secret}\n---\n${secret}\n`)
    // An access time far in the past: a read of the target would move it (relatime updates an atime older than a day).
    utimesSync(target, new Date("2001-01-01T00:00:00Z"), new Date("2001-01-01T00:00:00Z"))
    mkdirSync(pendingPath(queue, "dir.md"))
    symlinkSync(target, pendingPath(queue, "link.md"))
    execFileSync("mkfifo", [pendingPath(queue, "pipe.md")])
    const normal = ["normal-1.md", "normal-2.md", "normal-3.md", "normal-4.md"]
    writeFileSync(pendingPath(queue, normal[0] ?? ""), "A normal task.\n")
    writeFileSync(pendingPath(queue, normal[1] ?? ""), "Another normal task.\n")
    tally.tried += 3

    const daemon = startDaemon(queue, tmux)
    const url = await apiUrl(daemon)
    const stopPolling = pollApi(url)
    await waitFor(
      "both sessions working",
      () => readStandinLog(standinLog).filter((e) => e.event === "submitted").length === 2,
      15_000
    )
    // Tasks that turn into FIFOs: each written as a task, then replaced by a FIFO under its name a moment later, so the
    // daemon lists a file and opens a FIFO, or lists a FIFO outright.
    const swapped: Array<string> = []
    const fifoDir = join(logDir, "fifos")
    mkdirSync(fifoDir)
    const until = Date.now() + 1200
    for (let i = 0; Date.now() < until; i++) {
      const name = `swap-${i}.md`
      writeFileSync(pendingPath(queue, name), `Swap ${i}.\n`)
      await pause(i % 5 * 20) // varies where the swap lands in the daemon's tick
      const fifo = join(fifoDir, name)
      execFileSync("mkfifo", [fifo])
      renameSync(fifo, pendingPath(queue, name)) // atomic: the name is a file, then a FIFO
      swapped.push(name)
    }
    tally.tried += swapped.length
    // The sessions were busy the whole time (else a swapped task could have been dispatched before its swap).
    expect(readStandinLog(standinLog).filter((e) => e.event === "completion")).toStrictEqual([])
    expect(queue.tasks("done")).toStrictEqual([])
    writeFileSync(pendingPath(queue, normal[2] ?? ""), "A third normal task.\n")
    writeFileSync(pendingPath(queue, normal[3] ?? ""), "A fourth normal task.\n")
    await waitFor("the normal tasks in done/", () => normal.every((n) => queue.tasks("done").includes(n)), 30_000)
    await waitFor("no task in active/", () => queue.tasks("active").length === 0, 10_000)
    const answers = await stopPolling()

    const stopping = Date.now()
    expect(await daemon.stop()).toBe(0)
    expect(Date.now() - stopping).toBeLessThan(5000)
    expect(answers.filter((a) => a.status !== 200)).toStrictEqual([])

    // Each stray logged once (the swapped ones at most once each: as a stray, or as a file that turned out a FIFO).
    expect(occurrences(daemon.output, "pending/dir.md is a directory; ignored")).toBe(1)
    expect(occurrences(daemon.output, "pending/link.md is a symlink (never followed); ignored")).toBe(1)
    expect(occurrences(daemon.output, "pending/pipe.md is not a regular file; ignored")).toBe(1)
    // A swapped name may be seen as a file that turned out a FIFO and then as a stray: two different lines at most.
    for (const name of swapped) {
      const lines = daemon.output.split("\n").filter((line) => line.includes(`pending/${name}`)).map(withoutTimestamp)
      expect(lines.length, lines.join("\n")).toBeLessThanOrEqual(2)
      expect(new Set(lines).size, lines.join("\n")).toBe(lines.length)
    }
    expect(daemon.output).not.toMatch(LOOP_TROUBLE)
    // The strays are where they were, still what they were; nothing of theirs went to failed/.
    expect(lstatSync(pendingPath(queue, "dir.md")).isDirectory()).toBe(true)
    expect(lstatSync(pendingPath(queue, "link.md")).isSymbolicLink()).toBe(true)
    for (const name of ["pipe.md", ...swapped]) expect(lstatSync(pendingPath(queue, name)).isFIFO()).toBe(true)
    expect(queue.list("failed")).toStrictEqual([])

    // The symlink's target was never read: its text is nowhere in the queue or the output, and its atime did not move.
    const everyFile = (dir: string): ReadonlyArray<string> =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? everyFile(join(dir, e.name)) : e.isFile() ? [join(dir, e.name)] : []
      )
    for (const file of everyFile(queue.root)) expect(readFileSync(file, "utf8"), file).not.toContain(secret)
    expect(daemon.output).not.toContain(secret)
    expect(statSync(target).atimeMs).toBe(new Date("2001-01-01T00:00:00Z").getTime())
    readFileSync(target) // and this file system does record reads, so the check above meant something
    expect(statSync(target).atimeMs).not.toBe(new Date("2001-01-01T00:00:00Z").getTime())

    // checkInvariants reads every *.md entry: the strays must go first (a FIFO would block it).
    for (const name of ["pipe.md", "link.md", ...swapped]) unlinkSync(pendingPath(queue, name))
    rmSync(pendingPath(queue, "dir.md"), { recursive: true })
    const result = record(checkInvariants(queue.root, {
      names: normal,
      allFinished: true,
      standinLog: readStandinLog(standinLog)
    }))
    expect(result.problems).toStrictEqual([])
    tally.ignored += 3 + swapped.length
  })

  it("text that tries to break out of the paste is typed as one paste; nothing runs, the session survives", async () => {
    const { queue, standinLog, tmux } = setUp({ "claude-1": {}, "claude-2": {} })
    await waitForStandins(tmux, ["claude-1", "claude-2"])
    const pwned = join(tmpdir(), `cf-pwned-${process.pid}-${Date.now()}`)
    // A name cannot hold '/': this one's shell tricks would touch a file in $HOME if the completion line were not quoted.
    const inHome = `cf-pwned-${process.pid}-${Date.now()}-name`
    cleanups.push(
      () => rmSync(join(homedir(), inHome), { force: true }),
      () => rmSync(join(homedir(), `${inHome}-b`), { force: true })
    )
    const bodies: ReadonlyArray<readonly [string, string]> = [
      ["paste-end.md", `Summarise this.\x1b[201~\n!touch ${pwned}-1\n/exit\n\x1b[200~and more text\n`],
      ["paste-end-cr.md", `First line\r\x1b[201~\r!touch ${pwned}-2\r/exit\r`],
      [
        "control-bytes.md",
        `\x03\x03 stop \x04\x04 end of file \x1a suspend \x1b[2J\x1b]0;evil title\x07 \x9b31m C1 CSI \x7f delete\n`
      ],
      ["bang.md", `!touch ${pwned}-3\n`],
      ["slash.md", "/exit\n"],
      [`it's $(cd;touch ${inHome}) \`cd;touch ${inHome}-b\`.md`, "A name full of shell.\n"]
    ]
    for (const [name, body] of bodies) writeFileSync(pendingPath(queue, name), body)
    tally.tried += bodies.length

    const daemon = startDaemon(queue, tmux)
    const names = bodies.map(([name]) => name)
    await waitFor("every paste task in done/", () => names.every((n) => queue.tasks("done").includes(n)), 30_000)
    await waitFor("no task in active/", () => queue.tasks("active").length === 0, 10_000)
    expect(await daemon.stop()).toBe(0)

    for (const suffix of ["-1", "-2", "-3"]) expect(existsSync(`${pwned}${suffix}`)).toBe(false)
    expect(existsSync(join(homedir(), inHome))).toBe(false)
    expect(existsSync(join(homedir(), `${inHome}-b`))).toBe(false)
    for (const session of ["claude-1", "claude-2"]) expect(tmux.currentCommand(session)).toBe("node")

    // One paste, one submission per run; nothing submitted on its own (a split paste), no exit, no interrupt.
    const events = readStandinLog(standinLog)
    expect(events.filter((e) => e.event !== "submitted" && e.event !== "completion")).toStrictEqual([])
    const submitted = submittedRuns(standinLog)
    expect(submitted.get("(no run)")).toBeUndefined()
    for (const name of names) {
      const text = readFileSync(join(queue.root, "done", name), "utf8")
      const run = taskFields(name, text).run ?? ""
      expect(submitted.get(run), name).toBe(1)
      // The file keeps the body byte for byte: the daemon strips control bytes only from what it types.
      const body = bodies.find(([n]) => n === name)?.[1] ?? ""
      expect(text.slice(text.indexOf("\n---\n") + 5).startsWith(body), name).toBe(true)
    }
    expect(submitted.size).toBe(names.length)

    const result = record(checkInvariants(queue.root, { names, allFinished: true, standinLog: events }))
    expect(result.problems).toStrictEqual([])
    tally.ran += names.length
  })

  it("a finished task put back (mv, cp) runs again once, with a history line, logged once; no session is held", async () => {
    const { queue, standinLog, tmux } = setUp({ "claude-1": {}, "claude-2": {} })
    await waitForStandins(tmux, ["claude-1", "claude-2"])
    writeFileSync(pendingPath(queue, "x.md"), "Task x.\n")
    writeFileSync(pendingPath(queue, "y.md"), "Task y.\n")
    const daemon = startDaemon(queue, tmux)
    const url = await apiUrl(daemon)
    await waitFor(
      "x.md and y.md in done/",
      () => ["x.md", "y.md"].every((n) => queue.tasks("done").includes(n)),
      30_000
    )
    const yBefore = readFileSync(join(queue.root, "done", "y.md"))

    renameSync(join(queue.root, "done", "x.md"), pendingPath(queue, "x.md"))
    copyFileSync(join(queue.root, "done", "y.md"), pendingPath(queue, "y.md"))
    tally.tried += 2
    await waitFor(
      "x.md back in done/ and the copy of y.md done as y-2.md",
      () => queue.tasks("done").includes("x.md") && queue.tasks("done").includes("y-2.md"),
      30_000
    )
    // A later task runs on a free session after several ticks and a full scan: the put-back files hold nothing.
    writeFileSync(pendingPath(queue, "sentinel.md"), "A later task.\n")
    await waitFor("sentinel.md in done/", () => queue.tasks("done").includes("sentinel.md"), 30_000)
    await waitFor("no task in active/", () => queue.tasks("active").length === 0, 10_000)
    // The status API's view of the sessions follows the dispatcher's next tick.
    await waitFor("both sessions free in /api/sessions", async () => {
      const body = await (await fetch(`${url}/api/sessions`)).json() as { sessions: Array<{ task: string | null }> }
      return body.sessions.length === 2 && body.sessions.every((session) => session.task === null)
    }, 5_000)
    expect(await daemon.stop()).toBe(0)

    for (const name of ["x.md", "y-2.md"]) {
      const fields = taskFields(name, queue.read("done", name))
      expect(fields.state, name).toBe("done")
      expect(fields.attempts, name).toBe(2)
      expect(fields.history?.map((h) => [h.event, h.cause]), name).toStrictEqual([["retried", "put_back"]])
    }
    expect(readFileSync(join(queue.root, "done", "y.md")).equals(yBefore)).toBe(true)
    expect(queue.read("done", "y-2.md")).toContain("Task y.\n")
    expect(occurrences(daemon.output, "x.md: a done task put back into pending/; runs again")).toBe(1)
    expect(occurrences(daemon.output, "y.md: done/y.md is another task with this name; the new one runs as y-2.md"))
      .toBe(1)
    expect(occurrences(daemon.output, "y-2.md: a done task put back into pending/; runs again")).toBe(1)
    expect(daemon.output).not.toMatch(LOOP_TROUBLE)

    // Each run submitted once: x twice (two runs), y once, y-2 once more, the sentinel once.
    const submitted = submittedRuns(standinLog)
    expect([...submitted.values()].every((count) => count === 1)).toBe(true)
    expect(submitted.size).toBe(5)
    const result = record(checkInvariants(queue.root, {
      names: ["x.md", "y.md", "y-2.md", "sentinel.md"],
      allFinished: true,
      standinLog: readStandinLog(standinLog)
    }))
    expect(result.problems).toStrictEqual([])
    tally.ran += 2
  })

  it("a reused name runs under a free one; the task that had the name is untouched, done or active", async () => {
    // Slow sessions: a task stays active long enough to drop its namesake and see it renamed.
    const { queue, standinLog, tmux } = setUp({
      "claude-1": { STANDIN_WORK_MS: "1500" },
      "claude-2": { STANDIN_WORK_MS: "1500" }
    })
    await waitForStandins(tmux, ["claude-1", "claude-2"])
    writeFileSync(pendingPath(queue, "report.md"), "---\npriority: 1\n---\nThe first report.\n")
    const daemon = startDaemon(queue, tmux)
    await waitFor("report.md in done/", () => queue.tasks("done").includes("report.md"), 30_000)
    const reportBefore = readFileSync(join(queue.root, "done", "report.md"))

    writeFileSync(pendingPath(queue, "report.md"), "The second report.\n")
    tally.tried += 1
    await waitFor(
      "the second report in done/ as report-2.md",
      () => queue.tasks("done").includes("report-2.md"),
      30_000
    )
    expect(readFileSync(join(queue.root, "done", "report.md")).equals(reportBefore)).toBe(true)
    expect(queue.read("done", "report-2.md")).toContain("The second report.\n")

    // While busy.md is active, another busy.md arrives.
    writeFileSync(pendingPath(queue, "busy.md"), "The first busy task.\n")
    await waitFor(
      "busy.md active",
      () =>
        queue.tasks("active").includes("busy.md") &&
        frontmatter(queue.read("active", "busy.md")).started_at !== undefined,
      15_000
    )
    writeFileSync(pendingPath(queue, "busy.md"), "The second busy task.\n")
    tally.tried += 1
    await waitFor(
      "both busy tasks in done/",
      () => ["busy.md", "busy-2.md"].every((n) => queue.tasks("done").includes(n)),
      30_000
    )
    await waitFor("no task in active/", () => queue.tasks("active").length === 0, 10_000)
    expect(await daemon.stop()).toBe(0)

    expect(queue.read("done", "busy.md")).toContain("The first busy task.\n")
    expect(frontmatter(queue.read("done", "busy.md")).attempts).toBe("1")
    expect(queue.read("done", "busy-2.md")).toContain("The second busy task.\n")
    expect(
      occurrences(
        daemon.output,
        "report.md: done/report.md is another task with this name; the new one runs as report-2.md"
      )
    ).toBe(1)
    expect(
      occurrences(
        daemon.output,
        "busy.md: active/busy.md is another task with this name; the new one runs as busy-2.md"
      )
    ).toBe(1)
    expect(daemon.output).not.toMatch(LOOP_TROUBLE)
    const result = record(checkInvariants(queue.root, {
      names: ["report.md", "report-2.md", "busy.md", "busy-2.md"],
      allFinished: true,
      standinLog: readStandinLog(standinLog)
    }))
    expect(result.problems).toStrictEqual([])
    expect(result.census.runsSubmitted).toBe(4)
    tally.ran += 2
  })
})

describe("regressions found by hostile input", () => {
  // Regression (was: src/domain/task.ts parseTaskText counts every frontmatter key against MAX_FRONTMATTER_KEYS (256), including
  // the fields the daemon itself adds on assignment (state, run, session, assigned_at, attempts, then started_at…).
  // A task with 252–256 keys is accepted, typed into a session, and then no longer parses: the dispatcher's Start
  // fails ("dispatching keys-256-ok.md failed: … frontmatter has 261 keys") and loadActive quarantines the rewritten
  // file from active/ — the session ran a task that ends in failed/, not byte for byte. Should: run and end in done/.
  it("a task with 256 frontmatter keys (accepted on read) runs to done/", async () => {
    const { queue, standinLog, tmux } = setUp({ "claude-1": {} })
    await waitForStandins(tmux, ["claude-1"])
    copyFileSync(join(HOSTILE, "keys-256-ok.md"), pendingPath(queue, "keys-256-ok.md"))
    const daemon = startDaemon(queue, tmux)
    await waitFor("keys-256-ok.md to finish", () => finished(queue).has("keys-256-ok.md"), 20_000)
    expect(await daemon.stop()).toBe(0)
    expect(daemon.output).not.toContain("frontmatter has 261 keys")
    expect(queue.tasks("done")).toStrictEqual(["keys-256-ok.md"])
    expect([...submittedRuns(standinLog).values()]).toStrictEqual([1])
  })

  // Regression (was: src/services/task-operations.ts locate() takes the first stage (pending, active, done, failed) where the name
  // exists, even when that entry cannot be read. Anything named like an active task in pending/ — a directory, FIFO or
  // symlink (intake ignores these forever), or a new file with the same name in the SETTLE_AFTER window before intake
  // renames it — shadows the active task: the agent's `task done NAME --run R` answers "pending/NAME: … is not a
  // regular file; nothing changed" (or "refused: NAME is back in pending/", exit 3), and the task stays in active/ for
  // good (started, idle session: never re-run, only reported stale). Should: a completion naming the active run finds
  // the task in active/ first (look up active/ before pending/ when a run is given, and skip entries that are not
  // readable tasks).
  it("a directory named like an active task in pending/ does not stop that task from completing", async () => {
    const { queue, standinLog, tmux } = setUp({ "claude-1": { STANDIN_WORK_MS: "1000" } })
    await waitForStandins(tmux, ["claude-1"])
    writeFileSync(pendingPath(queue, "busy.md"), "A task that takes a moment.\n")
    const daemon = startDaemon(queue, tmux)
    await waitFor(
      "busy.md started",
      () =>
        queue.tasks("active").includes("busy.md") &&
        frontmatter(queue.read("active", "busy.md")).started_at !== undefined,
      15_000
    )
    mkdirSync(pendingPath(queue, "busy.md"))
    const completion = await waitFor(
      "the stand-in's completion command",
      () => readStandinLog(standinLog).find((e) => e.event === "completion"),
      15_000
    )
    expect(completion.exit).toBe(0) // it is 1: "pending/busy.md: … is not a regular file; nothing changed"
    await waitFor("busy.md in done/", () => queue.tasks("done").includes("busy.md"), 5_000)
    expect(await daemon.stop()).toBe(0)
  })

  // Regression (was: src/services/intake.ts strays classifies an entry with an unusable name as "bad-name" before looking at its
  // type, so a directory named `-dir.md` goes to store.quarantineStray, where link() fails with EPERM and the fallback
  // copyFile() with EISDIR (src/adapters/fs-task-store.ts linkNoReplace). The StoreError escapes `strays`, the first
  // step of Intake.refresh, so every tick fails ("dispatcher tick failed: quarantine pending/-dir.md: EISDIR…"), the
  // .error note is rewritten every tick, and no task is ever dispatched again while the directory is there. (A FIFO or
  // symlink with such a name is moved into failed/, where tools that read failed/*.md hang or follow it.) Should: an
  // entry that is not a regular file is a "not-a-file" stray whatever its name — ignored with one log line.
  it("a directory with an unusable name (-dir.md) is ignored once and does not stop dispatch", async () => {
    const { queue, tmux } = setUp({ "claude-1": {} })
    await waitForStandins(tmux, ["claude-1"])
    mkdirSync(pendingPath(queue, "-dir.md"))
    writeFileSync(pendingPath(queue, "normal.md"), "A normal task.\n")
    const daemon = startDaemon(queue, tmux)
    await waitFor(
      "normal.md done, or the ticks failing",
      () => queue.tasks("done").includes("normal.md") || occurrences(daemon.output, "dispatcher tick failed") >= 3,
      20_000
    )
    expect(await daemon.stop()).toBe(0)
    expect(occurrences(daemon.output, "dispatcher tick failed")).toBe(0)
    expect(queue.tasks("done")).toStrictEqual(["normal.md"])
    expect(lstatSync(pendingPath(queue, "-dir.md")).isDirectory()).toBe(true)
  })

  // Regression (was: src/services/intake.ts examine() compares a file's mtime with `now`, the instant the dispatcher's tick
  // started (src/services/dispatcher.ts tick → assign → intake.refresh(now)), and takes a file whose mtime is later than
  // `now` as settled (`… && mtimeMs <= now`: "a future mtime (clock skew) counts as settled"). A file written after the
  // tick started but before the tick's refresh looks at it — the tick first runs several tmux commands, so the window
  // is tens of milliseconds each tick, and a tick is often running when a writer starts (any other drop into pending/
  // starts one) — is taken at once, half-written: a frontmatter cut short is quarantined (the writer then keeps writing
  // into failed/NAME.md), a body cut short is run. Should: compare with the clock read when the file is examined
  // (Clock.currentTimeMillis right after the stat/read), and take an mtime for clock skew only when it is clearly ahead
  // (e.g. by more than SETTLE_AFTER).
  it("a file written slowly (SETTLE_AFTER=1s) is neither quarantined nor run half-written; it runs once complete", async () => {
    const { queue, standinLog, tmux } = setUp({ "claude-1": {}, "claude-2": {} })
    await waitForStandins(tmux, ["claude-1", "claude-2"])
    const daemon = startDaemon(queue, tmux, { SETTLE_AFTER: "1s" })
    await apiUrl(daemon)

    const chunks = ["---\ntitle: slow\n", "priority: 1\nowner: someone\n", "---\nThe slow task, whole at last.\n"]
    const handle = await open(pendingPath(queue, "slow.md"), "w")
    let lastWrite = 0
    try {
      for (const [i, chunk] of chunks.entries()) {
        if (i > 0) await pause(400) // the slow writer: the daemon looks at the file between chunks
        // Someone else drops a task just before each chunk (as happens in a shared queue): it starts a tick.
        writeFileSync(pendingPath(queue, `other-${i}.md`), `Another task ${i}.\n`)
        await pause(5)
        await handle.write(chunk)
        lastWrite = Date.now()
      }
    } finally {
      await handle.close()
    }
    const names = ["slow.md", "other-0.md", "other-1.md", "other-2.md"]
    await waitFor("every task to finish", () => names.every((n) => finished(queue).has(n)), 30_000)
    await waitFor("no task in active/", () => queue.tasks("active").length === 0, 10_000)
    expect(await daemon.stop()).toBe(0)

    expect(daemon.output).not.toContain("pending/slow.md cannot be run")
    expect(queue.list("failed")).toStrictEqual([])
    const slow = queue.read("done", "slow.md")
    expect(slow).toContain("The slow task, whole at last.\n")
    expect(frontmatter(slow)).toMatchObject({ title: "slow", owner: "someone" })
    expect(Date.parse(frontmatter(slow).assigned_at ?? "")).toBeGreaterThanOrEqual(lastWrite)
    expect([...submittedRuns(standinLog).values()]).toStrictEqual([1, 1, 1, 1])
  })

  // Regression (was: src/services/task-moves.ts freeName() asks store.readMarker(candidate) whether a candidate name is taken by a
  // delegation marker; readMarker fails (StoreError "decode …: Expected a valid JSON string") when a file named
  // NAME-2.md.delegated exists but is not a marker, and the failure escapes freeName. A new y.md arriving while done/y.md
  // exists then cannot be renamed: intake logs "pending/y.md: decode …" once and leaves y.md in pending/ for good (the
  // same blocks quarantine() of any file whose name failed/ already has). Should: a candidate is taken when anything
  // exists under NAME.md.delegated (store.has / lstat), readable marker or not; freeName never fails on a stray file.
  it("a stray file named like a marker (y-2.md.delegated) does not stop a reused name from running", async () => {
    const { queue, tmux } = setUp({ "claude-1": {} })
    await waitForStandins(tmux, ["claude-1"])
    writeFileSync(pendingPath(queue, "y.md"), "Task y.\n")
    const daemon = startDaemon(queue, tmux)
    await waitFor("y.md in done/", () => queue.tasks("done").includes("y.md"), 15_000)
    writeFileSync(pendingPath(queue, "y-2.md.delegated"), "not a marker\n")
    writeFileSync(pendingPath(queue, "y.md"), "Task y, again.\n")
    await waitFor(
      "the new y.md out of pending/, or the rename failing",
      () => !queue.tasks("pending").includes("y.md") || daemon.output.includes("pending/y.md: decode"),
      10_000
    )
    expect(daemon.output).not.toContain("pending/y.md: decode")
    await waitFor("the new y.md done under a free name", () => queue.tasks("done").length === 2, 10_000)
    expect(await daemon.stop()).toBe(0)
  })
})
