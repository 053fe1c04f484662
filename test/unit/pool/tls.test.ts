import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../../src/config/resolve.js';
import { describeConfig } from '../../../src/config/report.js';
import { isPreforkError } from '../../../src/errors.js';
import { resolvePoolOptions, type ListenSpec, type PoolOptions } from '../../../src/pool/options.js';
import { warnExpiringCertificates } from '../../../src/pool/tls.js';
import { memoryLogger } from '../../helpers.js';
import { opensslDate, TestPki, type Issued } from '../../pki.js';

let pki: TestPki;
let good: Issued;
let other: Issued;

beforeAll(() => {
  pki = new TestPki();
  good = pki.issue('good');
  other = pki.issue('other');
});

function resolveWith(tls: unknown, extra: Partial<PoolOptions> = {}) {
  return resolvePoolOptions({ handler: '/srv/app.js', listen: [{ host: '127.0.0.1', port: 0, tls } as ListenSpec], protocol: 'http', ...extra });
}

function message(tls: unknown, extra: Partial<PoolOptions> = {}): string {
  try {
    resolveWith(tls, extra);
  } catch (error) {
    expect(isPreforkError(error, 'PREFORK_ERR_OPTION_INVALID')).toBe(true);
    return (error as Error).message;
  }
  throw new Error('expected an error');
}

describe('the tls of a listener', () => {
  it('reads the PEM data in the parent, and leaves plain listeners plain', () => {
    const resolved = resolvePoolOptions({ handler: '/srv/app.js', listen: ['127.0.0.1:0', { port: 0, tls: { cert: good.cert, key: good.key, ca: pki.ca } }], protocol: 'http' });
    expect(resolved.listen).toEqual([{ kind: 'tcp', host: '127.0.0.1', port: 0 }, { kind: 'tcp', host: '0.0.0.0', port: 0 }]);
    expect(resolved.tls.listeners[0]).toBeUndefined();
    expect(resolved.tls.listeners[1]).toMatchObject({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', honorCipherOrder: false, sessionTimeout: 300, handshakeTimeout: 120000 });
    expect(resolved.tls.listeners[1]!.cert).toContain('-----BEGIN CERTIFICATE-----');
    expect(resolved.tls.listeners[1]!.ca).toHaveLength(1);
    expect(resolved.tls.ticketKeys).toHaveLength(48);
    expect(resolved.tls.certificates).toEqual([
      expect.objectContaining({ listener: 'listen[1].tls', file: good.cert, subject: 'CN=localhost', subjectAltName: 'DNS:localhost, IP Address:127.0.0.1', fingerprint256: new X509Certificate(resolved.tls.listeners[1]!.cert).fingerprint256 }),
    ]);
    // A new ticket key for each resolution: a reload rotates it.
    expect(resolveWith({ cert: good.cert, key: good.key }).tls.ticketKeys.equals(resolveWith({ cert: good.cert, key: good.key }).tls.ticketKeys)).toBe(false);
  });

  it('refuses unknown keys, missing files, bad PEM, a key of another certificate and an expired certificate, naming the key path and the file', () => {
    expect(message({ cert: good.cert, key: good.key, requestCert: true })).toMatch(/^listen\[0\]\.tls\.requestCert: unknown option \(known: cert, key, ca, /);
    expect(message({ key: good.key })).toBe('listen[0].tls.cert: expected the certificate file (PEM), got undefined');
    expect(message({ cert: join(pki.dir, 'missing.pem'), key: good.key })).toMatch(new RegExp(`^listen\\[0\\]\\.tls\\.cert: cannot read ${join(pki.dir, 'missing.pem')}: ENOENT`));
    const junk = join(pki.dir, 'junk.pem');
    writeFileSync(junk, 'not a certificate\n');
    expect(message({ cert: junk, key: good.key })).toBe(`listen[0].tls.cert: ${junk} is not a PEM file (no "-----BEGIN" line)`);
    expect(message({ cert: good.cert, key: good.cert })).toMatch(new RegExp(`^listen\\[0\\]\\.tls\\.key: ${good.cert} holds no valid private key`));
    expect(message({ cert: good.cert, key: other.key })).toMatch(new RegExp(`^listen\\[0\\]\\.tls\\.key: ${other.key} does not match the certificate in ${good.cert}`));
    const expired = pki.issue('expired', { startdate: opensslDate(-10), enddate: opensslDate(-1) });
    expect(message({ cert: expired.cert, key: expired.key })).toMatch(new RegExp(`^listen\\[0\\]\\.tls\\.cert: the certificate in ${expired.cert} expired on `));
    expect(message({ cert: good.cert, key: good.key, minVersion: 'TLSv1' })).toBe('listen[0].tls.minVersion: expected one of "TLSv1.2", "TLSv1.3", got "TLSv1"');
    expect(message({ cert: good.cert, key: good.key, ciphers: 'NO-SUCH-CIPHER' })).toMatch(/^listen\[0\]\.tls\.ciphers: refused by OpenSSL/);
  });

  it('is refused for scgi and for the status listener', () => {
    expect(message({ cert: good.cert, key: good.key }, { protocol: 'scgi' })).toMatch(/^listen\[0\]\.tls: TLS is not available with protocol "scgi": SCGI comes from the web server in front/);
    expect(() => resolvePoolOptions({ handler: '/srv/app.js', listen: '127.0.0.1:0', status: { listen: { host: '127.0.0.1', port: 0, tls: { cert: good.cert, key: good.key } } } })).toThrow(/^status\.listen\.tls: /);
  });

  it('warns of a certificate that expires within 14 days', () => {
    const soon = pki.issue('soon', { days: 5 });
    const logger = memoryLogger();
    warnExpiringCertificates(logger, resolveWith({ cert: soon.cert, key: soon.key }).tls);
    warnExpiringCertificates(logger, resolveWith({ cert: good.cert, key: good.key }).tls);
    expect(logger.lines).toEqual([{ level: 'warn', message: 'the TLS certificate expires soon; renew it and reload', fields: expect.objectContaining({ listener: 'listen[0].tls', file: soon.cert, days: 4 }) }]);
  });

  it('takes the files of a config file relative to it, and prefork check prints subject, names and expiry', async () => {
    const file = join(pki.dir, 'prefork.config.json');
    writeFileSync(join(pki.dir, 'app.mjs'), 'export function request(req, res) { res.end(); }\n');
    const config = await resolveConfig({ handler: './app.mjs', protocol: 'http', listen: { host: '127.0.0.1', port: 8443, tls: { cert: './good.pem', key: './good.key' } } }, file, { cwd: '/' });
    expect(config.resolved.tls.certificates[0]).toMatchObject({ listener: 'listen.tls', file: good.cert });
    expect(describeConfig(config, []).tls).toEqual([
      { listener: 'listen.tls', file: good.cert, subject: 'CN=localhost', subjectAltName: 'DNS:localhost, IP Address:127.0.0.1', validTo: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), expiresInDays: 29, fingerprint256: expect.any(String) },
    ]);
    await expect(resolveConfig({ handler: './app.mjs', protocol: 'http', listen: [{ port: 8443, tls: { cert: './nope.pem', key: './good.key' } }] }, file, { cwd: '/' })).rejects.toThrow(
      `prefork.config.json: listen[0].tls.cert: cannot read ${join(pki.dir, 'nope.pem')}`,
    );
  });
});
