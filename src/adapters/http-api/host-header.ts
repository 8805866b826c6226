/**
 * Which `Host` headers the status API answers, given the address it is bound to: its defence against DNS rebinding.
 * Easy to get wrong: the loopback bind needs the check most. A page in a browser on this host can reach it under any
 * name whose DNS points at 127.0.0.1. A wildcard bind accepts any name, and only the token protects it.
 */
import { isLoopbackHost } from "../../config.ts"

/** The decision for one request; `reason` is what the refusal says. */
export type HostVerdict =
  | { readonly _tag: "Accepted" }
  | { readonly _tag: "Refused"; readonly reason: string }

export interface HostRule {
  /** The address the server is bound to (API_HOST): loopback, a specific address, or 0.0.0.0 / ::. */
  readonly bind: string
  /** Other names the API is reached under, e.g. a proxy's name (a port given with a name is ignored). */
  readonly allowedHosts: ReadonlyArray<string>
}

/** `uri-host [":" port]` and nothing else: no user info, path, spaces or empty name. */
const HOST_HEADER = /^(?:\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::\d{1,5})?$/i

/** Addresses that mean "every interface". */
const WILDCARDS: ReadonlySet<string> = new Set(["0.0.0.0", "[::]"])

/** A bare IPv6 address (`::1`, two colons or more) as it appears in a URL (`[::1]`); `name:port` stays as it is. */
const bracketed = (host: string): string => /:.*:/.test(host) && !host.startsWith("[") ? `[${host}]` : host

/**
 * The host part in the URL parser's canonical form, as a browser sends it: lower case, `127.1` → `127.0.0.1`,
 * IPv6 compressed and bracketed, port dropped. Undefined when it is not a host.
 */
const canonical = (host: string): string | undefined => {
  const trimmed = host.trim()
  if (!HOST_HEADER.test(trimmed)) return undefined
  try {
    return new URL(`http://${trimmed}`).hostname
  } catch {
    return undefined
  }
}

const accepted: HostVerdict = { _tag: "Accepted" }
const refused = (reason: string): HostVerdict => ({ _tag: "Refused", reason })

/**
 * The rule for one bind address.
 * - Bound to a loopback address: Host must be `localhost`, `127.x.y.z` or `[::1]`.
 * - Bound to a specific other address: Host must be that address.
 * - Bound to 0.0.0.0 or ::: any Host, or none.
 * In the first two cases a name in `allowedHosts` is also accepted, any port is accepted, and a request with no
 * Host is refused: there is no name to check. Every browser sends Host, and Node already answers 400 to an
 * HTTP/1.1 request without one, so only a hand-written HTTP/1.0 request gets here without it.
 */
export const hostPolicy = (rule: HostRule): (host: string | undefined) => HostVerdict => {
  const bind = rule.bind.trim()
  const bound = canonical(bracketed(bind))
  if (bind === "" || (bound !== undefined && WILDCARDS.has(bound))) return () => accepted
  const allowed = new Set(rule.allowedHosts.flatMap((name) => canonical(bracketed(name)) ?? []))
  const loopback = bound !== undefined && isLoopbackHost(bound)
  const names = [
    ...(loopback ? ["localhost", "127.x.y.z", "[::1]"] : [bind]),
    ...(allowed.size > 0 ? ["an allowed host name"] : [])
  ]
  const served = names.length > 1 ? `${names.slice(0, -1).join(", ")} or ${names.at(-1)}` : bind
  return (host) => {
    if (host === undefined) return refused(`no Host header: this API answers only requests for ${served}`)
    const given = canonical(host)
    if (given === undefined) return refused(`Host ${JSON.stringify(host)} is not a host name`)
    if (allowed.has(given) || (loopback ? isLoopbackHost(given) : given === bound)) return accepted
    return refused(`Host ${JSON.stringify(host)} is not served here: this API answers only requests for ${served}`)
  }
}
