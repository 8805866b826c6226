import { describe, expect, it } from "@effect/vitest"
import { Result, Schema } from "effect"
import fc from "fast-check"
import {
  decodeTaskBytes,
  makeTask,
  MAX_FRONTMATTER_BYTES,
  MAX_FRONTMATTER_KEYS,
  MAX_TASK_NAME_BYTES,
  MAX_VALUE_DEPTH,
  parseTask,
  parseTaskBytes,
  quarantineNameFor,
  queueKey,
  QueueOrder,
  renderTask,
  stillSettling,
  type Task,
  TaskName,
  taskNameFrom,
  taskNameProblem,
  updateFields,
  withFieldPairs
} from "../../src/domain/task.ts"
import { RUNS, task } from "./arbitraries.ts"

const parsed = (name: string, text: string): Task => Result.getOrThrow(parseTask(name, text))
const parseError = (name: string, text: string) => {
  const result = parseTask(name, text)
  if (Result.isSuccess(result)) throw new Error(`expected ${name} to fail, got ${JSON.stringify(result.success)}`)
  return result.failure
}

describe("stillSettling", () => {
  it("holds exactly while the file's time is less than the settle time away from now, either way", () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 2 ** 40 }),
      fc.integer({ min: -100_000, max: 100_000 }),
      fc.integer({ min: 0, max: 10_000 }),
      (now, offset, settleMs) => {
        expect(stillSettling(now - offset, now, settleMs)).toBe(Math.abs(offset) < settleMs)
      }
    ))
  })
})

describe("task file properties", () => {
  it("parse(render(t)) == t for every task", () => {
    fc.assert(
      fc.property(task, (t) => {
        expect(parsed(t.name, renderTask(t))).toStrictEqual(t)
      }),
      RUNS
    )
  })

  it("rendering never changes the body: the file ends with it byte-for-byte", () => {
    fc.assert(
      fc.property(task, (t) => {
        expect(renderTask(t).endsWith(t.body)).toBe(true)
      }),
      RUNS
    )
  })

  it("updating fields keeps unknown fields, their order and the body", () => {
    fc.assert(
      fc.property(task, fc.nat({ max: 50 }), (t, attempts) => {
        const updated = parsed(t.name, renderTask(updateFields(t, { attempts, state: "assigned" })))
        expect(updated.extra).toStrictEqual(t.extra)
        expect(updated.body).toBe(t.body)
        const kept = updated.order.filter((key) => t.order.includes(key))
        expect(kept).toStrictEqual(t.order)
      }),
      RUNS
    )
  })

  it("a hand-written file keeps its body exactly, whatever follows the closing line", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 200 }).map((b) => b.replaceAll("\0", "")), (body) => {
        const text = `---\ntitle: Fix it   # operator's comment\npriority: 3\n---\n${body}`
        expect(parsed("a.md", text).body).toBe(body)
      }),
      RUNS
    )
  })
})

