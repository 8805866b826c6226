/**
 * The tmux adapter's combined calls against a real private tmux server (killed afterwards even on failure): one look
 * gives the command tmux reports and the screen a capture gives, a missing session or server is SessionNotFound, and a paste carries tmux's own
 * separators and formats as text.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { CliTmuxLayer } from "../../src/adapters/cli-tmux.ts"
import { Tmux } from "../../src/ports/tmux.ts"
import { TmuxServer, waitFor } from "./support.ts"

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const setUp = () => {
  const server = new TmuxServer()
  cleanups.push(() => server.kill())
  const runtime = ManagedRuntime.make(CliTmuxLayer({ socket: server.socket }).pipe(Layer.provide(NodeServices.layer)))
  cleanups.push(() => runtime.dispose())
  const tmux = <A, E>(f: (tmux: Tmux["Service"]) => Effect.Effect<A, E>) =>
    runtime.runPromise(Tmux.use(f).pipe(Effect.result))
  return { server, tmux }
}

describe("the tmux adapter on a real server", () => {
  it("looks at a pane in one call: the command tmux reports and the screen a capture gives", async () => {
    const { server, tmux } = setUp()
    server.tmux("new-session", "-d", "-s", "look-1", "-x", "80", "-y", "12", "cat")
    server.tmux("send-keys", "-t", "=look-1:", "-l", "first line")
    server.tmux("send-keys", "-t", "=look-1:", "Enter")
    await waitFor(
      "cat echoes the line",
      () => server.capture("look-1").split("\n").filter((l) => l === "first line").length === 2
    )

    const look = await tmux((t) => t.lookAtPane("look-1"))
    const screen = await tmux((t) => t.capturePane("look-1"))
    expect(look._tag).toBe("Success")
    if (look._tag !== "Success" || screen._tag !== "Success") return
    expect(look.success.command).toBe("cat")
    expect(look.success.command).toBe(server.currentCommand("look-1"))
    expect(look.success.screen).toBe(screen.success)
    expect(look.success.screen.split("\n").slice(0, 2)).toEqual(["first line", "first line"])
  })

  it("says SessionNotFound for a missing session, and for a server that is not running", async () => {
    const { server, tmux } = setUp()
    const noServer = await tmux((t) => t.lookAtPane("look-1"))
    expect(noServer._tag === "Failure" && noServer.failure._tag).toBe("SessionNotFound")

    server.tmux("new-session", "-d", "-s", "look-10", "cat")
    // `=NAME:` matches the name exactly: look-1 is not look-10.
    const missing = await tmux((t) => t.lookAtPane("look-1"))
    expect(missing._tag === "Failure" && missing.failure._tag).toBe("SessionNotFound")
    const present = await tmux((t) => t.lookAtPane("look-10"))
    expect(present._tag === "Success" && present.success.command).toBe("cat")
  })

  it("pastes text with tmux separators, formats and newlines as text, in one call, leaving no buffer behind", async () => {
    const { server, tmux } = setUp()
    const dir = mkdtempSync(join(tmpdir(), "cf-paste-"))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const out = join(dir, "typed.txt")
    server.tmux("new-session", "-d", "-s", "paste-1", "-x", "100", "-y", "12", `cat > ${out}`)
    const text = "a ; b \\; c #{session_name} $(date) `id`\nsecond line ;"
    const sent = await tmux((t) => t.sendText("paste-1", text))
    expect(sent._tag).toBe("Success")
    server.tmux("send-keys", "-t", "=paste-1:", "Enter")
    // The terminal hands cat each line as it is ended: both are in the file once the second one is.
    const typed = await waitFor("both lines written", () => {
      const content = existsSync(out) ? readFileSync(out, "utf8") : ""
      return content.endsWith(";\n") && content.split("\n").length === 3 ? content : false
    })
    expect(typed).toBe(`${text}\n`)
    expect(server.tmux("list-buffers")).toBe("")

    const toMissing = await tmux((t) => t.sendText("paste-2", "x"))
    expect(toMissing._tag === "Failure" && toMissing.failure._tag).toBe("SessionNotFound")
  })
})
