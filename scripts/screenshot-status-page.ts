/**
 * Writes docs/status-page.png: a daemon on a temporary queue (two dry-run sessions busy, tasks waiting, a job at the
 * in-process fake secutools, finished and failed tasks with their reasons), its status page opened in Chromium at
 * 1280×800, and a screenshot taken once every part shows. Easy to get wrong: the fake secutools finishes a job in
 * about 3 s, so the picture is taken as soon as the delegated job is on the page, not after a fixed wait.
 *
 * Usage: node scripts/screenshot-status-page.ts [--out docs/status-page.png] [--chromium /usr/bin/chromium]
 */
import { spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { parseArgs } from "node:util"
import { chromium } from "playwright-core"

const ROOT = resolve(import.meta.dirname, "..")
const { values } = parseArgs({
  options: {
    out: { type: "string", default: "docs/status-page.png" },
    chromium: { type: "string", default: "/usr/bin/chromium" }
  }
})
const out = resolve(ROOT, values.out)

const queue = mkdtempSync(join(tmpdir(), "cf-screenshot-"))
for (const stage of ["pending", "active", "done", "failed"]) mkdirSync(join(queue, stage), { recursive: true })
const write = (stage: string, name: string, text: string) => writeFileSync(join(queue, stage, name), text)

const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString()
const finished = (stage: "done" | "failed", name: string, minutes: number, line: string, reason?: string) =>
  write(
    stage,
    name,
    `---\nstate: ${stage}\nattempts: 1\nfinished_at: ${minutesAgo(minutes)}\n---\n${name}\n\n---\n` +
      `claude-failover: ${stage} · ${minutesAgo(minutes)} · ${line}\n${
        reason === undefined ? "" : `\nReason: ${reason}\n`
      }`
  )
finished("done", "update-changelog.md", 4, "session claude-2 · took 3m 12s")
finished("done", "fix-login-redirect.md", 11, "session claude-1 · took 7m 40s")
finished("done", "summarise-incident-42.md", 26, "provider gemini · job j_81f2 · cost $0.0042")
finished("done", "bump-dependencies.md", 53, "session claude-1 · took 12m 5s")
finished(
  "failed",
  "migrate-db-schema.md",
  8,
  "session claude-2",
  "gave up after 5 runs that ended without finishing (MAX_ATTEMPTS=5); the last: session claude-2 exited"
)
finished(
  "failed",
  "translate-docs-fr.md",
  31,
  "provider gpu · job j_77a0",
  "secutools job failed: provider quota exceeded"
)

const wait = async <A>(what: string, check: () => Promise<A | undefined>, ms = 20_000): Promise<A> => {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(SECUTOOLS_|API_)/.test(key)))
const daemon = spawn(process.execPath, [join(ROOT, "bin/claude-failover.js")], {
  cwd: ROOT,
  env: {
    ...env,
    QUEUE_DIR: queue,
    SESSIONS_MODE: "dry-run",
    DRY_RUN_DELAY: "10m",
    SECUTOOLS_MODE: "fake",
    REAP_INTERVAL: "500ms",
    POLL_INTERVAL: "250ms",
    SETTLE_AFTER: "200ms",
    API_PORT: "0"
  },
  stdio: ["ignore", "pipe", "pipe"]
})
let output = ""
daemon.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
daemon.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))

const browser = await chromium.launch({
  executablePath: values.chromium,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
})
try {
  const url = await wait("the daemon's API", async () => /status API listening on (http:\/\/\S+)/.exec(output)?.[1])
  // Two tasks take the two sessions; two more wait behind them, kept local (no delegation) so they stay in pending/.
  write("pending", "refactor-auth-module.md", "---\npriority: 1\n---\nRefactor the auth module.\n")
  write("pending", "write-api-tests.md", "---\npriority: 2\n---\nWrite tests for the API.\n")
  await wait("two active tasks", async () => {
    const body = await (await fetch(`${url}/api/tasks`)).json() as { counts: { active: number } }
    return body.counts.active === 2 ? true : undefined
  })
  write("pending", "review-pr-1187.md", "---\npriority: 3\nallow_delegation: false\n---\nReview PR 1187.\n")
  write("pending", "triage-flaky-tests.md", "---\npriority: 4\nallow_delegation: false\n---\nTriage the flaky tests.\n")

  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: "light" }))
    .newPage()
  await page.goto(url)
  await page.locator("#pending tr", { hasText: "triage-flaky-tests.md" }).waitFor({ timeout: 10_000 })
  // The job lives about 3 s at the fake secutools: submitted now, shown at the next poll, photographed then.
  write("pending", "summarise-logs.md", "---\npreferred_ai: gemini\n---\nSummarise yesterday's logs.\n")
  await page.locator("#delegated tr", { hasText: "summarise-logs.md" }).waitFor({ timeout: 10_000 })
  mkdirSync(dirname(out), { recursive: true })
  await page.screenshot({ path: out })
  console.log(`wrote ${out}`)
} finally {
  await browser.close()
  daemon.kill("SIGTERM")
  await new Promise((r) => daemon.once("exit", r))
  rmSync(queue, { recursive: true, force: true })
}
