/**
 * An in-memory queue for unit tests of services: same contract as the filesystem store, no disk.
 * Easy to get wrong: `list` must order by name like the live store, or tests pass on luck.
 */
import { Clock, Effect, Layer, Option, Ref } from "effect"
import type { DelegationMarker } from "../domain/marker.ts"
import type { TaskName } from "../domain/task.ts"
import { type Stage, type StoredTask, TaskNotFound, TaskStore } from "../ports/task-store.ts"

interface MemoryQueue {
  readonly files: ReadonlyMap<string, StoredTask>
  readonly markers: ReadonlyMap<TaskName, DelegationMarker>
  readonly errors: ReadonlyMap<TaskName, string>
}

const keyOf = (stage: Stage, name: TaskName) => `${stage}/${name}`

const withEntry = <K, V>(map: ReadonlyMap<K, V>, key: K, value: V | undefined): ReadonlyMap<K, V> => {
  const next = new Map(map)
  if (value === undefined) next.delete(key)
  else next.set(key, value)
  return next
}

export const makeMemoryTaskStore = Effect.gen(function*() {
  const state = yield* Ref.make<MemoryQueue>({ files: new Map(), markers: new Map(), errors: new Map() })

  const put = (stage: Stage, name: TaskName, text: string) =>
    Effect.flatMap(Clock.currentTimeMillis, (mtimeMs) =>
      Ref.update(state, (queue) => ({
        ...queue,
        files: withEntry(queue.files, keyOf(stage, name), { stage, name, text, mtimeMs })
      })))
  const drop = (stage: Stage, name: TaskName) =>
    Ref.update(state, (queue) => ({ ...queue, files: withEntry(queue.files, keyOf(stage, name), undefined) }))

  const store = TaskStore.of({
    list: (stage) =>
      Ref.get(state).pipe(Effect.map((queue) =>
        [...queue.files.values()].filter((file) => file.stage === stage).map((file) => file.name).sort()
      )),
    read: (stage, name) =>
      Ref.get(state).pipe(Effect.flatMap((queue) => {
        const file = queue.files.get(keyOf(stage, name))
        return file === undefined ? Effect.fail(new TaskNotFound({ stage, name })) : Effect.succeed(file)
      })),
    write: put,
    move: (from, to, name) =>
      Ref.get(state).pipe(Effect.flatMap((queue) => {
        const file = queue.files.get(keyOf(from, name))
        return file === undefined
          ? Effect.fail(new TaskNotFound({ stage: from, name }))
          : Effect.andThen(put(to, name, file.text), drop(from, name))
      })),
    transfer: (from, to, name, text) => Effect.andThen(put(to, name, text), drop(from, name)),
    remove: drop,
    writeError: (name, reason) =>
      Ref.update(state, (queue) => ({ ...queue, errors: withEntry(queue.errors, name, reason) })),
    readMarker: (name) => Ref.get(state).pipe(Effect.map((queue) => Option.fromNullishOr(queue.markers.get(name)))),
    writeMarker: (name, marker) =>
      Ref.update(state, (queue) => ({ ...queue, markers: withEntry(queue.markers, name, marker) })),
    removeMarker: (name) =>
      Ref.update(state, (queue) => ({ ...queue, markers: withEntry(queue.markers, name, undefined) })),
    listMarkers: () => Ref.get(state).pipe(Effect.map((queue) => [...queue.markers.keys()].sort()))
  })
  return { store, errors: Ref.get(state).pipe(Effect.map((queue) => queue.errors)) }
})

export const MemoryTaskStoreLayer = Layer.effect(TaskStore, Effect.map(makeMemoryTaskStore, ({ store }) => store))
