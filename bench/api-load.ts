/**
 * One route of the status API under load, and the same load against a plain node:http server answering the route's
 * own answer (same bytes, same content type): p50/p99 of both, from one load generator in its own process that
 * alternates between the two (see http-load.ts).
 * Easy to get wrong: the baseline serves the body the daemon gave just before, so both sides move the same bytes;
 * requests that failed are reported, never counted as fast.
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { runScript, startServerScript } from "./child.ts"
import { API_TOKEN, type DaemonProcess } from "./daemon-process.ts"
import { median, percentile } from "./stats.ts"

export interface LoadFigures {
  readonly p50: number
  readonly p99: number
  readonly samples: number
  readonly errors: number
  /** Answers per second while this server was being asked. */
  readonly requestsPerSecond: number
}

const figuresOf = (output: unknown, side: "a" | "b"): LoadFigures => {
  const sides = typeof output === "object" && output !== null ? new Map(Object.entries(output)) : new Map()
  const value: unknown = sides.get(side)
  const fields = new Map(Object.entries(typeof value === "object" && value !== null ? value : {}))
  const latencies: unknown = fields.get("latenciesMs")
  const errors: unknown = fields.get("errors")
  const busyMs: unknown = fields.get("busyMs")
  if (!Array.isArray(latencies) || typeof errors !== "number" || typeof busyMs !== "number") {
    throw new Error(`the load generator's result has no figures for server ${side}`)
  }
  const samples = latencies.filter((item): item is number => typeof item === "number")
  return {
    p50: median(samples),
    p99: percentile(samples, 99),
    samples: samples.length,
    errors,
    requestsPerSecond: (samples.length / busyMs) * 1000
  }
}

export interface RouteLoad {
  readonly daemon: LoadFigures
  readonly baseline: LoadFigures
  readonly bytes: number
}

export const loadRoute = async (
  daemon: DaemonProcess,
  path: string,
  scratchDir: string,
  load: { readonly clients: number; readonly requests: number }
): Promise<RouteLoad> => {
  const sample = await daemon.get(path)
  if (sample.status !== 200) throw new Error(`GET ${path} answered ${sample.status}: ${sample.body.slice(0, 200)}`)
  const bodyFile = join(scratchDir, `body-${path.replace(/\W+/g, "_")}`)
  writeFileSync(bodyFile, sample.body)
  const contentType = path === "/metrics" ? "text/plain; version=0.0.4; charset=utf-8" : "application/json"
  const server = await startServerScript("baselines/fixed-json-server.ts", [bodyFile, contentType])
  try {
    const { output } = await runScript("http-load.ts", [
      `${daemon.apiUrl}${path}`,
      `http://127.0.0.1:${server.port}${path}`,
      API_TOKEN,
      String(load.clients),
      String(load.requests)
    ], { timeoutMs: 300_000 })
    return { daemon: figuresOf(output, "a"), baseline: figuresOf(output, "b"), bytes: Buffer.byteLength(sample.body) }
  } finally {
    await server.stop()
  }
}

export const loadNote = (route: RouteLoad): string =>
  `${route.daemon.samples} requests (${(route.bytes / 1024).toFixed(0)} KB each): daemon p50 ` +
  `${route.daemon.p50.toFixed(1)} ms, ${route.daemon.requestsPerSecond.toFixed(0)} req/s` +
  (route.daemon.errors > 0 ? `, ${route.daemon.errors} failed` : "") +
  `; plain server p50 ${route.baseline.p50.toFixed(1)} ms, ${route.baseline.requestsPerSecond.toFixed(0)} req/s`
