/**
 * A scripted stand-in for Claude Code, run inside a tmux pane by tests and the demo.
 * It draws the same kinds of screens (an input box showing what is typed, busy spinner, usage-limit banner), reads
 * typed or pasted text, and, like an agent following its instructions, runs the last backticked
 * `… task done NAME --run RUN --queue-dir DIR` line of the prompt when its turn ends.
 * Easy to get wrong: only that completion line is ever executed, the rest of a task's text is just displayed; and a
 * ^C inside a bracketed paste is text, not a key.
 *
 * Keys, as Claude Code handles them:
 *   Enter    submits the input; ignored while busy and within 100 ms of typed or pasted text (the Enter guard)
 *   Ctrl-C   busy: interrupts the turn (`⎿  Interrupted by user`, no completion command); idle with input: clears it;
 *            idle with an empty box: `Press Ctrl-C again to exit`, and a second Ctrl-C within 2 s exits 0
 *   Esc      after a limit: cancels the automatic continue (`auto`), or closes the limit menu (`menu`)
 *
 * Settings (env):
 *   STANDIN_WORK_MS      how long a task keeps it busy (default 1500)
 *   STANDIN_LIMIT_AFTER  finish this many tasks, then hit the usage limit in the middle of the next one
 *   STANDIN_LIMIT_STYLE  `v1` (`Claude usage limit reached…`), `v2` (`You've hit your session limit · resets …`),
 *                        `auto` (2.1.332: `You've hit your 5-hour limit`, then `set to continue automatically at …`:
 *                        the held turn goes on by itself at the reset unless Esc cancelled it) or `menu` (2.1.197: the
 *                        `What do you want to do?` menu instead of the input box until Esc; `continue` typed after the
 *                        reset finishes the held turn)
 *   STANDIN_RESET_MS     `auto` and `menu`: the limit resets this long after it is hit (default 4 h; `menu` rounds
 *                        up to the minute); the screen names that time (America/New_York)
 *   STANDIN_EXIT_AFTER   finish this many tasks, then exit in the middle of the next one (pane falls back to a shell)
 *   STANDIN_FAIL         when set, runs the `task fail` line instead of `task done`
 *   STANDIN_NAME         the name written in the log (default "standin")
 *   STANDIN_LOG          a file to append one JSON line per event to, synchronously, so a test can count them:
 *                        {"event":"submitted"|"completion"|"interrupted"|"limit"|"cancelled"|"menu-closed"|"resumed"|
 *                        "exit","session","run","at",…};
 *                        `run` is the run id from the prompt's first line `Task NAME from the claude-failover
 *                        queue (run RUN):` or null; `at` is epoch ms; completion adds `command` (done|fail), `exit`
 */
import { type ChildProcess, spawn } from "node:child_process"
import { appendFileSync } from "node:fs"

const WORK_MS = Number(process.env.STANDIN_WORK_MS ?? 1500)
const LIMIT_AFTER = process.env.STANDIN_LIMIT_AFTER === undefined ? Infinity : Number(process.env.STANDIN_LIMIT_AFTER)
const EXIT_AFTER = process.env.STANDIN_EXIT_AFTER === undefined ? Infinity : Number(process.env.STANDIN_EXIT_AFTER)
const LIMIT_STYLE = process.env.STANDIN_LIMIT_STYLE ?? "v1"
const RESET_MS = Number(process.env.STANDIN_RESET_MS ?? 4 * 3_600_000)
const VERB: "done" | "fail" = process.env.STANDIN_FAIL === undefined ? "done" : "fail"
const NAME = process.env.STANDIN_NAME ?? "standin"
const LOG = process.env.STANDIN_LOG
/** Claude Code ignores an Enter that arrives together with pasted text; so does the stand-in. */
const ENTER_GUARD_MS = 100
/** How long `Press Ctrl-C again to exit` waits for the second Ctrl-C. */
const EXIT_WINDOW_MS = 2000

const PASTE_START = "\u001b[200~"
const PASTE_END = "\u001b[201~"
const CTRL_C = "\u0003"
const ESC = "\u001b"

/** The turn in progress: thinking (a timer), then running the completion command (a child process). */
interface Turn {
  readonly run: string | null
  readonly ticker: NodeJS.Timeout
  timer: NodeJS.Timeout | undefined
  child: ChildProcess | undefined
  interrupted: boolean
}

