// productpage stand-in (upstream: Python Flask, samples/bookinfo/src/productpage/productpage.py
// and templates/productpage.html). See docs/architecture.md#bookinfo-stand-ins.
//
// Routes: / and /index.html, /health, POST /login, GET /logout, /productpage,
// /api/v1/products, /api/v1/products/<id>[/reviews|/ratings], /metrics, /static/<path>.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { statSync } from 'node:fs'
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http'
import { dirname, extname, join, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { httpGet, serviceBaseUrl, type HttpResult } from './http-client.js'
import type { ProductpageOptions } from './options.js'
import { PyFloat, PyInt, pyFloatRepr, pyJsonDumps, pyJsonLoads, toPy, type PyDict, type PyValue } from './pyjson.js'
import { B3_HEADERS, TRACE_HEADERS, USER_HEADERS, copyHeaders, escapeHtml, headerValue, readBody, requestPath, requestQuery, safeDecode } from './util.js'

// ---------------------------------------------------------------------------
// Constants

/** Headers copied verbatim from the incoming request (upstream `incoming_headers`). */
export const PRODUCTPAGE_PROPAGATED_HEADERS: readonly string[] = [...TRACE_HEADERS, 'sw8', ...USER_HEADERS]

/** B3 headers (upstream: extracted and re-injected by the B3 propagator, i.e. passed through). */
export { B3_HEADERS }

export const DETAILS_UNAVAILABLE = 'Sorry, product details are currently unavailable for this book.'
export const REVIEWS_UNAVAILABLE = 'Sorry, product reviews are currently unavailable for this book.'
export const RATINGS_UNAVAILABLE = 'Sorry, product ratings are currently unavailable for this book.'

const PRODUCTS = [{
  id: 0,
  title: 'The Comedy of Errors',
  descriptionHtml: '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: The Comedy of Errors is one of <b>William Shakespeare\'s</b> early plays. It is his shortest and one of his most farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, in addition to puns and word play.'
}]

const HTML_TYPE = 'text/html; charset=utf-8'

// ---------------------------------------------------------------------------
// Static files

/** demo/bookinfo/static, found from the TS source (next to this file) or from dist/demo/bookinfo. */
export function defaultStaticDir (here: string = dirname(fileURLToPath(import.meta.url))): string {
  const candidates = [join(here, 'static'), resolve(here, '..', '..', '..', 'demo', 'bookinfo', 'static')]
  for (const c of candidates) {
    try {
      if (statSync(c).isDirectory()) return c
    } catch { /* try the next one */ }
  }
  return candidates[0]
}

const MIME: Record<string, string> = {
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/vnd.microsoft.icon',
  '.html': 'text/html; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.json': 'application/json'
}

// ---------------------------------------------------------------------------
// Flask-like error pages

function flaskError (status: number): string {
  const pages: Record<number, [string, string]> = {
    404: ['Not Found', 'The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.'],
    405: ['Method Not Allowed', 'The method is not allowed for the requested URL.'],
    500: ['Internal Server Error', 'The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application.']
  }
  const [title, text] = pages[status] ?? ['Error', '']
  return `<!doctype html>\n<html lang=en>\n<title>${status} ${title}</title>\n<h1>${title}</h1>\n<p>${text}</p>\n`
}

function redirectBody (location: string): string {
  const h = escapeHtml(location)
  return '<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n<h1>Redirecting...</h1>\n' +
    `<p>You should be redirected automatically to the target URL: <a href="${h}">${h}</a>. If not, click the link.\n`
}

// ---------------------------------------------------------------------------
// Jinja-ish evaluation over Python values (for the template)

const UNDEF: unique symbol = Symbol('jinja-undefined')
type JV = PyValue | typeof UNDEF

class TemplateError extends Error {}

function attr (v: JV, key: string): JV {
  if (v instanceof Map) return v.has(key) ? (v.get(key) as PyValue) : UNDEF
  return UNDEF
}

function truthy (v: JV): boolean {
  if (v === UNDEF || v === null || v === false) return false
  if (v === true) return true
  if (typeof v === 'string') return v.length > 0
  if (v instanceof PyInt) return v.value !== 0n
  if (v instanceof PyFloat) return v.value !== 0
  if (Array.isArray(v)) return v.length > 0
  return v.size > 0
}

function pyStrRepr (s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'"
  let out = ''
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0
    if (ch === '\\') out += '\\\\'
    else if (ch === q) out += '\\' + q
    else if (ch === '\n') out += '\\n'
    else if (ch === '\r') out += '\\r'
    else if (ch === '\t') out += '\\t'
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0')
    else out += ch
  }
  return q + out + q
}

