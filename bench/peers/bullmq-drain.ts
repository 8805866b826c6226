/**
 * The peer row: the same burst of jobs through BullMQ on a local Redis, added at once and processed by one worker,
 * REAP_CONCURRENCY at a time, each job finishing at once (as the stand-in's instant jobs do).
 * `bullmq-drain.ts PORT COUNT CONCURRENCY`; prints JSON. Easy to get wrong: the queue gets a fresh name per run and is
 * obliterated afterwards, so a shared Redis is left as it was found.
 */
import { Queue, Worker } from "bullmq"
import { createClient } from "redis"

const [portText = "6379", countText = "0", concurrencyText = "1"] = process.argv.slice(2)
const count = Number(countText)
// node-redis clients (the `redis` package the project already has): BullMQ takes a client instance, and the worker
// gets its own, since it blocks on its connection while it waits for jobs.
const clients: Array<{ readonly isOpen: boolean; destroy(): void }> = []
const client = () => {
  const made = createClient({ url: `redis://127.0.0.1:${Number(portText)}` })
  clients.push(made)
  return made
}
const name = `claude-failover-bench-${process.pid}-${Date.now()}`
const queue = new Queue(name, { connection: client() })
await queue.waitUntilReady()
let completed = 0
let finish: () => void = () => {}
const allDone = new Promise<void>((resolve) => (finish = resolve))
const worker = new Worker(name, async (job) => ({ result: `gemini says: ${String(job.data.prompt)}` }), {
  connection: client(),
  concurrency: Number(concurrencyText),
  autorun: false
})
worker.on("completed", () => {
  completed++
  if (completed === count) finish()
})
await worker.waitUntilReady()

const cpuBefore = process.cpuUsage()
const started = performance.now()
await queue.addBulk(
  Array.from({ length: count }, (_, i) => ({ name: "task", data: { prompt: `Summarise item ${i}.` } }))
)
void worker.run()
await allDone
const elapsedMs = performance.now() - started
const cpu = process.cpuUsage(cpuBefore)
await worker.close()
await queue.obliterate({ force: true })
await queue.close()
for (const made of clients) if (made.isOpen) made.destroy()
console.log(JSON.stringify({
  elapsedMs,
  jobsPerSecond: count / (elapsedMs / 1000),
  cpuMsPerJob: (cpu.user + cpu.system) / 1000 / count,
  maxRssMb: process.resourceUsage().maxRSS / 1024
}))