let input = ""
let pasting = false
let lastTextAt = 0
const history: Array<string> = []
let status: "idle" | "busy" | "limited" = "idle"
let turn: Turn | undefined
let spinnerStarted = 0
let finished = 0
let exitArmedUntil = 0
/** A turn stopped by the limit (`auto`, `menu`): its prompt, its run, when the limit resets, and what shows meanwhile. */
let held:
  | { text: string; run: string | null; resetAt: number; auto: boolean; timer: NodeJS.Timeout | undefined }
  | undefined
let menuOpen = false
let limitFooter: string | undefined

const log = (event: string, run: string | null, extra: Readonly<Record<string, unknown>> = {}) => {
  if (LOG !== undefined)
    appendFileSync(LOG, `${JSON.stringify({ event, session: NAME, run, ...extra, at: Date.now() })}\n`)
}

const exit = (code: number): never => {
  log("exit", turn?.run ?? null)
  process.stdout.write("\r\n")
  process.exit(code)
}

const width = () => Math.max(40, Math.min(process.stdout.columns ?? 100, 120) - 2)
const rule = (left: string, right: string) => `${left}${"─".repeat(width() - 2)}${right}`
const boxLine = (text: string) => `│ ${text.slice(0, width() - 4).padEnd(width() - 4)} │`
/** Control characters kept in the input (a pasted ^C, a tab) are shown as their Unicode pictures, one column each. */
const visible = (text: string) =>
  // eslint-disable-next-line no-control-regex
  text.replace(/[\u0000-\u001f\u007f]/g, (c) => (c === "\u007f" ? "␡" : String.fromCharCode(0x2400 + c.charCodeAt(0))))

/** The input box's one line: the input's first line, and how many more lines it has. */
const typedLine = () => {
  const [first = "", ...more] = input.split("\n")
  const suffix = more.length === 0 ? "" : ` [+${more.length} lines]`
  return `> ${visible(first).slice(0, Math.max(0, width() - 6 - suffix.length))}${suffix}`
}

const render = () => {
  const lines = [
    rule("╭", "╮"),
    boxLine("✻ Welcome to Claude Code!"),
    boxLine(""),
    boxLine(`  cwd: ${process.cwd()}`),
    rule("╰", "╯"),
    "",
    ...history.slice(-(Math.max(5, (process.stdout.rows ?? 30) - 14)))
  ]
  if (status === "busy") {
    const seconds = Math.floor((Date.now() - spinnerStarted) / 1000)
    lines.push("", `✻ Cogitating… (${seconds}s · ↑ 1.2k tokens · esc to interrupt)`)
  }
  const footer = Date.now() < exitArmedUntil ? "  Press Ctrl-C again to exit" : "  ? for shortcuts"
  if (menuOpen) {
    // Claude Code 2.1.197's limit menu takes the input box's place until it is answered.
    lines.push(
      "",
      "─".repeat(width()),
      "  What do you want to do?",
      "  ❯ 1. Stop and wait for limit to reset",
      "    2. Upgrade your plan",
      "",
      "  Enter to confirm · Esc to cancel"
    )
  } else lines.push(
      "",
      rule("╭", "╮"),
      boxLine(typedLine()),
      rule("╰", "╯"),
      footer,
      ...(limitFooter === undefined ? [] : [`  ${limitFooter}`])
    )
  process.stdout.write(`\u001b[2J\u001b[H${lines.join("\r\n")}`)
}

/** The run a prompt belongs to, from its first line: `Task NAME from the claude-failover queue (run RUN):`. */
const runOf = (text: string): string | null =>
  /^Task .+ from the claude-failover queue \(run (\S+?)\):\s*$/.exec(text.split("\n")[0] ?? "")?.[1] ?? null

/** The completion line the daemon appends: the last `` `… task VERB NAME --run RUN --queue-dir DIR` `` line. */
const completionLine = (text: string, verb: "done" | "fail"): string | undefined => {
  const pattern = new RegExp(`^\`(.+ task ${verb} .+ --run .+ --queue-dir .+)\`$`)
  const lines = text.split("\n").map((line) => line.trim())
  for (let i = lines.length - 1; i >= 0; i--) {
    const match = pattern.exec(lines[i] ?? "")
    if (match?.[1] !== undefined) return match[1]
  }
  return undefined
}

