/**
 * `npm run bench [-- --quick] [-- --only=drain,peer,idle,latency,restart,cold,status,claims,hosts,micro]`: the daemon measured as a
 * real process, every figure beside a baseline measured in the same run, printed as one table and written to
 * bench/results.json (with the machine: CPU, cores, Node, date, load). BENCH_DEBUG=1 narrates the drops of row 4.
 * Easy to get wrong: scenarios run one after another (two at once would measure each other on a small machine), and
 * a scenario that fails or is skipped still gives its rows, saying why, so the table is always whole.
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { installCleanupHandlers } from "./cleanup.ts"
import { API_TOKEN, resolvedSettings } from "./daemon-process.ts"
import { coldStart, coldStartRowIds } from "./cold-start.ts"
import { CLAIM_ROWS, pgClaims } from "./pg-claims.ts"
import { DAEMON_CLAIM_ROWS, pgDaemons } from "./pg-daemons.ts"
import { dispatchLatency, latencyRowIds } from "./dispatch-latency.ts"
import { delegatedDrain, DRAIN_ROWS } from "./drain.ts"
import { describeMachine, machineLine } from "./machine.ts"
import { MICRO_ROWS, microRows } from "./micro.ts"
import { PEER_ROWS, peerDrain } from "./peer.ts"
import { restartResume, restartRowIds } from "./restart-resume.ts"
import { sizesFor } from "./sizes.ts"
import { STAGING_ROWS, startStagingDaemon } from "./staging-daemon.ts"
import { statusApi, statusRowIds } from "./status-api.ts"
import { failedRows, renderNotes, renderTable, type Row, rowJson, type Section } from "./table.ts"

installCleanupHandlers()
const args = process.argv.slice(2)
const quick = args.includes("--quick")
const only = args.find((arg) => arg.startsWith("--only="))?.slice("--only=".length).split(",")
const wanted = (scenario: string) => only === undefined || only.includes(scenario)
const sizes = sizesFor(quick)
const machine = describeMachine()
const started = performance.now()

const progress = (text: string) =>
  process.stderr.write(`bench: ${text} (${((performance.now() - started) / 1000).toFixed(1)} s)\n`)

/** Runs one scenario; a failure becomes its rows with the reason, and the bench goes on. */
const scenario = async (
  name: string,
  ids: ReadonlyArray<{ readonly id: string; readonly what: string; readonly goal?: string }>,
  run: () => Promise<ReadonlyArray<Row>>
): Promise<ReadonlyArray<Row>> => {
  if (!wanted(name)) return []
  progress(`${name}…`)
  try {
    return await run()
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    progress(`${name} failed: ${message}`)
    return failedRows(ids, `error: ${message.split("\n")[0] ?? message}`)
  } finally {
    progress(`${name} done`)
  }
}

// The idle daemon sits through its window beside the next scenarios (see staging-daemon.ts).
const [defaults, staging] = await Promise.all([
  resolvedSettings({ QUEUE_DIR: "/nonexistent-bench-queue", API_TOKEN }),
  wanted("idle") ? startStagingDaemon(sizes) : undefined
])
if (staging !== undefined) progress("idle daemon started; its window runs beside the next scenarios")
const reapConcurrency = Number(defaults.REAP_CONCURRENCY)
const reapInterval = String(defaults.REAP_INTERVAL)

const daemonRows: Array<Row> = []
let drainRate: number | undefined
let fileBaseline: number | undefined
daemonRows.push(
  ...await scenario("drain", DRAIN_ROWS, async () => {
    const result = await delegatedDrain(sizes, { reapConcurrency, reapInterval })
    drainRate = result.tasksPerSecond
    fileBaseline = result.rows[0]?.baseline?.value
    return result.rows
  }),
  ...await scenario(
    "peer",
    PEER_ROWS,
    () => peerDrain(sizes, { reapConcurrency }, { daemonRate: drainRate, fileBaseline })
  ),
  ...await scenario(
    "idle",
    STAGING_ROWS,
    async () => [...await (staging?.idle ?? []), ...await (staging?.finish() ?? [])]
  ),
  ...await scenario("latency", latencyRowIds(sizes), () => dispatchLatency(sizes)),
  ...await scenario("restart", Object.values(restartRowIds(sizes)), () => restartResume(sizes, { reapInterval })),
  ...await scenario("cold", coldStartRowIds(sizes), () => coldStart(sizes)),
  ...await scenario("status", statusRowIds(sizes), () => statusApi(sizes)),
  ...await scenario("claims", CLAIM_ROWS, () => pgClaims(sizes)),
  ...await scenario("hosts", DAEMON_CLAIM_ROWS, () => pgDaemons(sizes))
)

const pureRows = await scenario("micro", MICRO_ROWS, async () => microRows(sizes))

const sections: ReadonlyArray<Section> = [
  { title: `The daemon as a process${quick ? " (--quick sizes)" : ""}`, rows: daemonRows },
  { title: "Pure functions, in-process", rows: pureRows }
].filter((section) => section.rows.length > 0)
const elapsedS = (performance.now() - started) / 1000
const end = describeMachine()
console.log(`claude-failover bench${quick ? " --quick" : ""}: ${machineLine(machine)}`)
console.log("")
console.log(renderTable(sections))
const notes = renderNotes(sections)
if (notes !== "") console.log(`\nNotes:\n${notes}`)
console.log(
  `\nratio = figure ÷ baseline (a rate below 1 is slower than the baseline; a time or size above 1 is larger). ` +
    `Took ${elapsedS.toFixed(1)} s; load average at the end ${end.loadAverage.join(" ")}.`
)
const results = {
  machine,
  quick,
  only: only ?? null,
  elapsedSeconds: Math.round(elapsedS * 10) / 10,
  loadAverageAtEnd: end.loadAverage,
  sections: sections.map((section) => ({ title: section.title, rows: section.rows.map(rowJson) }))
}
writeFileSync(join(import.meta.dirname, "results.json"), `${JSON.stringify(results, null, 2)}\n`)
