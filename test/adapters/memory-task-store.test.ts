import { MemoryTaskStoreLayer } from "../../src/adapters/memory-task-store.ts"
import { taskStoreContract } from "./task-store-contract.ts"

taskStoreContract("memory task store", () => MemoryTaskStoreLayer)
