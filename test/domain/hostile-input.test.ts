/**
 * Task files as an attacker would write them: a corpus with one file per case (`fixtures/hostile/cases.json` says what
 * each must give), large inputs built here, and properties that parsing never throws, whatever the bytes or the name.
 */
import { describe, expect, it } from "@effect/vitest"
import { Result, Schema } from "effect"
import fc from "fast-check"
import { readdirSync, readFileSync } from "node:fs"
import {
  decodeTaskBytes,
  MAX_FRONTMATTER_BYTES,
  MAX_FRONTMATTER_KEYS,
  parseTask,
  parseTaskBytes,
  quarantineNameFor,
  renderTask,
  type Task,
  TaskName,
  taskNameProblem,
  TaskParseError
} from "../../src/domain/task.ts"
import { RUNS } from "./arbitraries.ts"

const CORPUS = new URL("../fixtures/hostile/", import.meta.url)

const Case = Schema.Struct({
  file: Schema.String,
  /** The name the file is parsed under, when the case is about names; the file's own name otherwise. */
  name: Schema.optionalKey(Schema.String),
  note: Schema.optionalKey(Schema.String),
  outcome: Schema.Literals(["task", "error"]),
  problem: Schema.optionalKey(Schema.String),
  field: Schema.optionalKey(Schema.String),
  line: Schema.optionalKey(Schema.Number),
  /** For a task: its known fields and body, exactly. */
  fields: Schema.optionalKey(Schema.Record(Schema.String, Schema.Unknown)),
  body: Schema.optionalKey(Schema.String)
})
const cases = Schema.decodeUnknownSync(Schema.Array(Case))(
  JSON.parse(readFileSync(new URL("cases.json", CORPUS), "utf8"))
)

/** Whatever the input, the outcome is a task or a TaskParseError whose message starts with the file name. */
const expectOutcome = (name: string, result: Result.Result<Task, TaskParseError>) => {
  if (Result.isFailure(result)) {
    expect(result.failure).toBeInstanceOf(TaskParseError)
    expect(result.failure.file).toBe(name)
    expect(result.failure.message.startsWith(name)).toBe(true)
  } else {
    expect(result.success.name).toBe(name)
  }
  return result
}

const errorOf = (name: string, text: string): TaskParseError => {
  const result = expectOutcome(name, parseTask(name, text))
  if (Result.isSuccess(result)) throw new Error(`expected ${name} to be refused`)
  return result.failure
}

describe("the hostile corpus", () => {
  it("has a case for every file and a file for every case", () => {
    const files = readdirSync(CORPUS).filter((file) => file !== "cases.json").sort()
    expect(cases.map((c) => c.file).sort()).toStrictEqual(files)
  })

  it.each(cases.map((c) => [c.file, c] as const))("%s", (_, c) => {
    const name = c.name ?? c.file
    const result = expectOutcome(name, parseTaskBytes(name, readFileSync(new URL(c.file, CORPUS))))
    if (c.outcome === "task") {
      if (Result.isFailure(result)) throw new Error(`expected a task, got: ${result.failure.message}`)
      if (c.fields !== undefined) expect(result.success.fields).toStrictEqual(c.fields)
      if (c.body !== undefined) expect(result.success.body).toBe(c.body)
      return
    }
    if (Result.isSuccess(result)) throw new Error(`expected an error containing ${JSON.stringify(c.problem)}`)
    const error = result.failure
    expect(error.problem).toContain(c.problem)
    expect(error.field).toBe(c.field)
    if (c.field !== undefined) expect(error.message).toContain(`field '${c.field}': `)
    if (c.line !== undefined) expect(error.line).toBe(c.line)
  })
})

