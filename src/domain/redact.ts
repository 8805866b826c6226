/**
 * Secrets out of text: every occurrence of a secret, or of its URL-encoded, JSON-escaped or base64 form, becomes `<redacted>`.
 * Easy to get wrong: occurrences overlap and secrets contain one another, so the spans of all forms are found first and
 * merged, then replaced once; replacing one secret after another would leave fragments of the others behind.
 */
import * as Base64 from "effect/encoding/Base64"
import * as Base64Url from "effect/encoding/Base64Url"

export const REDACTED = "<redacted>"

const encodeComponent = (secret: string): string | undefined => {
  try {
    return encodeURIComponent(secret)
  } catch {
    // A lone surrogate has no URL encoding, so it cannot appear URL-encoded either.
    return undefined
  }
}

/**
 * The forms a secret takes on the wire, longest first: as is, URL-encoded, JSON-escaped, and base64 (padded, unpadded and
 * base64url) of its UTF-8 bytes, which is how `user:password` travels in a Basic `Authorization` header.
 */
export const secretForms = (secrets: ReadonlyArray<string>): ReadonlyArray<string> => {
  const forms = new Set<string>()
  for (const secret of secrets) {
    if (secret.length === 0) continue
    const base64 = Base64.encode(secret)
    const candidates = [
      secret,
      encodeComponent(secret),
      JSON.stringify(secret).slice(1, -1),
      base64,
      base64.replace(/=+$/, ""),
      Base64Url.encode(secret)
    ]
    for (const form of candidates) if (form !== undefined && form.length > 0) forms.add(form)
  }
  return [...forms].sort((a, b) => b.length - a.length)
}

/** Could `form` be read in the output across a marker (or inside one)? Then the marker would re-create a secret. */
const readableAcross = (form: string, marker: string): boolean => {
  if (marker.includes(form) || form.includes(marker)) return true
  for (let cut = 1; cut < marker.length; cut++) {
    if (form.startsWith(marker.slice(cut)) || form.endsWith(marker.slice(0, cut))) return true
  }
  return false
}

const FALLBACK_MARKS = ["█", "*", "#", "~"]

/**
 * `<redacted>`, unless a secret could be read across it (a secret such as `act`, `d>` or `<x`): then a run of a character
 * no secret contains, so that the output can never spell a secret.
 */
const markerFor = (forms: ReadonlyArray<string>): string => {
  if (!forms.some((form) => readableAcross(form, REDACTED))) return REDACTED
  const unused = (mark: string) => forms.every((form) => !form.includes(mark))
  const mark = FALLBACK_MARKS.find(unused) ??
    Array.from({ length: 0x1900 }, (_, i) => String.fromCharCode(0xe000 + i)).find(unused) ?? "\u{F0000}"
  return mark.repeat(3)
}

/**
 * A function that replaces every occurrence of every secret (and of its other forms, see `secretForms`) with
 * `<redacted>`. Overlapping occurrences become one marker, adjacent ones one marker each; empty secrets are ignored and
 * text without a secret comes back unchanged (the same string).
 */
export const makeRedactor = (secrets: ReadonlyArray<string>): (text: string) => string => {
  const forms = secretForms(secrets)
  if (forms.length === 0) return (text) => text
  const marker = markerFor(forms)
  return (text) => {
    const spans: Array<readonly [number, number]> = []
    for (const form of forms) {
      for (let at = text.indexOf(form); at !== -1; at = text.indexOf(form, at + 1)) spans.push([at, at + form.length])
    }
    if (spans.length === 0) return text
    spans.sort((a, b) => a[0] - b[0] || b[1] - a[1])
    let out = ""
    let kept = 0
    let start = -1
    let end = -1
    for (const [from, to] of spans) {
      if (from < end) {
        end = Math.max(end, to)
        continue
      }
      if (start !== -1) out += text.slice(kept, start) + marker
      kept = start === -1 ? 0 : end
      start = from
      end = to
    }
    return out + text.slice(kept, start) + marker + text.slice(end)
  }
}

/**
 * A text cut short (a body read up to a limit) may end in the first characters of a secret, which no redactor can
 * recognise: drop as many trailing characters as the longest form of a secret, less one.
 */
export const dropPartialSecret = (text: string, secrets: ReadonlyArray<string>): string => {
  const longest = secretForms(secrets)[0]?.length ?? 0
  return longest <= 1 ? text : text.slice(0, Math.max(0, text.length - (longest - 1)))
}

/** Where the user-info of a URL-like value lies: up to the last `@` of its authority (of the whole value when it is no URL). */
const userinfoSpan = (value: string): { readonly start: number; readonly end: number } | undefined => {
  const scheme = /^\s*[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(value)?.[0] ?? ""
  const rest = value.slice(scheme.length)
  // A URL's authority ends at the first of / ? # \ ; a value that does not parse may hide a password with a `/` in it.
  const authorityEnd = URL.canParse(value.trim()) ? rest.search(/[/?#\\]/) : -1
  const at = rest.lastIndexOf("@", authorityEnd === -1 ? rest.length : authorityEnd)
  return at <= 0 ? undefined : { start: scheme.length, end: scheme.length + at }
}

/** `https://alice:s3cret@host/x` → `https://<redacted>@host/x`; a value with no credentials comes back as it was. */
export const hideUrlCredentials = (value: string): string => {
  const span = userinfoSpan(value)
  return span === undefined ? value : value.slice(0, span.start) + REDACTED + value.slice(span.end)
}

const decoded = (text: string): string => {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/** The secrets a URL carries: its user-info (`user:password`, or a lone token) and the password alone, encoded and not. */
export const urlSecrets = (value: string): ReadonlyArray<string> => {
  const span = userinfoSpan(value)
  if (span === undefined) return []
  const userinfo = value.slice(span.start, span.end)
  const colon = userinfo.indexOf(":")
  const password = colon === -1 ? "" : userinfo.slice(colon + 1)
  const user = colon === -1 ? userinfo : userinfo.slice(0, colon)
  const plain = password === "" ? decoded(user) : `${decoded(user)}:${decoded(password)}`
  return [...new Set([userinfo, plain, password, decoded(password)])].filter((secret) => secret.length > 0)
}

/**
 * The secrets of a database URL: the URL itself and its password (in the user-info or a `password=` parameter), not
 * the user name alone — a URL without a password hides nothing, and redacting its user (`postgres`) would blank that
 * word out of every log line.
 */
export const databaseUrlSecrets = (value: string): ReadonlyArray<string> => {
  const parsed = URL.parse(value.trim())
  const inUserinfo = parsed !== null && parsed.password !== "" ? urlSecrets(value) : []
  const inQuery = parsed?.searchParams.getAll("password") ?? []
  return [...new Set([value, ...inUserinfo, ...inQuery.flatMap((p) => [p, encodeURIComponent(p)])])]
    .filter((secret) => secret.length > 0)
}
