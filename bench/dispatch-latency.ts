/**
 * Row 4: drop → dispatch with real tmux. Claude Code stand-ins (stand-ins/claude-code.ts, as the end-to-end tests
 * run them) in a private tmux server; a task renamed into pending/ is timed until its prompt shows in a session's
 * input box (a tap on the pane's output), with a backlog of delegated tasks waiting in pending/ beside it, small and
 * large, to show whether the time depends on the queue's size; against one raw `tmux send-keys`.
 * Easy to get wrong: a drop must find the daemon at rest and a session it already knows is free, or the time measured
 * is the wait for the previous prompt's typing or for a session; so before each drop the bench waits until the
 * previous task records its prompt accepted (`started_at`), and /api/sessions shows a session idle with no task that
 * the bench knows has finished its last prompt. The backlog is delegated tasks with their markers, written before the
 * daemon starts, and delegation off: they wait untouched (README, "Delegating to secutools") and never take a
 * session. Each level has a time budget: the drops made within it are the samples, and the row says how many.
 */
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { DaemonProcess, NODE } from "./daemon-process.ts"
import { runToken, writeDelegated } from "./markers.ts"
import { BenchQueue, taskName, taskText } from "./queue-dir.ts"
import type { Sizes } from "./sizes.ts"
import { median, percentile } from "./stats.ts"
import { failedRows, q, type Row } from "./table.ts"
import { PrivateTmux, readJsonLines, STANDIN } from "./tmux-server.ts"
import { nowMs, waitFor } from "./wait.ts"

/** The daemon takes the first free session by name, so a few are enough for one drop at a time. */
const SESSIONS = Array.from({ length: 4 }, (_, i) => `claude-${i + 1}`)
const RAW_SAMPLES = 30

export const latencyRowIds = (sizes: Sizes) =>
  sizes.latencyBacklogs.flatMap((backlog, level) => {
    const waiting = `${backlog.toLocaleString("en-US")} waiting in pending/`
    return [
      { id: `4${"aceg"[level] ?? "x"}`, what: `drop → prompt typed (tmux): p50, ${waiting}` },
      { id: `4${"bdfh"[level] ?? "y"}`, what: `  drop → prompt typed: p99, ${waiting}`, goal: "≤ 50 ms, ≤ 10× raw" }
    ]
  })

const text = (value: unknown): string | undefined => typeof value === "string" ? value : undefined
const num = (value: unknown): number => typeof value === "number" ? value : Number.NaN
const debug = (line: string) => {
  if (process.env.BENCH_DEBUG !== undefined) process.stderr.write(`latency ${new Date().toISOString()}: ${line}\n`)
}

interface Level {
  readonly backlog: number
  readonly typedMs: ReadonlyArray<number>
  readonly submittedMs: ReadonlyArray<number>
  /** From the daemon's spawn until it was at rest with a session free, ms. */
  readonly readyMs: number
  readonly problem?: string
}

/** Where the stand-ins and the taps write, and what a level needs to know of them. */
interface Stage {
  readonly tmux: PrivateTmux
  readonly queue: BenchQueue
  readonly standinLog: string
  readonly tapLog: string
}

