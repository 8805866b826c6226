/**
 * Rows 3 and 8 share one daemon, as an operator stages it: 8 dry-run sessions, delegation on against the stand-in,
 * DRY_RUN_DELAY long. It is started first and left idle (row 3) while other scenarios run beside it — an idle daemon
 * costs them nothing, and its own CPU and RSS are read from /proc, so their load does not count — then `task done`
 * is run against it (row 8) once the machine is quiet again.
 * Easy to get wrong: the idle rows are read before any task arrives; a failure in one part still gives the other
 * part's rows; and the daemon is stopped whatever happens.
 */
import { DaemonProcess, dryRunDaemon } from "./daemon-process.ts"
import { IDLE_ROWS, idleDaemon } from "./idle.ts"
import { BenchQueue } from "./queue-dir.ts"
import { SECUTOOLS_KEY, type SecutoolsStandIn, startSecutools } from "./secutools.ts"
import type { Sizes } from "./sizes.ts"
import { failedRows, type Row, rowsOrFailure } from "./table.ts"
import { TASK_DONE_ROWS, taskDone } from "./task-done.ts"

const SESSIONS = 8

export const STAGING_ROWS = [...IDLE_ROWS, ...TASK_DONE_ROWS]

export interface StagingDaemon {
  /** Row 3, once its window has passed. */
  readonly idle: Promise<ReadonlyArray<Row>>
  /** Row 8 (run when called), then the daemon is stopped. */
  finish(): Promise<ReadonlyArray<Row>>
}

export const startStagingDaemon = async (sizes: Sizes): Promise<StagingDaemon> => {
  let secutools: SecutoolsStandIn | undefined
  let queue: BenchQueue | undefined
  let daemon: DaemonProcess | undefined
  const stop = async () => {
    await daemon?.stop()
    await secutools?.close()
    queue?.remove()
  }
  try {
    secutools = await startSecutools({ jobMs: 0 })
    queue = new BenchQueue("staging")
    daemon = new DaemonProcess({
      ...dryRunDaemon(queue.dir, SESSIONS, "1h"),
      SECUTOOLS_URL: secutools.url,
      SECUTOOLS_API_KEY: SECUTOOLS_KEY
    })
    await daemon.started()
  } catch (error) {
    await stop()
    const message = error instanceof Error ? error.message.split("\n")[0] : String(error)
    return {
      idle: Promise.resolve(failedRows(IDLE_ROWS, `error: ${message}`)),
      finish: () => Promise.resolve(failedRows(TASK_DONE_ROWS, `error: ${message}`))
    }
  }
  const running = daemon
  const staged = queue
  const idle = rowsOrFailure(IDLE_ROWS, () => idleDaemon(running, sizes))
  return {
    idle,
    finish: async () => {
      try {
        await idle
        return await rowsOrFailure(TASK_DONE_ROWS, () => taskDone(running, staged, sizes, SESSIONS))
      } finally {
        await stop()
      }
    }
  }
}
