/**
 * Records real Claude Code screens: for each plan × width, a fresh config directory, the real `claude` in a private
 * tmux server talking to the Anthropic API stand-in, driven to each moment worth classifying, saved as
 * `<state>--<scenario>--<version>--<width>.txt` with an entry in `cases.json` saying what a classifier must read.
 * Easy to get wrong: a screen is saved only once it has settled (Claude Code redraws in steps, and a frame caught
 * halfway shows the old footer under a new dialog), and the expected state is the plan's, never today's classifier's.
 *
 * Usage: node scripts/record-screens.ts [--claude PATH | --install VERSION] [--version-label X.Y.Z]
 *          [--out test/fixtures/real-screens] [--widths 80,200] [--height 40] [--only plan,plan] [--concurrency 4]
 *          [--time-zone America/New_York]
 * Without --claude or --install it records the pinned devDependency (`node_modules/.bin/claude`). `--install 2.1.197`
 * installs that version with npm into `${XDG_CACHE_HOME:-~/.cache}/claude-failover/claude-code-2.1.197` (outside the
 * repository; reused when it is there) and records it. The version label defaults to what `claude --version` says.
 *
 * Determinism: what would differ between two runs only by chance is replaced in the saved text, keeping its length so
 * no line wraps differently: the random suffix of the temp directory (`cf-rec-XXXXXX`), the stand-in's port where
 * an error names it (`127.0.0.1:54321`) and the session id that `claude --resume` names (all zeros). Clock times
 * (`done 6:35 PM`, `resets 3:35pm`) stay real; each case records `recordedAt` and `timeZone`, the `now` and zone a
 * classifier needs to read them. The spinner's verb, frame and counters differ from run to run too.
 */
import { execFileSync } from "node:child_process"
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync
} from "node:fs"
import { homedir, tmpdir } from "node:os"
import { basename, dirname, join, resolve } from "node:path"
import { parseArgs } from "node:util"
import {
  type AnthropicApi,
  type LimitScenario,
  type RequestRecord,
  type ResetScenario,
  type Scenario,
  startAnthropicApi
} from "../stand-ins/anthropic-api.ts"

// ---------------------------------------------------------------------------------------------------------------------
// What a case says

export type ExpectedState =
  | "idle"
  | "busy"
  | "permission_prompt"
  | "usage_limited"
  | "exited"
  | "unknown"
  | "setup_dialog"
  | "turn_error"

export interface ScreenCase {
  readonly file: string
  readonly version: string
  readonly width: number
  readonly height: number
  /** The recording plan's name for this moment (the middle of the file name). */
  readonly scenario: string
  /** The stand-in's scenario when the screen was saved. */
  readonly apiScenario: Scenario
  readonly expect: ExpectedState
  /** `usage_limited` only, when the screen names a reset time: the instant it names. */
  readonly resetAt?: string
  /** What is typed in the input box (`""` empty or placeholder); null when no input box is on screen. */
  readonly inputBox: string | null
  /** The classifier's `now` and `timeZone` for this screen. */
  readonly recordedAt: string
  readonly timeZone: string
  readonly note: string
}

// ---------------------------------------------------------------------------------------------------------------------
// Screen reading, just enough to know when to save

const lines = (screen: string) => screen.split("\n").map((line) => line.trimEnd())
const RULE = /^\s*─{10,}\s*$/

/**
 * The text in the `❯` input box between two rules, or undefined when there is none (a dialog, a shell).
 * The box's `❯` is followed by a no-break space (U+00A0); the echo of a submitted prompt by a plain one.
 */
export const inputBox = (screen: string): string | undefined => {
  const all = lines(screen)
  for (let top = all.length - 2; top >= 0; top--) {
    if (!RULE.test(all[top] ?? "") || !/^❯(?:\s|$)/.test(all[top + 1] ?? "")) continue
    const bottom = all.findIndex((line, i) => i > top && RULE.test(line))
    if (bottom < 0) continue
    // The last frame of a session that ended stays above the shell prompt: no input box any more.
    if (all.slice(bottom + 1).some((line) => /Resume this session with:|^\S+@cf-record:/.test(line))) return undefined
    const text = all.slice(top + 1, bottom).map((line, i) => (i === 0 ? line.replace(/^❯\s?/, "") : line).trim())
    const joined = text.join("\n").trim()
    // Grey placeholders (capture-pane drops the colour): an empty box.
    return /^(?:Try "[^"]*"|Resend your message to try again|Once fixed, resend your message)$/.test(joined)
      ? ""
      : joined
  }
  return undefined
}

const footerBusy = (screen: string) => /esc to interrupt/.test(screen)
const idleWith = (text: string | RegExp) => (screen: string) =>
  inputBox(screen) !== undefined && !footerBusy(screen) &&
  (typeof text === "string" ? screen.includes(text) : text.test(screen))

// ---------------------------------------------------------------------------------------------------------------------
// One Claude Code session in a private tmux server

const KEY = "sk-ant-api03-standin-0000000000000000000000"
const TOKEN = "sk-ant-oat01-standin-0000000000000000000000"
const SESSION = "cc"
const PS1 = "\\u@cf-record:\\W\\$ "

type Seed = "complete" | "no-trust" | "no-onboarding"
type Auth = "oauth" | "api-key" | "api-key-approved"

interface Job {
  readonly plan: Plan
  readonly width: number
}