function pyRepr (v: PyValue): string {
  if (typeof v === 'string') return pyStrRepr(v)
  if (Array.isArray(v)) return '[' + v.map(pyRepr).join(', ') + ']'
  if (v instanceof Map) return '{' + [...v].map(([k, x]) => `${pyStrRepr(k)}: ${pyRepr(x)}`).join(', ') + '}'
  return pyStr(v)
}

/** Python str() as Jinja prints it; Undefined prints as ''. */
function pyStr (v: JV): string {
  if (v === UNDEF) return ''
  if (v === null) return 'None'
  if (v === true) return 'True'
  if (v === false) return 'False'
  if (typeof v === 'string') return v
  if (v instanceof PyInt) return v.value.toString()
  if (v instanceof PyFloat) return pyFloatRepr(v.value)
  return pyRepr(v)
}

/** `{{ v }}` with autoescape. */
function out (v: JV): string {
  return escapeHtml(pyStr(v))
}

function iter (v: JV): JV[] {
  if (v === UNDEF) return []
  if (Array.isArray(v)) return v
  if (v instanceof Map) return [...v.keys()]
  if (typeof v === 'string') return [...v]
  throw new TemplateError(`'${pyStr(v)}' object is not iterable`)
}

const MAX_RANGE = 100000n

/** Python int() semantics needed by `range(x)` (bool is an int; floats are a TypeError). */
function asInt (v: JV): bigint {
  if (v === true) return 1n
  if (v === false) return 0n
  if (v instanceof PyInt) return v.value
  throw new TemplateError('range() argument must be an integer')
}

function rangeCount (n: bigint): number {
  if (n <= 0n) return 0
  return Number(n > MAX_RANGE ? MAX_RANGE : n)
}

// ---------------------------------------------------------------------------
// Templates

const STAR_PATH = 'M10.868 2.884c-.321-.772-1.415-.772-1.736 0l-1.83 4.401-4.753.381c-.833.067-1.171 1.107-.536 1.651l3.62 3.102-1.106 4.637c-.194.813.691 1.456 1.405 1.02L10 15.591l4.069 2.485c.713.436 1.598-.207 1.404-1.02l-1.106-4.637 3.62-3.102c.635-.544.297-1.584-.536-1.65l-4.752-.382-1.831-4.401z'
const EMPTY_STAR_PATH = 'M11.48 3.499a.562.562 0 0 1 1.04 0l2.125 5.111a.563.563 0 0 0 .475.345l5.518.442c.499.04.701.663.321.988l-4.204 3.602a.563.563 0 0 0-.182.557l1.285 5.385a.562.562 0 0 1-.84.61l-4.725-2.885a.562.562 0 0 0-.586 0L6.982 20.54a.562.562 0 0 1-.84-.61l1.285-5.386a.562.562 0 0 0-.182-.557l-4.204-3.602a.562.562 0 0 1 .321-.988l5.518-.442a.563.563 0 0 0 .475-.345L11.48 3.5Z'

const FILLED_STAR = `              <svg id="glyphicon glyphicon-star" class="h-5 w-5 flex-none" viewBox="0 0 20 20" fill="currentColor" aria-hidden="true">
                <path fill-rule="evenodd" d="${STAR_PATH}" clip-rule="evenodd" />
              </svg>
`
const EMPTY_STAR = `              <svg xmlns="http://www.w3.org/2000/svg" fill="none" viewBox="0 0 24 24" stroke-width="1.5" stroke="currentColor" class="h-5 w-5 flex-none">
                <path stroke-linecap="round" stroke-linejoin="round" d="${EMPTY_STAR_PATH}" />
              </svg>
`

const LOGO_SVG = '<svg  class="mx-auto h-24 w-auto" xmlns="http://www.w3.org/2000/svg" version="1.1" viewBox="0 0 320 320"><g id="logo" fill="#466BB0"><polygon id="hull" points="80 250 240 250 140 280 80 250"/><polygon id="mainsail" points="80 240 140 230 140 120 80 240"/><polygon id="headsail" points="150 230 240 240 150 40 150 230"/></g></svg>'