describe("parseTask", () => {
  it("reads known fields typed and keeps unknown ones in file order", () => {
    const t = parsed(
      "fix-login.md",
      "---\nid: fix-login\nowner: ana\npriority: 1\nlabels: [auth, web]\nallow_delegation: true\n---\nFix the redirect.\n"
    )
    expect(t.fields).toStrictEqual({ id: "fix-login", priority: 1, allow_delegation: true })
    expect(t.extra).toStrictEqual([["owner", "ana"], ["labels", ["auth", "web"]]])
    expect(t.order).toStrictEqual(["id", "owner", "priority", "labels", "allow_delegation"])
    expect(t.body).toBe("Fix the redirect.\n")
  })

  it("takes a file without frontmatter as all body, and writes it back unchanged", () => {
    const t = parsed("plain.md", "Just do it.\n")
    expect(t.order).toStrictEqual([])
    expect(renderTask(t)).toBe("Just do it.\n")
  })

  it("accepts CRLF line ends and an empty frontmatter", () => {
    expect(parsed("a.md", "---\r\ntitle: x\r\n---\r\nbody\r\n").body).toBe("body\r\n")
    expect(parsed("a.md", "---\n---\nbody").fields).toStrictEqual({})
  })

  it("names the file, field and line of a field with the wrong type", () => {
    const error = parseError("t.md", "---\ntitle: ok\nallow_delegation: \"yes\"\n---\nbody")
    expect(error).toMatchObject({ file: "t.md", field: "allow_delegation", line: 3 })
    expect(error.message).toBe("t.md:3:1: field 'allow_delegation': Expected boolean, got string \"yes\"")
  })

  it.each([
    ["priority: 1.5", "priority", "Expected an integer"],
    ["priority: \"1\"", "priority", "Expected number"],
    ["attempts: -1", "attempts", "Expected a value greater than or equal to 0"],
    ["state: running", "state", "Expected \"pending\" | \"assigned\""],
    ["created: yesterday", "created", "Expected an ISO-8601 date-time"],
    ["needs_claude_code: 1", "needs_claude_code", "Expected boolean"],
    ["title:", "title", "got an empty value"],
    ["id: \"\"", "id", "Expected a value with a length of at least 1"]
  ])("rejects %s naming the field", (line, field, problem) => {
    const error = parseError("t.md", `---\n${line}\n---\n`)
    expect(error.field).toBe(field)
    expect(error.line).toBe(2)
    expect(error.message).toContain(problem)
  })

  it("reports YAML syntax errors with line and column in the file", () => {
    const error = parseError("bad.md", "---\ntitle: a\nlabels: [x, y\n---\nbody")
    expect(error.field).toBeUndefined()
    expect(error.line).toBeGreaterThanOrEqual(3)
    expect(error.column).toBeGreaterThan(0)
    expect(error.message).toMatch(/^bad\.md:\d+:\d+: invalid YAML: /)
  })

  it("rejects an unclosed frontmatter, a list, and duplicate keys", () => {
    expect(parseError("a.md", "---\ntitle: x\n").message).toContain("never closed")
    expect(parseError("a.md", "---\n- a\n---\n").message).toContain("must be a mapping")
    expect(parseError("a.md", "---\nid: a\nid: b\n---\n").message).toBe(
      "a.md:3:1: field 'id': duplicate key (first on line 2); each key may appear once"
    )
  })

  it("names the path inside a list field, and shows only the start of a long value", () => {
    const error = parseError("h.md", "---\nhistory: [{at: 2026-01-01T00:00:00Z, event: requeued}]\n---\n")
    expect(error.problem).toContain("Missing key at [0][\"reason\"], got object [{\"at\"")
    const long = parseError("l.md", `---\ntitle: [${"x, ".repeat(1000)}x]\n---\n`)
    expect(long.problem.length).toBeLessThan(200)
    expect(parseError("n.md", "---\ncost_usd: .nan\n---\n").problem).toBe("Expected a finite number, got number NaN")
  })

  it("rejects aliases and tags other than YAML's core ones, at their line and column", () => {
    expect(parseError("a.md", "---\ntitle: ok\nowner: *nope\n---\n").message).toBe(
      "a.md:3:8: field 'owner': YAML aliases (*nope) are not allowed in task frontmatter"
    )
    expect(parseError("a.md", "---\nx: !!binary aGk=\n---\n").problem).toContain("YAML tag !!binary is not allowed")
    expect(parseError("a.md", "---\nx: !mine y\n---\n").problem).toContain("YAML tag !mine is not allowed")
    expect(parsed("a.md", "---\ntitle: !!str 12\npriority: !!int 3\n---\n").fields).toStrictEqual({
      title: "12",
      priority: 3
    })
  })

  it("rejects NUL bytes anywhere in the file, naming their line", () => {
    expect(parseError("a.md", "no frontmatter\nbut a \0 here").message).toBe(
      "a.md:2:7: contains NUL bytes; task files are text"
    )
  })

  it("refuses names that are not plain task file names", () => {
    for (
      const name of [".hidden.md", "notes.txt", "dir/x.md", "x.md.tmp", "-x.md", "a\tb.md", `${"x".repeat(198)}.md`]
    ) {
      expect(parseError(name, "body").problem).toContain("not a task file name: ")
    }
  })
})

