/**
 * A Redis for the peer row: the one on 127.0.0.1:6379 when it answers PING, else a private `redis-server` on a free
 * port without persistence, stopped afterwards; none at all is a reason to skip the row, said plainly.
 * Easy to get wrong: a port that accepts a connection is not necessarily Redis, so the answer to PING is checked.
 */
import { spawn } from "node:child_process"
import { connect } from "node:net"
import { freePort } from "../test/free-port.ts"
import { killIfRunning, onCleanup } from "./cleanup.ts"
import { pause } from "./wait.ts"

const pong = (port: number, timeoutMs = 1000): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.on("error", () => done(false))
    socket.on("connect", () => socket.write("PING\r\n"))
    socket.on("data", (data: Buffer) => done(data.toString().startsWith("+PONG")))
  })

export interface Redis {
  readonly port: number
  /** Where it came from, for the table. */
  readonly origin: string
  stop(): Promise<void>
}

/** A Redis to use, or the reason there is none. */
export const findRedis = async (): Promise<Redis | string> => {
  if (await pong(6379)) return { port: 6379, origin: "Redis on 127.0.0.1:6379", stop: async () => {} }
  const port = await freePort()
  const child = spawn("redis-server", [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no"
  ], {
    stdio: "ignore"
  })
  const failed = new Promise<string>((resolve) => {
    child.on("error", (error) => resolve(`redis-server could not be started: ${error.message}`))
    child.on("exit", (code) => resolve(`redis-server exited (${code}) at start`))
  })
  const release = onCleanup(`redis-server ${child.pid}`, () => killIfRunning(child.pid))
  const deadline = Date.now() + 5_000
  while (Date.now() < deadline) {
    const outcome = await Promise.race([failed, pause(100).then(() => pong(port, 200))])
    if (typeof outcome === "string") {
      release()
      return outcome
    }
    if (outcome) {
      return {
        port,
        origin: `a private redis-server on port ${port}`,
        stop: async () => {
          const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()))
          child.kill("SIGTERM")
          await exited
          release()
        }
      }
    }
  }
  child.kill("SIGKILL")
  release()
  return "no Redis answered on 127.0.0.1:6379 and a private redis-server did not answer within 5 s"
}