const HEAD = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="X-UA-Compatible" content="IE=edge">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Simple Bookstore App</title>
<link rel="stylesheet" href="static/tailwind/tailwind.css">
<script type="text/javascript">
  window.addEventListener("DOMContentLoaded", (event) => {
    const dialog = document.querySelector("dialog");
    const showButton = document.querySelector("#sign-in-button");
    const closeButton = document.querySelector("#close-dialog");

    if (showButton) {
      showButton.addEventListener("click", () => {
        if (typeof dialog.showModal === "function") dialog.showModal();
        else dialog.setAttribute("open", "");
      });
    }

    if (closeButton) {
      closeButton.addEventListener("click", () => {
        if (typeof dialog.close === "function") dialog.close();
        else dialog.removeAttribute("open");
      });
    }
  })
</script>
</head>
<body>
`

function renderNav (user: JV): string {
  const right = truthy(user)
    ? `        <a href="#" class="group block flex-shrink-0">
          <div class="flex items-center">
            <div>
              <img class="inline-block h-9 w-9 rounded-full bg-blue-50" src="/static/img/izzy.png" alt="">
            </div>
            <div class="ml-4">
              <p class="text-base font-medium text-gray-50">${out(user)}</p>
              <a href="logout" class="text-xs font-medium text-gray-400 hover:text-gray-300">Sign out</a>
            </div>
          </div>
        </a>
`
    : `          <button type="button" id="sign-in-button" class="rounded-md bg-blue-600 px-3.5 py-2.5 text-sm font-semibold text-white shadow-sm hover:bg-blue-500 focus-visible:outline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600">Sign in</button>
`
  return `<nav class="bg-gray-800">
  <div class="container mx-auto px-4 sm:px-6 lg:px-8">
    <div class="relative flex h-16 items-center justify-between">
      <a href="#" class="text-white px-3 py-2 text-lg font-medium" aria-current="page">BookInfo Sample</a>
      <div class="absolute inset-y-0 right-0 flex items-center pr-2 sm:static sm:inset-auto sm:ml-6 sm:pr-0">
${right}      </div>
    </div>
  </div>
</nav>
`
}

const LOGIN_DIALOG = `
<!-- Sign in dialog -->
<dialog id="dialog" class="w-full sm:w-2/3 lg:w-1/3 border rounded-md shadow-xl">
  <div class="flex min-h-full flex-col justify-center px-6 py-12 lg:px-8">
    <div class="absolute right-0 top-0 hidden pr-4 pt-4 sm:block">
      <button id="close-dialog" type="button" class="rounded-md bg-white text-gray-400 hover:text-gray-500 focus:outline-none focus:ring-2 focus:ring-blue-500 focus:ring-offset-2">
        <span class="sr-only">Close</span>
        <svg class="h-6 w-6" fill="none" viewBox="0 0 24 24" stroke-width="1.5" stroke="currentColor" aria-hidden="true">
          <path stroke-linecap="round" stroke-linejoin="round" d="M6 18L18 6M6 6l12 12" />
        </svg>
      </button>
    </div>
    <div class="sm:mx-auto sm:w-full sm:max-w-sm">
        ${LOGO_SVG}
        <h2 class="mt-5 text-center text-2xl font-bold leading-9 tracking-tight text-gray-900">Sign in to BookInfo</h2>
    </div>
    <div class="mt-10 sm:mx-auto sm:w-full sm:max-w-sm">
      <form class="space-y-6" method="post" action='login' name="login_form">
        <div>
          <label for="username" class="block text-sm font-medium leading-6 text-gray-900">Username</label>
          <div class="mt-2">
            <input id="username" name="username" required class="block w-full px-3 rounded-md border-0 py-1.5 text-gray-900 shadow-sm ring-1 ring-inset ring-gray-300 placeholder:text-gray-400 focus:ring-2 focus:ring-inset focus:ring-blue-600 sm:text-sm sm:leading-6">
          </div>
        </div>
        <div>
          <div class="flex items-center justify-between">
            <label for="password" class="block text-sm font-medium leading-6 text-gray-900">Password</label>
          </div>
          <div class="mt-2">
            <input id="password" name="passwd" type="password" required class="block w-full px-3 rounded-md border-0 py-1.5 text-gray-900 shadow-sm ring-1 ring-inset ring-gray-300 placeholder:text-gray-400 focus:ring-2 focus:ring-inset focus:ring-blue-600 sm:text-sm sm:leading-6">
          </div>
        </div>
        <div>
          <button type="submit" class="flex w-full justify-center rounded-md bg-blue-600 px-3 py-1.5 text-sm font-semibold leading-6 text-white shadow-sm hover:bg-blue-500 focus-visible:outline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600">Sign in</button>
        </div>
      </form>
      <p class="mt-10 text-center text-sm text-gray-500">
        Not using Istio yet?
        <a href="https://istio.io" target="_blank" class="font-semibold leading-6 text-blue-600 hover:text-blue-500">Start here</a>
      </p>
    </div>
  </div>
