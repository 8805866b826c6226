/**
 * The Anthropic API stand-in on a real socket (the SSE it streams, the errors and headers of each scenario, switching
 * scenarios), and the real Claude Code 2.1.332 driven against it in a private tmux server.
 * Every wait is on a condition with a deadline; servers, tmux and temp directories go even when a test fails.
 */
import { describe, expect, it } from "@effect/vitest"
import { Option } from "effect"
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { classifyPane, inputBoxText } from "../../src/domain/pane.ts"
import {
  type AnthropicApi,
  type AnthropicApiOptions,
  completionCommand,
  type Scenario,
  startAnthropicApi
} from "../../stand-ins/anthropic-api.ts"
import { CLAUDE_VERSION, claudeBinary, killClaudes, shellQuote } from "../e2e/real-claude.ts"
import { TmuxServer, waitFor } from "../e2e/support.ts"

const withApi = async (options: AnthropicApiOptions, use: (api: AnthropicApi) => Promise<void>) => {
  const api = await startAnthropicApi(options)
  try {
    await use(api)
  } finally {
    await api.close()
  }
}

const BASH_TOOL = { name: "Bash", description: "Runs a command", input_schema: { type: "object" } }

/** A main-loop request as Claude Code sends it: tools, a stream, the user's text in content blocks. */
const mainRequest = (messages: ReadonlyArray<unknown>, extra: Record<string, unknown> = {}) => ({
  model: "claude-sonnet-4-5",
  max_tokens: 1024,
  stream: true,
  system: [{ type: "text", text: "You are Claude Code." }],
  tools: [BASH_TOOL],
  messages,
  ...extra
})

const userText = (text: string) => ({ role: "user", content: [{ type: "text", text }] })

const postMessages = (api: AnthropicApi, body: unknown) =>
  fetch(`${api.url}/v1/messages`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": "sk-ant-api03-test" },
    body: JSON.stringify(body)
  })

interface SseEvent {
  readonly event: string
  readonly data: Record<string, unknown>
}

const readSse = async (response: Response): Promise<ReadonlyArray<SseEvent>> =>
  (await response.text())
    .split("\n\n")
    .filter((chunk) => chunk.trim() !== "")
    .map((chunk) => {
      const event = /^event: (.*)$/m.exec(chunk)?.[1] ?? ""
      const data = JSON.parse(/^data: (.*)$/m.exec(chunk)?.[1] ?? "{}") as Record<string, unknown>
      return { event, data }
    })

/** The event names in order, a run of deltas (and pings) collapsed to one, so the shape reads at a glance. */
const shape = (events: ReadonlyArray<SseEvent>) =>
  events
    .map((e) => e.event)
    .filter((name) => name !== "ping")
    .filter((name, i, all) => !(name === "content_block_delta" && all[i - 1] === "content_block_delta"))

const deltas = (events: ReadonlyArray<SseEvent>, key: "text" | "partial_json") =>
  events
    .filter((e) => e.event === "content_block_delta")
    .map((e) => {
      const delta = e.data.delta as Record<string, unknown>
      return String(delta[key])
    })
    .join("")

const STREAM_SHAPE = [
  "message_start",
  "content_block_start",
  "content_block_delta",
  "content_block_stop",
  "message_delta",
  "message_stop"
]

