import fc from 'fast-check'
import t from 'tap'
import { type AccessLogContext, accessLogLine, accessLogRecord, newAccessLogContext } from '../../plugins/access-log.js'

// The access log's fast line builder must give exactly the JSON of the record, key order and
// escaping included, whatever the request carried (quotes, controls, non-ASCII, lone surrogates).

const STRING_FIELDS = ['authority', 'method', 'path', 'protocol', 'requestId', 'userAgent', 'xForwardedFor', 'traceId',
  'downstreamLocal', 'downstreamRemote', 'responseFlags', 'routeName', 'upstreamCluster', 'upstreamHost', 'upstreamLocal',
  'upstreamTransportFailureReason', 'fallbackPath', 'fallbackFinalCluster', 'fallbackResult'] as const

t.test('accessLogLine is JSON.stringify(accessLogRecord) for arbitrary field values', async t => {
  const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('-', 'a"b', 'c\\d', '\u0000\u001f', '\ud800', 'é ✓ \u2028', 'x\r\ny'))
  fc.assert(fc.property(
    fc.record(Object.fromEntries(STRING_FIELDS.map(f => [f, text])) as Record<(typeof STRING_FIELDS)[number], fc.Arbitrary<string>>),
    fc.nat(), fc.nat(), fc.integer({ min: -1, max: 100000 }), fc.integer({ min: 0, max: 999 }), fc.nat(),
    (strings, received, sent, serviceTime, code, ms) => {
      const c: AccessLogContext = { ...newAccessLogContext(), ...strings, bytesReceived: received, bytesSent: sent, upstreamServiceTime: serviceTime, startTime: 1764578000000 + ms }
      const line = accessLogLine(c, code, ms)
      if (line !== JSON.stringify(accessLogRecord(c, code, ms))) throw new Error(`differs: ${line}`)
      JSON.parse(line)
    }), { numRuns: 2000 })
  t.pass('2000 arbitrary contexts render identically')
})

// The builder reuses what it computed for the previous line (the ISO text of the second, the
// quoted route, cluster, endpoint, local address and authority): lines that follow each other
// must still each be the JSON of their own record.
t.test('accessLogLine: consecutive lines, across seconds and with repeated and changed fields', async t => {
  const base = { ...newAccessLogContext(), routeName: 'productpage', upstreamCluster: 'outbound|9080|v1|productpage.default.svc.cluster.local', upstreamHost: '127.0.0.1:9080', authority: 'shop', downstreamLocal: '127.0.0.1:8080' }
  const steps: Array<Partial<AccessLogContext>> = [
    { startTime: 1764578000998 }, { startTime: 1764578000999 }, { startTime: 1764578001000 }, { startTime: 1764578001007 },
    { startTime: 1764578001042, routeName: 'a"b' }, { startTime: 1764578001042, routeName: 'a"b' }, { startTime: 1764578001043 },
    { startTime: 1764578059999, upstreamCluster: 'c\\d', upstreamHost: '[::1]:80', authority: 'x\u0001y', downstreamLocal: '-' },
    { startTime: 1764578060000 }, { startTime: -1 }, { startTime: 0 }, { startTime: 1764578001000.5 }, { startTime: 253402300800000 }
  ]
  for (const step of steps) {
    const c: AccessLogContext = { ...base, ...step }
    t.equal(accessLogLine(c, 200, 1), JSON.stringify(accessLogRecord(c, 200, 1)), JSON.stringify(step))
  }
  t.equal(JSON.parse(accessLogLine({ ...base, startTime: 1764578001007 }, 200, 1)).start_time, '2025-12-01T08:33:21.007Z')
})
