/**
 * The status API on a Node HTTP server bound to API_HOST:API_PORT, as a Layer of the daemon, with bounded connections.
 * Easy to get wrong: with API_PORT=0 the OS picks the port, so the listening line and `serveHttpApi`'s URL come
 * from the bound socket, never from the options; and there is no access log (a scraper would flood it).
 * Connections past the limit are closed when accepted, and slow clients are cut off by Node's timeouts, so the API can
 * never hold more than MAX_CONNECTIONS descriptors. While a flood fills those slots the API answers nobody, /healthz
 * included, but the daemon keeps its descriptors.
 */
import { createServer, type Server } from "node:http"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServer from "effect/http/HttpServer"
import { TaskStore } from "../../ports/task-store.ts"
import type { HookReceiver } from "../../services/hook-receiver.ts"
import type { ApplyOperation } from "./actions-route.ts"
import { type FinishedTasks, makeFinishedTasks } from "./finished-tasks.ts"
import { ApiRoutes } from "./routes.ts"

/** The few clients (the CLI, a scraper, an operator) need a few each; 256 leaves most of a 1024-descriptor limit to the daemon. */
export const MAX_CONNECTIONS = 256
/** A client sends its headers all at once, so one still sending after 10 s is stalling (Node's default is 60 s). */
export const HEADERS_TIMEOUT = Duration.seconds(10)
/** A GET has no body, so the whole request takes as long as its headers (Node requires at least headersTimeout). */
export const REQUEST_TIMEOUT = Duration.seconds(10)
/** Lets the CLI's four requests and a scraper's next scrape reuse a connection; Node 24's default (65 s) holds idle ones. */
export const KEEP_ALIVE_TIMEOUT = Duration.seconds(5)
/** A connection silent this long in any phase (e.g. a client that stops reading its answer) is destroyed. */
export const IDLE_SOCKET_TIMEOUT = Duration.seconds(30)
/** Node enforces the header and request timeouts only at this tick; its default (30 s) would quadruple them. */
export const TIMEOUT_CHECK_INTERVAL = Duration.seconds(1)

export interface ConnectionLimits {
  readonly maxConnections: number
  readonly headersTimeout: Duration.Duration
  readonly requestTimeout: Duration.Duration
  readonly keepAliveTimeout: Duration.Duration
  readonly idleSocketTimeout: Duration.Duration
  readonly timeoutCheckInterval: Duration.Duration
}

export const defaultConnectionLimits: ConnectionLimits = {
  maxConnections: MAX_CONNECTIONS,
  headersTimeout: HEADERS_TIMEOUT,
  requestTimeout: REQUEST_TIMEOUT,
  keepAliveTimeout: KEEP_ALIVE_TIMEOUT,
  idleSocketTimeout: IDLE_SOCKET_TIMEOUT,
  timeoutCheckInterval: TIMEOUT_CHECK_INTERVAL
}

/** A node:http server with `limits` applied. Past `maxConnections` a new socket is closed at once (Node emits `drop`). */
export const boundedServer = (limits: ConnectionLimits = defaultConnectionLimits): Server => {
  const ms = Duration.toMillis
  const server = createServer({
    headersTimeout: ms(limits.headersTimeout),
    requestTimeout: ms(limits.requestTimeout),
    keepAliveTimeout: ms(limits.keepAliveTimeout),
    connectionsCheckingInterval: ms(limits.timeoutCheckInterval)
  })
  server.maxConnections = limits.maxConnections
  // With no `timeout` listener on the server, Node destroys the socket that timed out.
  server.setTimeout(ms(limits.idleSocketTimeout))
  return server
}

export interface HttpApiOptions {
  readonly host: string
  /** 0 = any free port. */
  readonly port: number
  readonly token: Option.Option<Redacted.Redacted<string>>
  /** Names besides `host` that a request's Host header may carry, e.g. a proxy's; see `hostPolicy`. Default: none. */
  readonly allowedHosts?: ReadonlyArray<string>
  /** Claude Code's hook events arrive here (`POST /api/hooks`); without it that path is 404. */
  readonly hooks?: HookReceiver["Service"]
  /** The status page's actions (`POST /api/tasks/NAME/ACTION`) are applied through it; without it that path is 404. */
  readonly actions?: ApplyOperation
}

const served = (options: HttpApiOptions, server: Server, finished: Option.Option<FinishedTasks>) =>
  HttpRouter.serve(
    ApiRoutes({
      token: options.token,
      host: { bind: options.host, allowedHosts: options.allowedHosts ?? [] },
      ...(options.hooks === undefined ? {} : { hooks: options.hooks }),
      ...(options.actions === undefined ? {} : { actions: options.actions }),
      ...(Option.isNone(finished) ? {} : { finished: finished.value })
    }),
    { disableLogger: true, disableListenLog: true }
  ).pipe(
    Layer.provideMerge(NodeHttpServer.layerServer(() => server, { host: options.host, port: options.port }))
  )

/** The address could not be bound (in use, not an address of this host, …). */
export class ApiListenError
  extends Data.TaggedError("ApiListenError")<{ readonly host: string; readonly port: number; readonly problem: string }>
{
  override get message(): string {
    return `cannot serve the status API on ${this.host}:${this.port}: ${this.problem} (set API_HOST / API_PORT; 0 = any free port)`
  }
}

/**
 * Serves the API for as long as the current scope lives; returns the URL it listens on (e.g. `http://127.0.0.1:40123`).
 * `server` is the node:http server to use: tests pass one with short timeouts so they can watch its connections.
 */
export const serveHttpApi = Effect.fn("HttpApi.serve")(function*(options: HttpApiOptions, server?: Server) {
  const node = server ?? boundedServer()
  // With the queue at hand (the daemon), done/ and failed/ entries say why and when they finished.
  const store = yield* Effect.serviceOption(TaskStore)
  const finished = Option.isSome(store)
    ? Option.some(yield* Effect.provideService(makeFinishedTasks, TaskStore, store.value))
    : Option.none<FinishedTasks>()
  const context = yield* Layer.build(served(options, node, finished)).pipe(
    Effect.mapError((error) =>
      new ApiListenError({
        host: options.host,
        port: options.port,
        problem: error.cause instanceof Error ? error.cause.message : String(error.cause)
      })
    )
  )
  // Runs before the platform's own close, which would otherwise wait for stalled clients to time out.
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      node.close()
      node.closeAllConnections()
    })
  )
  const url = HttpServer.formatAddress(Context.get(context, HttpServer.HttpServer).address)
  yield* Effect.logInfo(`status API listening on ${url}`)
  return url
})

/** The status API as a Layer of the daemon (needs `StatusReport`); fails with `ApiListenError` when it cannot bind. */
export const HttpApiLayer = (options: HttpApiOptions) => Layer.effectDiscard(serveHttpApi(options))
