/**
 * The status API on a Node HTTP server bound to API_HOST:API_PORT, as a Layer of the daemon.
 * Easy to get wrong: with API_PORT=0 the OS picks the port, so the listening line and `serveHttpApi`'s URL come
 * from the bound socket, never from the options; and there is no access log (a scraper would flood it).
 */
import { createServer } from "node:http"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Context, Data, Effect, Layer, type Option, type Redacted } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { ApiRoutes } from "./routes.ts"

export interface HttpApiOptions {
  readonly host: string
  /** 0 = any free port. */
  readonly port: number
  readonly token: Option.Option<Redacted.Redacted<string>>
}

const served = (options: HttpApiOptions) =>
  HttpRouter.serve(ApiRoutes({ token: options.token }), { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provideMerge(NodeHttpServer.layerServer(createServer, { host: options.host, port: options.port }))
  )

/** The address could not be bound (in use, not an address of this host, …). */
export class ApiListenError extends Data.TaggedError("ApiListenError")<{ readonly host: string; readonly port: number; readonly problem: string }> {
  override get message(): string {
    return `cannot serve the status API on ${this.host}:${this.port}: ${this.problem} (set API_HOST / API_PORT; 0 = any free port)`
  }
}

/** Serves the API for as long as the current scope lives; returns the URL it listens on (e.g. `http://127.0.0.1:40123`). */
export const serveHttpApi = Effect.fn("HttpApi.serve")(function*(options: HttpApiOptions) {
  const context = yield* Layer.build(served(options)).pipe(
    Effect.mapError((error) =>
      new ApiListenError({
        host: options.host,
        port: options.port,
        problem: error.cause instanceof Error ? error.cause.message : String(error.cause)
      })
    )
  )
  const url = HttpServer.formatAddress(Context.get(context, HttpServer.HttpServer).address)
  yield* Effect.logInfo(`status API listening on ${url}`)
  return url
})

/** The status API as a Layer of the daemon (needs `StatusReport`); fails with `ApiListenError` when it cannot bind. */
export const HttpApiLayer = (options: HttpApiOptions) => Layer.effectDiscard(serveHttpApi(options))