/** Runs the command through `sh -c` exactly as written, showing it and its first lines of output as a tool call. */
const runShell = (current: Turn, command: string) =>
  new Promise<number>((resolve) => {
    const child = spawn("sh", ["-c", command], { stdio: ["ignore", "pipe", "pipe"] })
    current.child = child
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.on("close", (code) => {
      current.child = undefined
      history.push(`⏺ Bash(${command.slice(0, 60)}${command.length > 60 ? "…" : ""})`)
      for (const line of output.trim().split("\n").slice(0, 3)) if (line !== "") history.push(`  ⎿  ${line}`)
      resolve(code ?? 1)
    })
  })

/** The wall-clock hour four hours from now in `timeZone`, as Claude Code writes it: `3pm`, `12am`. */
const resetHour = (timeZone: string) =>
  new Intl.DateTimeFormat("en-US", { hour: "numeric", hour12: true, timeZone })
    .format(Date.now() + 4 * 3_600_000)
    .replace(/\s/g, "")
    .toLowerCase()

/** `4:25pm` for an instant, in New York as the recorded 2.x screens show it. */
const clock = (at: number) =>
  new Intl.DateTimeFormat("en-US", { hour: "numeric", minute: "2-digit", hour12: true, timeZone: "America/New_York" })
    .format(at).replace(/\s/g, "").toLowerCase()

/** The held turn goes on: by itself at the reset (`auto`), or because `continue` was typed after it. */
const resume = () => {
  if (held === undefined) return
  const { run, text } = held
  if (held.timer !== undefined) clearTimeout(held.timer)
  held = undefined
  menuOpen = false
  limitFooter = undefined
  log("resumed", run)
  finished = -Infinity // the limit is over: the turn finishes
  work(text, run)
}

/** 2.1.332 (`auto`) and 2.1.197 (`menu`): the turn is held, and the screen says what happens at the reset. */
const holdTurn = (text: string, run: string | null) => {
  status = "limited"
  // The screen names the minute. With the menu the reset is that minute exactly, so "continue" typed at the time
  // shown is taken; the automatic continue needs nobody to know the second.
  const resetAt = LIMIT_STYLE === "menu" ? Math.ceil((Date.now() + RESET_MS) / 60_000) * 60_000 : Date.now() + RESET_MS
  const at = clock(resetAt)
  if (LIMIT_STYLE === "auto") {
    history.push(
      `  ⎿  You've hit your 5-hour limit · resets ${at} (America/New_York)`,
      "     /upgrade to increase your usage limit.",
      `● Usage limit reached · set to continue automatically at ${at}`
    )
    limitFooter = `Continuing automatically at ${at} · Esc to cancel`
    held = {
      text,
      run,
      resetAt,
      auto: true,
      timer: setTimeout(() => {
        history.push("● Usage limit reset · Continuing automatically")
        resume()
      }, resetAt - Date.now())
    }
  } else {
    history.push(
      `  ⎿  You've hit your session limit · resets ${at} (America/New_York)`,
      "",
      "✻ Crunched for 0s",
      "",
      "❯ /rate-limit-options"
    )
    menuOpen = true
    held = { text, run, resetAt, auto: false, timer: undefined }
  }
  log("limit", run, { resetAt })
  render()
}

const escape = () => {
  if (menuOpen) {
    menuOpen = false
    log("menu-closed", held?.run ?? null)
  } else if (held?.auto === true) {
    if (held.timer !== undefined) clearTimeout(held.timer)
    held = { ...held, auto: false, timer: undefined }
    history.push("● Automatic continue cancelled · /rate-limit-options to wait again")
    limitFooter = "automatic continue cancelled"
    log("cancelled", held.run)
  }
}

const hitLimit = (run: string | null) => {
  status = "limited"
  // A reset a few hours ahead, like a real five-hour window; a fixed hour would read as "already past" half the day.
  history.push(
    ...(LIMIT_STYLE === "v2"
      ? [
        `⏺ You've hit your session limit · resets ${resetHour("Asia/Tokyo")} (Asia/Tokyo)`,
        "  /upgrade to increase your usage limit."
      ]
      : [
        `  ⎿  Claude usage limit reached. Your limit will reset at ${resetHour("America/Chicago")} (America/Chicago).`,
        "",
        "      • /upgrade to increase your usage limit."
      ])
  )
  log("limit", run)
  render()
}

