/**
 * Waiting on a condition with a deadline, the demo's only way to synchronise with the processes it started.
 * Easy to get wrong: an interrupt (Ctrl-C) must end the wait at once, so the caller's clean-up runs.
 */

export class TimedOut extends Error {
  constructor(what: string, timeoutMs: number) {
    super(`timed out after ${(timeoutMs / 1000).toFixed(0)}s waiting for ${what}`)
  }
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener("abort", done)
      resolve()
    }
    signal.addEventListener("abort", done, { once: true })
  })

/** Polls `check` until it returns a value other than undefined/false; throws TimedOut, or the abort reason. */
export const waitFor = async <A>(
  what: string,
  check: () => A | undefined | false,
  options: { readonly timeoutMs: number; readonly signal: AbortSignal; readonly intervalMs?: number }
): Promise<A> => {
  const deadline = Date.now() + options.timeoutMs
  for (;;) {
    options.signal.throwIfAborted()
    const value = check()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new TimedOut(what, options.timeoutMs)
    await sleep(options.intervalMs ?? 100, options.signal)
  }
}
