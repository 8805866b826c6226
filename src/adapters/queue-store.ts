/**
 * The queue the commands act on, as the configuration says: the queue directory's files, or with
 * QUEUE_BACKEND=postgres the shared queue's rows (every host's; the directory is then only this host's drop box and
 * the way to its daemon).
 * Easy to get wrong: a command is no host — it holds no leases and sees every host's runs — and on a shared queue a
 * daemon that has died leaves its runs to the other hosts, so what a command changes directly is guarded by the rows'
 * versions and run tokens alone, as any host's change is.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { SqlError } from "effect/sql/SqlError"
import { type AppConfig, sharedQueueUrl } from "../config.ts"
import type { StoreError, TaskStore } from "../ports/task-store.ts"
import { FsTaskStoreLayer } from "./fs-task-store.ts"
import { PgTaskStoreLayer } from "./pg/task-store.ts"

/** The TaskStore of the queue at `root` under `config`. */
export const queueStoreLayer = (root: string, config: AppConfig): Layer.Layer<TaskStore, StoreError | SqlError> =>
  Option.match(sharedQueueUrl(config), {
    onNone: () => FsTaskStoreLayer({ root, maxTaskBytes: config.maxTaskSize }),
    onSome: (url) =>
      PgTaskStoreLayer({ maxTaskBytes: config.maxTaskSize }).pipe(
        Layer.provide(PgClient.layer({ url, applicationName: "claude-failover command", connectTimeout: "10 seconds" }))
      )
  })

/** Where the queue is, as problems name it. */
export const queueLabel = (root: string, config: AppConfig): string =>
  config.queueBackend === "postgres" ? "the shared queue" : root