/** The end of a turn's thinking: exit or hit the limit if told to, else run the completion command. */
const finishTurn = async (current: Turn, text: string) => {
  current.timer = undefined
  if (finished >= EXIT_AFTER) exit(0)
  if (finished >= LIMIT_AFTER) {
    clearInterval(current.ticker)
    turn = undefined
    return LIMIT_STYLE === "auto" || LIMIT_STYLE === "menu" ? holdTurn(text, current.run) : hitLimit(current.run)
  }
  history.push("⏺ Done. Running the completion command.")
  const command = completionLine(text, VERB)
  if (command !== undefined) {
    const code = await runShell(current, command)
    log("completion", current.run, { command: VERB, exit: code })
  }
  clearInterval(current.ticker)
  if (current.interrupted) return render()
  turn = undefined
  finished++
  status = "idle"
  render()
}

const work = (text: string, run: string | null) => {
  status = "busy"
  spinnerStarted = Date.now()
  history.push(`> ${(text.split("\n")[0] ?? "").slice(0, width() - 4)}`)
  const current: Turn = {
    run,
    ticker: setInterval(render, 250),
    timer: undefined,
    child: undefined,
    interrupted: false
  }
  const workMs = finished >= LIMIT_AFTER || finished >= EXIT_AFTER ? WORK_MS / 2 : WORK_MS
  current.timer = setTimeout(() => void finishTurn(current, text), workMs)
  turn = current
  render()
}

/** Ctrl-C while busy: the turn stops where it is; a completion command already running is killed, as a tool would be. */
const interrupt = (current: Turn) => {
  current.interrupted = true
  if (current.timer !== undefined) clearTimeout(current.timer)
  current.child?.kill("SIGTERM")
  clearInterval(current.ticker)
  turn = undefined
  status = "idle"
  history.push("  ⎿  Interrupted by user")
  log("interrupted", current.run)
}

const ctrlC = () => {
  if (status === "busy" && turn !== undefined) return interrupt(turn)
  if (input !== "") {
    input = ""
    return
  }
  if (Date.now() < exitArmedUntil) exit(0)
  exitArmedUntil = Date.now() + EXIT_WINDOW_MS
  // Redraw when the window closes, so the hint goes away as Claude Code's does.
  setTimeout(() => status !== "busy" && render(), EXIT_WINDOW_MS + 10)
}

const submit = () => {
  const text = input
  input = ""
  if (text.trim() === "") return render()
  if (text.trim() === "/exit") exit(0)
  const run = runOf(text)
  log("submitted", run)
  if (held !== undefined && text.trim() === "continue") {
    history.push("> continue")
    if (Date.now() >= held.resetAt) return resume()
    history.push(`  ⎿  You've hit your session limit · resets ${clock(held.resetAt)} (America/New_York)`)
    return render()
  }
  if (status === "limited") {
    history.push(`> ${text.split("\n")[0] ?? ""}`)
    return hitLimit(run)
  }
  work(text, run)
}

const onData = (chunk: string) => {
  let rest = chunk
  while (rest.length > 0) {
    if (rest.startsWith(PASTE_START)) {
      pasting = true
      rest = rest.slice(PASTE_START.length)
      continue
    }
    if (rest.startsWith(PASTE_END)) {
      pasting = false
      lastTextAt = Date.now()
      rest = rest.slice(PASTE_END.length)
      continue
    }
    const char = rest[0] ?? ""
    rest = rest.slice(1)
    if (pasting) {
      // Everything inside a paste is text, a ^C included.
      input += char === "\r" ? "\n" : char
      continue
    }
    if (char === CTRL_C) ctrlC()
    else if (char === ESC && !rest.startsWith("[")) escape()
    else if (char === "\r" || char === "\n") {
      if (Date.now() - lastTextAt < ENTER_GUARD_MS) continue
      if (menuOpen) {
        escape() // "Stop and wait for limit to reset"
        continue
      }
      if (status !== "busy") submit()
    } else if (char === "\u007f") input = input.slice(0, -1)
    else if (char >= " ") {
      input += char
      lastTextAt = Date.now()
    }
  }
  render()
}

process.stdin.setRawMode?.(true)
process.stdin.setEncoding("utf8")
process.stdin.on("data", onData)
process.stdout.write("\u001b[?2004h")
process.stdout.on("resize", render)
render()
