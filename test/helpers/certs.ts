import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TestPki {
  dir: string
  ca: string
  /** Paths of a server certificate and key per host name. */
  server: (host: string) => { cert: string; key: string }
  client: { cert: string; key: string }
  read: (path: string) => Buffer
}

/** A throwaway CA with server and client certificates, made with the openssl CLI. */
export function makePki (hosts: string[]): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-pki-'))
  const ossl = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }) }
  ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=meshgate test CA')
  const issue = (name: string, cn: string, ext: string): void => {
    ossl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`)
    writeFileSync(join(dir, `${name}.ext`), ext)
    ossl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`)
  }
  for (const h of hosts) issue(h, h, `subjectAltName=DNS:${h}\nextendedKeyUsage=serverAuth\n`)
  issue('client', 'client', 'extendedKeyUsage=clientAuth\n')
  return {
    dir,
    ca: join(dir, 'ca.crt'),
    server: h => ({ cert: join(dir, `${h}.crt`), key: join(dir, `${h}.key`) }),
    client: { cert: join(dir, 'client.crt'), key: join(dir, 'client.key') },
    read: p => readFileSync(p)
  }
}