</dialog>
`

function renderDetails (detailsStatus: number, details: JV): string {
  let s = `<!-- Book details table -->
<div class="container mt-8 mx-auto px-4 sm:px-6 lg:px-8">
  <div class="mt-4 py-10">
      <div class="max-w-2xl">
        <div class="flow-root">
`
  if (detailsStatus === 200) {
    s += `          <h4 class="text-3xl font-semibold">Book Details</h4>
          <div class="-mx-4 -my-2 overflow-x-auto sm:-mx-6 lg:-mx-8">
            <div class="inline-block min-w-full py-2 align-middle sm:px-6 lg:px-8">
              <table class="min-w-full divide-y divide-gray-300">
                <thead>
                  <tr>
                    <th scope="col" class="whitespace-nowrap py-3.5 pl-4 pr-3 text-left text-sm font-semibold text-gray-900 sm:pl-0">ISBN-10</th>
                    <th scope="col" class="whitespace-nowrap px-2 py-3.5 text-left text-sm font-semibold text-gray-900">Publisher</th>
                    <th scope="col" class="whitespace-nowrap px-2 py-3.5 text-left text-sm font-semibold text-gray-900">Pages</th>
                    <th scope="col" class="whitespace-nowrap px-2 py-3.5 text-left text-sm font-semibold text-gray-900">Type</th>
                    <th scope="col" class="whitespace-nowrap px-2 py-3.5 text-left text-sm font-semibold text-gray-900">Language</th>
                  </tr>
                </thead>
                <tbody class="divide-y divide-gray-200 bg-white">
                  <tr>
                    <td class="whitespace-nowrap py-2 pl-4 pr-3 text-sm text-gray-500 sm:pl-0">${out(attr(details, 'ISBN-10'))}</td>
                    <td class="whitespace-nowrap px-2 py-2 text-sm font-medium text-gray-900">${out(attr(details, 'publisher'))}</td>
                    <td class="whitespace-nowrap px-2 py-2 text-sm text-gray-900">${out(attr(details, 'pages'))}</td>
                    <td class="whitespace-nowrap px-2 py-2 text-sm text-gray-500">${out(attr(details, 'type'))}</td>
                    <td class="whitespace-nowrap px-2 py-2 text-sm text-gray-500">${out(attr(details, 'language'))}</td>
                  </tr>
                </tbody>
              </table>
            </div>
          </div>
`
  } else {
    s += '          <p class="text-2xl text-red-500">Error fetching product details</p>\n'
    if (truthy(details)) s += `          <p class="text-lg text-gray-600">${out(attr(details, 'error'))}</p>\n`
  }
  s += `        </div>
      </div>
  </div>
</div>
`
  return s
}

function renderReview (review: JV, reviews: JV): string {
  let s = `        <section class="px-6 py-12 sm:py-8 lg:px-8">
          <div class="mx-auto max-w-2xl">
`
  const rating = attr(review, 'rating')
  if (truthy(rating)) {
    const stars = attr(rating, 'stars')
    if (truthy(stars)) {
      const n = asInt(stars)
      s += `            <div class="flex gap-x-1 text-${out(attr(rating, 'color'))}-500">\n`
      s += FILLED_STAR.repeat(rangeCount(n))
      s += EMPTY_STAR.repeat(rangeCount(5n - n))
      s += '            </div>\n'
    } else if (truthy(attr(rating, 'error'))) {
      s += `            <p class="text-red-500">${out(attr(rating, 'error'))}</p>\n`
    }
  }
  const clustername = attr(reviews, 'clustername')
  s += `            <blockquote class="mt-10 text-xl font-semibold leading-8 tracking-tight text-gray-900 sm:text-2xl sm:leading-9">
              <p>"${out(attr(review, 'text'))}"</p>
            </blockquote>
            <div class="mt-4 flex items-center gap-x-6">
              <img class="h-16 w-16 rounded-full bg-gray-50" src="/static/img/izzy.png" alt="Izzy">
              <div class="text-sm leading-6">
                <div class="font-semibold text-gray-900">${out(attr(review, 'reviewer'))}</div>
                <div class="mt-0.5 text-gray-600 font-mono">Reviews served by: 
                  ${out(attr(reviews, 'podname'))}
