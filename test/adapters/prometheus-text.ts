/**
 * A strict parser of the Prometheus text exposition format 0.0.4, for tests: it throws on the first line a
 * Prometheus server would reject or misread, and checks what the format implies (family grouping, histograms).
 * Easy to get wrong: label values allow exactly three escapes (\\, \", \n), and a histogram's `+Inf` bucket is `_count`.
 */

export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped"

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export interface Family {
  readonly name: string
  type: MetricType
  help: string | undefined
  readonly samples: Array<Sample>
}

export class PrometheusTextError extends Error {
  readonly line: number
  constructor(line: number, problem: string, text: string) {
    super(`line ${line}: ${problem}: ${JSON.stringify(text)}`)
    this.line = line
  }
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const FLOAT = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Inf|inf)$|^NaN$/
const TIMESTAMP = /^-?\d+$/
const TYPES_BY_NAME: Readonly<Record<string, MetricType>> = {
  counter: "counter",
  gauge: "gauge",
  histogram: "histogram",
  summary: "summary",
  untyped: "untyped"
}
const TYPES = Object.keys(TYPES_BY_NAME)

const parseFloatStrict = (text: string): number | undefined => {
  if (!FLOAT.test(text)) return undefined
  if (text === "NaN") return Number.NaN
  if (/^[+]?inf$/i.test(text)) return Infinity
  if (/^-inf$/i.test(text)) return -Infinity
  return Number(text)
}

/** `\\` and `\n` only (HELP); label values also allow `\"`. */
const unescape = (text: string, allowQuote: boolean): string | undefined => {
  let out = ""
  for (let i = 0; i < text.length; i++) {
    const char = text[i]
    if (char !== "\\") {
      out += char
      continue
    }
    const next = text[++i]
    if (next === "\\") out += "\\"
    else if (next === "n") out += "\n"
    else if (next === "\"" && allowQuote) out += "\""
    else return undefined
  }
  return out
}

interface SampleLine {
  readonly name: string
  readonly labels: Record<string, string>
  readonly value: number
}

const parseSampleLine = (line: string, fail: (problem: string) => never): SampleLine => {
  const nameMatch = /^[^\s{]+/.exec(line)
  const name = nameMatch?.[0] ?? ""
  if (!METRIC_NAME.test(name)) fail("bad metric name")
  let rest = line.slice(name.length)
  const labels: Record<string, string> = {}
  if (rest.startsWith("{")) {
    let i = 1
    for (;;) {
      if (rest[i] === "}") {
        i++
        break
      }
      const labelName = /^[^=]*/.exec(rest.slice(i))?.[0] ?? ""
      if (!LABEL_NAME.test(labelName)) fail(`bad label name ${JSON.stringify(labelName)}`)
      if (labelName.startsWith("__")) fail(`reserved label name ${labelName}`)
      if (Object.hasOwn(labels, labelName)) fail(`duplicate label ${labelName}`)
      i += labelName.length
      if (rest[i] !== "=" || rest[i + 1] !== "\"") fail(`expected ="…" after ${labelName}`)
      i += 2
      let raw = ""
      for (;;) {
        const char = rest[i]
        if (char === undefined) fail("unterminated label value")
        if (char === "\n") fail("raw newline in a label value")
        if (char === "\"") break
        if (char === "\\") {
          raw += char + (rest[i + 1] ?? "")
          i += 2
          continue
        }
        raw += char
        i++
      }
      i++ // closing quote
      const value = unescape(raw, true)
      if (value === undefined) fail(`bad escape in the value of ${labelName}`)
      labels[labelName] = value
      if (rest[i] === ",") i++
      else if (rest[i] !== "}") fail("expected , or } after a label")
    }
    rest = rest.slice(i)
  }
  if (!/^[ \t]/.test(rest)) fail("expected whitespace before the value")
  const fields = rest.trim().split(/[ \t]+/)
  if (fields.length < 1 || fields.length > 2) fail("expected a value and at most a timestamp")
  const value = parseFloatStrict(fields[0] ?? "")
  if (value === undefined) fail("bad value")
  if (fields[1] !== undefined && !TIMESTAMP.test(fields[1])) fail("bad timestamp")
  return { name, labels, value }
}

const seriesKey = (name: string, labels: Readonly<Record<string, string>>) =>
  `${name}${JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))}`

const SUFFIXES: ReadonlyArray<readonly [string, ReadonlyArray<MetricType>]> = [
  ["_bucket", ["histogram"]],
  ["_sum", ["histogram", "summary"]],
  ["_count", ["histogram", "summary"]]
]

/** The family a sample belongs to, given the TYPEs declared so far. */
const familyOf = (name: string, families: ReadonlyMap<string, Family>): string => {
  for (const [suffix, types] of SUFFIXES) {
    if (!name.endsWith(suffix)) continue
    const base = families.get(name.slice(0, -suffix.length))
    if (base !== undefined && types.includes(base.type)) return base.name
  }
  return name
}

const checkHistogram = (family: Family, fail: (problem: string) => never) => {
  const groups = new Map<string, { buckets: Array<{ le: number; count: number }>; sum?: number; count?: number }>()
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels
    const key = seriesKey("", rest)
    const group = groups.get(key) ?? { buckets: [] }
    groups.set(key, group)
    if (sample.name === `${family.name}_bucket`) {
      const bound = le === undefined ? undefined : parseFloatStrict(le)
      if (bound === undefined || Number.isNaN(bound)) fail(`${family.name}: a bucket without a numeric le`)
      group.buckets.push({ le: bound, count: sample.value })
    } else if (le !== undefined) fail(`${sample.name}: le on a non-bucket sample`)
    else if (sample.name === `${family.name}_sum`) group.sum = sample.value
    else if (sample.name === `${family.name}_count`) group.count = sample.value
    else fail(`${sample.name}: not a histogram sample`)
  }
  for (const [key, group] of groups) {
    const where = `${family.name}${key}`
    group.buckets.forEach((bucket, i) => {
      const previous = group.buckets[i - 1]
      if (previous !== undefined && !(bucket.le > previous.le)) fail(`${where}: buckets not in ascending le order`)
      if (previous !== undefined && bucket.count < previous.count) fail(`${where}: bucket counts decrease`)
      if (!Number.isInteger(bucket.count) || bucket.count < 0) fail(`${where}: a bucket count is not a whole number`)
    })
    const last = group.buckets.at(-1)
    if (last === undefined || last.le !== Infinity) fail(`${where}: no le="+Inf" bucket`)
    if (group.count === undefined || group.sum === undefined) fail(`${where}: missing _count or _sum`)
    if (group.count !== last.count) fail(`${where}: +Inf bucket ${last.count} != _count ${group.count}`)
  }
}