class Recording {
  readonly socket = `cf-rec-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
  readonly root = mkdtempSync(join(tmpdir(), "cf-rec-"))
  readonly home = join(this.root, "home")
  readonly work = join(this.root, "work")
  readonly saved: Array<ScreenCase> = []
  readonly log: Array<string> = []
  requests: ReadonlyArray<RequestRecord> = []
  api: AnthropicApi | undefined
  started = false

  readonly job: Job
  readonly settings: Settings

  constructor(job: Job, settings: Settings) {
    this.job = job
    this.settings = settings
  }

  tmux(...args: ReadonlyArray<string>): string {
    return execFileSync("tmux", ["-u", "-L", this.socket, ...args], { encoding: "utf8", env: this.env() })
  }

  /** The whole environment Claude Code sees: nothing of the recording machine's own settings leaks in. */
  env(): Record<string, string> {
    const auth = this.job.plan.auth === "oauth" ? { CLAUDE_CODE_OAUTH_TOKEN: TOKEN } : { ANTHROPIC_API_KEY: KEY }
    return {
      PATH: `${dirname(this.settings.claude)}:/usr/local/bin:/usr/bin:/bin`,
      HOME: this.home,
      LANG: "C.UTF-8",
      TZ: this.settings.timeZone,
      // An update check would reach for the network and print in the footer when it fails.
      DISABLE_AUTOUPDATER: "1",
      ANTHROPIC_BASE_URL: this.api?.url ?? "http://127.0.0.1:9",
      ...auth
    }
  }

  async start(): Promise<void> {
    const { plan, width } = this.job
    this.api = await startAnthropicApi({
      scenario: plan.apiScenario,
      slowSeconds: 40,
      resetAt: (scenario) => this.resetAt(scenario),
      ...(plan.text === undefined ? {} : { text: plan.text(width) }),
      ...(plan.toolText === undefined ? {} : { toolText: plan.toolText }),
      ...(plan.bashCommand === undefined ? {} : { bashCommand: plan.bashCommand }),
      log: (line) => this.log.push(line)
    })
    mkdirSync(this.home, { recursive: true })
    mkdirSync(this.work, { recursive: true })
    writeFileSync(join(this.home, ".claude.json"), JSON.stringify(seedConfig(plan.seed, plan.auth, this.work), null, 2))
    // The operator's shell, with a prompt of our own: it is what the pane shows after Claude Code exits.
    const rc = join(this.root, "bashrc")
    writeFileSync(rc, `PS1='${PS1}'\n`)
    this.tmux(
      "new-session",
      "-d",
      "-s",
      SESSION,
      "-x",
      String(width),
      "-y",
      String(this.settings.height),
      "-c",
      this.work,
      `bash --noprofile --rcfile ${rc} -i`
    )
    this.started = true
    // Without it Claude Code sometimes shows a tip about tmux focus events in its footer: noise, and not every run.
    this.tmux("set-option", "-g", "focus-events", "on")
    await this.waitFor("the shell prompt", (screen) => /cf-record:work#\s*$/m.test(screen), 10_000)
    this.tmux("send-keys", "-t", SESSION, "-l", ["claude", ...plan.args].join(" "))
    this.tmux("send-keys", "-t", SESSION, "Enter")
  }

  screen(): string {
    return this.tmux("capture-pane", "-p", "-t", SESSION)
  }

  async waitFor(what: string, check: (screen: string) => boolean, timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const screen = this.screen()
      if (check(screen)) return screen
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}; the screen:\n${screen}`)
      }
      await sleep(200)
    }
  }

  /** Waits until `check` holds and the screen has not changed for `quietMs` (busy screens never settle: use waitFor). */
  async settled(what: string, check: (screen: string) => boolean, timeoutMs = 60_000, quietMs = 800): Promise<string> {
    const deadline = Date.now() + timeoutMs
    let last = ""
    let since = Date.now()
    for (;;) {
      const screen = this.screen()
      if (screen !== last) {
        last = screen
        since = Date.now()
      } else if (check(screen) && Date.now() - since >= quietMs) return screen
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what} to settle; the screen:\n${screen}`)
      }
      await sleep(150)
    }
  }

  /** Pastes as the daemon does: a buffer in bracketed-paste mode, then Enter once Claude Code has taken it. */
  async submit(text: string): Promise<void> {
    this.paste(text)
    await sleep(300)
    this.tmux("send-keys", "-t", SESSION, "Enter")
  }

  paste(text: string): void {
    execFileSync("tmux", ["-u", "-L", this.socket, "load-buffer", "-b", "prompt", "-"], {
      input: text,
      env: this.env()
    })
    this.tmux("paste-buffer", "-p", "-d", "-b", "prompt", "-t", SESSION)
  }

  type(text: string): void {
    this.tmux("send-keys", "-t", SESSION, "-l", text)
  }

  keys(...keys: ReadonlyArray<string>): void {
    this.tmux("send-keys", "-t", SESSION, ...keys)
  }

  setScenario(scenario: Scenario): void {
    this.api?.setScenario(scenario)
  }

  /** Saves the screen as it is now (or `screen`, just read) with what a classifier must say about it. */
  save(expect: ExpectedState, scenario: string, screen: string, extra: { resetAt?: number; note?: string } = {}): void {
    const file = `${expect}--${scenario}--${this.settings.version}--${this.job.width}.txt`
    const text = this.scrub(screen)
    writeFileSync(join(this.settings.staging, file), text)
    const box = inputBox(text)
    this.saved.push({
      file,
      version: this.settings.version,
      width: this.job.width,
      height: this.settings.height,
      scenario,
      apiScenario: this.api?.scenario() ?? this.job.plan.apiScenario,
      expect,
      ...(extra.resetAt === undefined ? {} : { resetAt: new Date(extra.resetAt * 1000).toISOString() }),
      inputBox: box ?? null,
      recordedAt: new Date().toISOString(),
      timeZone: this.settings.timeZone,
      note: extra.note ?? ""
    })
  }

  /** Replaces what differs between runs by chance with text of the same length. */
  scrub(screen: string): string {
    const suffix = basename(this.root).slice("cf-rec-".length)
    const port = String(this.api?.port ?? "")
    return screen
      .split(suffix).join("X".repeat(suffix.length))
      .split(`127.0.0.1:${port}`).join(`127.0.0.1:${"54321".slice(0, port.length).padEnd(port.length, "0")}`)
      .replace(
        /(claude --resume )[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g,
        "$100000000-0000-0000-0000-000000000000"
      )
  }

  /**
   * The reset instant the stand-in announces for a limit or a warning: a whole minute (what the screen shows), two
   * hours ahead for the 5-hour window (a time of day), three days for the others (a date), or the plan's own.
   */
  resetAt(scenario: ResetScenario): number {
    const fiveHour = scenario === "limit-5h" || scenario === "warning" || scenario === "slow-warning"
    const ahead = this.job.plan.resetInSeconds ?? (fiveHour ? 2 * 3600 : 3 * 86_400)
    return Math.floor(Date.now() / 60_000) * 60 + ahead
  }

  /** The reset instant the stand-in last announced: what the screen shows. */
  announcedReset(): number {
    const announced = this.api?.requests().findLast((request) => request.resetAt !== undefined)?.resetAt
    if (announced === undefined) throw new Error("the stand-in announced no usage limit")
    return announced
  }

  /** The pane's shell and everything under it (Claude Code and its children), by pid. */
  panePids(): ReadonlyArray<number> {
    const childrenOf = (pid: number): ReadonlyArray<number> => {
      try {
        return execFileSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" })
          .split("\n").map((line) => line.trim()).filter((line) => line !== "").map(Number)
      } catch {
        return [] // ps exits 1 when there are none
      }
    }
    let queue: Array<number>
    try {
      queue = this.tmux("list-panes", "-a", "-F", "#{pane_pid}").split("\n").filter((p) => p !== "").map(Number)
    } catch {
      return [] // the server is gone already
    }
    const pids: Array<number> = []
    for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
      pids.push(pid)
      queue.push(...childrenOf(pid))
    }
    return pids
  }

  /** Kills the tmux server, waits for the processes it ran to end (SIGKILL after 5 s), removes every temp file. */
  async stop(): Promise<void> {
    if (this.started) {
      const pids = this.panePids()
      let socketPath = ""
      try {
        socketPath = this.tmux("display-message", "-p", "#{socket_path}").trim()
        this.tmux("kill-server")
      } catch {
        // already gone
      }
      if (socketPath !== "") rmSync(socketPath, { force: true })
      const alive = (pid: number) => {
        try {
          process.kill(pid, 0)
          return true
        } catch {
          return false
        }
      }
      const deadline = Date.now() + 5000
      while (pids.some(alive) && Date.now() < deadline) await sleep(100)
      for (const pid of pids.filter(alive)) process.kill(pid, "SIGKILL")
    }
    this.requests = this.api?.requests() ?? []
    await this.api?.close()
    rmSync(this.root, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 })
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** `~/.claude.json` as an operator's machine has it: onboarding done and the folder trusted, unless the plan is about those. */
const seedConfig = (seed: Seed, auth: Auth, work: string): Record<string, unknown> => {
  const approved = auth === "api-key-approved"
    ? { customApiKeyResponses: { approved: [KEY.slice(-20)], rejected: [] } }
    : {}
  if (seed === "no-onboarding") return { ...approved }
  return {
    hasCompletedOnboarding: true,
    ...approved,
    projects: { [work]: { hasTrustDialogAccepted: seed === "complete" } }
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// The plans: what to do in one session and which moments to save

interface Plan {
  readonly name: string
  readonly apiScenario: Scenario
  readonly seed: Seed
  readonly auth: Auth
  readonly args: ReadonlyArray<string>
  /** How far ahead limits reset (default: see Recording.resetAt). */
  readonly resetInSeconds?: number
  /** The command of the `bash` scenario (default: the prompt's completion line). */
  readonly bashCommand?: string
  /** The stand-in's answer text (`text`, `slow`) for a screen this many columns wide (default: the stand-in's). */
  readonly text?: (width: number) => string
  /** The stand-in's answer after a tool call ran (default: the stand-in's). */
  readonly toolText?: string
  /** Rough duration, so the long ones start first. */
  readonly expectedSeconds: number
  readonly run: (r: Recording) => Promise<void>
}

const ANSWER = "Done. Nothing else to do here."
const FINAL = "The command ran. The task is complete."

const ready = (r: Recording) => r.settled("the empty input box", (screen) => inputBox(screen) === "", 60_000, 1500)

/** One answered turn, so a later screen has history above it. */
const answerFirst = async (r: Recording) => {
  await ready(r)
  await r.submit("Say hello in one short sentence.")
  await r.settled("the first answer", idleWith(ANSWER))
}

/** Anything a version says when a turn stopped at a usage limit (the prefixes of its stop messages). */
const LIMIT_TEXT = /You've hit your|You've reached your|You're out of|Your org is out of|Your seat type|usage limit/
const MENU = /Enter to confirm/
const AUTO_CONTINUE = /Continuing automatically|continue automatically/

/** The turn stopped at a limit and the screen shows what follows it: the menu, the auto-continue, or an idle box. */
const limitStopped = (screen: string) =>
  LIMIT_TEXT.test(screen) &&
  (MENU.test(screen) || AUTO_CONTINUE.test(screen) || (inputBox(screen) !== undefined && !footerBusy(screen)))

interface LimitPlanOptions {
  /** The plan's name (default: the scenario's). */
  readonly name?: string
  readonly resetInSeconds?: number
  readonly expectedSeconds?: number
  /** What the limit is, for the notes. */
  readonly about?: string
}

/**
 * One answered turn, then a limit: the screen as it settles (menu, auto-continue or just the banner) and, when there
 * is a menu or an auto-continue, the screen after Esc.
 */
const limitPlan = (scenario: LimitScenario, options: LimitPlanOptions = {}): Plan => {
  const name = options.name ?? scenario
  const about = options.about === undefined ? "" : `${options.about}: `
  return {
    name,
    apiScenario: "text",
    seed: "complete",
    auth: "oauth",
    args: [],
    ...(options.resetInSeconds === undefined ? {} : { resetInSeconds: options.resetInSeconds }),
    expectedSeconds: options.expectedSeconds ?? 40,
    run: async (r) => {
      await answerFirst(r)
      r.setScenario(scenario)
      await r.submit("Summarise the open issues in this project.")
      // A menu opens a moment after the banner: wait for a quiet screen so the banner alone is not taken for all.
      const banner = await r.settled("the limit", limitStopped, 60_000, 2000)
      const resetAt = r.announcedReset()
      const menu = MENU.test(banner)
      const auto = !menu && AUTO_CONTINUE.test(banner)
      r.save("usage_limited", name, banner, {
        resetAt,
        note: about + (menu
          ? "the limit menu opened by itself (/rate-limit-options)"
          : auto
          ? "banner, set to continue automatically"
          : "the limit banner; no menu and no automatic continue")
      })
      if (!menu && !auto) return
      r.keys("Escape")
      const after = await r.settled("the screen after Esc", (screen) =>
        !MENU.test(screen) &&
        inputBox(screen) !== undefined && screen !== banner)
      r.save("usage_limited", `${name}-esc`, after, {
        resetAt,
        note: about + (menu
          ? "the limit menu dismissed with Esc: the banner stays, the limit has not reset"
          : "automatic continue cancelled with Esc: the limit has not reset")
      })
    }
  }
}

/** A turn that ends in an API error, after Claude Code's own retries if it makes any (their screens are saved too). */
const errorPlan = (name: "overloaded" | "plain-429" | "unauthorized", expectedSeconds: number): Plan => ({
  name,
  apiScenario: name,
  seed: "complete",
  auth: "oauth",
  args: [],
  expectedSeconds,
  run: async (r) => {
    await ready(r)
    const startedAt = Date.now()
    await r.submit("Summarise the open issues in this project.")
    const ended = (screen: string) =>
      /API Error|Not logged in|Please run \/login/i.test(screen) && !footerBusy(screen) &&
      inputBox(screen) !== undefined
    const retrying = (attempts: RegExp) => (screen: string) => attempts.test(screen) && footerBusy(screen)
    const first = await r.waitFor(
      "a retry or the error",
      (screen) => retrying(/attempt [2-9]\/\d+/)(screen) || ended(screen)
    )
    if (!ended(first)) {
      r.save("busy", `${name}-retrying`, first, { note: "Claude Code retrying by itself; the turn is still running" })
      // Later attempts look different (the status, a hint under it), and they are what is on screen most of the time.
      const late = await r.waitFor(
        "a late retry or the error",
        (screen) => retrying(/attempt [5-9]\/\d+/)(screen) || ended(screen),
        300_000
      )
      if (!ended(late)) r.save("busy", `${name}-retrying-late`, late, { note: "a late retry, minutes into the turn" })
    }
    const error = await r.settled("the turn to end in an error", ended, 600_000)
    const seconds = Math.round((Date.now() - startedAt) / 1000)
    r.log.push(`turn ended after ${seconds}s`)
    r.save("turn_error", name, error, {
      note: ended(first) ?
        "the turn ended in an API error without retrying" :
        `the turn ended in an API error after ${seconds}s of retries`
    })
  }
})

const bashPrompt = [
  "Task demo-task from the claude-failover queue (run r-0001):",
  "",
  "Say hello, then finish.",
  "",
  "(Task file: /srv/queue/active/demo-task.md)",
  "When you have finished, run this shell command, exactly as written:",
  "`echo task done demo-task --run r-0001 --queue-dir /srv/queue`",
  "If you cannot finish it, run this instead, with the reason in the quotes:",
  "`echo task fail demo-task --run r-0001 --queue-dir /srv/queue --reason \"…\"`"
].join("\n")

