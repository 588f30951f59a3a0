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
