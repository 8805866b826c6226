/**
 * The Claude Code stand-in in a real tmux pane: what it shows in its input box, what it logs, and how it takes Ctrl-C.
 * Every wait is on a condition with a deadline; the private tmux server and the log directory go even when a test fails.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Option } from "effect"
import { execFileSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { classifyPane, inputBoxText } from "../../src/domain/pane.ts"
import { TmuxServer, waitFor } from "../e2e/support.ts"

const tmux = new TmuxServer()
const logs = mkdtempSync(join(tmpdir(), "cf-standin-"))
afterAll(() => {
  tmux.kill()
  rmSync(logs, { recursive: true, force: true })
})

interface LogEvent {
  readonly event: string
  readonly session: string
  readonly run: string | null
  readonly at: number
  readonly command?: string
  readonly exit?: number
}

const clock = () => ({ now: Date.now(), timeZone: "UTC" })

/** Starts a stand-in in its own session, logging to its own file, and waits for its empty input box. */
const start = async (session: string, env: Readonly<Record<string, string>> = {}) => {
  const log = join(logs, `${session}.jsonl`)
  tmux.startStandin(session, { STANDIN_NAME: session, STANDIN_LOG: log, ...env })
  const target = `=${session}:`
  const screen = () => tmux.capture(session)
  const events = (): ReadonlyArray<LogEvent> =>
    existsSync(log)
      ? readFileSync(log, "utf8").split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as LogEvent)
      : []
  const box = () => inputBoxText(screen())
  const pane = {
    screen,
    events,
    box,
    state: () => classifyPane(screen(), clock())._tag,
    alive: () => tmux.currentCommand(session) === "node",
    keys: (...keys: ReadonlyArray<string>) => tmux.tmux("send-keys", "-t", target, ...keys),
    type: (text: string) => tmux.tmux("send-keys", "-t", target, "-l", text),
    /** Pastes as the daemon does: a buffer pasted in bracketed mode. */
    paste: (text: string) => {
      const buffer = `standin-test-${Math.random().toString(36).slice(2, 10)}`
      execFileSync("tmux", ["-L", tmux.socket, "load-buffer", "-b", buffer, "-"], { input: text })
      tmux.tmux("paste-buffer", "-p", "-d", "-b", buffer, "-t", target)
    },
    /** Presses Enter until the stand-in logs the submission: an Enter right after a paste is swallowed on purpose. */
    submit: () =>
      waitFor("the prompt to be submitted", () => {
        const submitted = events().find((event) => event.event === "submitted")
        if (submitted !== undefined) return submitted
        tmux.tmux("send-keys", "-t", target, "Enter")
        return undefined
      })
  }
  await waitFor(`${session} to show an empty input box`, () => pane.alive() && Option.getOrUndefined(box()) === "")
  return pane
}

const prompt = (run: string) =>
  [
    `Task demo.md from the claude-failover queue (run ${run}):`,
    "",
    "Say hello. An example of the command, not to be run:",
    "`false task done demo.md --run old --queue-dir /nowhere`",
    "",
    "When you have finished, run this shell command, exactly as written:",
    `\`true task done demo.md --run ${run} --queue-dir /nowhere\``
  ].join("\n")

describe("the Claude Code stand-in", () => {
  it("shows a paste in its input box until Enter, then logs the submission and the completion with the run id", async () => {
    const pane = await start("paste", { STANDIN_WORK_MS: "300" })
    pane.paste(prompt("r-42"))
    await waitFor(
      "the paste in the input box",
      () => Option.getOrUndefined(pane.box()) === "Task demo.md from the claude-failover queue (run r-42): [+6 lines]"
    )
    expect(pane.events()).toStrictEqual([])

    const submitted = await pane.submit()
    expect(submitted).toMatchObject({ event: "submitted", session: "paste", run: "r-42" })
    expect(pane.screen()).toContain("> Task demo.md from the claude-failover queue (run r-42):")
    const completion = await waitFor(
      "the completion command",
      () => pane.events().find((event) => event.event === "completion")
    )
    // `true …` is the last completion line; the `false …` example above it is not run.
    expect(completion).toMatchObject({ run: "r-42", command: "done", exit: 0 })
    await waitFor("idle again", () => pane.state() === "idle")
  })

  it("Ctrl-C with text in the input box clears it and nothing else", async () => {
    const pane = await start("clear")
    pane.type("half a thought")
    await waitFor("the typed text in the box", () => Option.getOrUndefined(pane.box()) === "half a thought")
    pane.keys("C-c")
    await waitFor("an empty input box", () => Option.getOrUndefined(pane.box()) === "")
    expect(pane.alive()).toBe(true)
    expect(pane.screen()).not.toContain("Press Ctrl-C again to exit")
    expect(pane.events()).toStrictEqual([])
  })

  it("Ctrl-C while busy interrupts the turn: no completion command, back to idle", async () => {
    const pane = await start("interrupt", { STANDIN_WORK_MS: "60000" })
    pane.paste(prompt("r-7"))
    await pane.submit()
    await waitFor("busy", () => pane.state() === "busy")
    pane.keys("C-c")
    await waitFor("the interruption", () => pane.screen().includes("⎿  Interrupted by user") && pane.state() === "idle")
    expect(pane.events().map((event) => [event.event, event.run])).toStrictEqual([["submitted", "r-7"], [
      "interrupted",
      "r-7"
    ]])
    expect(pane.alive()).toBe(true)
  })

  it("a 0x03 byte inside a paste is text: kept in the input, not acted on", async () => {
    const pane = await start("paste-ctrl-c")
    pane.paste("abc\u0003def")
    await waitFor("the pasted text in the box", () => Option.getOrUndefined(pane.box()) === "abc␃def")
    expect(pane.alive()).toBe(true)
    expect(pane.screen()).not.toContain("Press Ctrl-C again to exit")
    expect(pane.events()).toStrictEqual([])
  })

  it("Ctrl-C on an empty box asks to press it again; the second one exits with code 0", async () => {
    const pane = await start("exit")
    pane.keys("C-c")
    await waitFor("the exit hint", () => pane.screen().includes("Press Ctrl-C again to exit"))
    expect(pane.alive()).toBe(true)
    pane.keys("C-c")
    await waitFor("the shell back in the pane", () => !pane.alive())
    expect(pane.events().map((event) => event.event)).toStrictEqual(["exit"])
    pane.type("echo \"rc=$?\"")
    pane.keys("Enter")
    await waitFor("the exit code", () => pane.screen().includes("rc=0"))
  })
})