const PERMISSION = /Do you want to (?:proceed|create|make|overwrite)/

// ---------------------------------------------------------------------------------------------------------------------
// Limit texts where no limit is: quoted in an answer, printed by a tool, left over from an old limit

/** The banner texts an answer or a tool may quote: 2.1.332's, 2.1.197's and the 1.x wording. */
const QUOTED = {
  "5h": "You've hit your 5-hour limit · resets 1:11pm (America/New_York)",
  session: "You've hit your session limit · resets 8:30pm (Asia/Tokyo)",
  v1: "Claude usage limit reached. Your limit will reset at 3pm."
} as const
type Quoted = keyof typeof QUOTED

/** Short words, so a greedy fill of a line ends at most six columns short of it. */
const FILLER = (
  "The run went well for an hour or two, then it had to stop for the day: the log of the pane says when it ran out " +
  "of time, and as far as we can see it was at the end of a long task that had run for most of the night and was " +
  "just about done, so none of the work was lost and all of it can go on as soon as the next slot is free"
).split(" ")

/**
 * Words that fill the first line of an answer `width` columns wide (the text column is two narrower: `● ` and the
 * indent), so that the banner after them starts the second line of the paragraph.
 */
const fillLine = (width: number, tail: string): string => {
  const room = width - 2 - 1 // a column to spare: some versions keep one free at the right
  const words: Array<string> = []
  for (const word of FILLER.concat(FILLER)) {
    if ([...words, word, tail].join(" ").length > room) break
    words.push(word)
  }
  return [...words, tail].join(" ")
}

