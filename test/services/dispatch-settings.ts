/** Dispatcher settings for service tests: DESIGN's defaults, a fixed zone and queue path, overridable per test. */
import { Duration, Option } from "effect"
import { DEFAULT_COMPLEXITY_MAP } from "../../src/domain/routing.ts"
import type { DispatchSettings } from "../../src/services/dispatcher.ts"

export const dispatchSettingsForTests = (overrides: Partial<DispatchSettings> = {}): DispatchSettings => ({
  sessions: { names: Option.none(), prefix: "claude-" },
  accounts: Option.none(),
  pollInterval: Duration.seconds(2),
  scanInterval: Duration.seconds(5),
  staleAfter: Duration.minutes(30),
  requeueAfter: Option.none(),
  limitCooldown: Duration.hours(5),
  maxAttempts: 5,
  settleAfter: Duration.seconds(1),
  timeZone: "UTC",
  queueDir: "/q",
  host: undefined,
  command: { program: ["/usr/bin/node", "/app/bin/claude-failover.js"], queueDir: "/q" },
  routing: {
    delegationEnabled: false,
    complexityMap: DEFAULT_COMPLEXITY_MAP,
    failoverProvider: "claude-api",
    limitPolicy: "requeue"
  },
  enterDelay: Duration.millis(200),
  idle: { policy: "attention", grace: Duration.minutes(2) },
  ...overrides
})