describe("large inputs are refused by a limit, with a clear error", () => {
  const keys = (n: number) => Array.from({ length: n }, (_, i) => `${i.toString(36)}:\n`).join("")

  it("50,000 keys: over the frontmatter size limit, refused before parsing", () => {
    const error = errorOf("keys.md", `---\n${keys(50_000)}---\nbody\n`)
    expect(error.problem).toMatch(/^frontmatter is \d+ bytes; the limit is 65536 \(64 KiB\)$/)
    expect(error.line).toBe(1)
  })

  it("as many keys as fit in 64 KiB: refused by the key limit, at the first key too many", () => {
    const source = keys(12_000)
    expect(new TextEncoder().encode(source).length).toBeLessThanOrEqual(MAX_FRONTMATTER_BYTES)
    const error = errorOf("keys.md", `---\n${source}---\n`)
    expect(error.message).toMatch(
      new RegExp(
        `^keys\\.md:${
          MAX_FRONTMATTER_KEYS + 2
        }:1: frontmatter has 1\\d{4} keys of its own \\(besides the daemon's fields\\); the limit is 256$`
      )
    )
  })

  it("a 1 MB string value: over the frontmatter size limit", () => {
    const error = errorOf("big.md", `---\ntitle: ${"x".repeat(1 << 20)}\n---\nbody\n`)
    expect(error.problem).toBe("frontmatter is 1048584 bytes; the limit is 65536 (64 KiB)")
  })

  it("a 1 MB body is a prompt, not frontmatter: kept byte for byte", () => {
    const body = "y".repeat(1 << 20)
    const result = parseTask("big.md", `---\ntitle: x\n---\n${body}`)
    expect(Result.isSuccess(result) && result.success.body === body).toBe(true)
  })

  it("a 1 MB frontmatter that is never closed", () => {
    expect(errorOf("open.md", `---\n${"title: x\n".repeat(120_000)}`).problem).toContain("never closed")
  })

  it("64 KiB of '[': refused as nested too deep, not as the parser's stack overflow", () => {
    const error = errorOf("deep.md", `---\nx: ${"[".repeat(MAX_FRONTMATTER_BYTES - 10)}\n---\n`)
    expect(error).toMatchObject({
      field: "x",
      line: 2,
      problem: "a value nests lists or maps more than 16 levels deep"
    })
  })

  it("an alias bomb as large as the limit allows: refused at its first alias", () => {
    const levels = Array.from(
      { length: 30 },
      (_, i) =>
        i === 0
          ? "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"
          : `l${i}: &l${i} [${`*l${i - 1}, `.repeat(99)}*l${i - 1}]`
    )
    const error = errorOf("bomb.md", `---\n${levels.join("\n")}\n---\n`)
    expect(error).toMatchObject({
      field: "l1",
      line: 3,
      problem: "YAML aliases (*l0) are not allowed in task frontmatter"
    })
  })

  it("a 1 MB name, a NUL at the end of 1 MB, invalid UTF-8 at the end of 1 MB", () => {
    expect(errorOf(`${"n".repeat(1 << 20)}.md`, "body").problem).toContain("(it is 1048579)")
    expect(errorOf("nul.md", `${"z".repeat(1 << 20)}\0`).problem).toBe("contains NUL bytes; task files are text")
    const bytes = new Uint8Array((1 << 20) + 1).fill(0x61)
    bytes[1 << 20] = 0xff
    expect(decodeTaskBytes(bytes)).toStrictEqual(Result.fail(`not UTF-8 text (invalid byte at offset ${1 << 20})`))
  })
})

/** Pieces of YAML that have broken parsers: aliases, tags, flow and block nesting, markers, control characters. */
const fragment = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom("x", "3", "-1.5", "true", "null", "~", "''", "\"a\\x07\"", "2026-01-01T00:00:00Z")
  },
  { weight: 4, arbitrary: fc.string({ unit: "binary", maxLength: 12 }) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "*a",
      "*nope",
      "&a x",
      "&a",
      "&a [*a]",
      "<<: *a",
      "!!binary aGk=",
      "!custom x",
      "!!str 1",
      "! x",
      "!<tag:yaml.org,2002:int> 3",
      "!!set {a}",
      "!!omap [a: 1]",
      "%YAML 1.1"
    )
  },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "\0",
      "\x07",
      "\x1b[31m",
      "\r",
      "\r\n",
      "\n",
      "\t",
      "\u2028",
      "\uFEFF",
      "\ud800",
      "---",
      "...",
      "#",
      "|",
      ">-",
      "{",
      "}",
      "[",
      "]",
      ",",
      "?",
      ": ",
      "- ",
      "\"",
      "'",
      "\\"
    )
  },
  { weight: 1, arbitrary: fc.nat({ max: 20 }).map((n) => `${"[".repeat(n)}${"]".repeat(n)}`) }
)
const key = fc.oneof(
  fc.constantFrom(
    "title",
    "priority",
    "state",
    "history",
    "created",
    "cost_usd",
    "id",
    "__proto__",
    "<<",
    "1",
    "? [a]",
    "*a",
    "&k key"
  ),
  fc.string({ unit: "binary", minLength: 1, maxLength: 10 })
)
const hostileLine = fc.tuple(
  fc.constantFrom("", " ", "\t", "- "),
  key,
  fc.constantFrom(": ", ":", ":\n  ", " : "),
  fc.array(fragment, { maxLength: 5 })
).map(([indent, k, separator, parts]) => `${indent}${k}${separator}${parts.join("")}`)
/** Lines most of which parse, so that some files are accepted (the rewrite property needs them). */
const plainLine = fc.tuple(
  key,
  fc.oneof(
    fc.constantFrom(
      "x",
      "3",
      "-0",
      "0x1F",
      "1e400",
      ".nan",
      "true",
      "~",
      "[a, 1]",
      "{a: {b: [1]}}",
      "&a x",
      "!!str 1",
      "!!int 7",
      "*a",
      "[1, *a]",
      "!!binary aGk=",
      "!custom x",
      "!!set {a}",
      "{<<: *a}",
      "!<tag:yaml.org,2002:str> x"
    ),
    fc.string({ unit: "binary", maxLength: 20 }).map((text) => JSON.stringify(text))
  )
).map(([k, v]) => `${JSON.stringify(k)}: ${v}`)
/** `arbitrary` once in `every` draws, null otherwise (`fc.option` is the other way round). */
const rarely = <T>(arbitrary: fc.Arbitrary<T>, every: number) =>
  fc.oneof({ weight: every - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary })
const hugeLine = fc.constantFrom(1_000, 70_000).map((n) => `big: ${"y".repeat(n)}`)
const deepLine = fc.oneof(
  fc.nat({ max: 300 }).map((n) => `deep: ${"[".repeat(n)}${"]".repeat(n)}`),
  fc.nat({ max: 3000 }).map((n) => `deep: ${"{a: ".repeat(n)}`),
  fc.nat({ max: 40 }).map((n) => `deep:${Array.from({ length: n }, (_, i) => `\n${" ".repeat(i + 1)}k:`).join("")}`)
)
const yamlishFile = fc.tuple(
  fc.constantFrom("", "\uFEFF"),
  fc.array(fc.oneof(hostileLine, plainLine), { maxLength: 12 }),
  rarely(hugeLine, 20),
  rarely(deepLine, 5),
  rarely(fc.nat({ max: 400 }), 5),
  fc.constantFrom("\n", "\r\n"),
  fc.oneof({ weight: 6, arbitrary: fc.constantFrom("---\n", "...\n", "--- \r\n") }, {
    weight: 1,
    arbitrary: fc.constant("")
  }),
  fc.string({ unit: "binary", maxLength: 40 })
).map(([bom, lines, huge, deep, repeated, eol, closing, body]) => {
  const many = Array.from({ length: repeated ?? 0 }, (_, i) => `k${i % 300}: v`)
  const all = [...lines, ...[huge, deep].filter((line) => line !== null), ...many]
  return `${bom}---\n${all.join(eol)}\n${closing}${body}`
})

/** Any string, but often a valid task name, so the parser gets past the name check. */
const anyName = fc.oneof(fc.constant("t.md"), fc.string({ unit: "binary", maxLength: 20 }))

describe("parsing never throws", () => {
  it("for any name and any text", () => {
    fc.assert(
      fc.property(anyName, fc.string({ unit: "binary", maxLength: 300 }), fc.boolean(), (name, text, opened) => {
        expectOutcome(name, parseTask(name, opened ? `---\n${text}` : text))
      }),
      RUNS
    )
  })

  it("for YAML-ish frontmatter: aliases, tags, deep nesting, huge strings, NUL and control characters", () => {
    fc.assert(
      fc.property(yamlishFile, (text) => {
        expectOutcome("t.md", parseTask("t.md", text))
      }),
      RUNS
    )
  })

  it("for any bytes, through decodeTaskBytes and parseTask", () => {
    const chunk = fc.oneof(
      fc.uint8Array({ maxLength: 16 }),
      fc.constantFrom(
        [0xef, 0xbb, 0xbf],
        [0x2d, 0x2d, 0x2d, 0x0a],
        [0xc3, 0xa9],
        [0xe2, 0x82, 0xac],
        [0xf0, 0x9f, 0x98, 0x80],
        [0xc3],
        [0xe2, 0x82],
        [0xed, 0xa0, 0x80],
        [0xc0, 0xaf],
        [0xf4, 0x90, 0x80, 0x80],
        [0x80],
        [0xff],
        [0x00]
      ).map((values) => Uint8Array.from(values))
    )
    const bytes = fc.array(chunk, { maxLength: 12 }).map((chunks) => Uint8Array.from(chunks.flatMap((c) => [...c])))
    fc.assert(
      fc.property(bytes, (input) => {
        expectOutcome("b.md", parseTaskBytes("b.md", input))
      }),
      RUNS
    )
  })

  it("decodeTaskBytes agrees with a strict decoder, and everything before the offset it names is text", () => {
    const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
    const decodes = (bytes: Uint8Array) => {
      try {
        return strict.decode(bytes)
      } catch {
        return undefined
      }
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (input) => {
        const result = decodeTaskBytes(input)
        if (Result.isSuccess(result)) {
          expect(result.success).toBe(decodes(input))
          return
        }
        expect(decodes(input)).toBeUndefined()
        const offset = Number(/at offset (\d+)\)$/.exec(result.failure)?.[1])
        expect(offset).toBeLessThan(input.length)
        expect(decodes(input.subarray(0, offset))).toBeDefined()
        expect(decodes(input.subarray(offset))).toBeUndefined()
      }),
      RUNS
    )
  })

  it("a file the parser accepts is one the daemon can rewrite and read back unchanged", () => {
    fc.assert(
      fc.property(yamlishFile, (text) => {
        const first = parseTask("t.md", text)
        if (Result.isFailure(first)) return
        expect(parseTask("t.md", renderTask(first.success))).toStrictEqual(first)
      }),
      RUNS
    )
  })
})

