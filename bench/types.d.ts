// autocannon ships no types; the bench uses it only as a throughput fallback when wrk is missing.
declare module 'autocannon'
