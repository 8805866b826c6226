/**
 * The optional YAML configuration file (`--config FILE`): the settings' env names in lower case, e.g.
 * `queue_dir: /srv/queue`. Easy to get wrong: it yields raw text per env name, exactly like the environment, so
 * one validation serves both; lists and maps are written back in the env syntax (`a,b`, `acct:s1,s2;…`, `low=gpu`).
 * It never throws: YAML aliases (which `toJS` expands, or throws on) are reported as problems, like any other.
 */
import { type Alias, type Document, isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, visit } from "yaml"

/** Keys the file may use: every setting's env name, lower-cased. */
export type KnownEnvNames = ReadonlyArray<string>

const scalarText = (value: unknown): string | undefined =>
  typeof value === "string" || typeof value === "number" || typeof value === "boolean" ? String(value) : undefined

/** A value as the env would spell it, or undefined when its shape has no env spelling. */
const asEnvText = (value: unknown): string | undefined => {
  const scalar = scalarText(value)
  if (scalar !== undefined) return scalar
  if (Array.isArray(value)) {
    const items = value.map(scalarText)
    return items.every((item) => item !== undefined) ? items.join(",") : undefined
  }
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value)
    // `{acct1: [claude-1, claude-2]}` is an accounts map; `{low: gpu}` a complexity map.
    if (entries.every(([, v]) => Array.isArray(v))) {
      const groups = entries.map(([k, v]) => [k, asEnvText(v)] as const)
      return groups.every(([, v]) => v !== undefined) ? groups.map(([k, v]) => `${k}:${v}`).join(";") : undefined
    }
    const pairs = entries.map(([k, v]) => [k, scalarText(v)] as const)
    return pairs.every(([, v]) => v !== undefined) ? pairs.map(([k, v]) => `${k}=${v}`).join(",") : undefined
  }
  return undefined
}

export interface ConfigFile {
  /** Raw text by env name, for the settings the file gives usably. */
  readonly settings: Readonly<Record<string, string>>
  /** Every problem at once: syntax (with line and column), unknown keys, values of a shape no setting takes. */
  readonly problems: ReadonlyArray<string>
}

/** Every alias in a node: the file is small and written by hand, so there is no reason to expand any. */
const aliasesIn = (node: unknown): ReadonlyArray<Alias> => {
  const found: Array<Alias> = []
  if (isNode(node)) visit(node, { Alias: (_, alias) => void found.push(alias) })
  return found
}

/** A node's plain value; aliases are refused before this, and `maxAliasCount: 0` keeps any that slipped through inert. */
const toJS = (node: unknown, document: Document.Parsed): { readonly value: unknown } | { readonly error: string } => {
  if (!(isScalar(node) || isSeq(node) || isMap(node))) return { value: null }
  try {
    return { value: node.toJS(document, { maxAliasCount: 0 }) }
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) }
  }
}

export const parseConfigFile = (file: string, text: string, known: KnownEnvNames): ConfigFile => {
  try {
    return parseConfigText(file, text, known)
  } catch (error) {
    // A backstop: a configuration file must give a message, not a stack trace.
    return { settings: {}, problems: [`${file}: cannot be read: ${String(error)}`] }
  }
}

const parseConfigText = (file: string, text: string, known: KnownEnvNames): ConfigFile => {
  const lineCounter = new LineCounter()
  const document = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false, logLevel: "error" })
  const at = (offset: number | undefined) => {
    if (offset === undefined) return file
    const { col, line } = lineCounter.linePos(offset)
    return `${file}:${line}:${col}`
  }
  const syntax = document.errors[0]
  if (syntax !== undefined) {
    return { settings: {}, problems: [`${at(syntax.pos[0])}: invalid YAML: ${syntax.message.split("\n")[0]}`] }
  }
  const contents = document.contents
  if (contents === null || (isScalar(contents) && contents.value === null)) return { settings: {}, problems: [] }
  if (!isMap(contents)) return { settings: {}, problems: [`${file}: expected 'setting: value' lines`] }

  const problems: Array<string> = []
  const settings: Record<string, string> = {}
  for (const pair of contents.items) {
    const aliases = [...aliasesIn(pair.key), ...aliasesIn(pair.value)]
    if (aliases.length > 0) {
      for (const alias of aliases) {
        problems.push(
          `${at(alias.range?.[0])}: YAML aliases (*${alias.source}) are not allowed in the configuration file`
        )
      }
      continue
    }
    const key = isScalar(pair.key) ? String(pair.key.value) : ""
    const where = at(isScalar(pair.key) ? pair.key.range?.[0] : undefined)
    const env = key.toUpperCase()
    if (key !== key.toLowerCase() || !known.includes(env)) {
      problems.push(`${where}: unknown setting '${key}' (known: ${known.map((name) => name.toLowerCase()).join(", ")})`)
      continue
    }
    const read = toJS(pair.value, document)
    if ("error" in read) {
      problems.push(`${where}: '${key}' cannot be read: ${read.error}`)
      continue
    }
    const envText = read.value === null ? "" : asEnvText(read.value)
    if (envText === undefined) problems.push(`${where}: '${key}' has a value of a shape no setting takes`)
    else settings[env] = envText
  }
  return { settings, problems }
}

/** File settings under the environment: a non-blank env value wins. */
export const withEnvOver = (
  file: Readonly<Record<string, string>>,
  env: Readonly<Record<string, string | undefined>>
): Record<string, string | undefined> => {
  const merged: Record<string, string | undefined> = { ...file }
  for (const [key, value] of Object.entries(env)) if (value !== undefined && value.trim() !== "") merged[key] = value
  return merged
}
