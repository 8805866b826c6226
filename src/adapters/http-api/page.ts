/**
 * `GET /`: the status page, one self-contained HTML file (status-page.html: inline CSS and JS, no CDN, works offline)
 * that polls the JSON API and offers the task actions. Easy to get wrong: the page carries no data, so it is served
 * without the token; its Content-Security-Policy allows exactly its own inline script and style (by hash) and fetches
 * to its own origin, and it may not be framed, so another site cannot overlay its buttons (clickjacking).
 */
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import * as HttpServerResponse from "effect/http/HttpServerResponse"

export const PAGE_HTML = readFileSync(new URL("./status-page.html", import.meta.url), "utf8")

/** `'sha256-…'` of each inline `<tag>` block's text, as a CSP source. */
const hashesOf = (html: string, tag: "script" | "style"): ReadonlyArray<string> =>
  [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))].map((match) =>
    `'sha256-${createHash("sha256").update(match[1] ?? "", "utf8").digest("base64")}'`
  )

export const PAGE_CSP = [
  "default-src 'none'",
  `script-src ${hashesOf(PAGE_HTML, "script").join(" ")}`,
  `style-src ${hashesOf(PAGE_HTML, "style").join(" ")}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join("; ")

export const statusPage = HttpServerResponse.text(PAGE_HTML, {
  contentType: "text/html; charset=utf-8",
  headers: {
    "content-security-policy": PAGE_CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store"
  }
})
