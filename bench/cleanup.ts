/**
 * Everything the bench starts (processes, tmux servers, temporary directories) is registered here and undone at exit,
 * whatever the exit: normal end, a thrown error, Ctrl-C or SIGTERM.
 * Easy to get wrong: the exit handler must be synchronous (no awaits run in 'exit'), so each undo is a sync action;
 * scenarios still stop things gracefully themselves and then release the registration.
 */

type Undo = () => void

const undos = new Map<number, { readonly what: string; readonly undo: Undo }>()
let nextId = 0

/** Registers `undo` for the exit; the returned function forgets it (call it once the thing is undone gracefully). */
export const onCleanup = (what: string, undo: Undo): () => void => {
  const id = nextId++
  undos.set(id, { what, undo })
  return () => void undos.delete(id)
}

const runOne = (entry: { readonly what: string; readonly undo: Undo }) => {
  try {
    entry.undo()
  } catch (error) {
    process.stderr.write(`bench: cleaning up ${entry.what} failed: ${String(error)}\n`)
  }
}

/** Undoes everything still registered, newest first. */
export const cleanupAll = (): void => {
  for (const id of [...undos.keys()].reverse()) {
    const entry = undos.get(id)
    undos.delete(id)
    if (entry !== undefined) runOne(entry)
  }
}

/** Kills a process by its id if it still runs (SIGKILL: at exit there is no time to wait for a graceful stop). */
export const killIfRunning = (pid: number | undefined): void => {
  if (pid === undefined) return
  try {
    process.kill(pid, "SIGKILL")
  } catch {
    // already gone
  }
}

let installed = false

/** Runs the cleanups at exit and turns Ctrl-C and SIGTERM into an exit that runs them. */
export const installCleanupHandlers = (): void => {
  if (installed) return
  installed = true
  process.on("exit", cleanupAll)
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}: cleaning up\n`)
      cleanupAll()
      process.exit(130)
    })
  }
}
