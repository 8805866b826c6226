/**
 * Which Secutools the configuration asks for: the HTTP API (`SECUTOOLS_MODE=http`, needs SECUTOOLS_API_KEY), the
 * stand-in server started in this process (`fake`, for staging, its jobs kept in `<QUEUE_DIR>/.fake-secutools.json`), or
 * none. Easy to get wrong: without a key in `http` mode nothing may be sent at all, so every call fails before touching
 * the network; and the stand-in must outlive a daemon restart, or every job submitted before it comes back 404.
 */
import { join, resolve } from "node:path"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { AppConfig } from "../config.ts"
import { Secutools, SecutoolsError } from "../ports/secutools.ts"
import type { OnRetry } from "../services/secutools-policy.ts"
import { startFakeSecutools } from "./fake-secutools/server.ts"
import { HttpSecutoolsLayer, retryPolicyOf } from "./http-secutools.ts"

const disabled = (operation: string) =>
  new SecutoolsError({ operation, reason: { _tag: "Status", status: 401, body: "SECUTOOLS_API_KEY is not set" } })

const Disabled = Layer.succeed(Secutools, {
  submit: (request) => Effect.fail(disabled(`submit ${request.task_id}`)),
  get: (jobId) => Effect.fail(disabled(`get ${jobId}`))
})

const overHttp = (config: AppConfig, baseUrl: string, apiKey: Redacted.Redacted<string>, onRetry?: OnRetry) =>
  HttpSecutoolsLayer(
    { baseUrl, apiKey, requestTimeout: config.secutoolsTimeout, maxAnswerBytes: config.secutoolsMaxAnswer },
    retryPolicyOf(config),
    onRetry
  ).pipe(Layer.provide(NodeHttpClient.layerUndici))

/** Where staging's stand-in keeps its jobs: in the queue root, resolved as the daemon resolves it. */
export const fakeStateFile = (config: AppConfig): string => join(resolve(config.queueDir), ".fake-secutools.json")

/**
 * The stand-in on a free loopback port for as long as the layer lives; jobs take a few seconds and succeed, and are kept
 * in `fakeStateFile`, so a restarted daemon still finds the jobs its markers name.
 */
const InProcessFake = (config: AppConfig, onRetry?: OnRetry) =>
  Layer.unwrap(Effect.gen(function*() {
    const apiKey = Redacted.make(`fake-${crypto.randomUUID()}`)
    const server = yield* Effect.acquireRelease(
      Effect.promise(() =>
        startFakeSecutools({ apiKey: Redacted.value(apiKey), durationMs: 3000, stateFile: fakeStateFile(config) })
      ),
      (running) => Effect.promise(() => running.close())
    )
    yield* Effect.logInfo(`SECUTOOLS_MODE=fake: secutools stand-in at ${server.url}`)
    return overHttp(config, server.url, apiKey, onRetry)
  }))

export const SecutoolsFromConfig = (config: AppConfig, onRetry?: OnRetry) =>
  config.secutoolsMode === "fake"
    ? InProcessFake(config, onRetry)
    : Option.match(config.secutoolsApiKey, {
      onNone: () => Disabled,
      onSome: (apiKey) => overHttp(config, config.secutoolsUrl, apiKey, onRetry)
    })
