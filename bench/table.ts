/**
 * The bench's one table: every row a figure, the baseline measured in the same run, their ratio, and the goal with
 * whether it is met; and the same rows as JSON.
 * Easy to get wrong: the ratio is always figure ÷ baseline (for a rate, below 1 is slower; for a time, above 1 is
 * slower), and a row whose scenario failed or was skipped still appears, saying why, rather than vanishing.
 */

export interface Quantity {
  readonly value: number
  readonly unit: string
  /** The measurement ran out of time: the true value is larger than this. */
  readonly atLeast?: boolean
}

export interface Goal {
  readonly text: string
  readonly met: boolean
}

export interface Row {
  /** The scenario's number and a letter per row of it: `1a`, `4c`, `m2`. */
  readonly id: string
  readonly what: string
  readonly figure?: Quantity
  readonly baseline?: Quantity
  /** What the baseline is, briefly. */
  readonly baselineIs: string
  readonly goal?: Goal
  /** A fact needed to read the figure (a setting it depends on, a lower bound); printed under the table. */
  readonly note?: string
  /** Why there is no figure: the scenario failed or was skipped. */
  readonly problem?: string
}

export const q = (value: number, unit: string, atLeast = false): Quantity =>
  atLeast ? { value, unit, atLeast } : { value, unit }

const number = (value: number): string => {
  if (!Number.isFinite(value)) return "n/a"
  const magnitude = Math.abs(value)
  const digits = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : magnitude >= 1 ? 2 : magnitude >= 0.1 ? 3 : 4
  return value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 })
}

export const formatQuantity = (quantity: Quantity | undefined): string =>
  quantity === undefined ? "—" : `${quantity.atLeast === true ? "> " : ""}${number(quantity.value)} ${quantity.unit}`

export const ratioOf = (row: Row): number | undefined =>
  row.figure === undefined || row.baseline === undefined || row.baseline.value === 0
    ? undefined
    : row.figure.value / row.baseline.value

const verdict = (row: Row): string => {
  if (row.problem !== undefined) return row.problem.startsWith("skipped") ? "skipped" : "error"
  if (row.goal === undefined) return "—"
  return row.goal.met ? "met" : "NOT met"
}

/** Rows, grouped into sections; each section starts with its title row. */
export interface Section {
  readonly title: string
  readonly rows: ReadonlyArray<Row>
}

export const renderTable = (sections: ReadonlyArray<Section>): string => {
  const header = ["#", "measure", "figure", "baseline", "baseline is", "ratio", "goal", "met"]
  const numeric = new Set([2, 3, 5])
  const body: Array<ReadonlyArray<string> | string> = []
  for (const section of sections) {
    body.push(section.title)
    for (const row of section.rows) {
      const ratio = ratioOf(row)
      body.push([
        row.id,
        row.what,
        row.problem === undefined ? formatQuantity(row.figure) : "—",
        formatQuantity(row.baseline),
        row.baselineIs,
        ratio === undefined ? "—" : `${row.figure?.atLeast === true ? "> " : ""}${number(ratio)}×`,
        row.goal?.text ?? "—",
        verdict(row)
      ])
    }
  }
  const cells = body.filter((line): line is ReadonlyArray<string> => typeof line !== "string")
  const widths = header.map((title, col) => Math.max(title.length, ...cells.map((line) => (line[col] ?? "").length)))
  const format = (line: ReadonlyArray<string>) =>
    line.map((cell, col) => numeric.has(col) ? cell.padStart(widths[col] ?? 0) : cell.padEnd(widths[col] ?? 0))
      .join("  ").trimEnd()
  const rule = widths.map((width) => "─".repeat(width)).join("  ")
  const lines = [format(header), rule]
  for (const line of body) {
    if (typeof line === "string") {
      if (lines.length > 2) lines.push("")
      lines.push(line)
    } else lines.push(format(line))
  }
  return lines.join("\n")
}

/** Notes and problems under the table, one line each, by row id. */
export const renderNotes = (sections: ReadonlyArray<Section>): string =>
  sections.flatMap((section) => section.rows)
    .flatMap((row) => [
      ...(row.problem === undefined ? [] : [`  ${row.id}: ${row.problem}`]),
      ...(row.note === undefined ? [] : [`  ${row.id}: ${row.note}`])
    ])
    .join("\n")

export const rowJson = (row: Row) => ({
  id: row.id,
  what: row.what,
  figure: row.figure ?? null,
  baseline: row.baseline === undefined ? null : { ...row.baseline, is: row.baselineIs },
  ratio: ratioOf(row) ?? null,
  goal: row.goal ?? null,
  note: row.note ?? null,
  problem: row.problem ?? null
})

/** The rows a scenario gives when it could not run: one row per measure it would have given, each saying why. */
export const failedRows = (
  ids: ReadonlyArray<{ readonly id: string; readonly what: string; readonly goal?: string }>,
  problem: string
): ReadonlyArray<Row> =>
  ids.map(({ goal, id, what }) => ({
    id,
    what,
    baselineIs: "—",
    problem,
    ...(goal === undefined ? {} : { goal: { text: goal, met: false } })
  }))

/** The scenario's rows, or its rows saying why it failed. */
export const rowsOrFailure = async (
  ids: ReadonlyArray<{ readonly id: string; readonly what: string; readonly goal?: string }>,
  run: () => Promise<ReadonlyArray<Row>>
): Promise<ReadonlyArray<Row>> => {
  try {
    return await run()
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    return failedRows(ids, `error: ${message.split("\n")[0] ?? message}`)
  }
}
