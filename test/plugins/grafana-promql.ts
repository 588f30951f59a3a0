// A small PromQL selector matcher for the Grafana dashboard tests: the metric selectors of a
// query (name and `=`, `!=`, `=~`, `!~` label matchers) evaluated against the series of a
// Prometheus text exposition. Enough to say whether a panel's query selects anything; no
// functions, ranges or aggregation are evaluated.

export interface Series { name: string; labels: Record<string, string>; value: number }

export interface Matcher { label: string; op: '=' | '!=' | '=~' | '!~'; value: string }
export interface Selector { text: string; name: string; matchers: Matcher[] }

const unescape = (v: string): string => v.replace(/\\(.)/g, (_m, c: string) => c === 'n' ? '\n' : c)

/** The samples of a Prometheus text exposition (comments skipped). */
export function parseExposition (text: string): Series[] {
  const out: Series[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null) throw new Error(`not an exposition line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = unescape(l[2])
    out.push({ name: m[1], labels, value: Number(m[3]) })
  }
  return out
}

/** Every metric selector of a PromQL expression: `name{…}` and bare metric names (`sum(istio_requests_total)`). */
export function selectorsOf (expr: string, metricPrefix = 'istio_'): Selector[] {
  const out: Selector[] = []
  const re = new RegExp(`\\b(${metricPrefix}[\\w:]*)(\\{[^}]*\\})?`, 'g')
  for (const m of expr.matchAll(re)) {
    const matchers: Matcher[] = []
    for (const x of (m[2] ?? '').matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)) {
      matchers.push({ label: x[1], op: x[2] as Matcher['op'], value: unescape(x[3]) })
    }
    out.push({ text: m[0], name: m[1], matchers })
  }
  return out
}

/** PromQL regex matchers are anchored at both ends. */
const anchored = (re: string): RegExp => new RegExp(`^(?:${re})$`)

/** The series a selector selects (a missing label matches as the empty string, as in Prometheus). */
export function select (series: readonly Series[], s: Selector): Series[] {
  const tests = s.matchers.map(m => {
    const re = m.op === '=~' || m.op === '!~' ? anchored(m.value) : undefined
    return (v: string): boolean => m.op === '=' ? v === m.value : m.op === '!=' ? v !== m.value : m.op === '=~' ? re!.test(v) : !re!.test(v)
  })
  return series.filter(x => x.name === s.name && s.matchers.every((m, i) => tests[i](x.labels[m.label] ?? '')))
}

/** Grafana's template variables replaced (`$name` and `${name}`), longest names first. */
export function substitute (expr: string, vars: Readonly<Record<string, string>>): string {
  const names = Object.keys(vars).sort((a, b) => b.length - a.length)
  let out = expr
  for (const n of names) out = out.split(`\${${n}}`).join(vars[n]).split(`$${n}`).join(vars[n])
  return out
}

/** The metric names a Prometheus-backed Grafana dashboard queries: every `expr` of its panels (nested rows too) and its query variables. */
export function dashboardQueries (dashboard: unknown): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = []
  const d = dashboard as { panels?: unknown[]; templating?: { list?: Array<{ name: string; query?: unknown }> } }
  const walk = (panels: unknown[] | undefined): void => {
    for (const p of panels ?? []) {
      const panel = p as { title?: string; targets?: Array<{ expr?: string }>; panels?: unknown[] }
      for (const t of panel.targets ?? []) if (typeof t.expr === 'string' && t.expr !== '') out.push({ where: `panel "${panel.title ?? ''}"`, expr: t.expr })
      walk(panel.panels)
    }
  }
  walk(d.panels)
  for (const v of d.templating?.list ?? []) {
    const q = typeof v.query === 'string' ? v.query : (v.query as { query?: string } | undefined)?.query
    if (typeof q === 'string' && q.includes('(')) out.push({ where: `variable $${v.name}`, expr: q })
  }
  return out
}