/** Where an answer quotes a banner: in a sentence, as a paragraph of its own, at the start of a paragraph's second line. */
type Placement = "inline" | "later-paragraph" | "continuation"

const quotingAnswer = (quoted: Quoted, placement: Placement, width: number): string => {
  const banner = QUOTED[quoted]
  switch (placement) {
    case "inline":
      return `The run stopped at 02:14 when the pane showed "${banner}"; the retry after the reset finished the ` +
        "remaining three tasks."
    case "later-paragraph":
      return [
        "Two things stopped the run.",
        "",
        "1. The test database was down from 01:00 to 01:40.",
        "2. Later the session printed:",
        "",
        banner,
        "",
        "Both are over now; the queue can run again."
      ].join("\n")
    case "continuation":
      return `${
        fillLine(width, "and the pane said:")
      } ${banner} The retry after the reset finished the remaining three tasks.`
  }
}

/** Where a quoted banner must be on screen for the plan to have worked (a line of its own starts with it). */
const quotedAt = (quoted: Quoted, placement: Placement) => {
  const start = QUOTED[quoted].slice(0, 24).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
  return placement === "inline" ? new RegExp(start.replace(/ /g, "\\s+")) : new RegExp(`^  ${start}`, "m")
}

const quotePlan = (quoted: Quoted, placement: Placement): Plan => ({
  name: `answer-quotes-${quoted}-${placement}`,
  apiScenario: "text",
  seed: "complete",
  auth: "oauth",
  args: [],
  text: (width) => quotingAnswer(quoted, placement, width),
  expectedSeconds: 20,
  run: async (r) => {
    await ready(r)
    await r.submit("Why did the night run stop?")
    const done = await r.settled("the answer", idleWith(/three\s+tasks\.|run\s+again\./))
    if (!quotedAt(quoted, placement).test(done)) throw new Error(`the banner is not where the plan puts it:\n${done}`)
    r.save("idle", `answer-quotes-${quoted}-${placement}`, done, {
      note:
        `a finished answer quoting the ${quoted === "v1" ? "1.x" : quoted === "5h" ? "2.1.332" : "2.1.197"} limit ` +
        `banner ${
          placement === "inline"
            ? "inside a sentence"
            : placement === "later-paragraph"
            ? "as a paragraph of its own after a numbered list"
            : "at the start of the second line of a wrapped paragraph"
        }; no limit was hit`
    })
  }
})