${clustername !== 'null' ? `                  on cluster <div>${out(clustername)}</div>\n` : ''}                </div>
              </div>
            </div>
          </div>
        </section>
`
  return s
}

function renderReviews (reviewsStatus: number, reviews: JV): string {
  // The unterminated class attribute on the second div is upstream's (kept on purpose).
  let s = `<!-- Book reviews section -->
<div class="bg-blue-600/5 py-12 mx-auto" >
  <div class="container mx-auto px-4 sm:px-6 lg:px-8>
    <div class="max-w-2xl">
`
  if (reviewsStatus === 200) {
    s += '      <h4 class="text-3xl font-semibold">Book Reviews</h4>\n      <div class="flex flex-col md:flex-row">\n'
    for (const review of iter(attr(reviews, 'reviews'))) s += renderReview(review, reviews)
    s += '      </div>\n'
  } else {
    s += '      <p class="text-2xl text-red-500">Error fetching product reviews</p>\n'
    if (truthy(reviews)) s += `      <p class="text-lg text-gray-600">${out(attr(reviews, 'error'))}</p>\n`
  }
  s += `    </div>
    </div>
  </div>
</div>
`
  return s
}

export interface ProductpageView {
  detailsStatus: number
  details: PyValue
  reviewsStatus: number
  reviews: PyValue
  user: PyValue | undefined
}

/** Render /productpage (current upstream template generation). Throws on template errors (-> 500). */
export function renderProductpage (view: ProductpageView): string {
  const product = PRODUCTS[0]
  return HEAD +
    renderNav(view.user === undefined ? UNDEF : view.user) +
    LOGIN_DIALOG +
    `
<!-- Book description section -->
<div class="container mt-8 mx-auto px-4 sm:px-6 lg:px-8">
  <h1 class="text-5xl font-bold tracking-tight text-blue-900">${escapeHtml(product.title)}</h1>
  <div class="mt-6 max-w-4xl">
    <p class="mt-6 text-xl leading-8 text-gray-600">${product.descriptionHtml}</p>
    <div class="mt-6">
      <a href="https://istio.io" target="_blank" class="text-sm font-semibold leading-6 text-blue-600 hover:text-blue-700">Learn more about Istio <span aria-hidden="true">→</span></a>
    </div>

  </div>
</div>

` +
    renderDetails(view.detailsStatus, view.details) +
    '\n' +
    renderReviews(view.reviewsStatus, view.reviews) +
    '</body>\n</html>\n'
}

/** json2html.convert(...) of the service tree, as the index page shows it. */
function json2html (v: PyValue, attrs: string): string {
  if (v instanceof Map) {
    let s = `<table ${attrs}>`
    for (const [k, x] of v) s += `<tr><th>${escapeHtml(k)}</th><td>${json2html(x, attrs)}</td></tr>`
    return s + '</table>'
  }
  if (Array.isArray(v)) {
    if (v.length === 0) return ''
    const first = v[0]
    if (first instanceof Map && v.every(x => x instanceof Map && [...x.keys()].join('\u0000') === [...first.keys()].join('\u0000'))) {
      const keys = [...first.keys()]
      let s = `<table ${attrs}><thead><tr>${keys.map(k => `<th>${escapeHtml(k)}</th>`).join('')}</tr></thead><tbody>`
      for (const row of v as PyDict[]) s += '<tr>' + keys.map(k => `<td>${json2html(row.get(k) as PyValue, attrs)}</td>`).join('') + '</tr>'
      return s + '</tbody></table>'
    }
    return '<ul>' + v.map(x => `<li>${json2html(x, attrs)}</li>`).join('') + '</ul>'
  }
  return escapeHtml(pyStr(v))
}

function renderIndex (tree: PyValue): string {
  const table = json2html(tree, 'class="table table-condensed table-bordered table-hover"')
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="X-UA-Compatible" content="IE=edge">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Simple Bookstore App</title>
<link rel="stylesheet" href="static/tailwind/tailwind.css">
</head>
<body>
<div class="container mx-auto px-4">
    <p><h3>Hello! This is a simple bookstore application consisting of three services as shown below</h3></p>
    ${table}
    <p><h4>Click on one of the links below to auto generate a request to the backend as a real user or a tester
    </h4></p>
    <p><a href="/productpage?u=normal">Normal user</a></p>
    <p><a href="/productpage?u=test">Test user</a></p>
</div>
</body>
</html>
`
}

