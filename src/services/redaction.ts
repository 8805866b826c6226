/**
 * The daemon's secrets (SECUTOOLS_API_KEY, API_TOKEN, the credentials in SECUTOOLS_URL) kept out of log lines: a
 * `Redaction` service and a logger that redacts the message, the cause and every annotation before formatting.
 * Easy to get wrong: annotations are not part of a log call's input but read from the fiber by the formatter, so the
 * logger hands the formatter a view of the fiber whose annotations are already redacted.
 *
 * @example
 * ```ts
 * // in daemon.ts, instead of Logger.layer([Logger.consolePretty()]) / Logger.layer([Logger.consoleJson]):
 * Layer.provideMerge(redactingLoggerLayer(config.logFormat, makeRedactor(configSecrets(config))))
 * // or, as a service other code can also use (e.g. to redact text it writes to task files):
 * Layer.provideMerge(Redaction.logger(config.logFormat)), Layer.provideMerge(Redaction.fromConfig(config))
 * const text = (yield* Redaction).redact(error.message)
 * ```
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as References from "effect/References"
import type { AppConfig } from "../config.ts"
import { databaseUrlSecrets, makeRedactor, urlSecrets } from "../domain/redact.ts"

export type Redact = (text: string) => string

/** Every secret the configuration holds: the two keys, DATABASE_URL, and the URLs' user-info (and password alone). */
export const configSecrets = (config: AppConfig): ReadonlyArray<string> => [
  ...Option.toArray(config.secutoolsApiKey).map(Redacted.value),
  ...Option.toArray(config.apiToken).map(Redacted.value),
  ...urlSecrets(config.secutoolsUrl),
  // The whole URL and its password, which errors may echo on their own.
  ...Option.toArray(config.databaseUrl).flatMap((url) => databaseUrlSecrets(Redacted.value(url)))
]

export class Redaction extends Context.Service<Redaction, {
  /** The text with every secret, and its URL-encoded and base64 forms, replaced by `<redacted>`. */
  readonly redact: Redact
  /** How many distinct secrets are redacted; 0 means `redact` returns its input. */
  readonly secrets: number
}>()("claude-failover/services/Redaction") {
  static readonly make = (secrets: ReadonlyArray<string>): Redaction["Service"] =>
    Redaction.of({
      redact: makeRedactor(secrets),
      secrets: new Set(secrets.filter((secret) => secret.length > 0)).size
    })
  static readonly fromConfig = (config: AppConfig) => Layer.succeed(Redaction, Redaction.make(configSecrets(config)))
  static readonly none = Layer.succeed(Redaction, Redaction.make([]))
  /** The log format of `redactingLoggerLayer`, redacting with this service. */
  static readonly logger = (format: "pretty" | "json") =>
    Layer.unwrap(Redaction.use((redaction) => Effect.succeed(redactingLoggerLayer(format, redaction.redact))))
}

/**
 * `value` with every string in it redacted, or `value` itself when nothing needed it, so a line without secrets is
 * formatted exactly as before. Objects other than plain ones and errors are redacted in their JSON form.
 */
const redactValue = (value: unknown, redact: Redact, seen: Set<object>): unknown => {
  if (typeof value === "string") return redact(value)
  if (typeof value !== "object" || value === null || Redacted.isRedacted(value) || seen.has(value)) return value
  seen.add(value)
  if (Array.isArray(value)) {
    const items: Array<unknown> = value.map((item) => redactValue(item, redact, seen))
    return items.every((item, i) => item === value[i]) ? value : items
  }
  if (value instanceof Error) {
    const message = redact(value.message)
    const stack = value.stack === undefined ? undefined : redact(value.stack)
    if (message === value.message && stack === value.stack) return value
    const copy = new Error(message)
    copy.name = value.name
    if (stack !== undefined) copy.stack = stack
    return copy
  }
  const json = Inspectable.toJson(value)
  if (json !== value) {
    const redacted = redactValue(json, redact, seen)
    return redacted === json ? value : redacted
  }
  const entries = Object.entries(value)
  const redacted = entries.map(([key, item]) => [key, redactValue(item, redact, seen)] as const)
  return redacted.every(([, item], i) => item === entries[i]?.[1]) ? value : Object.fromEntries(redacted)
}

const redactAnnotations = (annotations: Readonly<Record<string, unknown>>, redact: Redact) => {
  let changed = false
  const redacted = Object.fromEntries(
    Object.entries(annotations).map(([key, value]) => {
      const clean = redactValue(value, redact, new Set())
      if (clean !== value) changed = true
      return [key, clean]
    })
  )
  return changed ? redacted : annotations
}

/**
 * The cause as the formatters would print it, redacted; unchanged when it holds no secret. A redacted cause is one
 * failure whose stack is the redacted rendering, which the formatters print as it is.
 */
const redactCause = (cause: Cause.Cause<unknown>, redact: Redact): Cause.Cause<unknown> => {
  if (cause.reasons.length === 0) return cause
  const pretty = Cause.pretty(cause)
  const clean = redact(pretty)
  if (clean === pretty) return cause
  const first = clean.split("\n", 1)[0] ?? ""
  const colon = first.indexOf(": ")
  return Cause.fail({
    name: colon > 0 ? first.slice(0, colon) : "Error",
    message: colon > 0 ? first.slice(colon + 2) : first,
    stack: clean
  })
}

/** The fiber as a formatter sees it, with `annotations` in place of its own log annotations. */
const withAnnotations = (
  fiber: Fiber.Fiber<unknown, unknown>,
  annotations: Readonly<Record<string, unknown>>
): Fiber.Fiber<unknown, unknown> => {
  const context = Context.add(fiber.context, References.CurrentLogAnnotations, annotations)
  const getRef = <A>(ref: Context.Reference<A>): A => Context.get(context, ref)
  return new Proxy(fiber, { get: (target, key) => (key === "getRef" ? getRef : Reflect.get(target, key, target)) })
}

/** `logger` fed a redacted copy of each log call: message, cause and annotations. */
export const redactingLogger = <Output>(
  logger: Logger.Logger<unknown, Output>,
  redact: Redact
): Logger.Logger<unknown, Output> =>
  Logger.make((options) => {
    const annotations = options.fiber.getRef(References.CurrentLogAnnotations)
    const redacted = redactAnnotations(annotations, redact)
    return logger.log({
      ...options,
      message: redactValue(options.message, redact, new Set()),
      cause: redactCause(options.cause, redact),
      fiber: redacted === annotations ? options.fiber : withAnnotations(options.fiber, redacted)
    })
  })

/** The daemon's log lines (`Logger.consolePretty()` or `Logger.consoleJson`, as LOG_FORMAT says), redacted. */
export const redactingLoggerLayer = (format: "pretty" | "json", redact: Redact) =>
  Logger.layer([redactingLogger(format === "json" ? Logger.consoleJson : Logger.consolePretty(), redact)])