/** The name rules, restated without the code under test. */
const breaksNameRules = (name: string): boolean =>
  !name.endsWith(".md") ||
  name === ".md" ||
  name.startsWith(".") ||
  name.startsWith("-") ||
  /[/\\\u0000-\u001f\u007f-\u009f]/.test(name) ||
  !name.isWellFormed() ||
  new TextEncoder().encode(name).length > 200

const nameLike = fc.tuple(
  fc.array(
    fc.oneof(
      fc.constantFrom(
        "a",
        "Z",
        "é",
        "😀",
        ".",
        "-",
        "_",
        " ",
        "/",
        "\\",
        "\0",
        "\n",
        "\x1f",
        "\x7f",
        "\x80",
        "\x85",
        "\x9f",
        "\xa0",
        "\ud800",
        "\udc00",
        "md",
        ".md",
        "x".repeat(60),
        "é".repeat(40),
        "😀".repeat(30)
      ),
      fc.string({ unit: "binary", maxLength: 3 })
    ),
    { maxLength: 8 }
  ),
  fc.oneof({ weight: 4, arbitrary: fc.constant(".md") }, {
    weight: 1,
    arbitrary: fc.constantFrom("", ".MD", ".md.tmp")
  })
).map(([parts, extension]) => `${parts.join("")}${extension}`)
/** Names around the byte limit, with 1-, 2-, 3- and 4-byte characters. */
const nearTheLimit = fc.tuple(
  fc.integer({ min: 190, max: 210 }),
  fc.constantFrom("a", "é", "€", "😀"),
  fc.nat({ max: 60 })
).map(
  ([bytes, wide, count]) => {
    const wideBytes = new TextEncoder().encode(wide).length
    const n = Math.min(count, Math.floor((bytes - 3) / wideBytes))
    return `${wide.repeat(n)}${"a".repeat(bytes - 3 - n * wideBytes)}.md`
  }
)
const anyRawName = fc.oneof(nameLike, nearTheLimit, fc.string({ unit: "binary", maxLength: 220 }))

describe("task names", () => {
  it("taskNameProblem accepts exactly the names the rules allow, and says why it refuses the others", () => {
    fc.assert(
      fc.property(anyRawName, (name) => {
        const problem = taskNameProblem(name)
        expect(problem === undefined).toBe(!breaksNameRules(name))
        expect(Schema.is(TaskName)(name)).toBe(problem === undefined)
        if (problem !== undefined) expect(problem).toMatch(/^must /)
      }),
      RUNS
    )
  })

  it("quarantineNameFor always gives a valid name, the same for the same input, different for different inputs", () => {
    fc.assert(
      fc.property(anyRawName, anyRawName, (a, b) => {
        const name = quarantineNameFor(a)
        expect(taskNameProblem(name)).toBeUndefined()
        expect(quarantineNameFor(a)).toBe(name)
        if (taskNameProblem(a) === undefined) expect(name).toBe(a)
        if (a !== b) expect(quarantineNameFor(b)).not.toBe(name)
      }),
      RUNS
    )
  })
})