/** Prints three banner texts, one a line, as a tool's output. */
const PRINT_BANNERS = `printf '%s\\n' ${Object.values(QUOTED).map((text) => `"${text}"`).join(" ")}`

/** A limit, put aside (Esc), then new work that the API answers: the old banner stays above it. */
const oldLimitPlan: Plan = {
  name: "old-limit",
  apiScenario: "text",
  seed: "complete",
  auth: "oauth",
  args: [],
  expectedSeconds: 60,
  run: async (r) => {
    await ready(r)
    r.setScenario("limit-5h")
    await r.submit("Summarise the open issues in this project.")
    const banner = await r.settled("the limit", limitStopped, 60_000, 2000)
    const resetAt = new Date(r.announcedReset() * 1000).toISOString()
    const putAside = MENU.test(banner) ? "the menu dismissed with Esc" : "the automatic continue cancelled with Esc"
    if (MENU.test(banner) || AUTO_CONTINUE.test(banner)) {
      r.keys("Escape")
      await r.settled("the screen after Esc", (screen) =>
        !MENU.test(screen) && inputBox(screen) === "" &&
        screen !== banner)
    }
    r.setScenario("text")
    await r.submit("Say hello in one short sentence.")
    r.save(
      "idle",
      "old-limit-then-answer",
      await r.settled("the new answer", (screen) =>
        idleWith(ANSWER)(screen) &&
        screen.lastIndexOf(ANSWER) > screen.search(LIMIT_TEXT)),
      {
        note: `a 5-hour limit (resets ${resetAt}), ${putAside}; then a new prompt the API answered: the old banner ` +
          "stays above the finished answer"
      }
    )
    r.setScenario("slow")
    await r.submit("Explain this project in detail.")
    // Claude Code shows streamed text a line at a time: wait for the first line, so the screen shows new work.
    await r.waitFor("the streamed answer", (screen) =>
      footerBusy(screen) && /^[·✢✳✶✻✽*] \S[^\n]*…/m.test(screen) &&
      /This project routes/.test(screen), 30_000)
    r.save("busy", "old-limit-then-streaming", r.screen(), {
      note: `a 5-hour limit (resets ${resetAt}), ${putAside}, a new answer; then another prompt whose answer is ` +
        "streaming, under the old banner"
    })
    r.keys("Escape")
    await r.settled("the interrupted turn", idleWith("Interrupted"))
  }
}

/** An answer that carries the headers of a nearly used-up 5-hour window (`slow`: saved while it streams). */
const warningPlan = (slow: boolean): Plan => ({
  name: slow ? "warning-streaming" : "warning",
  apiScenario: "warning",
  seed: "complete",
  auth: "oauth",
  args: [],
  expectedSeconds: slow ? 40 : 20,
  run: async (r) => {
    await ready(r)
    const WARNING = /You've used \d+% of your|Approaching|Over \d+% of your|close to your/
    if (slow) {
      // The warning shows once an answer has ended: one answer, then a second one that streams.
      await r.submit("Say hello in one short sentence.")
      await r.settled(
        "the answer and the warning",
        (screen) => idleWith(ANSWER)(screen) && WARNING.test(screen),
        30_000
      )
      r.setScenario("slow-warning")
      await r.submit("Explain this project in detail.")
      const screen = await r.waitFor(
        "the warning while the answer streams",
        (screen) => footerBusy(screen) && WARNING.test(screen) && /^[·✢✳✶✻✽*] \S[^\n]*…/m.test(screen),
        30_000
      )
      r.save("busy", "warning-streaming", screen, {
        note: "an answer streaming while the 5-hour window is 92% used: a warning, not a limit"
      })
      r.keys("Escape")
      await r.settled("the interrupted turn", idleWith("Interrupted"))
      return
    }
    await r.submit("Say hello in one short sentence.")
    r.save(
      "idle",
      "warning",
      await r.settled(
        "the answer and the warning",
        (screen) => idleWith(ANSWER)(screen) && WARNING.test(screen),
        30_000
      ),
      {
        note: "a finished answer whose response said the 5-hour window is 92% used: a warning, not a limit"
      }
    )
  }
})

