/**
 * `POST /api/hooks`: where Claude Code's `http` hooks (and `claude-failover hooks report`) deliver hook events.
 * Easy to get wrong: Claude Code reads a 2xx answer's body as the hook's output (plain text from a UserPromptSubmit
 * hook would be added to the prompt, `{"decision":…}` would steer it), so every accepted call is answered `{}`, and
 * what was recorded goes into response headers; any other status shows as "hook failed" in the session.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as ByteSize from "effect/ByteSize"
import * as Headers from "effect/http/Headers"
import * as HttpIncomingMessage from "effect/http/HttpIncomingMessage"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import { hookSenderFrom } from "../../domain/hook-sender.ts"
import { HOOKS_PATH } from "./contract.ts"
import type { HookReceiver } from "../../services/hook-receiver.ts"

/** The largest body read: Claude Code's events are a few KB (a long `last_assistant_message` or `tool_input` more). */
export const HOOK_BODY_LIMIT_BYTES = 1024 * 1024

/** Response headers telling a person (`curl -i`) what the call came to; Claude Code ignores them. */
export const HookAnswerHeaders = {
  /** The fact recorded (`TurnEnded`, `TurnFailed`, …), or `none` when the session could not be named. */
  recorded: "x-claude-failover-recorded",
  /** The tmux session the fact was recorded for. */
  session: "x-claude-failover-session"
} as const

const errorResponse = (status: number, error: string, headers: Record<string, string> = {}) =>
  HttpServerResponse.jsonUnsafe({ error }, { status, headers })

const readBody = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => request.text).pipe(
  Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(HOOK_BODY_LIMIT_BYTES)),
  Effect.result
)

/** Answers a POST: 202 `{}` when the body is a hook event (recorded or not), 400 when it is not, 413 when too large. */
export const receiveHook = (receiver: HookReceiver["Service"]) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const body = yield* readBody
    if (Result.isFailure(body)) {
      const tooLarge = body.failure.reason._tag === "RequestParseError" && body.failure.reason.reason === "BodyTooLarge"
      return tooLarge
        ? errorResponse(413, `a hook event is at most ${HOOK_BODY_LIMIT_BYTES} bytes`)
        : errorResponse(400, `cannot read the request body: ${body.failure.message}`)
    }
    const sender = hookSenderFrom((name) => Option.getOrUndefined(Headers.get(request.headers, name)))
    const receipt = yield* Effect.result(receiver.receive(sender, body.success))
    if (Result.isFailure(receipt)) return errorResponse(400, receipt.failure.message)
    const { fact, session } = receipt.success
    return HttpServerResponse.jsonUnsafe({}, {
      status: 202,
      headers: Option.match(session, {
        onNone: () => ({ [HookAnswerHeaders.recorded]: "none" }),
        onSome: (name) => ({
          [HookAnswerHeaders.recorded]: fact._tag,
          [HookAnswerHeaders.session]: encodeURIComponent(name)
        })
      })
    })
  })

/**
 * The handler for every method on the path: POST goes through `guard` (the token rule) to `receiveHook`; anything else
 * is 405 without a token, as for the other known paths (nothing is served).
 */
export const hooksRoute = (
  receiver: HookReceiver["Service"],
  guard: <E, R>(
    handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
  ) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest>
) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    request.method === "POST"
      ? guard(receiveHook(receiver))
      : Effect.succeed(
        errorResponse(405, `${request.method} is not allowed on ${HOOKS_PATH}; use POST`, { allow: "POST" })
      ))
