import t from 'tap'
import { pyJsonDumps, pyJsonLoads, pyFloatRepr, PyInt, PyFloat } from '../../demo/bookinfo/pyjson.js'

// simplejson.loads -> simplejson.dumps round trip, as productpage re-serialises backend JSON.

t.test('dumps like simplejson', async t => {
  const rt = (s: string): string => pyJsonDumps(pyJsonLoads(s))
  t.equal(rt('{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}'), '{"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}')
  t.equal(rt('[1,2.0,1.5e-5,1e16,1e22,0.0001,-0,-0.0,123456789012345678901234567890]'), '[1, 2.0, 1.5e-05, 1e+16, 1e+22, 0.0001, 0, -0.0, 123456789012345678901234567890]')
  t.equal(rt('{"b":1,"a":2,"b":3}'), '{"b": 3, "a": 2}', 'duplicate key: first position, last value')
  t.equal(rt('{"2":1,"1":2}'), '{"2": 1, "1": 2}', 'integer-like keys keep their order')
  t.equal(rt('"caf\u00e9 \\/ \\u0001 \\" \\\\ \\n \u007f \ud83d\ude00"'), '"caf\\u00e9 / \\u0001 \\" \\\\ \\n \\u007f \\ud83d\\ude00"')
  t.equal(rt('[true,false,null,NaN,Infinity,-Infinity]'), '[true, false, null, NaN, Infinity, -Infinity]')
  t.equal(rt(' \ufeff'.slice(1) + '{}'), '{}')
  t.equal(rt('[]'), '[]')
  t.throws(() => pyJsonLoads(''))
  t.throws(() => pyJsonLoads('{"a":1} x'))
  t.throws(() => pyJsonLoads('<html>'))
  t.throws(() => pyJsonLoads('"a\nb"'), 'raw control character')
  t.ok(pyJsonLoads('7') instanceof PyInt)
  t.ok(pyJsonLoads('7.0') instanceof PyFloat)
})

t.test('Python float repr', async t => {
  const cases: Array<[number, string]> = [
    [0.1, '0.1'], [1 / 3, '0.3333333333333333'], [100, '100.0'], [1e15, '1000000000000000.0'], [1e16, '1e+16'],
    [1.5e-7, '1.5e-07'], [-2.5, '-2.5'], [123456.789, '123456.789'], [5e-324, '5e-324'], [1.7976931348623157e308, '1.7976931348623157e+308']
  ]
  for (const [x, want] of cases) t.equal(pyFloatRepr(x), want, String(x))
})