/** Parses and validates `text`; throws `PrometheusTextError` naming the first bad line. */
export const parsePrometheusText = (text: string): ReadonlyMap<string, Family> => {
  if (text.length > 0 && !text.endsWith("\n")) throw new PrometheusTextError(0, "no final line feed", text.slice(-40))
  const families = new Map<string, Family>()
  const series = new Set<string>()
  const closed = new Set<string>()
  let current: string | undefined
  const family = (name: string) => {
    const found = families.get(name)
    if (found !== undefined) return found
    const created: Family = { name, type: "untyped", help: undefined, samples: [] }
    families.set(name, created)
    return created
  }
  /** A family's lines are one block: once another family starts, it may not come back. */
  const enter = (name: string, fail: (problem: string) => never) => {
    if (current === name) return
    if (closed.has(name)) fail(`${name} appears in two separate blocks`)
    if (current !== undefined) closed.add(current)
    current = name
  }

  const lines = text.split("\n").slice(0, -1)
  lines.forEach((line, index) => {
    const fail = (problem: string): never => {
      throw new PrometheusTextError(index + 1, problem, line)
    }
    if (line.trim() === "") return
    if (line.startsWith("#")) {
      const match = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(line)
      if (match === null) return // any other comment
      const [, keyword, name = "", rest = ""] = match
      if (!METRIC_NAME.test(name)) fail("bad metric name")
      enter(name, fail)
      const target = family(name)
      if (keyword === "HELP") {
        if (target.help !== undefined) fail(`second HELP for ${name}`)
        const help = unescape(rest, false)
        if (help === undefined) fail("bad escape in HELP")
        target.help = help
      } else {
        if (!TYPES.includes(rest.trim())) fail(`unknown type ${JSON.stringify(rest)}`)
        if (target.samples.length > 0 || target.type !== "untyped") fail(`TYPE for ${name} after its samples or twice`)
        target.type = TYPES_BY_NAME[rest.trim()] ?? "untyped"
      }
      return
    }
    const sample = parseSampleLine(line, fail)
    const owner = familyOf(sample.name, families)
    enter(owner, fail)
    const key = seriesKey(sample.name, sample.labels)
    if (series.has(key)) fail("duplicate series")
    series.add(key)
    const target = family(owner)
    if (target.type === "counter" && (Number.isNaN(sample.value) || sample.value < 0)) fail("negative or NaN counter")
    target.samples.push(sample)
  })
  for (const f of families.values()) {
    if (f.type === "histogram") {
      checkHistogram(f, (problem) => {
        throw new PrometheusTextError(0, problem, f.name)
      })
    }
  }
  return families
}

/** The value of one series; throws when it is not there, so a missing metric fails the test loudly. */
export const valueOf = (
  families: ReadonlyMap<string, Family>,
  family: string,
  sampleName: string,
  labels: Readonly<Record<string, string>> = {}
): number => {
  const key = seriesKey(sampleName, labels)
  const sample = families.get(family)?.samples.find((s) => seriesKey(s.name, s.labels) === key)
  if (sample === undefined) throw new Error(`no series ${key} in family ${family}`)
  return sample.value
}
