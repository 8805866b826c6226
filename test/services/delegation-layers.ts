/** Delegation on the in-memory secutools, for service tests; needs a TaskStore. */
import { Duration, Layer } from "effect"
import { MemorySecutoolsLayer } from "../../src/adapters/memory-secutools.ts"
import { DelegationCountersRef, DelegationLayer, type DelegationSettings } from "../../src/services/delegation.ts"
import { TaskLocks } from "../../src/services/task-locks.ts"

export const delegationSettings = (overrides: Partial<DelegationSettings> = {}): DelegationSettings => ({
  reapInterval: Duration.seconds(5),
  reapConcurrency: 4,
  jobTimeout: Duration.hours(6),
  ...overrides
})

export const memoryDelegation = (overrides: Partial<DelegationSettings> = {}) =>
  DelegationLayer(delegationSettings(overrides)).pipe(
    Layer.provideMerge(Layer.mergeAll(MemorySecutoolsLayer, DelegationCountersRef.layer, TaskLocks.layer))
  )
