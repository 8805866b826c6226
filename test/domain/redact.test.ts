/** The redactor's promise, restated: no secret survives in any form, and text without one comes back as it was. */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import {
  databaseUrlSecrets,
  dropPartialSecret,
  hideUrlCredentials,
  makeRedactor,
  urlSecrets
} from "../../src/domain/redact.ts"
import { RUNS } from "./arbitraries.ts"

const PROPERTY_RUNS = { numRuns: RUNS.numRuns * 5 }

/** The forms a secret may take on the wire, computed here with Node's own encoders rather than the module's. */
const wireForms = (secret: string): ReadonlyArray<string> => {
  const base64 = Buffer.from(secret, "utf8").toString("base64")
  let urlEncoded = secret
  try {
    urlEncoded = encodeURIComponent(secret)
  } catch {
    // a lone surrogate has no URL form
  }
  return [secret, urlEncoded, base64, base64.replace(/=+$/, ""), Buffer.from(secret, "utf8").toString("base64url")]
}

// Small alphabets make secrets overlap, contain each other and touch; `<`, `>` and the letters of "redacted" make them
// collide with the marker itself.
const tight = fc.string({
  unit: fc.constantFrom("a", "b", "c", "d", "e", "<", ">", "%", "="),
  minLength: 1,
  maxLength: 6
})
const anySecret = fc.oneof(
  tight,
  fc.string({ unit: "binary", minLength: 1, maxLength: 12 }),
  fc.string({ minLength: 1 })
)

/** Text made of random pieces, whole secrets and the halves of secrets, in any order. */
const textWith = (secrets: ReadonlyArray<string>) =>
  fc.array(
    fc.oneof(
      fc.string({ maxLength: 8 }),
      tight,
      fc.constantFrom(...secrets),
      fc.tuple(fc.constantFrom(...secrets), fc.nat(), fc.boolean()).map(([secret, at, head]) => {
        const cut = at % (secret.length + 1)
        return head ? secret.slice(0, cut) : secret.slice(cut)
      })
    ),
    { maxLength: 12 }
  ).map((pieces) => pieces.join(""))

const secretsAndText = fc.array(anySecret, { minLength: 1, maxLength: 4 }).chain((secrets) =>
  fc.tuple(fc.constant(secrets), textWith(secrets))
)

describe("makeRedactor", () => {
  it("no secret, in any of its forms, is left in the output, wherever and however often it was put in", () => {
    fc.assert(
      fc.property(secretsAndText, ([secrets, text]) => {
        const out = makeRedactor(secrets)(text)
        for (const secret of secrets) {
          for (const form of wireForms(secret))
            expect(out.includes(form), `${JSON.stringify(form)} in ${JSON.stringify(out)}`).toBe(false)
        }
      }),
      PROPERTY_RUNS
    )
  })

  it("text with no secret in it comes back unchanged", () => {
    fc.assert(
      fc.property(
        fc.array(anySecret, { maxLength: 4 }),
        fc.string({ unit: "binary", maxLength: 40 }),
        (secrets, text) => {
          fc.pre(secrets.every((secret) => wireForms(secret).every((form) => !text.includes(form))))
          expect(makeRedactor(secrets)(text)).toBe(text)
        }
      ),
      PROPERTY_RUNS
    )
  })

  it("overlapping occurrences become one marker, adjacent ones one each, the longer secret wins", () => {
    expect(makeRedactor(["abc", "bcd"])("xabcdy")).toBe("x<redacted>y")
    expect(makeRedactor(["key"])("keykey")).toBe("<redacted><redacted>")
    expect(makeRedactor(["sk", "sk-live-1"])("a sk-live-1 b sk c")).toBe("a <redacted> b <redacted> c")
  })

  it("finds the URL-encoded, JSON-escaped and base64 forms, Basic auth included", () => {
    const redact = makeRedactor(["p@ss/wörd", "alice:s3cret", "q\"uote"])
    expect(redact("u=p%40ss%2Fw%C3%B6rd")).toBe("u=<redacted>")
    expect(redact(`Authorization: Basic ${Buffer.from("alice:s3cret").toString("base64")}`)).toBe(
      "Authorization: Basic <redacted>"
    )
    expect(redact(JSON.stringify({ echo: "q\"uote" }))).toBe("{\"echo\":\"<redacted>\"}")
  })

  it("ignores empty secrets; with none, it is the identity", () => {
    expect(makeRedactor(["", ""])("anything")).toBe("anything")
    expect(makeRedactor([])("")).toBe("")
  })

  it("a secret that could be read across `<redacted>` gets a marker it cannot be read in", () => {
    const out = makeRedactor(["act"])("react fast")
    expect(out).not.toContain("act")
    expect(out).toMatch(/^re█+ fast$/)
  })
})

describe("dropPartialSecret", () => {
  it("a text cut inside a secret loses the piece", () => {
    const secrets = ["sk-0123456789"]
    const cut = "error: Bearer sk-0123"
    const kept = dropPartialSecret(cut, secrets)
    expect(cut.startsWith(kept)).toBe(true)
    expect(kept).not.toContain("sk-")
    expect(dropPartialSecret(cut, [])).toBe(cut)
  })
})

describe("URL credentials", () => {
  it("hides the user-info, and only that", () => {
    expect(hideUrlCredentials("https://alice:s3cret@example.com/v1")).toBe("https://<redacted>@example.com/v1")
    expect(hideUrlCredentials("https://token@example.com")).toBe("https://<redacted>@example.com")
    expect(hideUrlCredentials("https://example.com/@team")).toBe("https://example.com/@team")
    expect(hideUrlCredentials("http://127.0.0.1:8787")).toBe("http://127.0.0.1:8787")
  })

  it("hides everything up to the last @ of a value that is no URL", () => {
    expect(hideUrlCredentials("https://alice:s3/cret@exa mple.com")).toBe("https://<redacted>@exa mple.com")
    expect(hideUrlCredentials("alice:s3cret@example.com")).toBe("<redacted>@example.com")
  })

  it("names user:password and the password, encoded and decoded", () => {
    expect(urlSecrets("https://alice:s3cret@example.com")).toEqual(["alice:s3cret", "s3cret"])
    expect(urlSecrets("https://a%40b:p%2Fw@example.com")).toEqual(["a%40b:p%2Fw", "a@b:p/w", "p%2Fw", "p/w"])
    expect(urlSecrets("https://example.com")).toEqual([])
  })

  it("names a database URL and its password, wherever it is given, but not a user name without one", () => {
    const plain = "postgres://postgres@127.0.0.1:5432/queue"
    expect(databaseUrlSecrets(plain)).toEqual([plain])
    // The word "postgres" in a log line stays: only the whole URL is hidden.
    const redact = makeRedactor(databaseUrlSecrets(plain))
    expect(redact(`read postgres:cf_tasks/pending/x.md (${plain})`)).toBe(
      "read postgres:cf_tasks/pending/x.md (<redacted>)"
    )
    const withPassword = "postgresql://app:p%40ss@db.example:5432/queue?sslmode=require"
    expect(databaseUrlSecrets(withPassword)).toEqual(expect.arrayContaining([withPassword, "p%40ss", "p@ss"]))
    expect(databaseUrlSecrets(withPassword)).not.toContain("app")
    const inQuery = "postgres://app@db.example/queue?password=s3cr%2Bt"
    expect(databaseUrlSecrets(inQuery)).toEqual(expect.arrayContaining(["s3cr+t", "s3cr%2Bt"]))
    expect(makeRedactor(databaseUrlSecrets(inQuery))("auth failed for s3cr+t")).toBe("auth failed for <redacted>")
  })
})
