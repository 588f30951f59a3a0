// Hardening I1/I2, the CI-sized soak (about a minute): scripts/soak.ts drives a meshgate child
// process at a bounded rate with table I's fault mix (2 % client aborts, 1 % upstream resets,
// 1 % upstream 503s, an admin reload every 4 s), then runs 300 reloads with no traffic.
// Heap growth after warm-up, handles and sockets after load, warnings and unexplained errors
// are all checked; the long run is `npm run soak -- --minutes N` (docs/operations.md#soak).
import t from 'tap'
import { runSoak } from '../../scripts/soak.js'

t.setTimeout(115_000)

t.test('short soak: bounded heap, handles back to baseline, no MaxListenersExceededWarning', async t => {
  const lines: string[] = []
  const r = await runSoak({
    durationMs: 40_000,
    warmupMs: 15_000,
    sampleEveryMs: 5_000,
    rate: 150,
    concurrency: 32,
    reloadEveryMs: 4_000,
    reloads: 300,
    settleMs: 15_000,
    log: line => lines.push(line)
  })
  t.comment(r.summary)
  t.same(r.failures, [], 'no failed check')
  t.ok(r.ok)
  t.ok(r.samples.length >= 5, `${r.samples.length} heap samples during the load`)
  t.ok(r.reloadsApplied >= 5, `${r.reloadsApplied} admin reloads applied under load`)
  t.ok(r.achievedRate > 50, `${r.achievedRate.toFixed(0)} req/s offered`)
  for (const kind of ['abort', 'reset', '503', 'ok', 'post']) t.ok((r.counts[`${kind}:expected`] ?? 0) > 0, `${kind} requests were part of the mix (${r.counts[`${kind}:expected`] ?? 0})`)
  t.ok(r.afterLoad.sockets <= r.baseline.sockets, `sockets ${r.baseline.sockets} → ${r.afterLoad.sockets}`)
  t.ok(r.afterLoad.handles <= r.baseline.handles, `handles ${r.baseline.handles} → ${r.afterLoad.handles}`)
  t.equal(r.afterLoad.warnings.MaxListenersExceededWarning ?? 0, 0)
  t.ok(r.afterReloads !== undefined && r.afterReloads.generation > 300, 'the no-traffic reloads ran')
})
