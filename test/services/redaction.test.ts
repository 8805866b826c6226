/** Redaction from the configuration, and log lines that carry no secret in either LOG_FORMAT. */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Result } from "effect"
import { TestConsole } from "effect/testing"
import { inspect } from "node:util"
import { resolveConfig } from "../../src/config.ts"
import { configSecrets, redactingLoggerLayer, Redaction } from "../../src/services/redaction.ts"

const KEY = "sk-live-7f3a9c0d-never-print-me"
const TOKEN = "api-token-5150"
const config = Result.getOrThrow(resolveConfig({
  SECUTOOLS_API_KEY: KEY,
  API_TOKEN: TOKEN,
  SECUTOOLS_URL: "https://alice:s3cret@secutools.example.com"
}))
const redact = Redaction.make(configSecrets(config)).redact

/** Logs a line with the key in its message, an annotation, an object and a cause; returns what reached the console. */
const logged = (format: "pretty" | "json") =>
  Effect.gen(function*() {
    yield* Effect.logWarning(`retrying with Authorization: Bearer ${KEY}`, { echoed: `Bearer ${KEY}` }).pipe(
      Effect.annotateLogs({ header: `Bearer ${KEY}`, url: "https://alice:s3cret@secutools.example.com", attempt: 2 })
    )
    yield* Effect.logError("submit failed", Cause.fail(new Error(`HTTP 400: {"authorization":"Bearer ${KEY}"}`)))
    yield* Effect.logInfo("nothing secret here").pipe(Effect.annotateLogs({ task: "fix-login.md" }))
    return (yield* TestConsole.logLines).map((part) => (typeof part === "string" ? part : inspect(part))).join("\n")
  }).pipe(Effect.provide(redactingLoggerLayer(format, redact)))

describe("Redaction", () => {
  it.effect("fromConfig redacts the key, the token and SECUTOOLS_URL's credentials", () =>
    Effect.gen(function*() {
      const redaction = yield* Redaction
      expect(redaction.secrets).toBe(4) // key, token, alice:s3cret, s3cret
      expect(redaction.redact(`${KEY} ${TOKEN} alice:s3cret s3cret`)).toBe(
        "<redacted> <redacted> <redacted> <redacted>"
      )
    }).pipe(Effect.provide(Redaction.fromConfig(config))))

  it.effect("none changes nothing", () =>
    Effect.gen(function*() {
      const redaction = yield* Redaction
      expect(redaction.secrets).toBe(0)
      expect(redaction.redact(KEY)).toBe(KEY)
    }).pipe(Effect.provide(Redaction.none)))
})

describe("redactingLoggerLayer", () => {
  it.effect("pretty: message, annotations, objects and causes come out redacted; other lines as before", () =>
    Effect.gen(function*() {
      const output = yield* logged("pretty")
      expect(output).not.toContain(KEY)
      expect(output).not.toContain("s3cret")
      expect(output).toContain("retrying with Authorization: Bearer <redacted>")
      expect(output).toContain("Bearer <redacted>")
      expect(output).toContain("https://<redacted>@secutools.example.com")
      expect(output).toContain("HTTP 400: {\"authorization\":\"Bearer <redacted>\"}")
      expect(output).toContain("nothing secret here")
      expect(output).toContain("fix-login.md")
    }))

  it.effect("json: the same, one JSON object a line", () =>
    Effect.gen(function*() {
      const output = yield* logged("json")
      expect(output).not.toContain(KEY)
      expect(output).not.toContain("s3cret")
      const [warning, error, info] = output.split("\n").map((line) => JSON.parse(line))
      expect(warning).toMatchObject({
        level: "WARN",
        message: ["retrying with Authorization: Bearer <redacted>", { echoed: "Bearer <redacted>" }],
        annotations: { header: "Bearer <redacted>", url: "https://<redacted>@secutools.example.com", attempt: 2 }
      })
      expect(error.cause).toContain("HTTP 400: {\"authorization\":\"Bearer <redacted>\"}")
      expect(info).toMatchObject({ message: "nothing secret here", annotations: { task: "fix-login.md" } })
    }))

  it.effect("Redaction.logger uses the service's redactor", () =>
    Effect.gen(function*() {
      yield* Effect.logInfo(`key ${KEY}`)
      expect(yield* TestConsole.logLines).toEqual([expect.stringContaining("\"message\":\"key <redacted>\"")])
    }).pipe(Effect.provide(Redaction.logger("json")), Effect.provide(Redaction.fromConfig(config))))
})
