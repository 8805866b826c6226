/** hostPolicy, the status API's DNS-rebinding rule: which Host headers a server bound to each kind of address answers. */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { hostPolicy, type HostRule } from "../../src/adapters/http-api/host-header.ts"
import { RUNS } from "../domain/arbitraries.ts"

const verdicts = (rule: HostRule, hosts: ReadonlyArray<string | undefined>) => {
  const check = hostPolicy(rule)
  return Object.fromEntries(hosts.map((host) => [String(host), check(host)._tag]))
}

const loopbackNames = [
  "localhost",
  "localhost:7878",
  "LocalHost:80",
  "127.0.0.1",
  "127.0.0.1:7878",
  "127.1.2.3:9",
  "[::1]",
  "[::1]:7878"
]

describe("bound to a loopback address", () => {
  for (const bind of ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"]) {
    it(`${bind}: loopback names with or without a port are accepted, others refused`, () => {
      expect(verdicts({ bind, allowedHosts: [] }, loopbackNames)).toStrictEqual(
        Object.fromEntries(loopbackNames.map((host) => [host, "Accepted"]))
      )
      const others = [
        "evil.example",
        "evil.example:7878",
        "localhost.evil.example",
        "127.0.0.1.evil.example",
        "10.0.0.5"
      ]
      expect(verdicts({ bind, allowedHosts: [] }, others)).toStrictEqual(
        Object.fromEntries(others.map((host) => [host, "Refused"]))
      )
    })
  }

  it("a missing Host is refused: there is no name to check", () => {
    expect(hostPolicy({ bind: "127.0.0.1", allowedHosts: [] })(undefined)).toStrictEqual({
      _tag: "Refused",
      reason: "no Host header: this API answers only requests for localhost, 127.x.y.z or [::1]"
    })
  })

  it("the refusal names the Host it got and the names it answers", () => {
    expect(hostPolicy({ bind: "127.0.0.1", allowedHosts: [] })("evil.example:7878")).toStrictEqual({
      _tag: "Refused",
      reason:
        "Host \"evil.example:7878\" is not served here: this API answers only requests for localhost, 127.x.y.z or [::1]"
    })
  })

  it("an operator's name in allowedHosts is accepted too (a local proxy that keeps Host)", () => {
    expect(
      verdicts({ bind: "127.0.0.1", allowedHosts: ["status.internal"] }, ["status.internal:443", "other.internal"])
    )
      .toStrictEqual({ "status.internal:443": "Accepted", "other.internal": "Refused" })
  })

  it("what is not a host is refused: user info, paths, spaces, empty, bad ports, non-loopback IPv6", () => {
    const bad = [
      "",
      ":7878",
      "evil@127.0.0.1",
      "127.0.0.1/x",
      "127.0.0.1 evil",
      "localhost:99999",
      "localhost:x",
      "[::2]",
      "[fe80::1]"
    ]
    expect(verdicts({ bind: "127.0.0.1", allowedHosts: [] }, bad)).toStrictEqual(
      Object.fromEntries(bad.map((host) => [host, "Refused"]))
    )
  })

  it("forms a browser canonicalises to loopback are loopback (127.1, 0x7f.0.0.1, [0:0::1])", () => {
    expect(verdicts({ bind: "127.0.0.1", allowedHosts: [] }, ["127.1", "0x7f.0.0.1", "[0:0:0:0:0:0:0:1]:80"]))
      .toStrictEqual({
        "127.1": "Accepted",
        "0x7f.0.0.1": "Accepted",
        "[0:0:0:0:0:0:0:1]:80": "Accepted"
      })
  })
})

describe("bound to a specific non-loopback address", () => {
  it("Host must be that address, with or without a port", () => {
    expect(verdicts({ bind: "192.168.1.5", allowedHosts: [] }, [
      "192.168.1.5",
      "192.168.1.5:7878",
      "192.168.1.6",
      "localhost",
      "127.0.0.1",
      "evil.example",
      undefined
    ])).toStrictEqual({
      "192.168.1.5": "Accepted",
      "192.168.1.5:7878": "Accepted",
      "192.168.1.6": "Refused",
      localhost: "Refused",
      "127.0.0.1": "Refused",
      "evil.example": "Refused",
      undefined: "Refused"
    })
  })

  it("or a name in allowedHosts, compared without case or port", () => {
    const rule = { bind: "10.0.0.5", allowedHosts: ["Status.LAN", "queue.lan:7878"] }
    expect(verdicts(rule, ["status.lan", "STATUS.lan:7878", "queue.lan", "other.lan"])).toStrictEqual({
      "status.lan": "Accepted",
      "STATUS.lan:7878": "Accepted",
      "queue.lan": "Accepted",
      "other.lan": "Refused"
    })
    expect(hostPolicy(rule)("other.lan")).toStrictEqual({
      _tag: "Refused",
      reason:
        "Host \"other.lan\" is not served here: this API answers only requests for 10.0.0.5 or an allowed host name"
    })
  })

  it("an IPv6 address, however it is written", () => {
    expect(
      verdicts({ bind: "2001:db8::5", allowedHosts: [] }, ["[2001:db8::5]:7878", "[2001:DB8:0:0::5]", "[2001:db8::6]"])
    )
      .toStrictEqual({ "[2001:db8::5]:7878": "Accepted", "[2001:DB8:0:0::5]": "Accepted", "[2001:db8::6]": "Refused" })
  })

  it("a host name as bind address", () => {
    expect(verdicts({ bind: "status.lan", allowedHosts: [] }, ["status.lan:7878", "evil.example"]))
      .toStrictEqual({ "status.lan:7878": "Accepted", "evil.example": "Refused" })
  })
})

describe("bound to every interface", () => {
  for (const bind of ["0.0.0.0", "::", "[::]"]) {
    it(`${bind}: any Host, or none, is accepted (the token protects it)`, () => {
      expect(verdicts({ bind, allowedHosts: [] }, ["evil.example", "localhost", "10.0.0.5:1", "not a host", undefined]))
        .toStrictEqual({
          "evil.example": "Accepted",
          localhost: "Accepted",
          "10.0.0.5:1": "Accepted",
          "not a host": "Accepted",
          undefined: "Accepted"
        })
    })
  }
})

describe("hostPolicy (property)", () => {
  const label = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/)
  const name = fc.array(label, { minLength: 2, maxLength: 4 }).map((labels) => labels.join("."))
  const port = fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined })
  const withPort = (host: string, p: number | undefined) => p === undefined ? host : `${host}:${p}`

  it("bound to loopback, a name that is not localhost is refused whatever its port, unless it is allowed", () => {
    fc.assert(
      fc.property(name, port, fc.boolean(), (host, p, allow) => {
        const verdict = hostPolicy({ bind: "127.0.0.1", allowedHosts: allow ? [host] : [] })(withPort(host, p))._tag
        expect(verdict).toBe(allow ? "Accepted" : "Refused")
      }),
      RUNS
    )
  })

  it("bound to loopback, every 127.x.y.z with any port is accepted", () => {
    fc.assert(
      fc.property(fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255)), port, ([a, b, c], p) => {
        expect(hostPolicy({ bind: "::1", allowedHosts: [] })(withPort(`127.${a}.${b}.${c}`, p))._tag).toBe("Accepted")
      }),
      RUNS
    )
  })
})
