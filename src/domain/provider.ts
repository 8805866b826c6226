/**
 * The secutools providers a task can be delegated to.
 * Operators write them in any case and with stray spaces; `parseProvider` is the one place that normalises.
 */
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

export const Providers = ["gpu", "gemini", "claude-api"] as const
export const Provider = Schema.Literals(Providers)
export type Provider = typeof Provider.Type

/** Trimmed, case-insensitive match against the known providers. */
export const normalizeChoice = (value: string): string => value.trim().toLowerCase()

export const parseProvider = (value: string): Option.Option<Provider> => {
  const normalized = normalizeChoice(value)
  return Option.fromNullishOr(Providers.find((provider) => provider === normalized))
}
