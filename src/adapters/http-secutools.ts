/**
 * The live secutools adapter: one HTTP request per call, every answer checked against the contract's Schema.
 * Easy to get wrong: the API key is `Redacted` and only ever set as a header, yet a server may echo it back, so every
 * text this adapter puts in an error (status body, transport message, decode detail) goes through a redactor first;
 * and an answer is read as a stream and dropped the moment it passes `maxAnswerBytes`, never buffered whole.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { flow } from "effect/Function"
import * as Headers from "effect/http/Headers"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import type * as HttpClientResponse from "effect/http/HttpClientResponse"
import type { AppConfig } from "../config.ts"
import { formatDuration } from "../domain/footer.ts"
import { dropPartialSecret, makeRedactor, urlSecrets } from "../domain/redact.ts"
import {
  isJobId,
  JobView,
  Secutools,
  SecutoolsError,
  type SecutoolsFailure,
  SubmitResponse
} from "../ports/secutools.ts"
import { type OnRetry, type RetryPolicy, withRetries } from "../services/secutools-policy.ts"

export interface HttpSecutoolsOptions {
  readonly baseUrl: string
  readonly apiKey: Redacted.Redacted<string>
  readonly requestTimeout: Duration.Duration
  /** The largest answer body read (SECUTOOLS_MAX_ANSWER); a longer one fails `TooLarge`. Default 8 MB. */
  readonly maxAnswerBytes?: number
}

export const DEFAULT_MAX_ANSWER_BYTES = 8 * 1024 * 1024