// ---------------------------------------------------------------------------
// Session cookie (Flask-style signed cookie named `session`)

function b64url (b: Buffer | string): string {
  return Buffer.from(b).toString('base64url')
}

function parseCookies (header: string | undefined): Map<string, string> {
  const m = new Map<string, string>()
  if (header === undefined) return m
  for (const part of header.split(/;\s*/)) {
    const eq = part.indexOf('=')
    if (eq <= 0) continue
    const k = part.slice(0, eq).trim()
    let v = part.slice(eq + 1).trim()
    if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1)
    if (!m.has(k)) m.set(k, v)
  }
  return m
}

class SessionCodec {
  private readonly secret: Buffer
  constructor (secret: string | Buffer | undefined) {
    this.secret = secret === undefined ? randomBytes(32) : Buffer.from(secret)
  }

  private sign (text: string): Buffer {
    return createHmac('sha256', this.secret).update(text).digest()
  }

  encode (data: Record<string, unknown>): string {
    const payload = b64url(JSON.stringify(data))
    const ts = Buffer.alloc(4)
    ts.writeUInt32BE(Math.floor(Date.now() / 1000) >>> 0)
    const body = `${payload}.${b64url(ts)}`
    return `${body}.${b64url(this.sign(body))}`
  }

  decode (value: string | undefined): Record<string, unknown> {
    if (value === undefined) return {}
    const last = value.lastIndexOf('.')
    if (last <= 0) return {}
    const body = value.slice(0, last)
    const sig = Buffer.from(value.slice(last + 1), 'base64url')
    const want = this.sign(body)
    if (sig.length !== want.length || !timingSafeEqual(sig, want)) return {}
    try {
      const data: unknown = JSON.parse(Buffer.from(body.split('.')[0], 'base64url').toString('utf8'))
      return data !== null && typeof data === 'object' && !Array.isArray(data) ? data as Record<string, unknown> : {}
    } catch {
      return {}
    }
  }
}

// ---------------------------------------------------------------------------
// The service

interface Fetched { status: number; body: PyValue }

