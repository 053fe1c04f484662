import { afterEach, describe, expect, it } from 'vitest';
import { Agent, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { isPreforkError } from '../../../src/errors.js';
import { createHttpProtocol, type HttpOptions } from '../../../src/protocols/http.js';
import { protocolFactory, PROTOCOLS } from '../../../src/protocols/index.js';
import type { HandlerModule, ProtocolAdapter } from '../../../src/child/types.js';
import { connectClient, deferred, fakeChild, startFront, type Front } from './helpers.js';
import { RequestSlots } from '../../../src/child/slots.js';
import { PAGE } from '../../../src/channel/page.js';
import type { Duplex } from 'node:stream';

const fronts: Front[] = [];
const agents: Agent[] = [];

afterEach(async () => {
  for (const agent of agents.splice(0)) agent.destroy();
  await Promise.all(fronts.splice(0).map((front) => front.close()));
});

/** An adapter for the handler, behind a loopback front that imitates the child runtime. */
async function serve(handler: HandlerModule, options: HttpOptions = {}, slots?: RequestSlots) {
  const child = fakeChild();
  const adapter: ProtocolAdapter = createHttpProtocol({
    handler,
    ctx: child.ctx,
    options,
    reportError: (error, where) => child.errors.push({ error, where }),
    ...(slots ? { slots } : {}),
  });
  const front = await startFront(adapter);
  fronts.push(front);
  return { adapter, front, ...child };
}

/** A keep-alive agent with one socket, so that consecutive requests share one connection. */
function oneSocketAgent(): Agent {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  agents.push(agent);
  return agent;
}

interface Reply {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

function fetchOver(port: number, options: { path?: string; method?: string; body?: string | Buffer; agent?: Agent; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path: options.path ?? '/', method: options.method ?? 'GET', agent: options.agent ?? false, headers: options.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A handler that answers with what it saw of the request. */
const echo: HandlerModule = {
  async request(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString();
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ method: req.method, url: req.url, body, port: req.socket.remotePort }));
  },
};

describe('http protocol: set-up', () => {
  it('is registered under the name "http"', () => {
    expect(PROTOCOLS).toContain('http');
    expect(protocolFactory('http')).toBe(createHttpProtocol);
  });

  it('refuses a handler module without a request export, naming the protocol and the export', () => {
    const { ctx } = fakeChild();
    let thrown: unknown;
    try {
      createHttpProtocol({ handler: { connection() {} }, ctx, options: {}, reportError() {} });
    } catch (error) {
      thrown = error;
    }
    expect(isPreforkError(thrown, 'PREFORK_ERR_HANDLER_INVALID')).toBe(true);
    expect((thrown as Error).message).toMatch(/"http".*request\(req, res, ctx\)/);
  });

  it.each([
    [{ keepAliveTimeout: 'x' }, 'http.keepAliveTimeout: expected a non-negative integer (ms), got "x"'],
    [{ keepAliveTimeout: -1 }, 'http.keepAliveTimeout: expected a non-negative integer (ms), got -1'],
    [{ headersTimeout: 1.5 }, 'http.headersTimeout: expected a non-negative integer (ms), got 1.5'],
    [{ requestTimeout: null }, 'http.requestTimeout: expected a non-negative integer (ms), got null'],
    [{ maxRequestsPerConnection: '2' }, 'http.maxRequestsPerConnection: expected a non-negative integer (requests), got "2"'],
    [{ maxHeaderSize: 0 }, 'http.maxHeaderSize: expected a positive integer (bytes), got 0'],
    [{ keepAliveTimout: 1 }, 'http.keepAliveTimout: unknown option'],
    [{ headersTimeout: 10_000, requestTimeout: 5_000 }, 'http.headersTimeout: expected at most http.requestTimeout (5000 ms), got 10000'],
  ])('refuses the options %j with PREFORK_ERR_OPTION_INVALID', (options, message) => {
    const { ctx } = fakeChild();
    let thrown: unknown;
    try {
      createHttpProtocol({ handler: echo, ctx, options: options as HttpOptions, reportError() {} });
    } catch (error) {
      thrown = error;
    }
    expect(isPreforkError(thrown, 'PREFORK_ERR_OPTION_INVALID')).toBe(true);
    expect((thrown as Error).message).toContain(message);
  });

  it('accepts a requestTimeout below the default headersTimeout by lowering the latter, as Node does', () => {
    const { ctx } = fakeChild();
    expect(() => createHttpProtocol({ handler: echo, ctx, options: { requestTimeout: 1_000 }, reportError() {} })).not.toThrow();
  });

  it('starts Node\'s connection tracking without warning on this Node version', async () => {
    const { lines } = await serve(echo);
    expect(lines.filter((line) => line.level === 'warn')).toEqual([]);
  });
});

describe('http protocol: requests', () => {
  it('serves a GET and a POST with their bodies', async () => {
    const { front } = await serve(echo);
    const get = await fetchOver(front.port, { path: '/hello?x=1' });
    expect(get.status).toBe(200);
    expect(JSON.parse(get.body)).toMatchObject({ method: 'GET', url: '/hello?x=1', body: '' });
    const post = await fetchOver(front.port, { method: 'POST', path: '/form', body: 'a=1&b=2' });
    expect(JSON.parse(post.body)).toMatchObject({ method: 'POST', url: '/form', body: 'a=1&b=2' });
  });

  it('serves two requests over one keep-alive connection', async () => {
    const { front } = await serve(echo);
    const agent = oneSocketAgent();
    const first = await fetchOver(front.port, { path: '/1', agent });
    const second = await fetchOver(front.port, { path: '/2', agent });
    expect(first.headers.connection).toBe('keep-alive');
    expect(first.headers['keep-alive']).toBe('timeout=5');
    expect(JSON.parse(first.body).port).toBe(JSON.parse(second.body).port);
    expect(front.handled).toHaveLength(1);
  });

  it('answers pipelined requests in order', async () => {
    const { front } = await serve(echo);
    const client = await connectClient(front.port);
    client.socket.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const text = await client.closed;
    const urls = [...text.matchAll(/"url":"([^"]+)"/g)].map((match) => match[1]);
    expect(urls).toEqual(['/a', '/b', '/c']);
  });

  it('reads a chunked request body', async () => {
    const { front } = await serve(echo);
    const client = await connectClient(front.port);
    client.socket.write('POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n');
    client.socket.write('5\r\nhello\r\n');
    client.socket.write('6\r\n world\r\n0\r\n\r\n');
    const text = await client.closed;
    expect(text).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(text).toContain('"body":"hello world"');
  });

  it('answers Expect: 100-continue before the body is sent', async () => {
    const { front } = await serve(echo);
    const client = await connectClient(front.port);
    client.socket.write('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
    await client.until((text) => text.includes('HTTP/1.1 100 Continue\r\n\r\n'));
    client.socket.write('data');
    const text = await client.closed;
    expect(text).toContain('"body":"data"');
  });

  it('closes the connection after maxRequestsPerConnection requests, saying so in the last response', async () => {
    const { front } = await serve(echo, { maxRequestsPerConnection: 2 });
    const client = await connectClient(front.port);
    client.socket.write('GET /1 HTTP/1.1\r\nHost: x\r\n\r\n');
    await client.until((text) => text.includes('"url":"/1"'));
    client.socket.write('GET /2 HTTP/1.1\r\nHost: x\r\n\r\n');
    const text = await client.closed;
    const second = text.slice(text.lastIndexOf('HTTP/1.1 '));
    expect(second).toContain('Connection: close');
    expect(second).toContain('"url":"/2"');
  });

  it('answers 431 to a header block larger than maxHeaderSize', async () => {
    const { front } = await serve(echo, { maxHeaderSize: 1024 });
    const client = await connectClient(front.port);
    client.socket.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(2048)}\r\n\r\n`);
    expect(await client.closed).toMatch(/^HTTP\/1\.1 431 /);
  });
});

describe('http protocol: handler errors', () => {
  it('answers 500 to a handler that throws, reports the error, and serves the next request on the connection', async () => {
    const failure = new Error('boom');
    const { front, errors } = await serve({
      request(req, res) {
        if (req.url === '/fail') {
          res.setHeader('X-Secret', 'leak');
          throw failure;
        }
        res.end('fine');
      },
    });
    const agent = oneSocketAgent();
    const failed = await fetchOver(front.port, { path: '/fail', agent });
    expect(failed.status).toBe(500);
    expect(failed.headers['x-secret']).toBeUndefined();
    expect(errors).toEqual([{ error: failure, where: 'request' }]);
    const next = await fetchOver(front.port, { path: '/ok', agent });
    expect(next).toMatchObject({ status: 200, body: 'fine' });
    expect(front.handled).toHaveLength(1);
  });

  it('answers 500 to a handler whose promise rejects', async () => {
    const { front, errors } = await serve({
      async request() {
        await Promise.resolve();
        throw new Error('async boom');
      },
    });
    const reply = await fetchOver(front.port);
    expect(reply.status).toBe(500);
    expect(errors.map((entry) => (entry.error as Error).message)).toEqual(['async boom']);
  });

  it('cuts the connection when the handler fails after the response started, leaving other connections alone', async () => {
    const { front, errors } = await serve({
      async request(req, res) {
        if (req.url === '/partial') {
          res.writeHead(200, { 'Content-Length': '100' });
          res.write('part');
          await new Promise((resolve) => setImmediate(resolve));
          throw new Error('late');
        }
        res.end('other');
      },
    });
    const broken = await connectClient(front.port);
    broken.socket.write('GET /partial HTTP/1.1\r\nHost: x\r\n\r\n');
    const text = await broken.closed;
    expect(text).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*part$/);
    expect(errors).toHaveLength(1);
    expect(await fetchOver(front.port)).toMatchObject({ status: 200, body: 'other' });
  });
});

describe('http protocol: connection lifetime', () => {
  it('resolves handle() only after the socket closed and the handler settled', async () => {
    const release = deferred();
    const started = deferred();
    const { front } = await serve({
      async request(_req, res) {
        started.resolve();
        await release.promise;
        res.end();
      },
    });
    const client = await connectClient(front.port);
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const handled = await front.nextHandled();
    await started.promise;
    client.socket.destroy();
    await new Promise((resolve) => handled.socket.once('close', resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(handled.resolved).toBe(false);
    release.resolve();
    await handled.done;
  });

  it('closes a keep-alive connection left idle for keepAliveTimeout (plus Node\'s one-second grace)', async () => {
    const { front } = await serve(echo, { keepAliveTimeout: 300 });
    const client = await connectClient(front.port);
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await client.until((text) => text.includes('"url":"/"'));
    const idleSince = Date.now();
    const handled = await front.nextHandled();
    await client.closed;
    expect(Date.now() - idleSince).toBeGreaterThanOrEqual(300);
    expect(Date.now() - idleSince).toBeLessThan(300 + 1_000 + 1_000);
    await handled.done;
  });

  it('closes a client that dribbles its headers after headersTimeout with 408, and resolves handle()', async () => {
    const { front } = await serve(echo, { headersTimeout: 500 });
    // The limit runs from the server's accept, which can come before the client sees its connect.
    const acceptedAt = Date.now();
    const client = await connectClient(front.port);
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    const drip = setInterval(() => client.socket.write('z'), 50);
    try {
      const text = await client.closed;
      expect(text).toMatch(/^HTTP\/1\.1 408 Request Timeout/);
    } finally {
      clearInterval(drip);
    }
    // Not before the limit (the client was sending all along), and within one check interval of it.
    const elapsed = Date.now() - acceptedAt;
    expect(elapsed).toBeGreaterThanOrEqual(500);
    expect(elapsed).toBeLessThan(500 + 1_000);
    await (await front.nextHandled()).done;
  });

  it('applies headersTimeout to a later request on a keep-alive connection too', async () => {
    const { front } = await serve(echo, { headersTimeout: 400, keepAliveTimeout: 10_000 });
    const client = await connectClient(front.port);
    client.socket.write('GET /first HTTP/1.1\r\nHost: x\r\n\r\n');
    await client.until((text) => text.includes('"url":"/first"'));
    const startedAt = Date.now();
    client.socket.write('GET /second HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => client.socket.write('X-A: 1\r\n'), 50);
    try {
      expect(await client.closed).toContain('408 Request Timeout');
    } finally {
      clearInterval(drip);
    }
    const elapsed = Date.now() - startedAt;
    expect(elapsed).toBeGreaterThanOrEqual(400);
    expect(elapsed).toBeLessThan(400 + 1_000);
  });

  it('closes a client that sends its body too slowly with 408 after requestTimeout, not after headersTimeout', async () => {
    const { front } = await serve(echo, { headersTimeout: 300, requestTimeout: 900 });
    // The limit runs from the server's accept, which can come before the client sees its connect.
    const acceptedAt = Date.now();
    const client = await connectClient(front.port);
    client.socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n');
    const drip = setInterval(() => client.socket.write('z'), 50);
    let text: string;
    try {
      text = await client.closed;
    } finally {
      clearInterval(drip);
    }
    expect(text).toMatch(/^HTTP\/1\.1 408 Request Timeout/);
    // The headers were complete at once: only the request limit applies to the body.
    const elapsed = Date.now() - acceptedAt;
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(900 + 1_000);
  });

  it('closes a client that sends its body slower than minDataRate once bodyTimeout (extended by what came) is over', async () => {
    const { front } = await serve(echo, { bodyTimeout: 300, minDataRate: 500, requestTimeout: 10_000 });
    const client = await connectClient(front.port);
    client.socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n');
    const startedAt = Date.now();
    // 20 bytes a second: each extends the limit by 2 ms.
    const drip = setInterval(() => client.socket.write('z'), 50);
    try {
      await client.closed;
    } finally {
      clearInterval(drip);
    }
    const elapsed = Date.now() - startedAt;
    expect(elapsed).toBeGreaterThanOrEqual(300);
    expect(elapsed).toBeLessThan(300 + 1_000);
  });

  it('closes a client that stops reading its answer after a sendTimeout window without minDataRate progress', async () => {
    const big = Buffer.alloc(16 * 1024 * 1024, 'x');
    const { front } = await serve({ request: (_req, res) => void res.end(big) }, { sendTimeout: 300, minDataRate: 500 });
    const client = await connectClient(front.port);
    // The client asks and never reads: its receive buffer fills, then nothing moves.
    client.socket.pause();
    client.socket.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
    const startedAt = Date.now();
    // The server's end: the connection is reset (a client that does not read cannot see it).
    await (await front.nextHandled()).done;
    const elapsed = Date.now() - startedAt;
    expect(elapsed).toBeGreaterThanOrEqual(300);
    // The first window saw the buffers fill; the second saw nothing.
    expect(elapsed).toBeLessThan(2 * 300 + 1_000);
  });

  it('stop() leaves an idle keep-alive connection open (a request may be on its way): its next request is answered with Connection: close', async () => {
    // Closing it at once would race a client (nginx) that has just sent a request on it: the
    // request is reset, and a POST cannot be retried.
    const { front, adapter } = await serve(echo, { keepAliveTimeout: 60_000 });
    const client = await connectClient(front.port);
    client.socket.write('GET /first HTTP/1.1\r\nHost: x\r\n\r\n');
    await client.until((text) => text.includes('"url":"/first"'));
    const handled = await front.nextHandled();
    adapter.stop?.();
    let closed = false;
    void client.closed.then(() => (closed = true));
    // Still open after the stop: the second request is served on the same connection.
    client.socket.write('POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody');
    const text = await client.closed;
    expect(closed).toBe(true);
    const second = text.slice(text.indexOf('HTTP/1.1', 10));
    expect(second).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(second).toContain('Connection: close');
    expect(second).toContain('"url":"/second","body":"body"');
    await handled.done;
  });

  it('stop() lets keepAliveTimeout end an idle keep-alive connection that sends nothing more', async () => {
    const { front, adapter } = await serve(echo, { keepAliveTimeout: 300 });
    const client = await connectClient(front.port);
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await client.until((text) => text.includes('"url":"/"'));
    const handled = await front.nextHandled();
    const stoppedAt = Date.now();
    adapter.stop?.();
    await client.closed;
    await handled.done;
    // Node closes an idle connection about a second after the advertised keep-alive timeout.
    expect(Date.now() - stoppedAt).toBeLessThan(300 + 1_000 + 1_000);
  });

  it('stop() lets a request in flight finish with Connection: close, then closes its connection', async () => {
    const release = deferred();
    const started = deferred();
    const { front, adapter } = await serve(
      {
        async request(_req, res) {
          started.resolve();
          await release.promise;
          res.end('done');
        },
      },
      { keepAliveTimeout: 60_000 },
    );
    const client = await connectClient(front.port);
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await started.promise;
    adapter.stop?.();
    release.resolve();
    const text = await client.closed;
    expect(text).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(text).toContain('Connection: close');
    expect(text.endsWith('done')).toBe(true);
  });

  it('stop() leaves a connection whose keep-alive response was already under way open for its next request, answered with Connection: close', async () => {
    const release = deferred();
    const { front, adapter } = await serve(
      {
        async request(req, res) {
          if (req.url === '/next') {
            res.end('next');
            return;
          }
          res.writeHead(200, { 'Content-Length': '4' });
          res.write('do');
          await release.promise;
          res.end('ne');
        },
      },
      { keepAliveTimeout: 60_000 },
    );
    const client = await connectClient(front.port);
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await client.until((text) => text.endsWith('do'));
    adapter.stop?.();
    release.resolve();
    await client.until((text) => text.endsWith('done'));
    client.socket.write('GET /next HTTP/1.1\r\nHost: x\r\n\r\n');
    const text = await client.closed;
    expect(text).toContain('Connection: keep-alive');
    const second = text.slice(text.indexOf('HTTP/1.1', 10));
    expect(second).toContain('Connection: close');
    expect(second.endsWith('next')).toBe(true);
  });

  it('stop() with keepAliveTimeout 0 (no idle limit) still closes an idle connection after a grace period', async () => {
    const { front, adapter } = await serve(echo, { keepAliveTimeout: 0 });
    const client = await connectClient(front.port);
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await client.until((text) => text.includes('"url":"/"'));
    const stoppedAt = Date.now();
    adapter.stop?.();
    await client.closed;
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(4_900);
  }, 15_000);
});

/** An upgrade (or connect) export that switches to a byte echo. */
function echoUpgrade(_req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
  if (head.length > 0) socket.write(head);
  socket.pipe(socket);
}

const UPGRADE = 'GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n';

/** Request slots as the child has them, on a page of its own: `busy()` reads the count the parent would see. */
function pageSlots(size: number): { slots: RequestSlots; busy: () => number } {
  const page = new Int32Array(new SharedArrayBuffer(64));
  return { slots: new RequestSlots(size, page, () => {}, () => {}), busy: () => Atomics.load(page, PAGE.BUSY) };
}

describe('http protocol: upgrades and CONNECT', () => {
  it('refuses an upgrade or connect export that is not a function, naming it', () => {
    for (const name of ['upgrade', 'connect']) {
      const { ctx } = fakeChild();
      expect(() => createHttpProtocol({ handler: { request() {}, [name]: 'yes' }, ctx, options: {}, reportError() {} })).toThrow(
        new RegExp(`the handler's \`${name}\` export must be a function`),
      );
    }
  });

  it('answers a plain upgrade the handler cannot take (h2c, as curl --http2 sends) as the plain request it also is', async () => {
    let requests = 0;
    const { front } = await serve({ request: (_req, res) => void (requests++, res.end('plain')) });
    const client = await connectClient(front.port);
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n');
    client.socket.end();
    const text = await client.closed;
    expect(text.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(text.endsWith('plain')).toBe(true);
    expect(requests).toBe(1);
    await (await front.nextHandled()).done;
  });

  it('answers a WebSocket upgrade request 501 and closes when the handler has no upgrade export, without calling request', async () => {
    let requests = 0;
    const { front } = await serve({ request: (_req, res) => void (requests++, res.end('plain')) });
    const client = await connectClient(front.port);
    client.socket.write(UPGRADE.replace('Upgrade: echo', 'Upgrade: websocket'));
    const text = await client.closed;
    expect(text.split('\r\n')[0]).toBe('HTTP/1.1 501 Not Implemented');
    expect(requests).toBe(0);
    await (await front.nextHandled()).done;
  });

  it('answers a CONNECT 501 and closes when the handler has no connect export, even with an upgrade export', async () => {
    const { front } = await serve({ request: (_req, res) => void res.end(), upgrade: echoUpgrade });
    const client = await connectClient(front.port);
    client.socket.write('CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n');
    expect((await client.closed).split('\r\n')[0]).toBe('HTTP/1.1 501 Not Implemented');
  });

  it('hands the upgraded socket and the bytes after the request to the export, and resolves handle() only once that socket closes', async () => {
    const { front } = await serve({ request: (_req, res) => void res.end(), upgrade: echoUpgrade });
    const client = await connectClient(front.port);
    client.socket.write(`${UPGRADE}early`);
    await client.until((text) => text.endsWith('\r\n\r\nearly'));
    client.socket.write(' late');
    await client.until((text) => text.endsWith('early late'));
    const handled = await front.nextHandled();
    expect(handled.resolved).toBe(false);
    client.socket.end();
    await handled.done;
  });

  it('keeps a slot for an upgraded connection until its socket closes: a request on another connection waits for it', async () => {
    const { slots, busy } = pageSlots(1);
    const { front } = await serve({ request: (_req, res) => void res.end('plain'), upgrade: echoUpgrade }, {}, slots);
    const upgraded = await connectClient(front.port);
    upgraded.socket.write(UPGRADE);
    await upgraded.until((text) => text.includes('101 Switching Protocols'));
    expect(busy()).toBe(1);
    const other = await connectClient(front.port);
    other.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    // The request waits for the slot: the upgraded connection still echoes, and nothing has been answered.
    upgraded.socket.write('ping');
    await upgraded.until((text) => text.endsWith('ping'));
    expect(other.received()).toBe('');
    upgraded.socket.end();
    await other.until((text) => text.endsWith('plain'));
    await upgraded.closed;
  });

  it('leaves an upgraded connection out of the transfer limits: a silent one outlives headersTimeout, sendTimeout and keepAliveTimeout', async () => {
    const { front } = await serve({ request: (_req, res) => void res.end(), upgrade: echoUpgrade }, { headersTimeout: 100, bodyTimeout: 100, sendTimeout: 100, keepAliveTimeout: 100, minDataRate: 0 });
    const client = await connectClient(front.port);
    client.socket.write(UPGRADE);
    await client.until((text) => text.includes('101 Switching Protocols'));
    // Nothing signals a limit that did not fire: wait out several of them (the sweep runs every 50 ms here).
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    client.socket.write('still open');
    await client.until((text) => text.endsWith('still open'));
    client.socket.end();
    await client.closed;
  });

  it('stop() leaves an upgraded connection open and answers a new upgrade 503', async () => {
    const { front, adapter } = await serve({ request: (_req, res) => void res.end(), upgrade: echoUpgrade });
    const upgraded = await connectClient(front.port);
    upgraded.socket.write(UPGRADE);
    await upgraded.until((text) => text.includes('101 Switching Protocols'));
    const handled = await front.nextHandled();
    adapter.stop?.();
    upgraded.socket.write('after stop');
    await upgraded.until((text) => text.endsWith('after stop'));
    const late = await connectClient(front.port);
    late.socket.write(UPGRADE);
    expect((await late.closed).split('\r\n')[0]).toBe('HTTP/1.1 503 Service Unavailable');
    expect(handled.resolved).toBe(false);
    upgraded.socket.end();
    await handled.done;
  });

  it('reports an upgrade export that throws, destroys its socket and frees its slot', async () => {
    const { slots, busy } = pageSlots(1);
    const { front, errors } = await serve({ request: (_req, res) => void res.end(), upgrade: () => Promise.reject(new Error('no')) }, {}, slots);
    const client = await connectClient(front.port);
    client.socket.write(UPGRADE);
    expect(await client.closed).toBe('');
    await (await front.nextHandled()).done;
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ where: 'upgrade' });
    expect(busy()).toBe(0);
  });
});
