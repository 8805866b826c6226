/**
 * The status page in a real browser (Chromium through playwright-core) against the daemon as a real process: the
 * token prompt, live updates without reloading, the Retry and Requeue buttons, and task names shown as text.
 * Easy to get wrong: every wait is a locator with a deadline (the page polls every 1.5 s), and the browser and the
 * daemons are stopped in afterAll even when a test fails.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { type Browser, chromium, type Page } from "playwright-core"
import { TEST_DATABASE_URL } from "../adapters/pg-database.ts"
import { Daemon, Queue, taskFields, TmuxServer, waitFor } from "./support.ts"

const CHROMIUM = "/usr/bin/chromium"
const TOKEN = "page-token-8c1f"
/** Long enough for one poll (1.5 s) to see each stage, short enough to keep the file fast. */
const UI_WAIT = 10_000

const cleanups: Array<() => unknown> = []
let browser: Browser

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: install the Debian package chromium (.ci/run does)`)
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
  })
  cleanups.push(() => browser.close())
})

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** The environment without the caller's API and secutools settings, so only what a test sets counts. */
const cleanEnv = () =>
  Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(SECUTOOLS_|API_)/.test(key)))

const startDaemon = async (queue: Queue, env: Record<string, string>) => {
  const daemon = new Daemon({ ...cleanEnv(), QUEUE_DIR: queue.root, API_PORT: "0", ...env })
  cleanups.push(() => daemon.stop("SIGKILL"))
  const url = await waitFor(
    "the API's address",
    () => /status API listening on (http:\/\/\S+)/.exec(daemon.output)?.[1],
    20_000
  )
  return { daemon, url }
}

const newPage = async (url: string): Promise<Page> => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  cleanups.push(() => context.close())
  const page = await context.newPage()
  page.on("dialog", (dialog) => void dialog.accept())
  await page.goto(url)
  return page
}

const enterToken = async (page: Page, token: string) => {
  await page.locator("#token").fill(token)
  await page.getByRole("button", { name: "Show status" }).click()
}

/** The local PostgreSQL (TEST_DATABASE_URL's server), with another database in the path. */
const onDatabase = (database: string) => {
  const url = new URL(TEST_DATABASE_URL)
  url.pathname = `/${database}`
  return url.toString()
}
const psql = (sql: string, database = "postgres") =>
  execFileSync("psql", [onDatabase(database), "-c", sql], { stdio: "ignore" })

const row = (page: Page, section: string, task: string) => page.locator(`#${section} tr`, { hasText: task })

