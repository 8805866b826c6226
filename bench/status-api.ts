/**
 * Row 7 (a, b): the status API under 100 concurrent clients with thousands of tasks in the queue, p99 per route;
 * against a plain node:http server answering the same bytes under the same load.
 * Easy to get wrong: the queue must be whole in the daemon's view before the load starts, so the bench waits until
 * /api/tasks counts every task; two dry-run sessions take a task each and keep it (DRY_RUN_DELAY long), so active/
 * is listed too, and the rest waits in pending/.
 */
import { DaemonProcess, dryRunDaemon } from "./daemon-process.ts"
import { loadNote, loadRoute } from "./api-load.ts"
import { BenchQueue, taskName, taskText } from "./queue-dir.ts"
import type { Sizes } from "./sizes.ts"
import { q, type Row } from "./table.ts"
import { waitFor } from "./wait.ts"

export const STATUS_ROUTES = ["/api/tasks", "/api/delegated/status"] as const

export const statusRowIds = (sizes: Sizes) =>
  STATUS_ROUTES.map((route, i) => ({
    id: `7${"ab"[i] ?? "x"}`,
    what: `${route} p99, ${sizes.statusClients} clients, ${sizes.statusTasks.toLocaleString("en-US")} tasks queued`,
    goal: "≤ 50 ms"
  }))

const countsTotal = (body: string): number => {
  const answer: unknown = JSON.parse(body)
  if (typeof answer !== "object" || answer === null || !("counts" in answer)) return 0
  const counts = answer.counts
  return typeof counts === "object" && counts !== null
    ? Object.values(counts).reduce((sum: number, value) => sum + (typeof value === "number" ? value : 0), 0)
    : 0
}

export const statusApi = async (sizes: Sizes): Promise<ReadonlyArray<Row>> => {
  const queue = new BenchQueue("status")
  for (let i = 0; i < sizes.statusTasks; i++) {
    queue.write(
      "pending",
      taskName("queued", i),
      taskText({ priority: i % 7, title: `Queued task ${i}` }, `Do step ${i}.`)
    )
  }
  const daemon = new DaemonProcess(dryRunDaemon(queue.dir, 2, "1h"))
  try {
    await daemon.started(120_000)
    await waitFor(`/api/tasks to count all ${sizes.statusTasks} tasks`, async () => {
      const answer = await daemon.get("/api/tasks").catch(() => undefined)
      return answer?.status === 200 && countsTotal(answer.body) >= sizes.statusTasks
    }, { timeoutMs: 120_000, everyMs: 250 })
    const rows: Array<Row> = []
    const ids = statusRowIds(sizes)
    for (const [i, route] of STATUS_ROUTES.entries()) {
      const load = await loadRoute(daemon, route, queue.root, {
        clients: sizes.statusClients,
        requests: sizes.statusRequests
      })
      const id = ids[i]
      rows.push({
        id: id?.id ?? "7",
        what: id?.what ?? route,
        figure: q(load.daemon.p99, "ms"),
        baseline: q(load.baseline.p99, "ms"),
        baselineIs: "plain node:http, same bytes, same load",
        goal: { text: "≤ 50 ms", met: load.daemon.p99 <= 50 && load.daemon.errors === 0 },
        note: loadNote(load)
      })
    }
    return rows
  } finally {
    await daemon.stop()
    queue.remove()
  }
}