/** One backlog size: a daemon started on it, then drops one at a time until the count or the budget is reached. */
const measureLevel = async (stage: Stage, sizes: Sizes, backlog: number): Promise<Level> => {
  const { queue, standinLog, tapLog, tmux } = stage
  const taps = () => readJsonLines(tapLog)
  const probes = Array.from({ length: sizes.latencyDrops }, (_, i) => taskName(`probe-${backlog}`, i, 4))
  for (const name of probes) queue.stage(name, taskText({}, "Reply with one word."))
  const daemon = new DaemonProcess({
    QUEUE_DIR: queue.dir,
    SESSIONS_MODE: "tmux",
    TMUX_SOCKET: tmux.socket,
    TMUX_SESSIONS: SESSIONS.join(",")
  })
  const typedMs: Array<number> = []
  const seenAt = new Map<string, { readonly session: string; readonly at: number; readonly dropped: number }>()
  let lastSessions = ""
  let readyMs = Number.NaN

  /** A session the daemon shows idle with no task, whose last prompt (if any) the stand-in has finished. */
  const freeSession = async (): Promise<string | false> => {
    const asked = nowMs()
    const answer = await daemon.get("/api/sessions").catch((error: unknown) => {
      if (!daemon.running) throw new Error(`the daemon exited: ${daemon.lastOutput}`, { cause: error })
      debug(`/api/sessions: ${String(error)}`)
      return { status: 0, body: "" }
    })
    if (answer.status !== 200) return false
    lastSessions = answer.body
    const listed: unknown = JSON.parse(answer.body)
    const sessions =
      typeof listed === "object" && listed !== null && "sessions" in listed && Array.isArray(listed.sessions)
        ? listed.sessions
        : []
    const typed = taps()
    const events = readJsonLines(standinLog)
    for (const entry of sessions) {
      const fields = new Map(Object.entries(typeof entry === "object" && entry !== null ? entry : {}))
      const session = text(fields.get("session"))
      if (session === undefined || fields.get("state") !== "idle" || fields.get("task") !== null) continue
      const prompts = typed.filter((e) => e.session === session && typeof e.task === "string").length
      const done = events.filter((e) => e.session === session && e.event === "completion")
      if (done.length < prompts) continue
      // The API answers from a snapshot up to 250 ms old: it must be younger than the last completion.
      if (asked - num(done.at(-1)?.at ?? 0) < 300) continue
      return session
    }
    return false
  }

  /** The daemon is done typing a prompt once the task records it was accepted (or it has finished already). */
  const accepted = (name: string): boolean => {
    try {
      return /^started_at: /m.test(readFileSync(queue.path("active", name), "utf8"))
    } catch {
      return existsSync(queue.path("done", name))
    }
  }

  try {
    // A daemon starting on thousands of markers takes long before it looks at a session; that start is row 5's figure.
    const timeoutMs = sizes.latencyReadyTimeoutMs
    await daemon.started(timeoutMs)
    await waitFor("a first session the daemon knows is free", freeSession, { timeoutMs, everyMs: 250 })
    await daemon.settled("its start", { windowMs: 500, maxShare: 0.25, timeoutMs })
    readyMs = nowMs() - daemon.spawnedAt
    debug(`daemon at rest with ${backlog} waiting, ${readyMs.toFixed(0)} ms after its spawn`)
    const budgetEnd = nowMs() + sizes.latencyBudgetMs
    let previous: string | undefined
    for (const name of probes) {
      if (previous !== undefined) {
        if (nowMs() > budgetEnd) break
        const last = previous
        await waitFor(`${last} accepted (started_at) or done`, () => accepted(last), { timeoutMs: 30_000, everyMs: 20 })
      }
      await waitFor("a session the daemon knows is free", freeSession, { timeoutMs: 60_000, everyMs: 200 })
      const dropped = queue.drop(name)
      const seen = await waitFor(`${name} on a session's screen`, () => taps().find((e) => e.task === name), {
        timeoutMs: 30_000,
        everyMs: 10
      })
      typedMs.push(num(seen.at) - dropped)
      seenAt.set(name, { session: text(seen.session) ?? "", at: num(seen.at), dropped })
      previous = name
      const assigned = daemon.lines.find((line) => line.message.startsWith(`${name} → `))
      debug(
        `${name}: ${(num(seen.at) - dropped).toFixed(1)} ms on ${text(seen.session)}; assigned after ` +
          `${((assigned?.at ?? Number.NaN) - dropped).toFixed(0)} ms`
      )
    }
    // When each prompt was submitted (Enter), from the stand-ins' own log: the first submission on its session after
    // the prompt showed there.
    const submitted = () => {
      const events = readJsonLines(standinLog)
      return [...seenAt.values()].flatMap(({ at, dropped, session }) => {
        const event = events.find((e) =>
          e.event === "submitted" && e.session === session && num(e.at) >= Math.floor(at)
        )
        return event === undefined ? [] : [num(event.at) - dropped]
      })
    }
    const submittedMs = await waitFor("every prompt submitted", () => {
      const found = submitted()
      return found.length === seenAt.size ? found : undefined
    }, { timeoutMs: 10_000 }).catch(() => submitted())
    return { backlog, typedMs, submittedMs, readyMs }
  } catch (error) {
    const message = error instanceof Error ? error.message.split("\n")[0] : String(error)
    const said = lastSessions === "" ? "" : `; /api/sessions said ${lastSessions.slice(0, 200)}`
    return {
      backlog,
      typedMs,
      submittedMs: [],
      readyMs,
      problem: `error: after ${typedMs.length} drops: ${message}${said}`
    }
  } finally {
    await daemon.stop()
  }
}

