/**
 * Row 2: the peer. The same burst as the delegated drain, through BullMQ on a local Redis, with the worker as its
 * own process; shown against the same durable-file baseline, and the daemon's rate against it.
 * Easy to get wrong: BullMQ's jobs are not files (Redis keeps them in memory, here without fsync), so this row says
 * how fast a queue of another kind drains, not what the daemon should reach; no goal.
 */
import { numberField, runScript } from "./child.ts"
import { findRedis } from "./redis.ts"
import type { Sizes } from "./sizes.ts"
import { failedRows, q, type Row } from "./table.ts"

export const PEER_ROWS = [
  { id: "2a", what: "peer: BullMQ drain on local Redis, jobs/s" },
  { id: "2b", what: "  the daemon's drain (1a) against BullMQ's" }
] as const

export const peerDrain = async (
  sizes: Sizes,
  settings: { readonly reapConcurrency: number },
  compare: { readonly daemonRate: number | undefined; readonly fileBaseline: number | undefined }
): Promise<ReadonlyArray<Row>> => {
  const redis = await findRedis()
  if (typeof redis === "string") return failedRows(PEER_ROWS, `skipped: ${redis}`)
  let output: unknown
  try {
    output = (await runScript("peers/bullmq-drain.ts", [
      String(redis.port),
      String(sizes.drainTasks),
      String(settings.reapConcurrency)
    ], { timeoutMs: 120_000 })).output
  } finally {
    await redis.stop()
  }
  const rate = numberField(output, "jobsPerSecond")
  const [peer, daemon] = PEER_ROWS
  return [
    {
      ...peer,
      what: `peer: BullMQ drain, ${sizes.drainTasks.toLocaleString("en-US")} jobs on local Redis: jobs/s`,
      figure: q(rate, "jobs/s"),
      ...(compare.fileBaseline === undefined ? {} : { baseline: q(compare.fileBaseline, "tasks/s") }),
      baselineIs: `1a's baseline (durable file work, ${settings.reapConcurrency} at a time)`,
      note: `${redis.origin}; one worker process, concurrency ${settings.reapConcurrency}, jobs finish at once; ` +
        `BullMQ's CPU ${numberField(output, "cpuMsPerJob").toFixed(2)} ms per job, max RSS ` +
        `${numberField(output, "maxRssMb").toFixed(0)} MB (Redis's own not counted)`
    },
    {
      ...daemon,
      ...(compare.daemonRate === undefined ? {} : { figure: q(compare.daemonRate, "tasks/s") }),
      baseline: q(rate, "jobs/s"),
      baselineIs: "BullMQ's drain (2a)"
    }
  ]
}
