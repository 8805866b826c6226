/**
 * The secutools stand-in (src/adapters/fake-secutools) served from the bench process, with every request it answers
 * recorded: submissions, and the polls of each job with their times.
 * Easy to get wrong: the stand-in logs a request once its answer is sent, so a recorded poll is one the daemon got.
 */
import { request } from "node:http"
import { type FakeSecutools, startFakeSecutools } from "../src/adapters/fake-secutools/server.ts"
import { onCleanup } from "./cleanup.ts"
import { nowMs } from "./wait.ts"

export const SECUTOOLS_KEY = "bench-secutools-key"

export interface SecutoolsStandIn {
  readonly url: string
  /** Answered POST /v1/jobs. */
  readonly submits: () => number
  /** Answered GET /v1/jobs/ID, all jobs. */
  readonly polls: () => number
  /** When each job was polled (epoch ms), by job id. */
  readonly pollTimes: ReadonlyMap<string, ReadonlyArray<number>>
  /** Called after each answered request. */
  onRequest(listener: (method: string, path: string) => void): void
  /** Creates a job as a client would, and returns its id. */
  submit(
    key: string,
    body: { readonly task_id: string; readonly provider: string; readonly prompt: string }
  ): Promise<string>
  close(): Promise<void>
}

const REQUEST = /^(\w+) (\S+) -> (\S+)/

export const startSecutools = async (options: { readonly jobMs: number }): Promise<SecutoolsStandIn> => {
  let submits = 0
  let polls = 0
  const pollTimes = new Map<string, Array<number>>()
  const listeners: Array<(method: string, path: string) => void> = []
  const server: FakeSecutools = await startFakeSecutools({
    apiKey: SECUTOOLS_KEY,
    durationMs: options.jobMs,
    log: (line) => {
      const match = REQUEST.exec(line)
      if (match === null) return
      const [, method = "", path = "", outcome = ""] = match
      if (!/^2\d\d$/.test(outcome)) return
      if (method === "POST" && path === "/v1/jobs") submits++
      const job = /^\/v1\/jobs\/([^/]+)$/.exec(path)?.[1]
      if (method === "GET" && job !== undefined) {
        polls++
        const times = pollTimes.get(job)
        if (times === undefined) pollTimes.set(job, [nowMs()])
        else times.push(nowMs())
      }
      for (const listener of listeners) listener(method, path)
    }
  })
  const release = onCleanup("secutools stand-in", () => void server.close())
  return {
    url: server.url,
    submits: () => submits,
    polls: () => polls,
    pollTimes,
    onRequest: (listener) => void listeners.push(listener),
    submit: (key, body) =>
      new Promise((resolve, reject) => {
        const payload = JSON.stringify(body)
        const req = request(`${server.url}/v1/jobs`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${SECUTOOLS_KEY}`,
            "idempotency-key": key,
            "content-type": "application/json",
            "content-length": Buffer.byteLength(payload)
          }
        }, (res) => {
          let text = ""
          res.on("data", (chunk: Buffer) => (text += chunk.toString()))
          res.on("end", () => {
            const answer: unknown = JSON.parse(text)
            const id = typeof answer === "object" && answer !== null && "job_id" in answer ? answer.job_id : undefined
            if (typeof id === "string") resolve(id)
            else reject(new Error(`the stand-in answered ${res.statusCode}: ${text}`))
          })
        })
        req.on("error", reject)
        req.end(payload)
      }),
    close: async () => {
      await server.close()
      release()
    }
  }
}
