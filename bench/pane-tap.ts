/**
 * Reads a tmux pane's output (started by `tmux pipe-pane -O`) and notes, with a timestamp, the first moment each
 * task's prompt shows on the screen: the stand-in draws pasted text into its input box as soon as it arrives.
 * `pane-tap.ts SESSION LOG_FILE`; one JSON line per task: {"session","task","at"} (epoch ms, sub-ms resolution).
 * Easy to get wrong: a prompt's first line may be split across two reads, so the end of the previous read is kept;
 * and only the first sight counts (the busy screen shows the prompt again and again).
 */
import { appendFileSync } from "node:fs"

const [session = "", logFile = ""] = process.argv.slice(2)
const PROMPT = /Task (\S+?) from the claude-failover queue/g
const seen = new Set<string>()
let tail = ""

appendFileSync(logFile, `${JSON.stringify({ session, ready: true, at: performance.timeOrigin + performance.now() })}\n`)
process.stdin.setEncoding("utf8")
process.stdin.on("data", (chunk: string) => {
  const at = performance.timeOrigin + performance.now()
  const text = tail + chunk
  for (const match of text.matchAll(PROMPT)) {
    const task = match[1]
    if (task === undefined || seen.has(task)) continue
    seen.add(task)
    appendFileSync(logFile, `${JSON.stringify({ session, task, at })}\n`)
  }
  tail = text.slice(-400)
})
