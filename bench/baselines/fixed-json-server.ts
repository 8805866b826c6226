/**
 * Baseline for the status API: a plain node:http server answering every GET with the same bytes.
 * `fixed-json-server.ts BODY_FILE CONTENT_TYPE`; prints `{"port":N}` once listening, serves until SIGTERM.
 * Easy to get wrong: it must send the same size and content type as the daemon's answer, with keep-alive as Node's
 * default, so the load generator meets the same transfer cost and only the daemon's own work differs.
 */
import { readFileSync } from "node:fs"
import { createServer } from "node:http"

const [bodyFile = "", contentType = "application/json"] = process.argv.slice(2)
const body = readFileSync(bodyFile)
const server = createServer((_req, res) => {
  res.writeHead(200, { "content-type": contentType, "content-length": body.length })
  res.end(body)
})
server.listen(0, "127.0.0.1", () => {
  const address = server.address()
  console.log(JSON.stringify({ port: typeof address === "object" && address !== null ? address.port : 0 }))
})
process.on("SIGTERM", () => {
  server.closeAllConnections()
  server.close(() => process.exit(0))
})
