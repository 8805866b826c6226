/**
 * A real HTTP server standing in for the secutools AI platform, with knobs that inject the faults a network has.
 * Easy to get wrong: faults are decided before a request is handled, except a lost answer, which is lost after the job exists;
 * with a `stateFile`, a job is on disk before its answer leaves, so a restart never forgets a job a client heard of.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import { type BookState, type Counters, JobBook, mulberry32, Providers, type SubmitBody } from "./jobs.ts"
import { loadBookState, saveBookState } from "./state-file.ts"

export interface FakeSecutoolsOptions {
  /** The bearer token clients must send. */
  readonly apiKey: string
  /** 0 (the default) picks any free port; the server listens on 127.0.0.1 only. */
  readonly port?: number
  /** Job duration in ms (default 1500). */
  readonly durationMs?: number
  /** Share of jobs that end `failed` (default 0). */
  readonly failureRatio?: number
  /** Seeds job outcomes and fault decisions, so a run is reproducible (default 1). */
  readonly seed?: number
  /** Share of requests answered 500/502/503. */
  readonly ratio5xx?: number
  /** The first `length` requests out of every `every` get 503. */
  readonly burst5xx?: { readonly every: number; readonly length: number }
  /** Share of requests answered 429 with `Retry-After: retryAfter` (seconds, default 1). */
  readonly ratio429?: number
  readonly retryAfter?: number
  /** Share of requests answered only after `slowMs` (default 1000). */
  readonly slowRatio?: number
  readonly slowMs?: number
  /** Share of requests whose connection is closed without an answer, before anything is done. */
  readonly dropRatio?: number
  /** Share of POSTs whose job is created (or found) but whose answer is lost with the connection. */
  readonly lostAnswerRatio?: number
  /** Share of requests answered 200 with a body that is not JSON. */
  readonly malformedRatio?: number
  readonly now?: () => number
  /**
   * Keeps the jobs in this JSON file: read at start when it exists, replaced (temp file + rename) on every change, so the
   * next server started with it answers for the same jobs, with ids counting on. Counters start from zero each time.
   */
  readonly stateFile?: string
  /** One line per request; never given the API key. */
  readonly log?: (line: string) => void
}

export interface FakeSecutools {
  readonly url: string
  readonly port: number
  counters(): Counters
  close(): Promise<void>
}

type Fault =
  | { readonly kind: "dropped" }
  | { readonly kind: "status5xx"; readonly status: number }
  | { readonly kind: "status429" }
  | { readonly kind: "malformed" }

interface FaultPlan {
  readonly fault: Fault | undefined
  readonly slow: boolean
  readonly loseAnswer: boolean
}

type Parsed =
  | { readonly ok: true; readonly body: SubmitBody }
  | { readonly ok: false; readonly status: 400 | 422; readonly error: string }

const RATIO_5XX_STATUSES = [503, 500, 502] as const

const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): string => {
  res.writeHead(status, { "content-type": "application/json", ...headers })
  res.end(JSON.stringify(body))
  return String(status)
}

const readBody = async (req: IncomingMessage): Promise<string> => {
  const chunks: Array<Buffer> = []
  for await (const chunk of req) chunks.push(Buffer.from(chunk))
  return Buffer.concat(chunks).toString("utf8")
}

const invalid = (error: string, status: 400 | 422 = 400): Parsed => ({ ok: false, status, error })

export const parseSubmitBody = (text: string): Parsed => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return invalid("body is not valid JSON")
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return invalid("body must be a JSON object")
  const field = new Map<string, unknown>(Object.entries(value))
  const taskId = field.get("task_id")
  const provider = field.get("provider")
  const prompt = field.get("prompt")
  const hint = field.get("complexity_hint")
  const metadata = field.get("metadata")
  if (typeof taskId !== "string" || taskId === "") return invalid("task_id must be a non-empty string")
  if (typeof provider !== "string") return invalid("provider must be a string")
  const known = Providers.find((candidate) => candidate === provider)
  if (known === undefined) return invalid(`provider must be one of ${Providers.join(", ")} (got "${provider}")`, 422)
  if (typeof prompt !== "string" || prompt === "") return invalid("prompt must be a non-empty string")
  if (hint !== undefined && typeof hint !== "string") return invalid("complexity_hint must be a string")
  if (metadata !== undefined && (typeof metadata !== "object" || metadata === null || Array.isArray(metadata))) {
    return invalid("metadata must be an object of strings")
  }
  const entries = metadata === undefined ? [] : Object.entries(metadata)
  if (!entries.every(([, entry]) => typeof entry === "string")) return invalid("metadata must be an object of strings")
  return {
    ok: true,
    body: {
      task_id: taskId,
      provider: known,
      prompt,
      ...(hint === undefined ? {} : { complexity_hint: hint }),
      ...(metadata === undefined
        ? {}
        : { metadata: Object.fromEntries(entries.map(([key, entry]) => [key, String(entry)])) })
    }
  }
}

