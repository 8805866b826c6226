/**
 * A list kept in order as items come and go, a binary search each: the pending index's queue order, so one task
 * added to 100,000 waiting ones does not sort them all again. Items must be distinct under `order` (queue keys end
 * in the task's name).
 */
import type * as Order from "effect/Order"

/** Where `item` goes in `list`: the first place whose item is not before it. */
export const placeOf = <A>(list: ReadonlyArray<A>, item: A, order: Order.Order<A>): number => {
  let low = 0
  let high = list.length
  while (low < high) {
    const middle = (low + high) >>> 1
    const other = list[middle]
    if (other !== undefined && order(other, item) < 0) low = middle + 1
    else high = middle
  }
  return low
}

export const insertSorted = <A>(list: Array<A>, item: A, order: Order.Order<A>): void => {
  list.splice(placeOf(list, item, order), 0, item)
}

/** Takes `item` (this very value) out; false when it is not where its order puts it. */
export const removeSorted = <A>(list: Array<A>, item: A, order: Order.Order<A>): boolean => {
  const at = placeOf(list, item, order)
  if (list[at] !== item) return false
  list.splice(at, 1)
  return true
}
