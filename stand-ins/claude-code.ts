/**
 * A scripted stand-in for Claude Code, run inside a tmux pane by tests and the demo.
 * It draws the same kinds of screens (input box, busy spinner, usage-limit banner), reads typed or pasted text,
 * and, like an agent following its instructions, runs the backticked `… task done NAME` line at the end of it.
 * Easy to get wrong: only that completion line is ever executed; the rest of a task's text is just displayed.
 *
 * Settings (env):
 *   STANDIN_WORK_MS      how long a task keeps it busy (default 1500)
 *   STANDIN_LIMIT_AFTER  finish this many tasks, then hit the usage limit in the middle of the next one
 *   STANDIN_LIMIT_STYLE  `v1` (`Claude usage limit reached…`) or `v2` (`You've hit your session limit · resets …`)
 *   STANDIN_EXIT_AFTER   finish this many tasks, then exit in the middle of the next one (pane falls back to a shell)
 *   STANDIN_FAIL         when set, runs the `task fail` line instead of `task done`
 */
import { spawn } from "node:child_process"

const WORK_MS = Number(process.env.STANDIN_WORK_MS ?? 1500)
const LIMIT_AFTER = process.env.STANDIN_LIMIT_AFTER === undefined ? Infinity : Number(process.env.STANDIN_LIMIT_AFTER)
const EXIT_AFTER = process.env.STANDIN_EXIT_AFTER === undefined ? Infinity : Number(process.env.STANDIN_EXIT_AFTER)
const LIMIT_STYLE = process.env.STANDIN_LIMIT_STYLE ?? "v1"
/** Claude Code ignores an Enter that arrives together with pasted text; so does the stand-in. */
const ENTER_GUARD_MS = 100

const PASTE_START = "\u001b[200~"
const PASTE_END = "\u001b[201~"

let input = ""
let pasting = false
let lastTextAt = 0
let history: Array<string> = []
let status: "idle" | "busy" | "limited" = "idle"
let spinnerStarted = 0
let finished = 0

const width = () => Math.max(40, Math.min(process.stdout.columns ?? 100, 120) - 2)
const rule = (left: string, right: string) => `${left}${"─".repeat(width() - 2)}${right}`
const boxLine = (text: string) => `│ ${text.slice(0, width() - 4).padEnd(width() - 4)} │`

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
  const typed = input.split("\n")[0] ?? ""
  lines.push("", rule("╭", "╮"), boxLine(`> ${typed}`), rule("╰", "╯"), "  ? for shortcuts")
  process.stdout.write(`\u001b[2J\u001b[H${lines.join("\r\n")}`)
}

/** The completion line the daemon appends: `` `COMMAND task done NAME` `` on a line of its own. */
const completionLine = (text: string, verb: "done" | "fail"): string | undefined => {
  const lines = text.split("\n").map((line) => line.trim())
  const pattern = new RegExp(`^\`(.+ task ${verb} .+)\`$`)
  for (let i = lines.length - 1; i >= 0; i--) {
    const match = pattern.exec(lines[i] ?? "")
    if (match?.[1] !== undefined) return match[1]
  }
  return undefined
}

const runShell = (command: string) =>
  new Promise<number>((resolve) => {
    const child = spawn("sh", ["-c", command], { stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.on("close", (code) => {
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

const hitLimit = () => {
  status = "limited"
  // A reset a few hours ahead, like a real five-hour window; a fixed hour would read as "already past" half the day.
  history.push(
    ...(LIMIT_STYLE === "v2"
      ? [`⏺ You've hit your session limit · resets ${resetHour("Asia/Tokyo")} (Asia/Tokyo)`, "  /upgrade to increase your usage limit."]
      : [
        `  ⎿  Claude usage limit reached. Your limit will reset at ${resetHour("America/Chicago")} (America/Chicago).`,
        "",
        "      • /upgrade to increase your usage limit."
      ])
  )
  render()
}

const work = async (text: string) => {
  status = "busy"
  spinnerStarted = Date.now()
  history.push(`> ${(text.split("\n")[0] ?? "").slice(0, width() - 4)}`)
  const ticker = setInterval(render, 250)
  render()
  await new Promise((resolve) => setTimeout(resolve, finished >= LIMIT_AFTER || finished >= EXIT_AFTER ? WORK_MS / 2 : WORK_MS))
  clearInterval(ticker)
  if (finished >= EXIT_AFTER) {
    process.stdout.write("\r\n")
    process.exit(0)
  }
  if (finished >= LIMIT_AFTER) return hitLimit()
  history.push("⏺ Done. Running the completion command.")
  const command = completionLine(text, process.env.STANDIN_FAIL === undefined ? "done" : "fail")
  if (command !== undefined) await runShell(command)
  finished++
  status = "idle"
  render()
}

const submit = () => {
  const text = input
  input = ""
  if (text.trim() === "") return render()
  if (text.trim() === "/exit") {
    process.stdout.write("\r\n")
    process.exit(0)
  }
  if (status === "limited") {
    history.push(`> ${text.split("\n")[0] ?? ""}`)
    return hitLimit()
  }
  void work(text)
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
    if (char === "\u0003") process.exit(130)
    if (pasting) {
      input += char === "\r" ? "\n" : char
      continue
    }
    if (char === "\r" || char === "\n") {
      if (Date.now() - lastTextAt < ENTER_GUARD_MS) continue
      if (status !== "busy") submit()
      continue
    }
    if (char === "\u007f") input = input.slice(0, -1)
    else if (char >= " ") {
      input += char
      lastTextAt = Date.now()
    }
  }
  if (status !== "busy") render()
}

process.stdin.setRawMode?.(true)
process.stdin.setEncoding("utf8")
process.stdin.on("data", onData)
process.stdout.write("\u001b[?2004h")
process.stdout.on("resize", render)
render()
