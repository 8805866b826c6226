import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import {
  makeTask,
  parseTask,
  QueueOrder,
  queueKey,
  renderTask,
  type Task,
  TaskName,
  taskNameFrom,
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
      fc.property(fc.string({ unit: "binary", maxLength: 200 }), (body) => {
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
    expect(parseError("a.md", "---\nid: a\nid: b\n---\n").message).toContain("unique")
  })

  it("refuses names that are not plain task file names", () => {
    for (const name of [".hidden.md", "notes.txt", "dir/x.md", "x.md.tmp"]) {
      expect(parseError(name, "body").problem).toContain("not a task file name")
    }
  })
})

describe("field pairs", () => {
  const base = makeTask({ name: TaskName.make("t.md"), fields: { priority: 5 }, body: "b" })

  it("read values as YAML scalars and override the file's fields", () => {
    const result = Result.getOrThrow(withFieldPairs(base, { priority: "1", allow_delegation: "true" }, "--field"))
    expect(result.fields).toStrictEqual({ priority: 1, allow_delegation: true })
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