describe("the Anthropic API stand-in", () => {
  it("streams a text answer as Claude Code reads it: start, text deltas, stop, end_turn", async () => {
    await withApi({ scenario: "text", text: "Hello from the stand-in." }, async (api) => {
      const response = await postMessages(api, mainRequest([userText("Say hello.")]))
      expect(response.status).toBe(200)
      expect(response.headers.get("content-type")).toBe("text/event-stream")
      const events = await readSse(response)
      expect(shape(events)).toStrictEqual(STREAM_SHAPE)
      expect(events.every((e) => e.data.type === e.event)).toBe(true)
      expect(events[0]?.data.message).toMatchObject({ role: "assistant", model: "claude-sonnet-4-5", content: [] })
      expect(events[1]?.data.content_block).toStrictEqual({ type: "text", text: "" })
      expect(deltas(events, "text")).toBe("Hello from the stand-in.")
      const messageDelta = events.find((e) => e.event === "message_delta")
      expect(messageDelta?.data.delta).toMatchObject({ stop_reason: "end_turn" })
      expect(api.requests()).toMatchObject([{
        path: "/v1/messages",
        kind: "main",
        hasTools: true,
        status: 200,
        answer: "text"
      }])
    })
  })

  it("bash: calls the Bash tool with the last completion line of the latest user message, then ends on the tool result", async () => {
    await withApi({ scenario: "bash" }, async (api) => {
      const prompt = [
        "Task demo from the claude-failover queue (run r-1):",
        "An example, not to be run: `false task done demo --run old`",
        "When you have finished, run this shell command, exactly as written:",
        "`node /x/bin/claude-failover.js task done demo --run r-1 --queue-dir /q`",
        "If you cannot finish it, run this instead: `node /x/bin/claude-failover.js task fail demo --run r-1`"
      ].join("\n")
      const older = userText("`echo task done older --run r-0`")
      const conversation = [older, { role: "assistant", content: "ok" }, userText(prompt)]
      const first = await readSse(await postMessages(api, mainRequest(conversation)))
      expect(shape(first)).toStrictEqual(STREAM_SHAPE)
      const block = first[1]?.data.content_block as Record<string, unknown>
      expect(block).toMatchObject({ type: "tool_use", name: "Bash", input: {} })
      expect(String(block.id)).toMatch(/^toolu_/)
      expect(
        first.filter((e) => e.event === "content_block_delta").every((e) =>
          (e.data.delta as Record<string, unknown>).type === "input_json_delta"
        )
      ).toBe(true)
      expect(JSON.parse(deltas(first, "partial_json"))).toMatchObject({
        command: "node /x/bin/claude-failover.js task done demo --run r-1 --queue-dir /q"
      })
      expect(first.find((e) => e.event === "message_delta")?.data.delta).toMatchObject({ stop_reason: "tool_use" })

      const toolResult = {
        role: "user",
        content: [{ type: "tool_result", tool_use_id: String(block.id), content: "ok" }]
      }
      const history = [userText(prompt), { role: "assistant", content: [block] }, toolResult]
      const second = await readSse(await postMessages(api, mainRequest(history)))
      expect(second[1]?.data.content_block).toStrictEqual({ type: "text", text: "" })
      expect(second.find((e) => e.event === "message_delta")?.data.delta).toMatchObject({ stop_reason: "end_turn" })
      expect(api.requests().map((r) => r.answer)).toStrictEqual(["tool_use", "text"])
    })
  })

  it("write: calls the Write tool on notes.md in the working directory Claude Code names", async () => {
    await withApi({ scenario: "write" }, async (api) => {
      const body = mainRequest([userText("Write notes."), {
        role: "system",
        content: [{ type: "text", text: "# Environment\n - Primary working directory: /home/op/project\n" }]
      }])
      const events = await readSse(await postMessages(api, body))
      expect(events[1]?.data.content_block).toMatchObject({ type: "tool_use", name: "Write" })
      expect(JSON.parse(deltas(events, "partial_json"))).toMatchObject({ file_path: "/home/op/project/notes.md" })
    })
  })

  it("finds the completion line: the last backticked `… task done NAME …` line", () => {
    expect(completionCommand("a `x task done one` b\n`y task done two --run 2`\n`z task fail three`")).toBe(
      "y task done two --run 2"
    )
    expect(completionCommand("no command here")).toBeUndefined()
  })

  const resetAt = 1_795_630_982
  const limits: ReadonlyArray<readonly [Scenario, string]> = [
    ["limit-5h", "five_hour"],
    ["limit-weekly", "seven_day"],
    ["limit-opus", "seven_day_opus"],
    ["limit-sonnet", "seven_day_sonnet"],
    ["limit-overage", "overage"]
  ]
  for (const [scenario, claim] of limits) {
    it(`${scenario}: 429 rate_limit_error with the unified headers (rejected, reset, claim ${claim})`, async () => {
      await withApi({ scenario, resetAt: () => resetAt }, async (api) => {
        const response = await postMessages(api, mainRequest([userText("Go.")]))
        expect(response.status).toBe(429)
        expect(await response.json()).toMatchObject({ type: "error", error: { type: "rate_limit_error" } })
        expect(response.headers.get("anthropic-ratelimit-unified-status")).toBe("rejected")
        expect(response.headers.get("anthropic-ratelimit-unified-reset")).toBe(String(resetAt))
        expect(response.headers.get("anthropic-ratelimit-unified-representative-claim")).toBe(claim)
        expect(api.requests()).toMatchObject([{ kind: "main", status: 429, scenario, resetAt }])
      })
    })
  }

  it("limit-overage: extra usage is refused on its own status too (overage status rejected, its reset)", async () => {
    await withApi({ scenario: "limit-overage", resetAt: () => resetAt }, async (api) => {
      const response = await postMessages(api, mainRequest([userText("Go.")]))
      expect(response.headers.get("anthropic-ratelimit-unified-overage-status")).toBe("rejected")
      expect(response.headers.get("anthropic-ratelimit-unified-overage-reset")).toBe(String(resetAt))
    })
    await withApi({ scenario: "limit-5h", resetAt: () => resetAt }, async (api) => {
      const response = await postMessages(api, mainRequest([userText("Go.")]))
      expect(response.headers.get("anthropic-ratelimit-unified-overage-status")).toBeNull()
    })
  })

  it("warning and slow-warning: a text answer with the headers of a 92% used 5-hour window; plain text has none", async () => {
    const warned = {
      "anthropic-ratelimit-unified-status": "allowed_warning",
      "anthropic-ratelimit-unified-reset": String(resetAt),
      "anthropic-ratelimit-unified-representative-claim": "five_hour",
      "anthropic-ratelimit-unified-5h-status": "allowed_warning",
      "anthropic-ratelimit-unified-5h-utilization": "0.92",
      "anthropic-ratelimit-unified-5h-surpassed-threshold": "0.9",
      "anthropic-ratelimit-unified-5h-reset": String(resetAt)
    }
    const unified = (response: Response) =>
      Object.fromEntries([...response.headers].filter(([name]) => name.startsWith("anthropic-ratelimit-unified")))
    await withApi({ scenario: "warning", text: "Nearly out.", slowSeconds: 1, resetAt: () => resetAt }, async (api) => {
      const response = await postMessages(api, mainRequest([userText("Go.")]))
      expect(response.status).toBe(200)
      expect(unified(response)).toStrictEqual(warned)
      expect(deltas(await readSse(response), "text")).toBe("Nearly out.")

      api.setScenario("slow-warning")
      const started = Date.now()
      const slow = await postMessages(api, mainRequest([userText("Go.")]))
      expect(unified(slow)).toStrictEqual(warned)
      expect(shape(await readSse(slow))).toStrictEqual(STREAM_SHAPE)
      expect(Date.now() - started).toBeGreaterThanOrEqual(900)

      api.setScenario("text")
      expect(unified(await postMessages(api, mainRequest([userText("Go.")])))).toStrictEqual({})
      expect(api.requests()).toMatchObject([
        { scenario: "warning", status: 200, answer: "text", resetAt },
        { scenario: "slow-warning", status: 200, answer: "text", resetAt },
        { scenario: "text", status: 200, answer: "text" }
      ])
      expect(api.requests()[2]).not.toHaveProperty("resetAt")
    })
  })

  it("bash: toolText is the answer once the tool call ran", async () => {
    await withApi({ scenario: "bash", bashCommand: "printf 'x\\n'", toolText: "Printed." }, async (api) => {
      const first = await readSse(await postMessages(api, mainRequest([userText("Print.")])))
      expect(JSON.parse(deltas(first, "partial_json"))).toMatchObject({ command: "printf 'x\\n'" })
      const block = first[1]?.data.content_block as Record<string, unknown>
      const toolResult = {
        role: "user",
        content: [{ type: "tool_result", tool_use_id: String(block.id), content: "x" }]
      }
      const second = await readSse(
        await postMessages(api, mainRequest([userText("Print."), { role: "assistant", content: [block] }, toolResult]))
      )
      expect(deltas(second, "text")).toBe("Printed.")
    })
  })

  it("limits reset by default on a whole minute: two hours ahead for the 5-hour limit, three days for the weekly ones", async () => {
    const now = Date.UTC(2026, 10, 25, 18, 30, 42)
    await withApi({ scenario: "limit-5h", now: () => now }, async (api) => {
      const fiveHour = await postMessages(api, mainRequest([userText("Go.")]))
      expect(Number(fiveHour.headers.get("anthropic-ratelimit-unified-reset"))).toBe(
        Date.UTC(2026, 10, 25, 20, 30) / 1000
      )
      api.setScenario("limit-weekly")
      const weekly = await postMessages(api, mainRequest([userText("Go.")]))
      expect(Number(weekly.headers.get("anthropic-ratelimit-unified-reset"))).toBe(
        Date.UTC(2026, 10, 28, 18, 30) / 1000
      )
    })
  })

  it("plain-429 has no unified headers; overloaded is 529 overloaded_error; unauthorized is 401 authentication_error", async () => {
    await withApi({ scenario: "plain-429" }, async (api) => {
      const plain = await postMessages(api, mainRequest([userText("Go.")]))
      expect(plain.status).toBe(429)
      expect(await plain.json()).toMatchObject({ type: "error", error: { type: "rate_limit_error" } })
      expect([...plain.headers.keys()].filter((name) => name.startsWith("anthropic-ratelimit-unified"))).toStrictEqual(
        []
      )

      api.setScenario("overloaded")
      const overloaded = await postMessages(api, mainRequest([userText("Go.")]))
      expect(overloaded.status).toBe(529)
      expect(await overloaded.json()).toMatchObject({ type: "error", error: { type: "overloaded_error" } })

      api.setScenario("unauthorized")
      const unauthorized = await postMessages(api, mainRequest([userText("Go.")]))
      expect(unauthorized.status).toBe(401)
      expect(await unauthorized.json()).toMatchObject({ type: "error", error: { type: "authentication_error" } })
    })
  })

  it("switches scenario through its control route while running; side requests always get a short text answer", async () => {
    await withApi({ scenario: "text" }, async (api) => {
      expect((await postMessages(api, mainRequest([userText("One.")]))).status).toBe(200)

      const switched = await fetch(`${api.url}/_stand-in/scenario`, {
        method: "POST",
        body: JSON.stringify({ scenario: "limit-5h" })
      })
      expect(await switched.json()).toStrictEqual({ scenario: "limit-5h" })
      expect(api.scenario()).toBe("limit-5h")
      const refused = await fetch(`${api.url}/_stand-in/scenario`, {
        method: "POST",
        body: JSON.stringify({ scenario: "nope" })
      })
      expect(refused.status).toBe(400)

      expect((await postMessages(api, mainRequest([userText("Two.")]))).status).toBe(429)
      // A title request carries no tools: it is answered whatever the scenario.
      const side = await postMessages(api, {
        model: "claude-haiku-4-5",
        max_tokens: 32,
        stream: true,
        messages: [userText("Title?")]
      })
      expect(side.status).toBe(200)
      expect(deltas(await readSse(side), "text")).not.toBe("")
      const count = await fetch(`${api.url}/v1/messages/count_tokens`, {
        method: "POST",
        body: JSON.stringify(mainRequest([]))
      })
      expect(await count.json()).toMatchObject({ input_tokens: expect.any(Number) })
      const other = await fetch(`${api.url}/api/hello`, { method: "HEAD" })
      expect(other.status).toBe(200)

      const log = await (await fetch(`${api.url}/_stand-in/requests`)).json()
      expect(log).toMatchObject([
        { method: "POST", path: "/v1/messages", kind: "main", hasTools: true, scenario: "text", status: 200 },
        { path: "/_stand-in/scenario", kind: "control", scenario: "limit-5h" },
        {
          path: "/v1/messages",
          kind: "main",
          hasTools: true,
          scenario: "limit-5h",
          status: 429,
          answer: "rate_limit_error"
        },
        { path: "/v1/messages", kind: "side", hasTools: false, status: 200, answer: "text" },
        { path: "/v1/messages/count_tokens", kind: "count_tokens", status: 200 },
        { method: "HEAD", path: "/api/hello", kind: "other", status: 200 }
      ])
    })
  })

  it("a per-request rule chooses the scenario before the current one applies", async () => {
    const rule: AnthropicApiOptions["rule"] = (request) =>
      JSON.stringify(request.body).includes("please overload") ? "overloaded" : undefined
    await withApi({ scenario: "text", rule }, async (api) => {
      expect((await postMessages(api, mainRequest([userText("please overload")]))).status).toBe(529)
      expect((await postMessages(api, mainRequest([userText("fine")]))).status).toBe(200)
    })
  })
})