export const PLANS: ReadonlyArray<Plan> = [
  errorPlan("overloaded", 190),
  errorPlan("plain-429", 190),
  {
    name: "session",
    apiScenario: "text",
    seed: "complete",
    auth: "oauth",
    args: [],
    expectedSeconds: 30,
    run: async (r) => {
      r.save("idle", "fresh", await ready(r), { note: "just started, empty input box" })
      await r.submit("Say hello in one short sentence.")
      r.save("idle", "text", await r.settled("the answer", idleWith(ANSWER)), { note: "a finished answer" })
      r.type("draft of the next task")
      r.save(
        "idle",
        "typed",
        await r.settled("the typed text", (screen) => inputBox(screen) === "draft of the next task"),
        {
          note: "text typed into the input box, not submitted"
        }
      )
      r.keys("C-u")
      await r.settled("the cleared input box", (screen) => inputBox(screen) === "")
      r.keys("C-c")
      r.save(
        "idle",
        "ctrl-c-once",
        await r.waitFor("the exit hint", (screen) => /Press Ctrl-C again to exit/i.test(screen)),
        {
          note: "one Ctrl-C on an empty box: a second one within a few seconds would exit"
        }
      )
      await r.settled("the exit hint to go", (screen) => !/Press Ctrl-C again/i.test(screen) && inputBox(screen) === "")
      await r.submit("/exit")
      r.save("exited", "exit", await r.settled("the shell prompt", (screen) => /cf-record:work#\s*$/m.test(screen)), {
        note: "/exit: the last frame stays above the shell prompt"
      })
    }
  },
  {
    name: "slow",
    apiScenario: "slow",
    seed: "complete",
    auth: "oauth",
    args: [],
    expectedSeconds: 30,
    run: async (r) => {
      await ready(r)
      await r.submit("Explain this project in detail.")
      const busy = await r.waitFor(
        "the spinner",
        (screen) => footerBusy(screen) && /^[·✢✳✶✻✽*] \S[^\n]*…/m.test(screen)
      )
      await sleep(3000)
      r.save("busy", "slow", r.screen(), { note: "streaming an answer: spinner and `esc to interrupt`" })
      void busy
      r.type("queued follow-up")
      r.save(
        "busy",
        "slow-typed",
        await r.waitFor("the typed text", (screen) => inputBox(screen) === "queued follow-up"),
        {
          note: "still busy, with text typed in the input box (the footer may drop `esc to interrupt`)"
        }
      )
      r.keys("C-u")
      await r.waitFor("the cleared input box", (screen) => inputBox(screen) === "")
      r.keys("Escape")
      r.save("idle", "interrupted", await r.settled("the interrupted turn", idleWith("Interrupted")), {
        note: "the operator pressed Esc during the answer"
      })
    }
  },
  {
    name: "bash",
    apiScenario: "bash",
    seed: "complete",
    auth: "oauth",
    args: [],
    expectedSeconds: 30,
    run: async (r) => {
      await ready(r)
      r.paste(bashPrompt)
      const pasted = await r.settled("the pasted prompt", (screen) => (inputBox(screen) ?? "") !== "")
      r.save("idle", "bash-pasted", pasted, { note: "a multi-line task prompt pasted, Enter not yet pressed" })
      r.keys("Enter")
      const next = await r.settled(
        "the tool call to run or ask",
        (screen) => PERMISSION.test(screen) || idleWith(FINAL)(screen),
        90_000
      )
      if (PERMISSION.test(next)) {
        r.save("permission_prompt", "bash", next, { note: "Bash needs permission in this version's default mode" })
        r.keys("Enter")
      }
      r.save("idle", "bash", await r.settled("the final answer", idleWith(FINAL), 90_000), {
        note: "after a Bash tool call ran and the turn finished"
      })
    }
  },
  {
    name: "write",
    apiScenario: "write",
    seed: "complete",
    auth: "oauth",
    args: ["--permission-mode", "default"],
    expectedSeconds: 30,
    run: async (r) => {
      await ready(r)
      await r.submit("Write a notes.md file.")
      r.save(
        "permission_prompt",
        "write",
        await r.settled("the permission dialog", (screen) => PERMISSION.test(screen)),
        {
          note: "Write needs permission in the default permission mode"
        }
      )
      r.keys("Enter")
      r.save("idle", "write", await r.settled("the final answer", idleWith("I wrote notes.md.")), {
        note: "after the Write tool call was allowed and ran"
      })
    }
  },
  limitPlan("limit-5h"),
  limitPlan("limit-weekly"),
  limitPlan("limit-opus"),
  limitPlan("limit-sonnet", { about: "the weekly Sonnet limit (claim seven_day_sonnet)" }),
  limitPlan("limit-overage", { about: "extra usage used up (claim overage, overage status rejected)" }),
  limitPlan("limit-weekly", {
    name: "limit-weekly-next-year",
    resetInSeconds: 40 * 86_400,
    about: "a weekly limit that resets 40 days ahead, in the next year"
  }),
  ...(["5h", "session", "v1"] as const).flatMap((quoted) =>
    (["inline", "later-paragraph", "continuation"] as const).map((placement) => quotePlan(quoted, placement))
  ),
  {
    name: "tool-output-banners",
    apiScenario: "bash",
    seed: "complete",
    auth: "oauth",
    args: [],
    bashCommand: PRINT_BANNERS,
    toolText: "Those lines are from last night's log; nothing is limited now.",
    expectedSeconds: 30,
    run: async (r) => {
      await ready(r)
      await r.submit("Print the limit lines from last night's log.")
      const done = idleWith(/nothing\s+is\s+limited\s+now\./)
      const next = await r.settled(
        "the tool call to run or ask",
        (screen) => PERMISSION.test(screen) || done(screen),
        90_000
      )
      if (PERMISSION.test(next)) r.keys("Enter")
      r.save("idle", "tool-output-banners", await r.settled("the final answer", done, 90_000), {
        note: "a Bash tool call printed three limit banners (2.1.332, 2.1.197 and 1.x wording), then a text answer; " +
          "no limit was hit"
      })
    }
  },
  oldLimitPlan,
  warningPlan(false),
  warningPlan(true),
  errorPlan("unauthorized", 30),
  {
    name: "limit-5h-resume",
    apiScenario: "text",
    seed: "complete",
    auth: "oauth",
    args: [],
    resetInSeconds: 120,
    expectedSeconds: 200,
    run: async (r) => {
      await answerFirst(r)
      r.setScenario("limit-5h")
      await r.submit("Summarise the open issues in this project.")
      const banner = await r.settled("the limit", (screen) =>
        /You've hit your/.test(screen) &&
        (/Enter to confirm/.test(screen) || /Continuing automatically/.test(screen)))
      const resetAt = r.announcedReset()
      // Only versions that continue by themselves have more to show; the others open the menu of limit-5h.
      if (/Enter to confirm/.test(banner)) return
      r.setScenario("text")
      const shortly = await r.waitFor("the reset", (screen) => /Continuing shortly/.test(screen), 200_000)
      r.save("usage_limited", "limit-5h-shortly", shortly, {
        resetAt,
        note: "the reset time has passed; Claude Code is about to continue the interrupted turn by itself"
      })
      r.save(
        "idle",
        "limit-5h-resumed",
        await r.settled(
          "the resumed turn",
          (screen) =>
            /Continuing automatically|Usage limit reset/.test(screen) && idleWith(ANSWER)(screen) &&
            screen.lastIndexOf(ANSWER) > screen.indexOf("You've hit your"),
          120_000
        ),
        {
          note: "after the reset Claude Code continued the interrupted turn by itself and finished it"
        }
      )
    }
  },
  {
    name: "bash-ask",
    apiScenario: "bash",
    seed: "complete",
    auth: "oauth",
    args: ["--permission-mode", "default"],
    bashCommand: "touch task-done.flag",
    expectedSeconds: 25,
    run: async (r) => {
      await ready(r)
      await r.submit("Create the flag file, then finish.")
      r.save(
        "permission_prompt",
        "bash-ask",
        await r.settled("the permission dialog", (screen) => PERMISSION.test(screen)),
        {
          note: "Bash needs permission in the default permission mode"
        }
      )
      r.keys("Enter")
      await r.settled("the final answer", idleWith(FINAL))
    }
  },
  {
    name: "trust",
    apiScenario: "text",
    seed: "no-trust",
    auth: "oauth",
    args: [],
    expectedSeconds: 15,
    run: async (r) => {
      r.save(
        "setup_dialog",
        "trust",
        await r.settled(
          "the trust dialog",
          (screen) => /trust this folder/.test(screen) && /Enter to confirm/.test(screen)
        ),
        {
          note: "the folder is not trusted yet; Enter answers for the operator"
        }
      )
    }
  },
  {
    name: "api-key",
    apiScenario: "text",
    seed: "complete",
    auth: "api-key",
    args: [],
    expectedSeconds: 25,
    run: async (r) => {
      r.save(
        "setup_dialog",
        "api-key",
        await r.settled(
          "the API key dialog",
          (screen) => /Detected a custom API key/.test(screen) && /Enter to confirm/.test(screen)
        ),
        {
          note: "ANTHROPIC_API_KEY set and not approved; Enter rejects it for good"
        }
      )
      r.keys("Enter")
      await ready(r)
      await r.submit("Say hello in one short sentence.")
      r.save(
        "turn_error",
        "api-key-rejected",
        await r.settled("the login error", (screen) => /Not logged in|\/login/.test(screen) && idleWith(/❯/)(screen)),
        {
          note: "the API key was rejected in the dialog: no credentials, the turn fails at once"
        }
      )
    }
  },
  {
    name: "onboarding",
    apiScenario: "text",
    seed: "no-onboarding",
    auth: "api-key-approved",
    args: [],
    expectedSeconds: 20,
    run: async (r) => {
      r.save(
        "setup_dialog",
        "onboarding",
        await r.settled("the onboarding theme menu", (screen) => /Choose the text style/.test(screen)),
        {
          note: "first start: the theme step (an approved API key skips the connectivity check)"
        }
      )
      r.keys("Enter")
      r.save(
        "setup_dialog",
        "onboarding-security",
        await r.settled(
          "the security notes",
          (screen) => /Security notes:/.test(screen) && /Press Enter to continue/.test(screen)
        ),
        {
          note: "first start: the security notes"
        }
      )
    }
  }
]

