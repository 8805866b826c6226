/**
 * A load generator: CLIENTS concurrent keep-alive clients against two servers in turn, ROUNDS rounds; in each round
 * every client sends one GET to one server, then (once all have their answers) one to the other, the order
 * alternating from round to round. `http-load.ts URL_A URL_B TOKEN CLIENTS ROUNDS`; prints JSON with every latency in
 * ms, per server. Run as its own process.
 * Easy to get wrong: the two servers are measured interleaved, so background work on the machine (a reaper round, a
 * neighbour's build) falls on both alike; each client's first request to each server opens its connection and is
 * not counted; a failed or non-200 answer is counted as an error, never as a fast sample.
 */
import { Agent, request } from "node:http"

const [urlA = "", urlB = "", token = "", clientsText = "1", roundsText = "1"] = process.argv.slice(2)
const clients = Number(clientsText)
const rounds = Number(roundsText)
const agent = new Agent({ keepAlive: true, maxSockets: clients * 2 })

const get = (url: string): Promise<number> =>
  new Promise((resolve) => {
    const req = request(url, { agent, headers: token === "" ? {} : { authorization: `Bearer ${token}` } }, (res) => {
      let bytes = 0
      res.on("data", (chunk: Buffer) => (bytes += chunk.length))
      res.on("end", () => resolve(res.statusCode === 200 ? bytes : -1))
      res.on("error", () => resolve(-1))
    })
    req.on("error", () => resolve(-1))
    req.setTimeout(30_000, () => req.destroy())
    req.end()
  })

interface Side {
  readonly latenciesMs: Array<number>
  errors: number
  busyMs: number
}

const sides: Record<"a" | "b", Side> = {
  a: { latenciesMs: [], errors: 0, busyMs: 0 },
  b: { latenciesMs: [], errors: 0, busyMs: 0 }
}

/** One request from every client at once to `url`; the samples go to `side`. */
const wave = async (url: string, side: Side, counted: boolean) => {
  const started = performance.now()
  await Promise.all(Array.from({ length: clients }, async () => {
    const sent = performance.now()
    const size = await get(url)
    if (!counted) return
    if (size < 0) side.errors++
    else side.latenciesMs.push(performance.now() - sent)
  }))
  if (counted) side.busyMs += performance.now() - started
}

await wave(urlA, sides.a, false)
await wave(urlB, sides.b, false)
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? (["a", "b"] as const) : (["b", "a"] as const)
  for (const name of order) await wave(name === "a" ? urlA : urlB, sides[name], true)
}
agent.destroy()
console.log(JSON.stringify(sides))
