/**
 * Baselines for start-up: plain Node reading what the daemon must read. `read-queue.ts MODE DIR [REPEATS]`:
 *   markers  reads and parses every `pending/*.md.delegated`;   tasks  reads every `pending/*.md`;
 *   list     times listing pending/ and sorting the names, REPEATS times.
 * Prints JSON. Easy to get wrong: the parent times this process from spawn to exit, so the start of Node is in the
 * baseline just as it is in the daemon's figure.
 */
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const [mode = "", dir = "", repeatsText = "5"] = process.argv.slice(2)
const pending = join(dir, "pending")

if (mode === "markers") {
  let parsed = 0
  for (const name of readdirSync(pending)) {
    if (!name.endsWith(".md.delegated")) continue
    const marker: unknown = JSON.parse(readFileSync(join(pending, name), "utf8"))
    if (typeof marker === "object" && marker !== null) parsed++
  }
  console.log(JSON.stringify({ count: parsed }))
} else if (mode === "tasks") {
  let bytes = 0
  let count = 0
  for (const name of readdirSync(pending)) {
    if (!name.endsWith(".md") || name.startsWith(".")) continue
    bytes += readFileSync(join(pending, name), "utf8").length
    count++
  }
  console.log(JSON.stringify({ count, bytes }))
} else if (mode === "list") {
  const samplesMs: Array<number> = []
  let listed = 0
  for (let i = 0; i < Number(repeatsText); i++) {
    const started = performance.now()
    listed = readdirSync(pending).filter((name) => name.endsWith(".md") && !name.startsWith(".")).sort().length
    samplesMs.push(performance.now() - started)
  }
  console.log(JSON.stringify({ samplesMs, listed }))
} else {
  console.error(`unknown mode '${mode}': markers | tasks | list`)
  process.exit(2)
}