// ---------------------------------------------------------------------------------------------------------------------
// Running it

interface Settings {
  readonly claude: string
  readonly version: string
  readonly out: string
  /** Where screens are written during the run; they reach `out` only when the run was not interrupted. */
  readonly staging: string
  readonly widths: ReadonlyArray<number>
  readonly height: number
  readonly timeZone: string
  readonly concurrency: number
}

const live = new Set<Recording>()

interface JobResult {
  readonly job: Job
  readonly saved: ReadonlyArray<ScreenCase>
  readonly error: string | undefined
  readonly seconds: number
  readonly log: ReadonlyArray<string>
  readonly requests: ReadonlyArray<RequestRecord>
}

const runJob = async (job: Job, settings: Settings): Promise<JobResult> => {
  const started = Date.now()
  const recording = new Recording(job, settings)
  live.add(recording)
  let error: string | undefined
  try {
    await recording.start()
    await job.plan.run(recording)
  } catch (failure) {
    error = String(failure)
  } finally {
    await recording.stop().catch((failure: unknown) =>
      process.stderr.write(`cleanup of ${job.plan.name}@${job.width}: ${String(failure)}\n`)
    )
    live.delete(recording)
  }
  const { saved, log, requests } = recording
  return { job, saved, error, seconds: (Date.now() - started) / 1000, log, requests }
}

let staging: string | undefined
let interrupted = false

/** The repository this script is in, and the Claude Code pinned in its devDependencies. */
const ROOT = resolve(import.meta.dirname, "..")
export const PINNED_CLAUDE = join(ROOT, "node_modules/.bin/claude")

/** The version a Claude Code binary says it is (`2.1.332 (Claude Code)`), run with a HOME of its own. */
const versionOf = (claude: string): string => {
  const home = mkdtempSync(join(tmpdir(), "cf-rec-version-"))
  try {
    const out = execFileSync(claude, ["--version"], {
      encoding: "utf8",
      env: { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: home, DISABLE_AUTOUPDATER: "1" },
      timeout: 30_000
    })
    const version = /^(\d+\.\d+\.\d+)/.exec(out.trim())?.[1]
    if (version === undefined) throw new Error(`${claude} --version said ${JSON.stringify(out.trim())}`)
    return version
  } finally {
    rmSync(home, { recursive: true, force: true })
  }
}

/** Where `--install VERSION` puts that version: a cache outside the repository, kept for later runs. */
export const installDirectory = (version: string): string =>
  join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "claude-failover", `claude-code-${version}`)

/** Installs `@anthropic-ai/claude-code@VERSION` with npm into its cache directory, unless it is there already. */
const install = (version: string): string => {
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new Error(`--install wants a version such as 2.1.197, not ${version}`)
  const dir = installDirectory(version)
  const claude = join(dir, "node_modules/.bin/claude")
  if (existsSync(claude) && versionOf(claude) === version) {
    process.stderr.write(`using Claude Code ${version} from ${dir}\n`)
    return claude
  }
  process.stderr.write(`installing Claude Code ${version} into ${dir}\n`)
  mkdirSync(dir, { recursive: true })
  // Its postinstall script puts the platform's native binary in place: allowed here as in the project's package.json.
  writeFileSync(
    join(dir, "package.json"),
    `${
      JSON.stringify(
        {
          name: `claude-code-${version}`,
          private: true,
          allowScripts: { "@anthropic-ai/claude-code": true }
        },
        null,
        2
      )
    }\n`
  )
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--save-exact", `@anthropic-ai/claude-code@${version}`], {
    cwd: dir,
    stdio: ["ignore", process.stderr, process.stderr]
  })
  const installed = versionOf(claude)
  if (installed !== version) throw new Error(`npm installed Claude Code ${installed} into ${dir}, not ${version}`)
  return claude
}

/** Stops every recording and drops what this run recorded, leaving the fixtures as they were. */
const cleanUpAndExit = (code: number) => {
  interrupted = true
  void Promise.all([...live].map((recording) => recording.stop())).finally(() => {
    if (staging !== undefined) rmSync(staging, { recursive: true, force: true })
    process.exit(code)
  })
}