describe("frontmatter limits", () => {
  const frontmatterOf = (yaml: string) => `---\n${yaml}---\nbody\n`

  it(`accepts ${MAX_FRONTMATTER_BYTES} bytes of frontmatter and refuses one more, counting UTF-8 bytes`, () => {
    const line = (bytes: number) => `title: ${"x".repeat(bytes - "title: \n".length)}\n`
    expect(parsed("a.md", frontmatterOf(line(MAX_FRONTMATTER_BYTES))).fields.title).toHaveLength(
      MAX_FRONTMATTER_BYTES - 8
    )
    expect(parseError("a.md", frontmatterOf(line(MAX_FRONTMATTER_BYTES + 1))).message).toBe(
      "a.md:1: frontmatter is 65537 bytes; the limit is 65536 (64 KiB)"
    )
    // 21,851 characters, but 65,537 bytes.
    expect(Result.isSuccess(parseTask("a.md", frontmatterOf(`title: ${"€".repeat(21_842)}\n`)))).toBe(true)
    expect(parseError("a.md", frontmatterOf(`title: ${"€".repeat(21_843)}\n`)).problem).toContain(
      "frontmatter is 65537 bytes"
    )
  })

  it(`accepts ${MAX_FRONTMATTER_KEYS} keys and refuses one more, at the first key too many`, () => {
    const keys = (n: number) => Array.from({ length: n }, (_, i) => `k${i}: ${i}\n`).join("")
    expect(parsed("a.md", frontmatterOf(keys(MAX_FRONTMATTER_KEYS))).order).toHaveLength(MAX_FRONTMATTER_KEYS)
    expect(parseError("a.md", frontmatterOf(keys(MAX_FRONTMATTER_KEYS + 1))).message).toBe(
      "a.md:258:1: frontmatter has 257 keys of its own (besides the daemon's fields); the limit is 256"
    )
  })

  it("the daemon's own fields do not count against the key limit: a task at the limit can still run", () => {
    const keys = Array.from({ length: MAX_FRONTMATTER_KEYS }, (_, i) => `k${i}: ${i}\n`).join("")
    const daemon = "state: assigned\nrun: r1\nsession: claude-1\nassigned_at: 2026-11-24T10:00:00Z\nattempts: 1\n"
    expect(parsed("a.md", frontmatterOf(keys + daemon)).fields).toMatchObject({ state: "assigned", run: "r1" })
  })

  it(`accepts values nested ${MAX_VALUE_DEPTH} deep and refuses ${MAX_VALUE_DEPTH + 1}, in lists, maps and list items`, () => {
    const lists = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`
    const maps = (depth: number) => `${"{a: ".repeat(depth)}1${"}".repeat(depth)}`
    const listOfPairs = (depth: number) => `${"[a: ".repeat(depth)}1${"]".repeat(depth)}`
    for (const nest of [lists, maps]) {
      expect(Result.isSuccess(parseTask("a.md", frontmatterOf(`x: ${nest(MAX_VALUE_DEPTH)}\n`)))).toBe(true)
      expect(parseError("a.md", frontmatterOf(`x: ${nest(MAX_VALUE_DEPTH + 1)}\n`))).toMatchObject({
        field: "x",
        line: 2,
        problem: "a value nests lists or maps more than 16 levels deep"
      })
    }
    // `[a: 1]` reads as a list holding a one-entry map: two levels.
    expect(Result.isSuccess(parseTask("a.md", frontmatterOf(`x: ${listOfPairs(MAX_VALUE_DEPTH / 2)}\n`)))).toBe(true)
    expect(parseError("a.md", frontmatterOf(`x: ${listOfPairs(MAX_VALUE_DEPTH / 2 + 1)}\n`)).field).toBe("x")
  })
})

describe("decodeTaskBytes", () => {
  const bytes = (...values: Array<number>) => Uint8Array.from(values)
  const utf8 = (text: string) => new TextEncoder().encode(text)

  it("decodes UTF-8 and keeps a leading BOM, which the parser accepts before '---'", () => {
    const text = Result.getOrThrow(decodeTaskBytes(bytes(0xef, 0xbb, 0xbf, ...utf8("---\ntitle: café\n---\n"))))
    expect(text.startsWith("\uFEFF---")).toBe(true)
    expect(parsed("a.md", text).fields).toStrictEqual({ title: "café" })
  })

  it.each([
    ["a PNG header", [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 0],
    ["a lone continuation byte", [0x61, 0x62, 0x80], 2],
    ["an overlong '/'", [0x61, 0xc0, 0xaf], 1],
    ["an encoded surrogate", [0x61, 0xed, 0xa0, 0x80], 1],
    ["a code point above U+10FFFF", [0xf4, 0x90, 0x80, 0x80], 0],
    ["a sequence cut short by ASCII", [0xe2, 0x82, 0x41], 0],
    ["a sequence cut short by the end", [0x61, 0xf0, 0x9f, 0x98], 1],
    ["Latin-1 text", [0x63, 0x61, 0x66, 0xe9, 0x0a], 3]
  ])("refuses %s, naming the offset where valid text stops", (_, values, offset) => {
    expect(decodeTaskBytes(bytes(...values))).toStrictEqual(
      Result.fail(`not UTF-8 text (invalid byte at offset ${offset})`)
    )
  })

  it("turns undecodable bytes into a TaskParseError naming the file", () => {
    const result = parseTaskBytes("img.md", bytes(0x89, 0x50, 0x4e, 0x47))
    expect(Result.isFailure(result) && result.failure.message).toBe("img.md: not UTF-8 text (invalid byte at offset 0)")
  })
})

describe("task names", () => {
  it.each([
    ["fix-login.md", undefined],
    ["Ünïcödé 😀.md", undefined],
    ["a..md", undefined],
    ["fix-login", "must end in .md"],
    [".md", "must have a name before .md"],
    [".hidden.md", "must not start with '.' (hidden files are not tasks)"],
    ["-rf.md", "must not start with '-' (it would read as a command-line option)"],
    ["a/b.md", "must not contain '/' (a task name is a file name, not a path)"],
    ["a\\b.md", "must not contain '\\' (a task name is a file name, not a path)"],
    ["a\nb.md", "must not contain control characters (U+000A at character 2)"],
    ["a\u009bb.md", "must not contain control characters (U+009B at character 2)"],
    ["a\udfffb.md", "must be valid Unicode (lone surrogate U+DFFF at character 2)"],
    [
      `${"é".repeat(99)}.md`,
      "must be at most 200 bytes in UTF-8, so NAME.md.delegated and temporary names fit in 255 (it is 201)"
    ]
  ])("%j: %s", (name, problem) => {
    expect(taskNameProblem(name)).toBe(problem)
    expect(Schema.is(TaskName)(name)).toBe(problem === undefined)
  })

  it("puts a file with an unusable name under a readable, valid name that keeps a hash of the original", () => {
    const dash = quarantineNameFor("-rf.md")
    expect(dash).toMatch(/^rf-[0-9a-z]{11}\.md$/)
    expect(quarantineNameFor("a\nb\u0085/c.md")).toMatch(/^a_b__c-[0-9a-z]{11}\.md$/)
    expect(quarantineNameFor("..")).toMatch(/^[0-9a-z]{11}\.md$/)
    expect(quarantineNameFor("fine.md")).toBe("fine.md")
    const long = quarantineNameFor(`${"é".repeat(300)}.md`)
    expect(new TextEncoder().encode(long).length).toBeLessThanOrEqual(MAX_TASK_NAME_BYTES)
    expect(long.startsWith("é".repeat(90))).toBe(true)
    expect(quarantineNameFor(`${"é".repeat(300)}.md`)).toBe(long)
    expect(quarantineNameFor(`${"é".repeat(301)}.md`)).not.toBe(long)
  })
})

describe("field pairs", () => {
  const base = makeTask({ name: TaskName.make("t.md"), fields: { priority: 5 }, body: "b" })

  it("read values as YAML scalars and override the file's fields", () => {
    const result = Result.getOrThrow(withFieldPairs(base, { priority: "1", allow_delegation: "true" }, "--field"))
    expect(result.fields).toStrictEqual({ priority: 1, allow_delegation: true })
  })

  it("take what YAML would expand or tag as plain text", () => {
    const result = Result.getOrThrow(withFieldPairs(base, { title: "*x", session: "!!binary aGk=" }, "--field"))
    expect(result.fields).toMatchObject({ title: "*x", session: "!!binary aGk=" })
  })

  it("refuse unknown keys and wrong types, naming them", () => {
    const unknown = withFieldPairs(base, { prefered_ai: "gemini" }, "--field")
    expect(Result.isFailure(unknown) && unknown.failure.message).toContain("field 'prefered_ai': unknown field")
    const wrong = withFieldPairs(base, { needs_claude_code: "maybe" }, "--field")
    expect(Result.isFailure(wrong) && wrong.failure.message).toContain("Expected boolean, got string \"maybe\"")
  })
})

describe("names and queue order", () => {
  it("accepts a name with or without .md", () => {
    expect(taskNameFrom("fix")).toStrictEqual(taskNameFrom("fix.md"))
    expect(taskNameFrom("../etc/passwd")._tag).toBe("None")
  })

  it("orders by priority, then created (mtime when absent), then name", () => {
    const at = (name: string, fields: Task["fields"], mtimeMs = 0) =>
      queueKey(makeTask({ name: TaskName.make(name), fields }), mtimeMs)
    const keys = [
      at("c.md", { priority: 100 }, 5),
      at("b.md", { priority: 100, created: "1970-01-01T00:00:00.001Z" }),
      at("a.md", { priority: 100 }, 1),
      at("z.md", { priority: 1 }),
      at("y.md", {}, 1)
    ]
    const sorted = [...keys].sort(QueueOrder).map((key) => key.name)
    expect(sorted).toStrictEqual(["z.md", "a.md", "b.md", "y.md", "c.md"])
  })
})
