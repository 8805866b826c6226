/**
 * Rows 9: claims on the shared PostgreSQL queue, at the store level, with one host and with three (each its own
 * pool), against a plain `FOR UPDATE SKIP LOCKED` loop in the same run (peers/pg-claims.ts does the work in a process
 * of its own). BENCH_DATABASE_URL, by default the local server's `test` database; the rows are skipped, saying so,
 * when no server answers there.
 */
import { numberField, runScript } from "./child.ts"
import type { Sizes } from "./sizes.ts"
import { failedRows, q, type Row } from "./table.ts"

const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const CONCURRENCY = 16

export const CLAIM_ROWS = [
  { id: "9a", what: "shared queue (PostgreSQL, store level): claims/s, 1 host" },
  { id: "9b", what: "  the same, 3 hosts claiming the same tasks" }
] as const

export const pgClaims = async (sizes: Sizes): Promise<ReadonlyArray<Row>> => {
  const count = sizes.drainTasks
  let output: unknown
  try {
    output = (await runScript("peers/pg-claims.ts", [DATABASE_URL, String(count), String(CONCURRENCY)], {
      timeoutMs: 120_000
    })).output
  } catch (error) {
    const message = error instanceof Error ? error.message.split("\n")[0] : String(error)
    return failedRows(CLAIM_ROWS, `skipped: no PostgreSQL to measure on (${message})`)
  }
  const baseline = q(numberField(output, "skipLocked"), "claims/s")
  const baselineIs = `plain SKIP LOCKED loop, ${CONCURRENCY} workers, same server`
  const [one, three] = CLAIM_ROWS
  return [
    {
      ...one,
      what: `${one.what}, ${count.toLocaleString("en-US")} tasks`,
      figure: q(numberField(output, "oneHost"), "claims/s"),
      baseline,
      baselineIs,
      note: `a claim is the move into active/ (one conditional UPDATE that leases the task); ${CONCURRENCY} at a ` +
        "time per host (rows 9c–9e: the daemons themselves)"
    },
    {
      ...three,
      figure: q(numberField(output, "threeHosts"), "claims/s"),
      baseline,
      baselineIs,
      note: `${
        numberField(output, "lostRaces")
      } claims lost to another host (a round trip each), every task claimed once`
    }
  ]
}
