/**
 * The status API under a flood of stalled and idle connections, on a real socket: it never holds more than
 * MAX_CONNECTIONS, the server closes the stalled ones itself, and /healthz answers again once they are gone.
 * The timeouts are shortened here (the limit is the real one), so the flood clears in about a second, not ten.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Duration } from "effect"
import { request, type Server } from "node:http"
import { connect, type Socket } from "node:net"
import {
  boundedServer,
  defaultConnectionLimits,
  HEADERS_TIMEOUT,
  MAX_CONNECTIONS,
  REQUEST_TIMEOUT
} from "../../src/adapters/http-api/server.ts"
import { type FixtureServer, startFixtureServer } from "../fixtures/status-snapshot.ts"

const STALLED = 2_000
const IDLE = 500

/** Polls `check` until it gives a value, or fails after `timeoutMs`. */
const until = async <A>(
  what: string,
  check: () => A | undefined | Promise<A | undefined>,
  timeoutMs: number
): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** One GET /healthz on a connection of its own; its status, or undefined when the connection was refused or cut. */
const healthz = (port: number): Promise<number | undefined> =>
  new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/healthz", agent: false, timeout: 2_000 }, (response) => {
      response.resume()
      response.on("end", () => resolve(response.statusCode))
      response.on("error", () => resolve(undefined))
    })
    req.on("timeout", () => req.destroy())
    req.on("error", () => resolve(undefined))
    req.end()
  })

interface Client {
  readonly socket: Socket
  /** What the server sent before closing. */
  received: string
  closed: boolean
}

/** A connection that sends `payload` (maybe nothing) and then nothing more, and never closes on its own. */
const stall = (port: number, payload: string): Promise<Client> =>
  new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1")
    const client: Client = { socket, received: "", closed: false }
    socket.setEncoding("latin1")
    socket.on("data", (chunk: string) => {
      client.received += chunk
    })
    socket.on("error", () => {})
    socket.once("close", () => {
      client.closed = true
      resolve(client)
    })
    socket.once("connect", () => {
      if (payload !== "") socket.write(payload)
      resolve(client)
    })
  })

/** Opens `count` stalling connections, `batch` at a time so the listen backlog is not what refuses them. */
const flood = async (port: number, count: number, payload: string, batch = 250): Promise<ReadonlyArray<Client>> => {
  const clients: Array<Client> = []
  for (let start = 0; start < count; start += batch) {
    clients.push(
      ...await Promise.all(Array.from({ length: Math.min(batch, count - start) }, () => stall(port, payload)))
    )
  }
  return clients
}

describe("bounded connections", () => {
  const watch = { peakOpen: 0, peakReported: 0, accepted: 0, dropped: 0 }
  /** Accepted sockets not destroyed yet (a destroyed socket's descriptor is closed, though its `close` event comes later). */
  const open = new Set<Socket>()
  let node: Server
  let api: FixtureServer
  let sampler: ReturnType<typeof setInterval> | undefined
  const clients: Array<Client> = []

  beforeAll(async () => {
    node = boundedServer({
      ...defaultConnectionLimits,
      headersTimeout: Duration.millis(1_000),
      requestTimeout: Duration.millis(1_000),
      keepAliveTimeout: Duration.millis(500),
      idleSocketTimeout: Duration.millis(3_000),
      timeoutCheckInterval: Duration.millis(200)
    })
    node.on("connection", (socket: Socket) => {
      watch.accepted++
      open.add(socket)
      for (const other of open) if (other.destroyed) open.delete(other)
      watch.peakOpen = Math.max(watch.peakOpen, open.size)
    })
    node.on("drop", () => watch.dropped++)
    sampler = setInterval(() => {
      node.getConnections((error, count) => {
        if (error === null) watch.peakReported = Math.max(watch.peakReported, count)
      })
    }, 5)
    api = await startFixtureServer({ server: node })
  })

  afterAll(async () => {
    clearInterval(sampler)
    for (const client of clients) client.socket.destroy()
    await api.close()
  })

  it("the defaults: 256 connections, 10 s for the headers and the whole request", () => {
    expect(MAX_CONNECTIONS).toBe(256)
    expect([Duration.toSeconds(HEADERS_TIMEOUT), Duration.toSeconds(REQUEST_TIMEOUT)]).toStrictEqual([10, 10])
    expect(node.maxConnections).toBe(MAX_CONNECTIONS)
  })

  it(`${STALLED} half request lines and ${IDLE} idle connections: never more than MAX_CONNECTIONS open, the server closes them all, /healthz answers`, async () => {
    const port = Number(new URL(api.url).port)
    clients.push(...await flood(port, STALLED, "GET /heal"))
    clients.push(...await flood(port, IDLE, ""))

    const status = await until(
      "/healthz to answer 200",
      async () => (await healthz(port)) === 200 ? 200 : undefined,
      20_000
    )
    expect(status).toBe(200)

    await until(
      "the server to close every flooding connection",
      () => clients.every((c) => c.closed) || undefined,
      20_000
    )
    // Each was either accepted (and answered 408 when its time ran out) or, past the limit, closed at once.
    expect(watch.accepted + watch.dropped).toBeGreaterThanOrEqual(STALLED + IDLE)
    expect(watch.dropped).toBeGreaterThan(0)
    const timedOut = clients.filter((c) => c.received.startsWith("HTTP/1.1 408 ")).length
    expect(timedOut).toBeGreaterThan(0)
    expect(clients.filter((c) => c.received !== "" && !c.received.startsWith("HTTP/1.1 408 "))).toStrictEqual([])
    expect(watch.peakOpen).toBeLessThanOrEqual(MAX_CONNECTIONS)
    expect(watch.peakReported).toBeLessThanOrEqual(MAX_CONNECTIONS)
  })

  it("a connection idle after its answer is closed after the keep-alive timeout", async () => {
    const port = Number(new URL(api.url).port)
    const client = await stall(port, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    clients.push(client)
    await until("the server to close the kept-alive connection", () => client.closed || undefined, 10_000)
    expect(client.received).toMatch(/^HTTP\/1\.1 200 /)
  })
})