export function createProductpage (opts: ProductpageOptions = {}): Server {
  const domain = opts.servicesDomain ?? ''
  const detailsBase = serviceBaseUrl(opts.detailsHostname ?? 'details', domain, opts.detailsPort ?? '9080')
  const reviewsBase = serviceBaseUrl(opts.reviewsHostname ?? 'reviews', domain, opts.reviewsPort ?? '9080')
  const ratingsBase = serviceBaseUrl(opts.ratingsHostname ?? 'ratings', domain, opts.ratingsPort ?? '9080')
  const staticDir = resolve(opts.staticDir ?? defaultStaticDir())
  const sessions = new SessionCodec(opts.sessionSecret)
  const floodFactor = opts.floodFactor ?? 0
  const metrics = new Map<string, number>()

  const serviceTree = toPy({
    name: detailsBase,
    endpoint: 'details',
    children: [
      { name: detailsBase, endpoint: 'details', children: [] },
      { name: reviewsBase, endpoint: 'reviews', children: [{ name: ratingsBase, endpoint: 'ratings', children: [] }] }
    ]
  })

  const count = (app: string, code: number): void => {
    const k = `${app}\u0000${code}`
    metrics.set(k, (metrics.get(k) ?? 0) + 1)
  }

  const get = async (url: string, headers: OutgoingHttpHeaders, timeoutMs: number): Promise<HttpResult | undefined> => {
    try {
      return await httpGet(url, { headers, timeoutMs, proxy: opts.proxy })
    } catch {
      return undefined
    }
  }

  /** `(200, res.json())`, `(status, {"error": msg})`, or `(500, {"error": msg})` on exception. */
  const result = (app: string, res: HttpResult | undefined, msg: string): Fetched => {
    if (res !== undefined && res.status === 200) {
      const body = pyJsonLoads(res.body) // a bad body raises, like res.json() (Flask answers 500)
      count(app, 200)
      return { status: 200, body }
    }
    const status = res !== undefined && res.status !== 0 ? res.status : 500
    count(app, status)
    return { status, body: toPy({ error: msg }) }
  }

  const getProductDetails = async (productId: string, headers: OutgoingHttpHeaders): Promise<Fetched> => {
    const res = await get(`${detailsBase}/details/${productId}`, headers, opts.detailsTimeoutMs ?? 3000)
    return result('details', res, DETAILS_UNAVAILABLE)
  }

  const getProductReviews = async (productId: string, headers: OutgoingHttpHeaders): Promise<Fetched> => {
    // Do not remove. Bug introduced explicitly for illustration in fault injection task (upstream).
    let res: HttpResult | undefined
    for (let attempt = 0; attempt < 2; attempt++) {
      res = await get(`${reviewsBase}/reviews/${productId}`, headers, opts.reviewsTimeoutMs ?? 3000)
      if (res !== undefined && res.status === 200) break
    }
    return result('reviews', res, REVIEWS_UNAVAILABLE)
  }

  const getProductRatings = async (productId: string, headers: OutgoingHttpHeaders): Promise<Fetched> => {
    const res = await get(`${ratingsBase}/ratings/${productId}`, headers, opts.ratingsTimeoutMs ?? 3000)
    return result('ratings', res, RATINGS_UNAVAILABLE)
  }

  const sessionOf = (req: IncomingMessage): Record<string, unknown> =>
    sessions.decode(parseCookies(headerValue(req, 'cookie')).get('session'))

  const forwardHeaders = (req: IncomingMessage, session: Record<string, unknown>): OutgoingHttpHeaders => {
    const headers = copyHeaders(req, B3_HEADERS, {})
    // end-user comes ONLY from the session (an incoming end-user header is not copied);
    // requests drops a header whose value is None.
    if ('user' in session && typeof session.user === 'string') headers['end-user'] = session.user
    return copyHeaders(req, PRODUCTPAGE_PROPAGATED_HEADERS, headers)
  }

  const send = (req: IncomingMessage, res: ServerResponse, status: number, contentType: string, body: string | Buffer, extra: OutgoingHttpHeaders = {}): void => {
    res.writeHead(status, { ...extra, 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) })
    res.end(req.method === 'HEAD' ? undefined : body)
  }

  const redirectToReferrer = (req: IncomingMessage, res: ServerResponse, setCookie: string | undefined): void => {
    // Flask: redirect(request.referrer). Without a Referer header that is redirect(None):
    // werkzeug writes str(None), i.e. `Location: None` (a relative URL -> /None -> 404).
    const location = headerValue(req, 'referer') ?? 'None'
    const extra: OutgoingHttpHeaders = { Location: location, Vary: 'Cookie' }
    if (setCookie !== undefined) extra['Set-Cookie'] = setCookie
    send(req, res, 302, HTML_TYPE, redirectBody(location), extra)
  }

  const login = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req)
    // request.values: query string first, then the urlencoded form.
    let user: string | null = new URLSearchParams(requestQuery(req.url)).get('username')
    const ctype = (headerValue(req, 'content-type') ?? '').toLowerCase()
    if (user === null && ctype.startsWith('application/x-www-form-urlencoded')) user = new URLSearchParams(body).get('username')
    const session = sessionOf(req)
    session.user = user
    redirectToReferrer(req, res, `session=${sessions.encode(session)}; HttpOnly; Path=/`)
  }

  const logout = (req: IncomingMessage, res: ServerResponse): void => {
    const session = sessionOf(req)
    let cookie: string | undefined
    if ('user' in session) {
      delete session.user
      cookie = Object.keys(session).length === 0
        ? 'session=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly; Path=/'
        : `session=${sessions.encode(session)}; HttpOnly; Path=/`
    }
    redirectToReferrer(req, res, cookie)
  }

  const front = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const productId = '0'
    const session = sessionOf(req)
    const headers = forwardHeaders(req, session)
    const user = 'user' in session ? toPy(session.user) : ''
    const details = await getProductDetails(productId, headers)
    for (let i = 0; i < floodFactor; i++) await getProductReviews(productId, headers)
    const reviews = await getProductReviews(productId, headers)
    const html = renderProductpage({ detailsStatus: details.status, details: details.body, reviewsStatus: reviews.status, reviews: reviews.body, user })
    send(req, res, 200, HTML_TYPE, html, { Vary: 'Cookie' })
  }

  const apiRoute = async (req: IncomingMessage, res: ServerResponse, productId: string, what: string | undefined): Promise<void> => {
    const headers = forwardHeaders(req, sessionOf(req))
    const r = what === 'reviews'
      ? await getProductReviews(productId, headers)
      : what === 'ratings'
        ? await getProductRatings(productId, headers)
        : await getProductDetails(productId, headers)
    send(req, res, r.status, 'application/json', pyJsonDumps(r.body), { Vary: 'Cookie' })
  }

  const metricsText = (): string => {
    let s = '# HELP request_result_total Results of requests\n# TYPE request_result_total counter\n'
    for (const [k, n] of metrics) {
      const [app, code] = k.split('\u0000')
      s += `request_result_total{destination_app="${app}",response_code="${code}"} ${n}.0\n`
    }
    return s
  }

  const serveStatic = async (req: IncomingMessage, res: ServerResponse, rel: string): Promise<void> => {
    const file = resolve(staticDir, '.' + sep + rel)
    if (rel === '' || rel.includes('\0') || !file.startsWith(staticDir + sep)) {
      send(req, res, 404, HTML_TYPE, flaskError(404))
      return
    }
    try {
      const st = await stat(file)
      if (!st.isFile()) throw new Error('not a file')
      const data = await readFile(file)
      send(req, res, 200, MIME[extname(file).toLowerCase()] ?? 'application/octet-stream', data, {
        'Cache-Control': 'no-cache',
        'Last-Modified': st.mtime.toUTCString()
      })
    } catch {
      send(req, res, 404, HTML_TYPE, flaskError(404))
    }
  }

  type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>
  const route = (path: string): { methods: string[]; handler: Handler } | undefined => {
    const GET = ['GET', 'HEAD', 'OPTIONS']
    switch (path) {
      case '/':
      case '/index.html':
        return { methods: GET, handler: (req, res) => send(req, res, 200, HTML_TYPE, renderIndex(serviceTree)) }
      case '/health':
        return { methods: GET, handler: (req, res) => send(req, res, 200, HTML_TYPE, 'Product page is healthy') }
      case '/login':
        return { methods: ['POST', 'OPTIONS'], handler: login }
      case '/logout':
        return { methods: GET, handler: logout }
      case '/productpage':
        return { methods: GET, handler: front }
      case '/metrics':
        return { methods: GET, handler: (req, res) => send(req, res, 200, 'text/plain; version=0.0.4; charset=utf-8', metricsText()) }
      case '/api/v1/products':
        return { methods: GET, handler: (req, res) => send(req, res, 200, 'application/json', pyJsonDumps(toPy(PRODUCTS))) }
    }
    const api = /^\/api\/v1\/products\/([^/]+)(?:\/(reviews|ratings))?$/.exec(path)
    if (api !== null) {
      const [, rawId, what] = api
      return { methods: GET, handler: (req, res) => apiRoute(req, res, rawId, what) }
    }
    if (path.startsWith('/static/')) {
      return { methods: GET, handler: (req, res) => serveStatic(req, res, safeDecode(path.slice('/static/'.length))) }
    }
    return undefined
  }

  return createServer((req, res) => {
    const path = requestPath(req.url)
    const method = req.method ?? 'GET'
    const r = route(path)
    if (method !== 'POST') req.resume()
    if (r === undefined) {
      send(req, res, 404, HTML_TYPE, flaskError(404))
      return
    }
    if (!r.methods.includes(method)) {
      req.resume()
      send(req, res, 405, HTML_TYPE, flaskError(405), { Allow: r.methods.join(', ') })
      return
    }
    if (method === 'OPTIONS') {
      send(req, res, 200, HTML_TYPE, '', { Allow: r.methods.join(', ') })
      return
    }
    Promise.resolve()
      .then(() => r.handler(req, res))
      .catch(() => {
        if (!res.headersSent) send(req, res, 500, HTML_TYPE, flaskError(500))
        else res.destroy()
      })
  })
}