export const startFakeSecutools = async (options: FakeSecutoolsOptions): Promise<FakeSecutools> => {
  const now = options.now ?? Date.now
  const seed = options.seed ?? 1
  const log = options.log ?? (() => {})
  const newBook = (state?: BookState) =>
    new JobBook({ durationMs: options.durationMs ?? 1500, failureRatio: options.failureRatio ?? 0, seed, now }, state)
  const { stateFile } = options
  let book = newBook(stateFile === undefined ? undefined : loadBookState(stateFile))
  const persist = () => {
    if (stateFile !== undefined) saveBookState(stateFile, book.state())
  }
  // A stream of its own, so turning a fault knob on does not change which jobs fail.
  const faultStream = () => mulberry32(seed ^ 0x9e3779b9)
  let random = faultStream()
  let requests = 0

  /** Every enabled knob rolls on every request, in this order, so the same requests meet the same faults. */
  const planFaults = (): FaultPlan => {
    requests++
    const roll = (ratio: number | undefined) => ratio !== undefined && ratio > 0 && random() < ratio
    const dropped = roll(options.dropRatio)
    const slow = roll(options.slowRatio)
    const burst = options.burst5xx !== undefined && (requests - 1) % options.burst5xx.every < options.burst5xx.length
    const failed = roll(options.ratio5xx)
    const limited = roll(options.ratio429)
    const malformed = roll(options.malformedRatio)
    const loseAnswer = roll(options.lostAnswerRatio)
    const fault: Fault | undefined = dropped
      ? { kind: "dropped" }
      : burst
      ? { kind: "status5xx", status: 503 }
      : failed
      ? { kind: "status5xx", status: RATIO_5XX_STATUSES[requests % RATIO_5XX_STATUSES.length] ?? 503 }
      : limited
      ? { kind: "status429" }
      : malformed
      ? { kind: "malformed" }
      : undefined
    return { fault, slow, loseAnswer }
  }

  const injectFault = (fault: Fault, req: IncomingMessage, res: ServerResponse): string => {
    book.countInjected(fault.kind)
    switch (fault.kind) {
      case "dropped":
        req.socket.destroy()
        return "dropped"
      case "status5xx":
        return send(res, fault.status, { error: "injected server error" })
      case "status429":
        return send(res, 429, { error: "rate limited" }, { "retry-after": String(options.retryAfter ?? 1) })
      case "malformed":
        res.writeHead(200, { "content-type": "application/json" })
        res.end("{\"job_id\": ")
        return "200 malformed"
    }
  }

  /** Same key first, so a repeated key gets its job back whatever the body says this time. */
  const submit = async (req: IncomingMessage, res: ServerResponse, loseAnswer: boolean): Promise<string> => {
    const key = req.headers["idempotency-key"]
    if (typeof key !== "string" || key === "") return send(res, 400, { error: "Idempotency-Key header is required" })
    book.countSubmit()
    const known = book.resubmit(key)
    let answer = known === undefined ? undefined : { job: known, created: false }
    if (answer === undefined) {
      const parsed = parseSubmitBody(await readBody(req))
      if (!parsed.ok) return send(res, parsed.status, { error: parsed.error })
      // The book deduplicates again: a twin request may have created the job while this body was read.
      answer = book.submit(key, parsed.body)
      if (answer.created) persist()
    }
    if (loseAnswer) {
      book.countInjected("lostAnswer")
      req.socket.destroy()
      return "lost answer"
    }
    return send(res, answer.created ? 202 : 200, { job_id: answer.job.job_id, status: answer.job.status })
  }

  const handle = async (req: IncomingMessage, res: ServerResponse, method: string, path: string): Promise<string> => {
    if (path === "/_fake/counters" && method === "GET") return send(res, 200, book.counters())
    if (path === "/_fake/reset" && method === "POST") {
      book = newBook()
      persist()
      random = faultStream()
      requests = 0
      return send(res, 200, { reset: true })
    }
    if (path.startsWith("/_fake/")) return send(res, 404, { error: `no route ${method} ${path}` })

    const plan = planFaults()
    if (plan.fault?.kind === "dropped") return injectFault(plan.fault, req, res)
    if (plan.slow) {
      book.countInjected("slow")
      await new Promise((resolve) => setTimeout(resolve, options.slowMs ?? 1000))
    }
    if (plan.fault !== undefined) return injectFault(plan.fault, req, res)

    if (req.headers.authorization !== `Bearer ${options.apiKey}`) {
      return send(res, 401, { error: "missing or wrong bearer token" })
    }
    if (path === "/v1/jobs" && method === "POST") return submit(req, res, plan.loseAnswer)
    const jobId = /^\/v1\/jobs\/([^/]+)$/.exec(path)?.[1]
    if (jobId !== undefined && method === "GET") {
      const job = book.get(decodeURIComponent(jobId))
      return job === undefined ? send(res, 404, { error: `no job ${jobId}` }) : send(res, 200, job)
    }
    return send(res, 404, { error: `no route ${method} ${path}` })
  }

  const server = createServer((req, res) => {
    const started = now()
    const method = req.method ?? "GET"
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname
    handle(req, res, method, path).then(
      (outcome) => log(`${method} ${path} -> ${outcome} (${now() - started}ms)`),
      (error: unknown) => {
        log(`${method} ${path} -> error: ${String(error)}`)
        if (!res.headersSent) send(res, 500, { error: "internal error" })
        else res.destroy()
      }
    )
  })

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve())
  })
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    counters: () => book.counters(),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)))
        // Idle keep-alive connections would otherwise hold close() open until they time out.
        server.closeAllConnections()
      })
  }
}