const main = async () => {
  const { values } = parseArgs({
    options: {
      claude: { type: "string" },
      install: { type: "string" },
      "version-label": { type: "string" },
      out: { type: "string", default: "test/fixtures/real-screens" },
      widths: { type: "string", default: "80,200" },
      height: { type: "string", default: "40" },
      only: { type: "string" },
      concurrency: { type: "string", default: "4" },
      "time-zone": { type: "string", default: "America/New_York" }
    }
  })
  if (values.claude !== undefined && values.install !== undefined) {
    process.stderr.write("usage: node scripts/record-screens.ts [--claude PATH | --install VERSION] [--out DIR]\n")
    process.exit(2)
  }
  const claude = values.install !== undefined
    ? install(values.install)
    : resolve(values.claude ?? PINNED_CLAUDE)
  if (!existsSync(claude)) {
    process.stderr.write(
      values.claude === undefined
        ? `no Claude Code at ${claude}: run npm install (the devDependency @anthropic-ai/claude-code)\n`
        : `no Claude Code at ${claude}\n`
    )
    process.exit(2)
  }
  const version = values["version-label"] ?? versionOf(claude)
  const only = values.only?.split(",")
  const plans = PLANS.filter((plan) => only === undefined || only.includes(plan.name))
  if (only !== undefined && plans.length !== only.length) {
    process.stderr.write(`unknown plan in --only; plans: ${PLANS.map((plan) => plan.name).join(", ")}\n`)
    process.exit(2)
  }
  staging = mkdtempSync(join(tmpdir(), "cf-rec-out-"))
  const settings: Settings = {
    claude,
    version,
    out: resolve(values.out),
    staging,
    widths: values.widths.split(",").map(Number),
    height: Number(values.height),
    timeZone: values["time-zone"],
    concurrency: Math.max(1, Number(values.concurrency))
  }
  process.on("SIGINT", () => cleanUpAndExit(130))
  process.on("SIGTERM", () => cleanUpAndExit(143))

  process.stderr.write(
    `recording Claude Code ${version} (${claude}): ${plans.length} plans × ${settings.widths.length} widths\n`
  )
  const started = Date.now()
  const queue: Array<Job> = plans
    .toSorted((a, b) => b.expectedSeconds - a.expectedSeconds)
    .flatMap((plan) => settings.widths.map((width) => ({ plan, width })))
  const results: Array<JobResult> = []
  const worker = async () => {
    for (let job = queue.shift(); job !== undefined && !interrupted; job = queue.shift()) {
      const result = await runJob(job, settings)
      const outcome = result.error === undefined ? "ok  " : "FAIL"
      const details = result.error === undefined ? "" : `\n${result.error}\n${result.log.join("\n")}`
      process.stderr.write(
        `${outcome} ${job.plan.name} @${job.width} (${
          result.seconds.toFixed(0)
        }s, ${result.saved.length} screens)${details}\n`
      )
      results.push(result)
    }
  }
  await Promise.all(Array.from({ length: settings.concurrency }, worker))
  // Interrupted: cleanUpAndExit stops the recordings, drops the staging directory and exits; no fixture changes.
  if (interrupted) return

  const fresh = results.flatMap((result) => result.saved)
  mkdirSync(settings.out, { recursive: true })
  // A full run replaces every screen of this version; a partial one only what it records.
  if (only === undefined) {
    for (const file of readdirSync(settings.out)) {
      if (file.endsWith(".txt") && file.includes(`--${settings.version}--`)) rmSync(join(settings.out, file))
    }
  }
  for (const entry of fresh) copyFileSync(join(settings.staging, entry.file), join(settings.out, entry.file))
  rmSync(settings.staging, { recursive: true, force: true })
  const casesFile = join(settings.out, "cases.json")
  const previous: ReadonlyArray<ScreenCase> = existsSync(casesFile) ? JSON.parse(readFileSync(casesFile, "utf8")) : []
  const replaced = new Set(fresh.map((entry) => entry.file))
  const kept = previous.filter((entry) =>
    !replaced.has(entry.file) && (only !== undefined || entry.version !== settings.version) &&
    existsSync(join(settings.out, entry.file))
  )
  const cases = [...kept, ...fresh].toSorted((a, b) => a.file.localeCompare(b.file))
  writeFileSync(casesFile, `${JSON.stringify(cases, null, 2)}\n`)

  const rows = fresh.toSorted((a, b) => a.file.localeCompare(b.file))
  const width = Math.max(...rows.map((row) => row.file.length), 4)
  process.stdout.write(`${"file".padEnd(width)}  expect             input box\n`)
  for (const row of rows) {
    const typed = row.inputBox === null
      ? "-"
      : row.inputBox.length > 30
      ? `${row.inputBox.slice(0, 30)}…`
      : row.inputBox
    const box = row.inputBox === null ? typed : JSON.stringify(typed)
    const reset = row.resetAt === undefined ? "" : `  resets ${row.resetAt}`
    process.stdout.write(`${row.file.padEnd(width)}  ${row.expect.padEnd(17)}  ${box}${reset}\n`)
  }
  // What Claude Code asked the stand-in for, over all recordings: anything unexpected shows up here as `other`.
  const asked = new Map<string, number>()
  for (const request of results.flatMap((result) => result.requests)) {
    const key = `${request.method} ${request.path} (${request.kind}) → ${request.status}`
    asked.set(key, (asked.get(key) ?? 0) + 1)
  }
  process.stdout.write(`\nrequests the stand-in answered:\n`)
  for (const [key, count] of [...asked].toSorted()) process.stdout.write(`  ${String(count).padStart(4)}  ${key}\n`)
  const failed = results.filter((result) => result.error !== undefined).map((f) => `${f.job.plan.name}@${f.job.width}`)
  const took = ((Date.now() - started) / 1000).toFixed(0)
  process.stdout.write(
    `\n${rows.length} screens saved to ${settings.out} in ${took}s` +
      (failed.length === 0 ? "\n" : `; ${failed.length} recordings failed: ${failed.join(", ")}\n`)
  )
  process.exitCode = failed.length === 0 ? 0 : 1
}

if (import.meta.main) {
  await main().catch((error: unknown) => {
    process.stderr.write(`${String(error)}\n`)
    cleanUpAndExit(1)
  })
}
