/**
 * Baseline for the delegated drain: the durable file work one delegated task costs, with nothing else — no HTTP,
 * no parsing, no scheduling. Run as its own process: `durable-work.ts DIR COUNT CONCURRENCY`; prints JSON.
 * Easy to get wrong: it must do every durable step the contract asks for (fsync before each rename, the done
 * directory fsynced), or the baseline is faster than any correct daemon could be.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { open, readFile, rename, unlink } from "node:fs/promises"
import { join } from "node:path"

const [dir = "", countText = "0", concurrencyText = "1"] = process.argv.slice(2)
const count = Number(countText)
const concurrency = Number(concurrencyText)
const pending = join(dir, "pending")
const done = join(dir, "done")
mkdirSync(pending, { recursive: true })
mkdirSync(done, { recursive: true })
const names = Array.from({ length: count }, (_, i) => `task-${String(i).padStart(6, "0")}.md`)
for (const name of names) writeFileSync(join(pending, name), "---\npreferred_ai: gemini\n---\nSummarise.\n")

/** Temporary file, write, fsync, close, rename; then the directory fsynced when asked. */
const writeDurable = async (folder: string, name: string, text: string, syncFolder: boolean) => {
  const temp = join(folder, `.${name}.tmp`)
  const file = await open(temp, "w")
  try {
    await file.writeFile(text)
    await file.sync()
  } finally {
    await file.close()
  }
  await rename(temp, join(folder, name))
  if (syncFolder) {
    const handle = await open(folder, "r")
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  }
}

const one = async (name: string) => {
  const text = await readFile(join(pending, name), "utf8")
  const marker = {
    task: name,
    provider: "gemini",
    run: "r0123456789ab",
    idempotency_key: `${name}-key`,
    state: "submitting",
    job_id: null,
    created_at: new Date().toISOString(),
    submitted_at: null,
    polls: 0
  }
  await writeDurable(pending, `${name}.delegated`, JSON.stringify(marker), false)
  await writeDurable(
    done,
    name,
    `${text}\n## Result (gemini)\n\ngemini says: Summarise.\n\n---\nclaude-failover: done · provider gemini\n`,
    true
  )
  await unlink(join(pending, name))
  await unlink(join(pending, `${name}.delegated`))
}

const cpuBefore = process.cpuUsage()
const started = performance.now()
let next = 0
await Promise.all(Array.from({ length: concurrency }, async () => {
  while (next < names.length) {
    const name = names[next++]
    if (name !== undefined) await one(name)
  }
}))
const elapsedMs = performance.now() - started
const cpu = process.cpuUsage(cpuBefore)
console.log(JSON.stringify({
  elapsedMs,
  tasksPerSecond: count / (elapsedMs / 1000),
  cpuMsPerTask: (cpu.user + cpu.system) / 1000 / count,
  maxRssMb: process.resourceUsage().maxRSS / 1024
}))
