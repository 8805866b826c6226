/**
 * Waiting on conditions with deadlines, and the one deliberate pause: a measurement window.
 * Easy to get wrong: a fixed sleep must never stand in for "the thing happened"; only idle windows are timed sleeps.
 */

export const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` until it gives a value (not undefined/false), or fails after `timeoutMs` naming what it waited for. */
export const waitFor = async <A>(
  what: string,
  check: () => A | undefined | false | Promise<A | undefined | false>,
  options: { readonly timeoutMs: number; readonly everyMs?: number }
): Promise<A> => {
  const deadline = Date.now() + options.timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}`)
    await pause(options.everyMs ?? 20)
  }
}

/** The time of a measurement window: the process sits still this long because the idle time is what is measured. */
export const measurementWindow = (ms: number): Promise<void> => pause(ms)

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on this host. */
export const nowMs = (): number => performance.timeOrigin + performance.now()