// The two daemons are independent: their tests run side by side to keep the file short.
describe.concurrent("the status page in Chromium", () => {
  describe("the status page (dry-run sessions)", () => {
    const queue = new Queue()
    cleanups.push(() => queue.remove())
    let url = ""

    beforeAll(async () => {
      // One session, so a second task visibly waits in pending/ while the first runs.
      ;({ url } = await startDaemon(queue, {
        SESSIONS_MODE: "dry-run",
        TMUX_SESSIONS: "claude-1",
        DRY_RUN_DELAY: "2000ms",
        API_TOKEN: TOKEN
      }))
    })

    it("without the token: the prompt and no queue data; a wrong token is refused with a message", async () => {
      writeFileSync(join(queue.root, "failed", "secret-name.md"), "---\nstate: failed\n---\nx\n")
      const page = await newPage(url)
      await page.locator("#login").waitFor({ state: "visible", timeout: UI_WAIT })
      expect(await page.locator("#board").isHidden()).toBe(true)
      expect(await page.content()).not.toContain("secret-name.md")
      // The API itself refuses the page's origin without the token.
      expect(await page.evaluate(async () => (await fetch("/api/tasks")).status)).toBe(401)

      await enterToken(page, "not-the-token")
      await page.getByText("That token was refused (HTTP 401)").waitFor({ timeout: UI_WAIT })
      expect(await page.locator("#login").isVisible()).toBe(true)
      expect(await page.locator("#board").isHidden()).toBe(true)
      expect(await page.content()).not.toContain("secret-name.md")
    })

    it("with the token: sessions and the queue, updated live; Retry takes a failed task back to done", async () => {
      const page = await newPage(url)
      await enterToken(page, TOKEN)
      await row(page, "sessions", "claude-1").waitFor({ timeout: UI_WAIT })
      await row(page, "failed", "secret-name.md").waitFor({ timeout: UI_WAIT })
      // One host, its own queue directory: no hosts section.
      expect(await page.locator("#hosts-box").isHidden()).toBe(true)

      // A name full of markup is shown as text: nothing it says runs.
      const hostile = `first <img src=x onerror="window.pwned=1">.md`
      // Dropped together: the one session takes the first, and the second waits in pending/ the whole first run.
      writeFileSync(join(queue.root, "pending", hostile), "---\npriority: 1\n---\nFirst.\n")
      writeFileSync(join(queue.root, "pending", "second.md"), "---\npriority: 2\n---\nSecond.\n")
      await row(page, "pending", "second.md").waitFor({ timeout: UI_WAIT })
      await row(page, "active", hostile).waitFor({ timeout: UI_WAIT })
      await row(page, "done", hostile).waitFor({ timeout: UI_WAIT })
      await row(page, "done", "second.md").waitFor({ timeout: UI_WAIT })
      expect(await page.evaluate(() => "pwned" in globalThis)).toBe(false)
      expect(await page.locator("#done img").count()).toBe(0)

      // A failed task with its reason, retried from the page: it leaves failed/ and (dry-run) ends in done/.
      writeFileSync(
        join(queue.root, "failed", "broken.md"),
        "---\nstate: failed\nfinished_at: 2026-11-24T12:00:00.000Z\n---\nFix it.\n\n---\n" +
          "claude-failover: failed · 2026-11-24T12:00:00.000Z · session claude-1\n\nReason: the tests do not pass\n"
      )
      const broken = row(page, "failed", "broken.md")
      await broken.getByText("the tests do not pass").waitFor({ timeout: UI_WAIT })
      await broken.getByRole("button", { name: "Retry broken.md" }).click()
      await page.locator("#message").getByText("broken.md is back in pending/").waitFor({ timeout: UI_WAIT })
      await broken.waitFor({ state: "detached", timeout: UI_WAIT })
      await row(page, "done", "broken.md").waitFor({ timeout: UI_WAIT })
      expect(taskFields("broken.md", readFileSync(join(queue.root, "done", "broken.md"), "utf8")).state).toBe("done")
    })
  })

  describe("Requeue from the page (tmux stand-ins)", () => {
    it("stops the session's turn and puts the task back in pending/ without counting the attempt", async () => {
      const tmux = new TmuxServer()
      const queue = new Queue()
      cleanups.push(() => tmux.kill(), () => queue.remove())
      const log = join(queue.root, "standin.log")
      // Long enough for the page to show the run and the button to be clicked; the second run then finishes.
      tmux.startStandin("claude-1", { STANDIN_WORK_MS: "6000", STANDIN_LOG: log })
      await waitFor(
        "the stand-in's input box",
        () => tmux.currentCommand("claude-1") === "node" && tmux.capture("claude-1").includes("? for shortcuts")
      )
      writeFileSync(join(queue.root, "pending", "long.md"), "A long task.\n")
      const { daemon, url } = await startDaemon(queue, { TMUX_SOCKET: tmux.socket })

      const page = await newPage(url)
      const active = row(page, "active", "long.md")
      await active.getByRole("button", { name: "Requeue long.md" }).waitFor({ timeout: UI_WAIT })
      const firstRun = taskFields("long.md", queue.read("active", "long.md")).run
      await waitFor(
        "the stand-in to take the prompt",
        () => existsSync(log) && readFileSync(log, "utf8").includes("\"submitted\""),
        UI_WAIT
      )
      await active.getByRole("button", { name: "Requeue long.md" }).click()
      await page.locator("#message").getByText(
        /long\.md is back in pending\/: run \S+ was taken back from session claude-1, whose turn was interrupted/
      )
        .waitFor({ timeout: UI_WAIT })

      await waitFor("long.md in done/", () => queue.tasks("done").includes("long.md"), 20_000)
      const events = readFileSync(log, "utf8").trim().split("\n").map((line) =>
        JSON.parse(line) as { event: string; run: string | null }
      )
      // The first run was interrupted; had its completion line already been under way, it was refused: the task was
      // finished once, by the second run.
      expect(events.filter((e) => e.event === "interrupted").map((e) => e.run)).toStrictEqual([firstRun])
      await waitFor("the completion logged", () => /long\.md done \(/.test(daemon.output), UI_WAIT)
      expect(daemon.output.match(/long\.md done \(/g)).toHaveLength(1)
      const fields = taskFields("long.md", queue.read("done", "long.md"))
      expect(fields.history?.map((h) => [h.event, h.cause, h.run])).toStrictEqual([["requeued", "operator", firstRun]])
      expect(fields.run).not.toBe(firstRun)
      expect(daemon.output).toMatch(/long\.md is back in pending\/.*, asked by the status page/)
      expect(await daemon.stop()).toBe(0)
    })
  })

  describe("a host of a shared queue (PostgreSQL)", () => {
    it("lists the hosts, each with its heartbeat, running tasks, jobs and sessions; a silent host as silent", async () => {
      const database = `cf_page_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
      psql(`CREATE DATABASE ${database}`)
      cleanups.push(() => psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`))
      const queue = new Queue()
      cleanups.push(() => queue.remove())
      const { url } = await startDaemon(queue, {
        QUEUE_BACKEND: "postgres",
        DATABASE_URL: onDatabase(database),
        HOST_ID: "page-host",
        LEASE_TTL: "3s",
        SESSIONS_MODE: "dry-run",
        TMUX_SESSIONS: "claude-1,claude-2",
        DRY_RUN_DELAY: "60s",
        API_TOKEN: TOKEN
      })
      // Another host that stopped long ago, as its row is left behind.
      psql(
        "INSERT INTO cf_hosts (host, started_at, heartbeat_at, sessions) VALUES ('gone-host', now() - interval '1 hour', " +
          `now() - interval '10 minutes', '[{"session":"claude-1","state":"idle","task":null}]')`,
        database
      )
      writeFileSync(join(queue.root, "pending", "long-run.md"), "A long one.\n")
      const page = await newPage(url)
      await enterToken(page, TOKEN)
      const here = page.locator("#hosts tr", { hasText: "page-host (this)" })
      await here.getByText("claude-1 busy (long-run.md)").waitFor({ timeout: UI_WAIT })
      expect(await here.getByText("claude-2 idle").count()).toBe(1)
      expect(await here.locator("td").nth(1).textContent()).toBe("alive")
      expect(await here.locator("td").nth(3).textContent()).toBe("1")
      const gone = page.locator("#hosts tr", { hasText: "gone-host" })
      expect(await gone.locator("td").nth(1).textContent()).toBe("silent")
      expect(await gone.locator("td").nth(2).textContent()).toBe("10m ago")
      expect(await page.locator("#n-hosts").textContent()).toBe("2")
    })
  })
})
