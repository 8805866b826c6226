/**
 * An in-memory queue for unit tests of services: same contract as the filesystem store, no disk.
 * Easy to get wrong: `list` must order by name like the live store, and `create`/`move` must refuse a taken name,
 * or tests pass on luck.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type { DelegationMarker } from "../domain/marker.ts"
import type { TaskName } from "../domain/task.ts"
import { NameTaken, type Stage, type StoredTask, TaskNotFound, TaskStore } from "../ports/task-store.ts"

interface MemoryQueue {
  readonly files: ReadonlyMap<string, StoredTask>
  readonly markers: ReadonlyMap<TaskName, DelegationMarker>
  readonly errors: ReadonlyMap<TaskName, string>
  /** Identities handed out so far: each new file content is a new file, as a rename-into-place makes on disk. */
  readonly filesMade: number
}

const keyOf = (stage: Stage, name: TaskName) => `${stage}/${name}`

const withEntry = <K, V>(map: ReadonlyMap<K, V>, key: K, value: V | undefined): ReadonlyMap<K, V> => {
  const next = new Map(map)
  if (value === undefined) next.delete(key)
  else next.set(key, value)
  return next
}

export const makeMemoryTaskStore = Effect.gen(function*() {
  const state = yield* Ref.make<MemoryQueue>({ files: new Map(), markers: new Map(), errors: new Map(), filesMade: 0 })

  const put = (stage: Stage, name: TaskName, text: string) =>
    Effect.flatMap(Clock.currentTimeMillis, (mtimeMs) =>
      Ref.update(state, (queue) => ({
        ...queue,
        filesMade: queue.filesMade + 1,
        files: withEntry(queue.files, keyOf(stage, name), {
          stage,
          name,
          text,
          mtimeMs,
          size: new TextEncoder().encode(text).length,
          identity: `memory:${queue.filesMade + 1}`
        })
      })))
  const drop = (stage: Stage, name: TaskName) =>
    Ref.update(state, (queue) => ({ ...queue, files: withEntry(queue.files, keyOf(stage, name), undefined) }))
  const find = (stage: Stage, name: TaskName) =>
    Effect.map(Ref.get(state), (queue) => queue.files.get(keyOf(stage, name)))

  const store = TaskStore.of({
    list: (stage) =>
      Ref.get(state).pipe(
        Effect.map((queue) =>
          [...queue.files.values()].filter((file) => file.stage === stage).map((file) => file.name).sort()
        )
      ),
    strays: () => Effect.succeed([]),
    has: (stage, name) => Effect.map(find(stage, name), (file) => file !== undefined),
    // The memory store has no hard links: every file has one name.
    stat: (stage, name) =>
      Effect.flatMap(find(stage, name), (file) =>
        file === undefined
          ? Effect.fail(new TaskNotFound({ stage, name }))
          : Effect.succeed({ identity: file.identity, links: 1, mtimeMs: file.mtimeMs, size: file.size })),
    // Memory files have one name each.
    linked: () => Effect.succeed(new Map()),
    read: (stage, name) =>
      Effect.flatMap(
        find(stage, name),
        (file) => file === undefined ? Effect.fail(new TaskNotFound({ stage, name })) : Effect.succeed(file)
      ),
    create: (stage, name, text) =>
      Effect.flatMap(
        find(stage, name),
        (file) => file === undefined ? put(stage, name, text) : Effect.fail(new NameTaken({ stage, name }))
      ),
    replace: put,
    move: (from, to, name, toName = name) =>
      Effect.gen(function*() {
        const file = yield* find(from, name)
        if (file === undefined) return yield* new TaskNotFound({ stage: from, name })
        if ((yield* find(to, toName)) !== undefined) return yield* new NameTaken({ stage: to, name: toName })
        yield* Ref.update(state, (queue) => ({
          ...queue,
          files: withEntry(
            withEntry(queue.files, keyOf(from, name), undefined),
            keyOf(to, toName),
            { ...file, stage: to, name: toName }
          )
        }))
      }),
    remove: drop,
    quarantineStray: (stray) => Effect.die(new Error(`the memory store has no strays (${stray.display})`)),
    writeError: (name, reason) =>
      Ref.update(state, (queue) => ({ ...queue, errors: withEntry(queue.errors, name, reason) })),
    readMarker: (name) => Ref.get(state).pipe(Effect.map((queue) => Option.fromNullishOr(queue.markers.get(name)))),
    writeMarker: (name, marker) =>
      Ref.update(state, (queue) => ({ ...queue, markers: withEntry(queue.markers, name, marker) })),
    // One daemon per queue: its markers are all its own to reap.
    claimMarker: (name) => store.readMarker(name),
    removeMarker: (name) =>
      Ref.update(state, (queue) => ({ ...queue, markers: withEntry(queue.markers, name, undefined) })),
    atomically: (effect) => effect,
    listMarkers: () => Ref.get(state).pipe(Effect.map((queue) => [...queue.markers.keys()].sort()))
  })
  return { store, errors: Ref.get(state).pipe(Effect.map((queue) => queue.errors)) }
})

export const MemoryTaskStoreLayer = Layer.effect(TaskStore, Effect.map(makeMemoryTaskStore, ({ store }) => store))
