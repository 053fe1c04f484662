import net from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PoolPlugin } from '../../../src/pool/hooks.js';
import type { Pool } from '../../../src/pool/Pool.js';
import type { ListenSpec } from '../../../src/pool/options.js';
import { fixture, served, startPool, stopPools } from '../../helpers.js';
import { readAll, run, TestPki, tlsConnect, type Issued } from '../../pki.js';

// TLS in the child: real certificates from openssl, real curl and openssl s_client as clients.

afterEach(stopPools);

let pki: TestPki;
let server: Issued;

beforeAll(() => {
  pki = new TestPki();
  server = pki.issue('server');
});

function tlsListen(extra: Record<string, unknown> = {}): ListenSpec {
  return { host: '127.0.0.1', port: 0, tls: { cert: server.cert, key: server.key, ...extra } } as ListenSpec;
}

function portOf(pool: Pool): number {
  return pool.addresses()[0]!.port!;
}

function curl(port: number, host = 'localhost', path = '/'): ReturnType<typeof run> {
  return run('curl', ['-sS', '--max-time', '10', '--cacert', pki.ca, '--resolve', `${host}:${port}:127.0.0.1`, '-w', '\n%{http_code}', `https://${host}:${port}${path}`]);
}

/** Orders the idle child that did not take the last connection: consecutive connections land on different children. */
class AlternatingPlugin implements PoolPlugin {
  #last = 0;
  apply(pool: Pool): void {
    pool.hooks.beforeDispatch.tap('AlternatingPlugin', (request) => {
      const child = request.idle.find((candidate) => candidate.pid !== this.#last) ?? request.idle[0];
      if (child) this.#last = child.pid;
      return child;
    });
  }
}

describe('TLS listeners', () => {
  it('serve HTTPS that curl verifies against the CA (ALPN http/1.1), and curl refuses a wrong hostname', async () => {
    const pool = await startPool({ handler: fixture('tls-app.mjs'), protocol: 'http', listen: tlsListen() });
    const port = portOf(pool);
    const answer = await curl(port);
    expect(answer.stderr).toBe('');
    expect(answer.code).toBe(0);
    expect(answer.stdout).toMatch(/^pid=\d+ encrypted=true alpn=http\/1\.1 body=0\n\n200$/);
    const wrong = await curl(port, 'wrong.example');
    // 60: the peer's certificate cannot be authenticated (it names localhost, not wrong.example).
    expect(wrong.code).toBe(60);
    expect(wrong.stderr).toMatch(/wrong\.example/);
  });

  it('resume a session on another child: one ticket key for every child', async () => {
    const pool = await startPool({ handler: fixture('tls-app.mjs'), protocol: 'http', listen: tlsListen(), children: { start: 2, min: 2, max: 2 }, plugins: [new AlternatingPlugin()] });
    const port = portOf(pool);
    const session = join(pki.dir, 'session.pem');
    const request = 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n';
    const sClient = (args: string[]) => run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', pki.ca, '-ign_eof', ...args], request);
    const first = await sClient(['-sess_out', session]);
    expect(first.stdout).toMatch(/^New, TLSv1\.3/m);
    const again = await sClient(['-sess_in', session]);
    const pids = [first, again].map((ran) => /pid=(\d+)/.exec(ran.stdout)?.[1]);
    expect(pids[0]).toBeDefined();
    expect(pids[1]).toBeDefined();
    expect(pids[1], 'the second connection landed on the same child').not.toBe(pids[0]);
    expect(again.stdout).toMatch(/^Reused, TLSv1\.3/m);
  });

  it('close a connection that never sends a ClientHello at headersTimeout, and the child keeps serving', async () => {
    const pool = await startPool({ handler: fixture('tls-app.mjs'), protocol: 'http', listen: tlsListen(), http: { headersTimeout: 500 }, children: { start: 1, min: 1, max: 1 } });
    const port = portOf(pool);
    const silent = net.connect({ host: '127.0.0.1', port });
    silent.on('error', () => {});
    await once(silent, 'connect');
    const openedAt = performance.now();
    let received = 0;
    silent.on('data', (chunk: Buffer) => (received += chunk.length));
    await Promise.race([once(silent, 'close'), new Promise((_, reject) => setTimeout(() => reject(new Error('not closed within 5 s')), 5000).unref())]);
    const heldMs = performance.now() - openedAt;
    expect(heldMs).toBeGreaterThanOrEqual(450);
    expect(heldMs).toBeLessThan(2500);
    // Closed, not answered: a 408 in clear text would be garbage to a TLS client.
    expect(received).toBe(0);
    const answer = await curl(port);
    expect(answer.stdout).toMatch(/\n200$/);
  });

  it('reset a client that stops reading its answer after sendTimeout, as over plain TCP, and the child goes on', async () => {
    const pool = await startPool({ handler: fixture('tls-app.mjs'), protocol: 'http', listen: tlsListen(), http: { sendTimeout: 500 }, children: { start: 1, min: 1, max: 1 } });
    const [child] = pool.children();
    const socket = await tlsConnect(portOf(pool), pki.ca);
    // The reset is what this test expects; Node 24 reports it on the paused TLS socket too.
    socket.on('error', () => {});
    socket.write('GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n');
    // Read nothing: the answer fills the socket buffers and waits in the child.
    socket.pause();
    const sentAt = performance.now();
    // A paused client does not see the reset: the child's DONE says the connection is over.
    await served(pool, 1, 8000);
    expect(performance.now() - sentAt).toBeGreaterThanOrEqual(450);
    let received = 0;
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.resume();
    // Not events.once: it rejects on the 'error' (the reset) that comes before 'close'.
    await new Promise((resolve) => socket.once('close', resolve));
    // Reset: what the kernel still held for the client was dropped, not delivered.
    expect(received).toBeLessThan(16 << 20);
    const answer = await curl(portOf(pool));
    expect(answer.stdout).toMatch(new RegExp(`^pid=${child!.pid} .*\\n200$`, 's'));
    expect(pool.stats().exits.crashes).toBe(0);
  });

  it('give the raw protocol a TLS socket: an echo handler echoes over TLS', async () => {
    const pool = await startPool({ handler: fixture('echo.cjs'), protocol: 'raw', listen: tlsListen(), children: { start: 1, min: 1, max: 1 } });
    const socket = await tlsConnect(portOf(pool), pki.ca);
    expect(socket.authorized).toBe(true);
    // No ALPN for raw: it is the handler's protocol, not HTTP.
    expect(socket.alpnProtocol).toBe(false);
    socket.end('hello over tls\n');
    expect(await readAll(socket)).toBe('hello over tls\n');
  });

  it('close a raw connection whose handshake does not finish within handshakeTimeout', async () => {
    const pool = await startPool({ handler: fixture('echo.cjs'), protocol: 'raw', listen: tlsListen({ handshakeTimeout: 300 }), children: { start: 1, min: 1, max: 1 } });
    const silent = net.connect({ host: '127.0.0.1', port: portOf(pool) });
    silent.on('error', () => {});
    await once(silent, 'connect');
    const openedAt = performance.now();
    await Promise.race([once(silent, 'close'), new Promise((_, reject) => setTimeout(() => reject(new Error('not closed within 5 s')), 5000).unref())]);
    expect(performance.now() - openedAt).toBeGreaterThanOrEqual(250);
    const socket = await tlsConnect(portOf(pool), pki.ca);
    socket.end('still here\n');
    expect(await readAll(socket)).toBe('still here\n');
  });

  it('warn in the log at start of a certificate that expires within 14 days', async () => {
    const soon = pki.issue('soon', { days: 7 });
    const pool = await startPool({ handler: fixture('tls-app.mjs'), protocol: 'http', listen: { host: '127.0.0.1', port: 0, tls: { cert: soon.cert, key: soon.key } } as ListenSpec, children: { start: 1, min: 1, max: 1 } });
    expect(pool.logged.lines.filter((line) => line.level === 'warn')).toEqual([
      { level: 'warn', message: 'the TLS certificate expires soon; renew it and reload', fields: expect.objectContaining({ listener: 'listen.tls', file: soon.cert, days: 6 }) },
    ]);
  });
});
