import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../../../src/pool/Pool.js';
import { fixture, served, startPool, stopPools, tempDir, waitFor } from '../../helpers.js';
import { fetchAnswer, seen } from './client.js';
import { NO_NGINX, freePort, SCGI_PARAMS, startNginx, type Nginx } from './nginx.js';
import { skipWithout } from '../../environment.js';

const SKIP = skipWithout(NO_NGINX);

// nginx `scgi_pass` to prefork children serving the proto-app fixture over SCGI, once through a
// Unix socket and once through a TCP port, so both kinds of listener meet the real web server.

const MIB = 1024 * 1024;

let dir: string;
let nginx: Nginx | undefined;
let port: number;
const pools: Record<'unix' | 'tcp', Pool> = {} as never;

beforeAll(async () => {
  if (SKIP) return;
  dir = tempDir('prefork-scgi-nginx-');
  const common = { handler: fixture('proto-app.mjs'), protocol: 'scgi', children: { start: 2, min: 2, max: 4 } } as const;
  pools.unix = await startPool({ ...common, listen: `unix:${join(dir, 'app.sock')}` });
  pools.tcp = await startPool({ ...common, listen: '127.0.0.1:0' });
  port = await freePort();
  nginx = await startNginx(
    dir,
    `
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 8m;
    scgi_read_timeout 10s;
    location /unix/ {
      scgi_pass unix:${pools.unix.addresses()[0]!.path};${SCGI_PARAMS}
    }
    location /tcp/ {
      scgi_pass 127.0.0.1:${pools.tcp.addresses()[0]!.port};${SCGI_PARAMS}
    }
  }`,
  );
});

afterAll(async () => {
  await nginx?.stop();
  await stopPools();
});

describe.skipIf(SKIP).each(['unix', 'tcp'] as const)('nginx scgi_pass to a prefork %s listener', (transport) => {
  it('passes a GET with a query string: method, url, Host and the client address reach the handler', async () => {
    const path = `/${transport}/a%20b/%C3%BC?q=a%26b&plus=1+2&empty=&utf=%E2%9C%93&dup=1&dup=2`;
    const answer = await fetchAnswer(port, path);
    const request = seen(answer);
    expect(request).toMatchObject({
      protocol: 'scgi',
      method: 'GET',
      url: path,
      httpVersion: '1.1',
      remoteAddress: '127.0.0.1',
      // REMOTE_PORT: the port of *our* connection to nginx, not nginx's to the child.
      remotePort: answer.localPort,
      bodyLength: 0,
    });
    expect(request.headers.host).toBe(`127.0.0.1:${port}`);
    expect(request.headers['content-length']).toBeUndefined();
  });

  it('passes a POST body of 1 MiB whole, and the echoed 1 MiB answer back whole', async () => {
    const body = randomBytes(MIB);
    const sha256 = createHash('sha256').update(body).digest('hex');
    const answer = await fetchAnswer(port, `/${transport}/echo`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(answer.status).toBe(200);
    expect(answer.headers['x-body-length']).toBe(String(MIB));
    expect(answer.headers['x-body-sha256']).toBe(sha256);
    expect(answer.body.length).toBe(MIB);
    expect(createHash('sha256').update(answer.body).digest('hex')).toBe(sha256);
  });

  it('passes headers with unusual characters byte for byte', async () => {
    // HTTP header values are bytes; Node and the SCGI adapter both read them as latin1, so UTF-8
    // bytes arrive as the same latin1 string that was sent.
    const utf8Bytes = Buffer.from('Grüße ✓ 𝄞 ñ', 'utf8').toString('latin1');
    const headers = {
      'X-Quotes': `say "hi"; a=b, c\\d <tag attr='v'> & %41 {"json":[1,2]} ~!@#$^*()|`,
      'X-Utf8-Bytes': utf8Bytes,
      'X-Latin1': 'café ÿ',
      'X-Inner-Tab': 'left\tright',
      'X-Padded': '   padded   ',
      'X-Mixed-CASE-42': 'MiXeD',
      'X-Empty': '',
      'X-Repeated': ['first', 'second'],
      'Content-Type': 'text/plain; charset="utf-8"; boundary=--x',
    };
    const request = seen(await fetchAnswer(port, `/${transport}/headers`, { method: 'POST', body: Buffer.from('x'), headers }));
    expect(request.headers).toMatchObject({
      'x-quotes': headers['X-Quotes'],
      'x-utf8-bytes': utf8Bytes,
      'x-latin1': 'café ÿ',
      'x-inner-tab': 'left\tright',
      // Leading and trailing blanks are not part of a header value (RFC 9110, 5.5).
      'x-padded': 'padded',
      'x-mixed-case-42': 'MiXeD',
      'x-empty': '',
      'x-repeated': 'first, second',
      'content-type': headers['Content-Type'],
      'content-length': '1',
    });
    expect(request.bodyLength).toBe(1);
  });

  it('answers 100 concurrent requests through nginx, each with its own answer', async () => {
    const pool = pools[transport];
    const servedBefore = pool.stats().connections.served;
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, id) => fetchAnswer(port, `/${transport}/concurrent?id=${id}`, { headers: { 'x-request-id': String(id) } })),
    );
    answers.forEach((answer, id) => {
      const request = seen(answer);
      expect(request.url).toBe(`/${transport}/concurrent?id=${id}`);
      expect(request.headers['x-request-id']).toBe(String(id));
    });
    // One SCGI connection per request, every one finished by a child, none lost.
    await served(pool, servedBefore + 100);
    await waitFor(pool.hooks.onConnectionDone as never, () => pool.stats().connections.active === 0);
    const { connections, exits } = pool.stats();
    expect(connections.served).toBe(connections.accepted);
    expect(connections.lost).toBe(0);
    expect(exits.crashes).toBe(0);
  });
});

describe.skipIf(SKIP)('the SCGI listeners behind nginx', () => {
  it('logged no handler error and nginx logged no upstream error', () => {
    for (const pool of Object.values(pools)) {
      expect((pool as Pool & { logged: { lines: { level: string }[] } }).logged.lines.filter((line) => line.level === 'error')).toEqual([]);
    }
    expect(nginx!.stderr()).not.toMatch(/\[(error|crit|alert|emerg)\]/);
  });
});