export const dispatchLatency = async (sizes: Sizes): Promise<ReadonlyArray<Row>> => {
  const tmux = new PrivateTmux()
  const queue = new BenchQueue("latency")
  const stage: Stage = {
    tmux,
    queue,
    standinLog: join(queue.root, "standin.jsonl"),
    tapLog: join(queue.root, "taps.jsonl")
  }
  const levels: Array<Level> = []
  const raw: Array<number> = []
  try {
    tmux.startSession("bench-raw", ["cat"])
    for (let i = 0; i < RAW_SAMPLES + 5; i++) {
      const ms = await tmux.sendKeysOnce("bench-raw")
      if (i >= 5) raw.push(ms)
    }
    for (const session of SESSIONS) {
      tmux.startSession(session, [NODE, STANDIN], {
        STANDIN_WORK_MS: "100",
        STANDIN_LOG: stage.standinLog,
        STANDIN_NAME: session
      })
    }
    for (const session of SESSIONS) await tmux.tap(session, stage.tapLog)
    debug("stand-ins and taps ready")
    let written = 0
    for (const backlog of sizes.latencyBacklogs) {
      for (; written < backlog; written++) {
        writeDelegated(queue, {
          name: taskName("waiting", written),
          state: "submitted",
          key: `waiting-${written}`,
          run: runToken(written),
          jobId: `j_waiting_${written}`
        })
      }
      levels.push(await measureLevel(stage, sizes, backlog))
    }
  } finally {
    tmux.kill()
    queue.remove()
  }
  const rawMedian = median(raw)
  const ids = latencyRowIds(sizes)
  return levels.flatMap((level, i) => {
    const [middle = ids[0], tail = ids[1]] = ids.slice(i * 2, i * 2 + 2)
    if (level.problem !== undefined) {
      return failedRows([middle, tail].flatMap((id) => id === undefined ? [] : [id]), level.problem)
    }
    const p50 = median(level.typedMs)
    const p99 = percentile(level.typedMs, 99)
    const baseline = { baseline: q(rawMedian, "ms"), baselineIs: `one tmux send-keys (median of ${RAW_SAMPLES})` }
    return [
      {
        id: middle?.id ?? "4",
        what: `${middle?.what ?? ""} (${level.typedMs.length} drops)`,
        figure: q(p50, "ms"),
        ...baseline,
        ...(i === 0
          ? {
            note:
              `prompt on screen = first sight of its first line in the pane's output; ${SESSIONS.length} stand-in ` +
              `sessions, POLL_INTERVAL default; raw send-keys p99 ${percentile(raw, 99).toFixed(1)} ms`
          }
          : {})
      },
      {
        id: tail?.id ?? "4",
        what: `${tail?.what ?? ""}${level.typedMs.length < 100 ? ` (max of ${level.typedMs.length})` : ""}`,
        figure: q(p99, "ms"),
        ...baseline,
        goal: { text: "≤ 50 ms, ≤ 10× raw", met: p99 <= 50 && p99 <= 10 * rawMedian },
        note: `drop → Enter (the stand-in took the prompt) p50 ${median(level.submittedMs).toFixed(0)} ms, ` +
          `p99 ${
            percentile(level.submittedMs, 99).toFixed(0)
          } ms (the daemon waits ≥ 200 ms before Enter by design); ` +
          `the daemon was at rest with a session free ${(level.readyMs / 1000).toFixed(1)} s after its spawn`
      }
    ]
  })
}
