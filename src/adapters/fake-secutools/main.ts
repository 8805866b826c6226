/**
 * `npm run fake-secutools`: the fake secutools server as a process, its knobs read from env.
 * Easy to get wrong: tests wait for the one `listening on` line on stdout, so nothing else goes to stdout.
 *
 * Settings (env): SECUTOOLS_API_KEY (required), FAKE_SECUTOOLS_PORT (8787), FAKE_SECUTOOLS_DURATION (ms, 1500),
 * FAKE_SECUTOOLS_FAILURE_RATIO, FAKE_SECUTOOLS_5XX_RATIO, FAKE_SECUTOOLS_429_RATIO, FAKE_SECUTOOLS_RETRY_AFTER (s, 1),
 * FAKE_SECUTOOLS_SLOW_RATIO, FAKE_SECUTOOLS_SLOW_MS (1000), FAKE_SECUTOOLS_DROP_RATIO,
 * FAKE_SECUTOOLS_LOST_ANSWER_RATIO, FAKE_SECUTOOLS_MALFORMED_RATIO (ratios 0..1, default 0), FAKE_SECUTOOLS_SEED (1),
 * FAKE_SECUTOOLS_STATE_FILE (unset: jobs live only as long as the process).
 */
import { startFakeSecutools } from "./server.ts"

const problems: Array<string> = []

const setting = (name: string, fallback: number, valid: (value: number) => boolean, expected: string): number => {
  const raw = process.env[name]
  if (raw === undefined || raw.trim() === "") return fallback
  const value = Number(raw)
  if (valid(value)) return value
  problems.push(`${name} must be ${expected} (got "${raw}")`)
  return fallback
}
const count = (name: string, fallback: number, max = Number.MAX_SAFE_INTEGER) =>
  setting(
    name,
    fallback,
    (value) => Number.isInteger(value) && value >= 0 && value <= max,
    `an integer from 0 to ${max}`
  )
const ratio = (name: string) =>
  setting(name, 0, (value) => Number.isFinite(value) && value >= 0 && value <= 1, "a number from 0 to 1")

const apiKey = process.env.SECUTOOLS_API_KEY ?? ""
const stateFile = process.env.FAKE_SECUTOOLS_STATE_FILE?.trim() || undefined
if (apiKey === "") problems.push("SECUTOOLS_API_KEY is required (the bearer token clients must send)")
const options = {
  apiKey,
  port: count("FAKE_SECUTOOLS_PORT", 8787, 65535),
  durationMs: count("FAKE_SECUTOOLS_DURATION", 1500),
  failureRatio: ratio("FAKE_SECUTOOLS_FAILURE_RATIO"),
  ratio5xx: ratio("FAKE_SECUTOOLS_5XX_RATIO"),
  ratio429: ratio("FAKE_SECUTOOLS_429_RATIO"),
  retryAfter: count("FAKE_SECUTOOLS_RETRY_AFTER", 1),
  slowRatio: ratio("FAKE_SECUTOOLS_SLOW_RATIO"),
  slowMs: count("FAKE_SECUTOOLS_SLOW_MS", 1000),
  dropRatio: ratio("FAKE_SECUTOOLS_DROP_RATIO"),
  lostAnswerRatio: ratio("FAKE_SECUTOOLS_LOST_ANSWER_RATIO"),
  malformedRatio: ratio("FAKE_SECUTOOLS_MALFORMED_RATIO"),
  seed: count("FAKE_SECUTOOLS_SEED", 1, 0xffffffff),
  ...(stateFile === undefined ? {} : { stateFile }),
  log: (line: string) => process.stderr.write(`fake-secutools: ${line}\n`)
}
if (problems.length > 0) {
  process.stderr.write(`fake-secutools: invalid settings:\n${problems.map((problem) => `  ${problem}`).join("\n")}\n`)
  process.exit(2)
}

const fake = await startFakeSecutools(options)
process.stdout.write(`fake-secutools listening on ${fake.url}\n`)

const stop = () => {
  fake.close().then(() => process.exit(0), (error: unknown) => {
    process.stderr.write(`fake-secutools: close failed: ${String(error)}\n`)
    process.exit(1)
  })
}
process.once("SIGTERM", stop)
process.once("SIGINT", stop)
