/**
 * The live secutools adapter: one HTTP request per call, every answer checked against the contract's Schema.
 * Easy to get wrong: the API key is `Redacted` and only ever set as a header, so no error or log line can carry
 * it; and a failure is classified here (transport, timeout, status, decode) so the retry policy can judge it.
 */
import { Clock, Duration, Effect, flow, Layer, Option, type Redacted, Schema } from "effect"
import { Headers, HttpClient, HttpClientRequest } from "effect/http"
import type { AppConfig } from "../config.ts"
import { formatDuration } from "../domain/footer.ts"
import {
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
}

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

    const call = <A>(operation: string, request: HttpClientRequest.HttpClientRequest, schema: Schema.Codec<A, unknown>) => {
      const failWith = (reason: SecutoolsFailure) => Effect.fail(new SecutoolsError({ operation, reason }))
      return Effect.gen(function*() {
        const response = yield* client.execute(request)
        const body = yield* response.text
        if (response.status < 200 || response.status >= 300) {
          const retryAfterMs = parseRetryAfter(
            Option.getOrUndefined(Headers.get(response.headers, "retry-after")),
            yield* Clock.currentTimeMillis
          )
          return yield* failWith({
            _tag: "Status",
            status: response.status,
            body: body.slice(0, BODY_EXCERPT),
            ...(retryAfterMs === undefined ? {} : { retryAfterMs })
          })
        }
        return yield* Schema.decodeUnknownEffect(Schema.fromJsonString(schema))(body).pipe(
          Effect.catch((error) => failWith({ _tag: "Decode", detail: error.message.slice(0, BODY_EXCERPT) }))
        )
      }).pipe(
        Effect.catchTag("HttpClientError", (error) => failWith({ _tag: "Transport", detail: error.message })),
        Effect.timeoutOrElse({ duration: options.requestTimeout, orElse: () => failWith({ _tag: "Timeout", afterMs: timeoutMs }) })
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
      get: (jobId) => call(`get ${jobId}`, HttpClientRequest.get(`/v1/jobs/${encodeURIComponent(jobId)}`), JobView)
    })
  })

/** The live Secutools, every request retried under `policy`; needs an HttpClient (undici in the daemon). */
export const HttpSecutoolsLayer = (options: HttpSecutoolsOptions, policy: RetryPolicy, onRetry?: OnRetry) =>
  Layer.effect(Secutools, Effect.map(makeHttpSecutools(options), (secutools) => withRetries(secutools, policy, onRetry)))

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
