/**
 * `POST /api/tasks/NAME/retry|cancel|requeue`: the status page's buttons, applied by the daemon as a command's request
 * is (same operations, same locks, same log). Easy to get wrong: without a token (the loopback default) any web page
 * the operator opens can make the browser POST a form to 127.0.0.1, so an action also needs a header no form can send
 * (`X-Claude-Failover-Action`: a cross-site fetch with it needs a CORS preflight this API never grants), and a request
 * whose Origin is another site's is refused; the Host check alone does not stop that, the Host is ours.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Headers from "effect/http/Headers"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import { type TaskName, taskNameFrom } from "../../domain/task.ts"
import type { OperationResult, TaskOperation } from "../../services/task-operations.ts"
import { ACTION_HEADER, TASK_ACTION_PATH, type TaskAction, TaskActions } from "./contract.ts"

/** Applies an operation as the daemon does and logs it as asked `from` someone (the daemon's `RequestInbox.apply`). */
export type ApplyOperation = (name: TaskName, operation: TaskOperation, from: string) => Effect.Effect<OperationResult>

/** Who the log names as asking. */
export const ACTION_SOURCE = "the status page"

const errorResponse = (status: number, error: string, headers: Record<string, string> = {}) =>
  HttpServerResponse.jsonUnsafe({ error }, { status, headers })

/** Is `origin` (an Origin header) the site the request was sent to (its Host)? Scheme and default ports ignored. */
export const sameOrigin = (origin: string, host: string | undefined): boolean => {
  if (host === undefined) return false
  try {
    const from = new URL(origin)
    if (from.protocol !== "http:" && from.protocol !== "https:") return false
    const to = new URL(`${from.protocol}//${host}`)
    return from.host === to.host
  } catch {
    // `null` (a sandboxed frame, a file: page) and anything else that is not a URL is not our page.
    return false
  }
}

/** Why a request cannot be one of our page's own, or undefined when it can. */
export const crossSiteProblem = (headers: Headers.Headers): string | undefined => {
  const origin = Option.getOrUndefined(Headers.get(headers, "origin"))
  if (origin !== undefined && !sameOrigin(origin, Option.getOrUndefined(Headers.get(headers, "host")))) {
    return `Origin ${JSON.stringify(origin)} is not this API's own: actions are taken only from its own page`
  }
  if (Option.isNone(Headers.get(headers, ACTION_HEADER))) {
    return `an action needs the header ${ACTION_HEADER}: 1 (a cross-site form cannot send it)`
  }
  return undefined
}

const isAction = (text: string): text is TaskAction => (TaskActions as ReadonlyArray<string>).includes(text)

const answer = (result: OperationResult) =>
  result.code === 0
    ? HttpServerResponse.jsonUnsafe({ ok: true, message: result.message })
    : errorResponse(result.notFound === true ? 404 : 409, result.message)

/**
 * The handler for every method on the path: POST goes through `guard` (the token rule), then the cross-site rule,
 * then the action and name checks; anything else is 405 without a token, as for the other known paths.
 */
export const actionsRoute = (
  apply: ApplyOperation,
  guard: <E, R>(
    handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
  ) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest>
) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (request.method !== "POST") {
      return errorResponse(405, `${request.method} is not allowed on ${TASK_ACTION_PATH}; use POST`, { allow: "POST" })
    }
    const params = yield* HttpRouter.params
    return yield* guard(Effect.gen(function*() {
      const problem = crossSiteProblem(request.headers)
      if (problem !== undefined) return errorResponse(403, problem)
      const action = params.action ?? ""
      if (!isAction(action))
        return errorResponse(404, `no action '${action}' on a task; there are ${TaskActions.join(", ")}`)
      const given = params.name ?? ""
      const name = taskNameFrom(given)
      if (Option.isNone(name))
        return errorResponse(400, `${JSON.stringify(given)} is not a task file name`)
      return answer(yield* apply(name.value, { op: action, task: name.value }, ACTION_SOURCE))
    }))
  })
