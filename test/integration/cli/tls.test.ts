import { copyFileSync, readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { opensslDate, readAll, TestPki, tlsConnect, type Issued } from '../../pki.js';
import { killServers, project, requireBuild, runCli, Server } from './cli-helpers.js';

beforeAll(requireBuild);
afterEach(killServers);

const HANDLER = readFileSync(new URL('../../fixtures/tls-app.mjs', import.meta.url), 'utf8');

let pki: TestPki;
let first: Issued;
let second: Issued;

beforeAll(() => {
  pki = new TestPki();
  first = pki.issue('first');
  second = pki.issue('second');
});

/** A project whose config serves HTTPS with `./cert.pem` and `./key.pem` (copies of `issued`). */
function tlsProject(issued: Issued, tls: Record<string, unknown> = {}): string {
  const dir = project({
    'app.mjs': HANDLER,
    'prefork.config.json': { handler: './app.mjs', protocol: 'http', listen: [{ host: '127.0.0.1', port: 0, tls: { cert: './cert.pem', key: './key.pem', ...tls } }], children: { start: 2, min: 2, max: 4 }, timeouts: { stop: 10_000 } },
  });
  copyFileSync(issued.cert, join(dir, 'cert.pem'));
  copyFileSync(issued.key, join(dir, 'key.pem'));
  return dir;
}

function fingerprint(issued: Issued): string {
  return new X509Certificate(readFileSync(issued.cert)).fingerprint256;
}

describe('TLS in the configuration file', () => {
  it('prefork check prints the certificate: subject, names, expiry', async () => {
    const dir = tlsProject(first);
    const result = await runCli(['check'], dir);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const printed = JSON.parse(result.stdout) as { tls: unknown };
    expect(printed.tls).toEqual([
      { listener: 'listen[0].tls', file: join(dir, 'cert.pem'), subject: 'CN=localhost', subjectAltName: 'DNS:localhost, IP Address:127.0.0.1', validTo: expect.any(String), expiresInDays: 29, fingerprint256: fingerprint(first) },
    ]);
  });

  it('prefork check warns of a certificate that expires within 14 days', async () => {
    const soon = pki.issue('soon', { days: 3 });
    const result = await runCli(['check'], tlsProject(soon));
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/^prefork: warning: listen\[0\]\.tls\.cert: the certificate in .*cert\.pem expires on .* \(in 2 days\)\n$/);
  });

  it.each([
    ['a key of another certificate', () => tlsProject(first, { key: second.key }), /^prefork: prefork\.config\.json: listen\[0\]\.tls\.key: .*second\.key does not match the certificate in .*cert\.pem/],
    ['an expired certificate', () => tlsProject(pki.issue('expired', { startdate: opensslDate(-30), enddate: opensslDate(-2) })), /^prefork: prefork\.config\.json: listen\[0\]\.tls\.cert: the certificate in .*cert\.pem expired on /],
    ['a missing file', () => tlsProject(first, { cert: './missing.pem' }), /^prefork: prefork\.config\.json: listen\[0\]\.tls\.cert: cannot read .*missing\.pem: ENOENT/],
    ['an unknown key', () => tlsProject(first, { ciphrs: 'HIGH' }), /^prefork: prefork\.config\.json: listen\[0\]\.tls\.ciphrs: unknown option \(known: cert, key, /],
  ])('prefork check and start exit 78 naming the key path and the file: %s', async (_name, make, message) => {
    const dir = make();
    const checked = await runCli(['check'], dir);
    expect(checked.stderr).toMatch(message);
    expect(checked.code).toBe(78);
    const started = await runCli([], dir);
    expect(started.stderr).toMatch(message);
    expect(started.code).toBe(78);
  });

  it('a SIGHUP with new certificate files: new connections get the new certificate, a request on the old one completes', async () => {
    const dir = tlsProject(first);
    const server = new Server([], dir);
    const { port } = await server.started();

    const old = await tlsConnect(port, pki.ca);
    expect(old.getPeerCertificate().fingerprint256).toBe(fingerprint(first));
    // A request whose body is still to come holds the old connection open across the reload.
    old.write('POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6\r\n\r\nabc');
    const oldAnswer = readAll(old);

    copyFileSync(second.cert, join(dir, 'cert.pem'));
    copyFileSync(second.key, join(dir, 'key.pem'));
    const mark = server.stderr.length;
    server.signal('SIGHUP');
    await server.log((entry) => entry.msg === 'reload complete', mark);

    const fresh = await tlsConnect(port, pki.ca);
    expect(fresh.getPeerCertificate().fingerprint256).toBe(fingerprint(second));
    fresh.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
    expect(await readAll(fresh)).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*encrypted=true alpn=false body=0\n$/);

    old.write('def');
    expect(await oldAnswer).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*body=6\n$/);
  });

  it('a SIGHUP with a certificate that expires within 14 days warns in the log and serves it', async () => {
    const dir = tlsProject(first);
    const server = new Server([], dir);
    const { port } = await server.started();
    const soon = pki.issue('reload-soon', { days: 5 });
    copyFileSync(soon.cert, join(dir, 'cert.pem'));
    copyFileSync(soon.key, join(dir, 'key.pem'));
    const mark = server.stderr.length;
    server.signal('SIGHUP');
    const warned = await server.log((entry) => entry.msg === 'the TLS certificate expires soon; renew it and reload', mark);
    expect(warned).toMatchObject({ level: 40, listener: 'listen[0].tls', file: join(dir, 'cert.pem'), days: 4 });
    await server.log((entry) => entry.msg === 'reload complete', mark);
    const socket = await tlsConnect(port, pki.ca);
    expect(socket.getPeerCertificate().fingerprint256).toBe(fingerprint(soon));
    socket.destroy();
  });

  it('a SIGHUP with a bad certificate is logged and the old one kept', async () => {
    const dir = tlsProject(first);
    const server = new Server([], dir);
    const { port } = await server.started();
    copyFileSync(second.key, join(dir, 'key.pem'));
    const mark = server.stderr.length;
    server.signal('SIGHUP');
    const logged = await server.log((entry) => typeof entry.msg === 'string' && entry.msg.startsWith('reload failed'), mark);
    expect(logged.error).toMatch(/listen\[0\]\.tls\.key: .*key\.pem does not match the certificate/);
    const socket = await tlsConnect(port, pki.ca);
    expect(socket.getPeerCertificate().fingerprint256).toBe(fingerprint(first));
    socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
    expect(await readAll(socket)).toMatch(/^HTTP\/1\.1 200 OK/);
  });
});
