// Python-flavoured JSON for the productpage stand-in.
//
// Upstream productpage parses backend answers with `requests`' `res.json()` (simplejson)
// and re-serialises them with `simplejson.dumps` (separators ", " / ": ", ensure_ascii,
// float repr, dict semantics). To reproduce those bytes exactly we keep the Python value
// model: ints are arbitrary precision, floats are distinct from ints, objects are ordered
// dicts (a repeated key keeps its first position and takes the last value).

export class PyInt {
  constructor (readonly value: bigint) {}
}

export class PyFloat {
  constructor (readonly value: number) {}
}

export type PyDict = Map<string, PyValue>
export type PyValue = null | boolean | string | PyInt | PyFloat | PyValue[] | PyDict

export class PyJsonError extends Error {
  override name = 'PyJsonError'
}

const WS = new Set([' ', '\t', '\n', '\r'])

/** Parse JSON text like simplejson.loads (accepts NaN / Infinity / -Infinity, rejects extra data). */
export function pyJsonLoads (text: string): PyValue {
  let s = text
  if (s.charCodeAt(0) === 0xfeff) s = s.slice(1) // requests decodes with utf-8-sig when a BOM is present
  let i = 0
  const fail = (msg: string): never => { throw new PyJsonError(`${msg}: line 1 column ${i + 1} (char ${i})`) }
  const skip = (): void => { while (i < s.length && WS.has(s[i])) i++ }

  const parseString = (): string => {
    i++ // opening quote
    let out = ''
    for (;;) {
      if (i >= s.length) fail('Unterminated string starting at')
      const c = s[i]
      if (c === '"') { i++; return out }
      if (c === '\\') {
        const e = s[i + 1]
        i += 2
        switch (e) {
          case '"': out += '"'; break
          case '\\': out += '\\'; break
          case '/': out += '/'; break
          case 'b': out += '\b'; break
          case 'f': out += '\f'; break
          case 'n': out += '\n'; break
          case 'r': out += '\r'; break
          case 't': out += '\t'; break
          case 'u': {
            const hex = s.slice(i, i + 4)
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('Invalid \\uXXXX escape sequence')
            out += String.fromCharCode(parseInt(hex, 16))
            i += 4
            break
          }
          default: i -= 2; fail('Invalid \\X escape sequence')
        }
        continue
      }
      if (c.charCodeAt(0) < 0x20) fail('Invalid control character at')
      out += c
      i++
    }
  }

  const parseValue = (depth: number): PyValue => {
    if (depth > 1000) fail('Maximum nesting depth exceeded')
    skip()
    const c = s[i]
    if (c === undefined) return fail('Expecting value')
    if (c === '{') {
      i++
      const obj: PyDict = new Map()
      skip()
      if (s[i] === '}') { i++; return obj }
      for (;;) {
        skip()
        if (s[i] !== '"') fail('Expecting property name enclosed in double quotes')
        const key = parseString()
        skip()
        if (s[i] !== ':') fail("Expecting ':' delimiter")
        i++
        obj.set(key, parseValue(depth + 1))
        skip()
        if (s[i] === ',') { i++; continue }
        if (s[i] === '}') { i++; return obj }
        fail("Expecting ',' delimiter")
      }
    }
    if (c === '[') {
      i++
      const arr: PyValue[] = []
      skip()
      if (s[i] === ']') { i++; return arr }
      for (;;) {
        arr.push(parseValue(depth + 1))
        skip()
        if (s[i] === ',') { i++; continue }
        if (s[i] === ']') { i++; return arr }
        fail("Expecting ',' delimiter")
      }
    }
    if (c === '"') return parseString()
    for (const [lit, val] of [['true', true], ['false', false], ['null', null], ['NaN', new PyFloat(NaN)], ['Infinity', new PyFloat(Infinity)], ['-Infinity', new PyFloat(-Infinity)]] as const) {
      if (s.startsWith(lit, i)) { i += lit.length; return val }
    }
    const m = /^-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(s.slice(i, i + 4096))
    if (m === null) return fail('Expecting value')
    i += m[0].length
    if (m[1] === undefined && m[2] === undefined) return new PyInt(BigInt(m[0]))
    return new PyFloat(Number(m[0]))
  }

  const v = parseValue(0)
  skip()
  if (i !== s.length) fail('Extra data')
  return v
}

/** Python's repr() of a float (shortest round-trip digits, Python's fixed/exponent switch). */
export function pyFloatRepr (x: number): string {
  if (Number.isNaN(x)) return 'NaN'
  if (x === Infinity) return 'inf'
  if (x === -Infinity) return '-inf'
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0'
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(x.toExponential())
  if (m === null) return String(x)
  const [, sign, first, rest = '', expText] = m
  const digits = first + rest
  const exp = parseInt(expText, 10)
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      const intPart = digits.padEnd(exp + 1, '0').slice(0, exp + 1)
      const frac = digits.slice(exp + 1)
      return `${sign}${intPart}.${frac === '' ? '0' : frac}`
    }
    return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`
  }
  const mant = rest === '' ? first : `${first}.${rest}`
  return `${sign}${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`
}

function pyJsonFloat (x: number): string {
  if (Number.isNaN(x)) return 'NaN'
  if (x === Infinity) return 'Infinity'
  if (x === -Infinity) return '-Infinity'
  return pyFloatRepr(x)
}

/** JSON string literal as simplejson/json with ensure_ascii=True writes it. */
export function pyJsonString (s: string): string {
  let out = '"'
  for (let k = 0; k < s.length; k++) {
    const c = s[k]
    const code = s.charCodeAt(k)
    if (c === '"') out += '\\"'
    else if (c === '\\') out += '\\\\'
    else if (c === '\n') out += '\\n'
    else if (c === '\r') out += '\\r'
    else if (c === '\t') out += '\\t'
    else if (c === '\b') out += '\\b'
    else if (c === '\f') out += '\\f'
    else if (code < 0x20 || code > 0x7e) out += '\\u' + code.toString(16).padStart(4, '0')
    else out += c
  }
  return out + '"'
}

/** simplejson.dumps(value) with its defaults: separators (", ", ": "), ensure_ascii. */
export function pyJsonDumps (v: PyValue): string {
  if (v === null) return 'null'
  if (v === true) return 'true'
  if (v === false) return 'false'
  if (typeof v === 'string') return pyJsonString(v)
  if (v instanceof PyInt) return v.value.toString()
  if (v instanceof PyFloat) return pyJsonFloat(v.value)
  if (Array.isArray(v)) return '[' + v.map(pyJsonDumps).join(', ') + ']'
  const parts: string[] = []
  for (const [k, val] of v) parts.push(`${pyJsonString(k)}: ${pyJsonDumps(val)}`)
  return '{' + parts.join(', ') + '}'
}

/** Convert a plain JS value (from our own data) to the Python model. */
export function toPy (v: unknown): PyValue {
  if (v === null || v === undefined) return null
  if (typeof v === 'boolean' || typeof v === 'string') return v
  if (typeof v === 'bigint') return new PyInt(v)
  if (typeof v === 'number') return Number.isInteger(v) ? new PyInt(BigInt(v)) : new PyFloat(v)
  if (Array.isArray(v)) return v.map(toPy)
  if (v instanceof PyInt || v instanceof PyFloat || v instanceof Map) return v as PyValue
  const m: PyDict = new Map()
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) m.set(k, toPy(val))
  return m
}