// ---------------------------------------------------------------------------------------------------------------------
// The real Claude Code

const VERSION = CLAUDE_VERSION

describe(`the real Claude Code ${VERSION} against the stand-in`, () => {
  it("runs the Bash tool call it is given (the prompt's completion line) and goes back to an idle screen", async () => {
    const root = mkdtempSync(join(tmpdir(), "cf-real-claude-"))
    const tmux = new TmuxServer()
    let api: AnthropicApi | undefined
    try {
      const claude = claudeBinary()
      const home = join(root, "home")
      const work = join(root, "work")
      mkdirSync(home)
      mkdirSync(work)
      // Onboarding done and the folder trusted, as on an operator's machine: no dialog stands in the way.
      writeFileSync(
        join(home, ".claude.json"),
        JSON.stringify({
          hasCompletedOnboarding: true,
          projects: { [work]: { hasTrustDialogAccepted: true } }
        })
      )
      api = await startAnthropicApi({ scenario: "bash" })
      const flag = join(work, "task-done.flag")
      const env = {
        PATH: "/usr/local/bin:/usr/bin:/bin",
        HOME: home,
        LANG: "C.UTF-8",
        TZ: "UTC",
        DISABLE_AUTOUPDATER: "1",
        ANTHROPIC_BASE_URL: api.url,
        CLAUDE_CODE_OAUTH_TOKEN: "sk-ant-oat01-standin-0000000000000000000000"
      }
      // `env -i`: Claude Code sees only these variables, none of the machine's own.
      const command = ["env", "-i", ...Object.entries(env).map(([k, v]) => `${k}=${v}`), claude].map(shellQuote).join(
        " "
      )
      tmux.tmux("new-session", "-d", "-s", "claude", "-x", "200", "-y", "40", "-c", work, command)
      const screen = () => tmux.capture("claude")
      const box = () => Option.getOrUndefined(inputBoxText(screen()))

      await waitFor("Claude Code's empty input box", () => box() === "", 60_000)
      // The shell comment keeps the command harmless while the line still reads as the task's completion line.
      const prompt = [
        "Task demo from the claude-failover queue (run r-1):",
        "",
        "Say hello.",
        "",
        "When you have finished, run this shell command, exactly as written:",
        `\`touch ${flag} # task done demo --run r-1\``
      ].join("\n")
      execFileSync("tmux", ["-L", tmux.socket, "load-buffer", "-b", "prompt", "-"], { input: prompt })
      tmux.tmux("paste-buffer", "-p", "-d", "-b", "prompt", "-t", "=claude:")
      await waitFor("the paste in the input box", () => (box() ?? "") !== "", 10_000)
      // An Enter that arrives with the paste can be taken as part of it: press it until the main loop asks the API.
      let pressed = 0
      await waitFor("the prompt to be submitted", () => {
        if (api?.requests().some((r) => r.kind === "main")) return true
        if (Date.now() - pressed > 1000) {
          tmux.tmux("send-keys", "-t", "=claude:", "Enter")
          pressed = Date.now()
        }
        return false
      }, 20_000)

      await waitFor("the Bash tool call to create the file", () => existsSync(flag), 60_000)
      const idle = await waitFor("the final answer and an idle screen", () => {
        const now = screen()
        return now.includes("The command ran. The task is complete.") && !/esc to interrupt/.test(now) &&
          box() === "" && now
      }, 30_000)
      expect(idle).toContain(`Bash(touch ${flag} # task done demo --run r-1)`)
      expect(classifyPane(idle, { now: Date.now(), timeZone: "UTC" })._tag).toBe("idle")
      expect(api.requests().filter((r) => r.kind === "main").map((r) => r.answer)).toStrictEqual(["tool_use", "text"])
    } finally {
      // Claude Code is the pane's process (`env` execs it): wait for it to go with the server, so nothing writes
      // into the directory while it is removed.
      await killClaudes(tmux)
      await api?.close()
      rmSync(root, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 })
    }
  }, 240_000)
})
