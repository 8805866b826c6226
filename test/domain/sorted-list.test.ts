import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { insertSorted, placeOf, removeSorted } from "../../src/domain/sorted-list.ts"

interface Item {
  readonly priority: number
  readonly name: string
}
const order = (a: Item, b: Item) =>
  a.priority !== b.priority ? (a.priority < b.priority ? -1 : 1) : a.name < b.name ? -1 : a.name > b.name ? 1 : 0

const operation = fc.oneof(
  fc.record({
    op: fc.constant("add" as const),
    priority: fc.integer({ min: 0, max: 4 }),
    name: fc.integer({ min: 0, max: 40 })
  }),
  fc.record({ op: fc.constant("remove" as const), name: fc.integer({ min: 0, max: 40 }) })
)

describe("a list kept sorted", () => {
  it("after any adds (replacing an item of the same name) and removes, it equals the items sorted afresh", () => {
    fc.assert(fc.property(fc.array(operation, { maxLength: 200 }), (operations) => {
      const byName = new Map<string, Item>()
      const list: Array<Item> = []
      for (const step of operations) {
        const name = `t-${step.name}`
        const old = byName.get(name)
        if (old !== undefined) {
          expect(removeSorted(list, old, order)).toBe(true)
          byName.delete(name)
        }
        if (step.op === "add") {
          const item = { priority: step.priority, name }
          byName.set(name, item)
          insertSorted(list, item, order)
        }
      }
      expect(list).toStrictEqual([...byName.values()].sort(order))
    }))
  })

  it("removing an item that is not in the list changes nothing and says so", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 100 }), { maxLength: 30 }),
        fc.integer({ min: 101, max: 200 }),
        (names, absent) => {
          const list = names.map((n) => ({ priority: 0, name: `t-${String(n).padStart(3, "0")}` })).sort(order)
          const before = [...list]
          expect(removeSorted(list, { priority: 0, name: `t-${absent}` }, order)).toBe(false)
          // An equal item that is another value is not taken out either: only this very value is.
          const first = list[0]
          if (first !== undefined) expect(removeSorted(list, { ...first }, order)).toBe(false)
          expect(list).toStrictEqual(before)
        }
      )
    )
  })

  it("placeOf is the first place whose item is not before the one given", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 9 })), fc.integer({ min: 0, max: 9 }), (priorities, priority) => {
        const list = priorities.map((p, i) => ({ priority: p, name: `t-${i}` })).sort(order)
        const item = { priority, name: "t-" }
        const at = placeOf(list, item, order)
        expect(list.slice(0, at).every((other) => order(other, item) < 0)).toBe(true)
        expect(list.slice(at).every((other) => order(other, item) >= 0)).toBe(true)
      })
    )
  })
})
