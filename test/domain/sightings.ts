/** One look at a session for tests of the session book and the signals: an idle session with an empty box by default. */
import { Option } from "effect"
import type { Sighting } from "../../src/domain/session-book.ts"

export const aSighting = (overrides: Partial<Sighting> = {}): Sighting => ({
  session: "claude-1",
  state: "idle",
  signal: "pane",
  detail: Option.none(),
  banner: Option.none(),
  resetAt: Option.none(),
  autoContinue: false,
  question: Option.none(),
  inputBox: Option.some(""),
  fingerprint: "x",
  ...overrides
})
