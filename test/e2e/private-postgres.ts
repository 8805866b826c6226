/**
 * A PostgreSQL server of the test's own (initdb in a temporary directory, a free port), so a test can stop and
 * restart it without touching the machine's server that other tests share.
 * Easy to get wrong: PostgreSQL refuses to run as root, so as root its programs run as the `postgres` user, which
 * must own the directory.
 */
import { execFileSync } from "node:child_process"
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** The newest installed server's programs (Debian: /usr/lib/postgresql/VERSION/bin). */
const serverBin = (): string => {
  const base = "/usr/lib/postgresql"
  const versions = existsSync(base) ? readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => +b - +a) : []
  const bin = versions.map((v) => join(base, v, "bin")).find((dir) => existsSync(join(dir, "pg_ctl")))
  if (bin === undefined) throw new Error(`no PostgreSQL server programs under ${base}`)
  return bin
}

/** A port nobody listens on right now. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject()))
    })
  })

export class PrivatePostgres {
  readonly dir = mkdtempSync(join(tmpdir(), "cf-pg-"))
  private readonly bin = serverBin()
  private readonly asRoot = process.getuid?.() === 0

  readonly port: number

  private constructor(port: number) {
    this.port = port
  }

  /** A new cluster, started. */
  static async start(): Promise<PrivatePostgres> {
    const server = new PrivatePostgres(await freePort())
    mkdirSync(join(server.dir, "sockets"))
    if (server.asRoot) {
      const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim())
      const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim())
      for (const path of [server.dir, join(server.dir, "sockets")]) chownSync(path, uid, gid)
    }
    server.run("initdb", ["-D", server.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
    server.pgCtl("start")
    return server
  }

  get data(): string {
    return join(this.dir, "data")
  }

  url(database = "postgres"): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`
  }

  /** Runs SQL with psql; its rows, one per line, fields split by `|`. */
  query(sql: string, database = "postgres"): Array<Array<string>> {
    const out = execFileSync(
      "psql",
      ["-h", "127.0.0.1", "-p", String(this.port), "-U", "postgres", "-d", database, "-At", "-c", sql],
      { encoding: "utf8" }
    )
    return out.split("\n").filter((line) => line !== "").map((line) => line.split("|"))
  }

  /** A fast shutdown: every connection is cut, as when the server is stopped for an upgrade. */
  stop(): void {
    this.run("pg_ctl", ["-D", this.data, "-m", "fast", "-w", "stop"])
  }

  /** Started again on the same port and data. */
  startAgain(): void {
    this.pgCtl("start")
  }

  destroy(): void {
    try {
      this.run("pg_ctl", ["-D", this.data, "-m", "immediate", "-w", "stop"])
    } catch {
      // not running
    }
    rmSync(this.dir, { recursive: true, force: true })
  }

  private pgCtl(action: "start"): void {
    const options = `-p ${this.port} -c listen_addresses=127.0.0.1 -k ${join(this.dir, "sockets")} -c fsync=off`
    this.run("pg_ctl", ["-D", this.data, "-o", options, "-l", join(this.dir, "server.log"), "-w", action])
  }

  private run(program: string, args: ReadonlyArray<string>): void {
    const path = join(this.bin, program)
    if (this.asRoot) execFileSync("runuser", ["-u", "postgres", "--", path, ...args], { stdio: "ignore" })
    else execFileSync(path, args, { stdio: "ignore" })
  }
}