/** `Retry-After` as seconds or an HTTP date, in ms from `now`; anything else is ignored. */
export const parseRetryAfter = (value: string | undefined, now: number): number | undefined => {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000
  // An HTTP date names its day and month ("Wed, 25 Nov 2026 08:00:30 GMT"); Date.parse alone would take "-5".
  const at = /^[A-Za-z]{3}, /.test(trimmed) ? Date.parse(trimmed) : Number.NaN
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

const BODY_EXCERPT = 500
/** An error answer is only quoted, so no more of it is read than this. */
const ERROR_BODY_LIMIT = 64 * 1024

interface Body {
  readonly bytes: Uint8Array
  /** The body went on past the limit; reading stopped there. */
  readonly cut: boolean
}

/** Reads at most `limit` bytes of the body; stopping early ends the stream, which aborts the request. */
const readAtMost = (response: HttpClientResponse.HttpClientResponse, limit: number) =>
  Effect.suspend(() => {
    const chunks: Array<Uint8Array> = []
    let size = 0
    let cut = false
    return Stream.runForEachWhile(response.stream, (chunk) =>
      Effect.sync(() => {
        const room = limit - size
        if (chunk.length > room) {
          chunks.push(chunk.subarray(0, room))
          size = limit
          cut = true
          return false
        }
        chunks.push(chunk)
        size += chunk.length
        return true
      })).pipe(Effect.map((): Body => ({ bytes: Buffer.concat(chunks, size), cut })))
  })

const declaredLength = (response: HttpClientResponse.HttpClientResponse): number | undefined => {
  const value = Option.getOrUndefined(Headers.get(response.headers, "content-length"))
  return value !== undefined && /^\d+$/.test(value.trim()) ? Number(value) : undefined
}

const utf8 = new TextDecoder()

export const makeHttpSecutools = (options: HttpSecutoolsOptions) =>
  Effect.gen(function*() {
    const client = (yield* HttpClient.HttpClient).pipe(
      HttpClient.mapRequest(flow(
        HttpClientRequest.prependUrl(options.baseUrl),
        HttpClientRequest.acceptJson,
        HttpClientRequest.bearerToken(options.apiKey)
      ))
    )
    const timeoutMs = Duration.toMillis(options.requestTimeout)
    const maxAnswerBytes = options.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES
    const secrets = [Redacted.value(options.apiKey), ...urlSecrets(options.baseUrl)]
    const redact = makeRedactor(secrets)

    /** Every text of a failure redacted: a server may echo the Authorization header into any of them. */
    const redactFailure = (reason: SecutoolsFailure): SecutoolsFailure => {
      switch (reason._tag) {
        case "Transport":
        case "Decode":
          return { ...reason, detail: redact(reason.detail).slice(0, BODY_EXCERPT) }
        case "Status":
          return { ...reason, body: redact(reason.body).slice(0, BODY_EXCERPT) }
        case "InvalidJobId":
          return { ...reason, jobId: redact(reason.jobId) }
        case "Timeout":
        case "TooLarge":
          return reason
      }
    }
    const fail = (operation: string, reason: SecutoolsFailure) =>
      Effect.fail(new SecutoolsError({ operation: redact(operation), reason: redactFailure(reason) }))

    /** The start of an error answer, as text; a cut one loses its tail, where part of a secret could hide. */
    const excerpt = ({ bytes, cut }: Body): string => {
      const text = utf8.decode(bytes)
      return cut ? dropPartialSecret(text, secrets) : text
    }

    const call = <A>(
      operation: string,
      request: HttpClientRequest.HttpClientRequest,
      schema: Schema.Codec<A, unknown>
    ) => {
      const failWith = (reason: SecutoolsFailure) => fail(operation, reason)
      // Made when needed: an error captures a stack, which every answer would otherwise pay for.
      const tooLarge = Effect.suspend(() => failWith({ _tag: "TooLarge", limitBytes: maxAnswerBytes }))
      return Effect.gen(function*() {
        const response = yield* client.execute(request)
        if (response.status < 200 || response.status >= 300) {
          const body = yield* readAtMost(response, Math.min(ERROR_BODY_LIMIT, maxAnswerBytes))
          const retryAfterMs = parseRetryAfter(
            Option.getOrUndefined(Headers.get(response.headers, "retry-after")),
            yield* Clock.currentTimeMillis
          )
          return yield* failWith({
            _tag: "Status",
            status: response.status,
            body: excerpt(body),
            ...(retryAfterMs === undefined ? {} : { retryAfterMs })
          })
        }
        if ((declaredLength(response) ?? 0) > maxAnswerBytes) {
          // Reading the first chunk and stopping ends the stream, which drops the connection.
          yield* readAtMost(response, 0)
          return yield* tooLarge
        }
        // A declared length within the limit is read whole: the stream's reader aborts the request when done, and an
        // abort builds an error with its stack (a sixth of a restart's CPU with 5,000 resubmissions).
        const declared = declaredLength(response)
        const body: Body = declared === undefined
          ? yield* readAtMost(response, maxAnswerBytes)
          : { bytes: new Uint8Array(yield* response.arrayBuffer), cut: false }
        if (body.cut || body.bytes.length > maxAnswerBytes) return yield* tooLarge
        return yield* Schema.decodeUnknownEffect(Schema.fromJsonString(schema))(utf8.decode(body.bytes)).pipe(
          Effect.catch((error) => failWith({ _tag: "Decode", detail: error.message }))
        )
      }).pipe(
        Effect.catchTag("HttpClientError", (error) => failWith({ _tag: "Transport", detail: error.message })),
        Effect.timeoutOrElse({
          duration: options.requestTimeout,
          orElse: () => failWith({ _tag: "Timeout", afterMs: timeoutMs })
        })
      )
    }

    return Secutools.of({
      submit: (request, idempotencyKey) =>
        call(
          `submit ${request.task_id}`,
          HttpClientRequest.post("/v1/jobs").pipe(
            HttpClientRequest.setHeader("Idempotency-Key", idempotencyKey),
            HttpClientRequest.bodyJsonUnsafe(request)
          ),
          SubmitResponse
        ),
      // Only a valid JobId reaches the URL: `..` would turn GET /v1/jobs/.. into GET /v1/.
      get: (jobId) =>
        isJobId(jobId)
          ? call(`get ${jobId}`, HttpClientRequest.get(`/v1/jobs/${encodeURIComponent(jobId)}`), JobView)
          : fail("get job", { _tag: "InvalidJobId", jobId })
    })
  })

/** The live Secutools, every request retried under `policy`; needs an HttpClient (undici in the daemon). */
export const HttpSecutoolsLayer = (options: HttpSecutoolsOptions, policy: RetryPolicy, onRetry?: OnRetry) =>
  Layer.effect(
    Secutools,
    Effect.map(makeHttpSecutools(options), (secutools) => withRetries(secutools, policy, onRetry))
  )

export const retryPolicyOf = (config: AppConfig): RetryPolicy => ({
  baseDelay: config.secutoolsRetryBase,
  maxDelay: config.secutoolsRetryMaxDelay,
  maxAttempts: config.secutoolsRetryAttempts,
  deadline: config.secutoolsRetryDeadline
})

/** Logs each retry (never the key: it is only ever a header) and lets the caller count it. */
export const logRetry = (count: () => void): OnRetry => (error, delay) =>
  Effect.andThen(
    Effect.sync(count),
    Effect.logWarning(`secutools ${error.message}; retrying in ${formatDuration(Duration.toMillis(delay))}`)
  )
