import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isPreforkError } from '../../../src/errors.js';
import { createHttpProtocol } from '../../../src/protocols/http.js';
import { protocolFactory, PROTOCOLS } from '../../../src/protocols/index.js';
import { createScgiProtocol, type ScgiOptions, type ScgiRequest } from '../../../src/protocols/scgi.js';
import type { HandlerModule, ProtocolAdapter } from '../../../src/child/types.js';
import { connectClient, fakeChild, startFront, type Front } from './helpers.js';

const fronts: Front[] = [];

afterEach(async () => {
  await Promise.all(fronts.splice(0).map((front) => front.close()));
});

async function serve(handler: HandlerModule, options: ScgiOptions = {}, front: { allowHalfOpen?: boolean } = {}) {
  const child = fakeChild();
  const adapter: ProtocolAdapter = createScgiProtocol({
    handler,
    ctx: child.ctx,
    options,
    reportError: (error, where) => child.errors.push({ error, where }),
  });
  const started = await startFront(adapter, front);
  fronts.push(started);
  return { adapter, front: started, ...child };
}

/** The netstring header block of an SCGI request, CONTENT_LENGTH and SCGI first as web servers send them. */
function scgiHead(variables: Record<string, string>, contentLength = 0): Buffer {
  const pairs: Array<[string, string]> = [
    ['CONTENT_LENGTH', String(contentLength)],
    ['SCGI', '1'],
    ...Object.entries(variables),
  ];
  const block = Buffer.concat(pairs.map(([name, value]) => Buffer.from(`${name}\0${value}\0`, 'latin1')));
  return Buffer.concat([Buffer.from(`${block.length}:`), block, Buffer.from(',')]);
}

/** A netstring around the block text (NULs written as \0), with its length computed. */
function netstring(block: string, terminator = ','): Buffer {
  return Buffer.from(`${Buffer.byteLength(block, 'latin1')}:${block}${terminator}`, 'latin1');
}

const GET_INDEX = { REQUEST_METHOD: 'GET', REQUEST_URI: '/', SERVER_PROTOCOL: 'HTTP/1.1' };

/** A CGI response split into its status, headers (lower-case names) and body. */
interface CgiReply {
  readonly status: string;
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly raw: string;
}

function parseCgi(raw: string): CgiReply {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`not a CGI response: ${JSON.stringify(raw)}`);
  const lines = raw.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  const body = Buffer.from(raw.slice(end + 4), 'latin1').toString('utf8');
  return { status: headers.status ?? '', headers, body, raw };
}

/** Sends the bytes over a fresh connection and returns what came back once the server closed it. */
async function exchange(front: Front, ...parts: Buffer[]): Promise<CgiReply> {
  const client = await connectClient(front.port);
  for (const part of parts) client.socket.write(part);
  return parseCgi(await client.closed);
}

/** The same handler a plain `http.createServer` would use: nothing in it knows about SCGI. */
const portable: HandlerModule = {
  async request(req: IncomingMessage, res: ServerResponse) {
    let size = 0;
    const hash = createHash('sha256');
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      hash.update(chunk as Buffer);
    }
    if (req.url === '/missing') {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('no such thing');
      return;
    }
    if (req.url === '/stream') {
      res.setHeader('Content-Type', 'text/plain');
      Readable.from(['one ', 'two ', 'three']).pipe(res);
      return;
    }
    res.statusCode = 201;
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('Set-Cookie', ['a=1', 'b=2']);
    res.end(
      JSON.stringify({
        method: req.method,
        url: req.url,
        httpVersion: req.httpVersion,
        headers: req.headers,
        remoteAddress: req.socket.remoteAddress,
        remotePort: req.socket.remotePort,
        size,
        sha256: hash.digest('hex'),
        scgi: (req as Partial<ScgiRequest>).scgi?.SERVER_NAME,
      }),
    );
  },
};

describe('scgi protocol: set-up', () => {
  it('is registered under the name "scgi"', () => {
    expect(PROTOCOLS).toContain('scgi');
    expect(protocolFactory('scgi')).toBe(createScgiProtocol);
  });

  it('refuses a handler module without a request export', () => {
    const { ctx } = fakeChild();
    let thrown: unknown;
    try {
      createScgiProtocol({ handler: {}, ctx, options: {}, reportError() {} });
    } catch (error) {
      thrown = error;
    }
    expect(isPreforkError(thrown, 'PREFORK_ERR_HANDLER_INVALID')).toBe(true);
    expect((thrown as Error).message).toMatch(/"scgi".*request\(req, res, ctx\)/);
  });

  it.each([
    [{ maxHeaderSize: 0 }, 'scgi.maxHeaderSize: expected a positive integer (bytes), got 0'],
    [{ headerTimeout: '10s' }, 'scgi.headerTimeout: expected a non-negative integer (ms), got "10s"'],
    [{ bodyTimeout: -5 }, 'scgi.bodyTimeout: expected a non-negative integer (ms), got -5'],
    [{ bodyTimout: 5 }, 'scgi.bodyTimout: unknown option'],
  ])('refuses the options %j with PREFORK_ERR_OPTION_INVALID', (options, message) => {
    const { ctx } = fakeChild();
    let thrown: unknown;
    try {
      createScgiProtocol({ handler: portable, ctx, options: options as ScgiOptions, reportError() {} });
    } catch (error) {
      thrown = error;
    }
    expect(isPreforkError(thrown, 'PREFORK_ERR_OPTION_INVALID')).toBe(true);
    expect((thrown as Error).message).toContain(message);
  });
});

describe('scgi protocol: requests', () => {
  it('serves a GET with a query, turning the variables into an IncomingMessage', async () => {
    const { front } = await serve(portable);
    const reply = await exchange(
      front,
      scgiHead({
        REQUEST_METHOD: 'GET',
        REQUEST_URI: '/search?q=prefork&page=2',
        QUERY_STRING: 'q=prefork&page=2',
        SERVER_PROTOCOL: 'HTTP/1.1',
        SERVER_NAME: 'example.org',
        REMOTE_ADDR: '203.0.113.7',
        REMOTE_PORT: '54321',
        HTTP_HOST: 'example.org',
        HTTP_USER_AGENT: 'test/1.0',
        HTTP_X_FORWARDED_FOR: '198.51.100.1',
        CONTENT_TYPE: '',
      }),
    );
    expect(reply.status).toBe('201 Created');
    expect(reply.raw.startsWith('Status: 201 Created\r\n')).toBe(true);
    expect(reply.headers['content-type']).toBe('application/json');
    expect(reply.raw).toContain('Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n');
    expect(reply.headers['content-length']).toBe(String(Buffer.byteLength(reply.body)));
    expect(reply.headers).not.toHaveProperty('transfer-encoding');
    expect(reply.headers).not.toHaveProperty('connection');
    expect(reply.headers).not.toHaveProperty('date');
    const seen = JSON.parse(reply.body);
    expect(seen).toMatchObject({
      method: 'GET',
      url: '/search?q=prefork&page=2',
      httpVersion: '1.1',
      remoteAddress: '203.0.113.7',
      remotePort: 54321,
      size: 0,
      scgi: 'example.org',
    });
    expect(seen.headers).toEqual({ host: 'example.org', 'user-agent': 'test/1.0', 'x-forwarded-for': '198.51.100.1' });
  });

  it('builds the URL from SCRIPT_NAME, PATH_INFO and QUERY_STRING when REQUEST_URI is absent', async () => {
    const { front } = await serve(portable);
    const reply = await exchange(
      front,
      scgiHead({ REQUEST_METHOD: 'GET', SCRIPT_NAME: '/app', PATH_INFO: '/items/7', QUERY_STRING: 'full=1' }),
    );
    expect(JSON.parse(reply.body)).toMatchObject({ url: '/app/items/7?full=1', httpVersion: '1.0' });
  });

  it('streams a 1 MiB POST body to the handler, sent in pieces', async () => {
    const { front } = await serve(portable);
    const body = Buffer.alloc(1024 * 1024);
    for (let index = 0; index < body.length; index += 1) body[index] = (index * 7919) & 0xff;
    const head = scgiHead({ REQUEST_METHOD: 'POST', REQUEST_URI: '/upload', CONTENT_TYPE: 'application/octet-stream' }, body.length);
    const pieces = [head.subarray(0, 5), Buffer.concat([head.subarray(5), body.subarray(0, 1000)])];
    for (let offset = 1000; offset < body.length; offset += 65_536) pieces.push(body.subarray(offset, offset + 65_536));
    const reply = await exchange(front, ...pieces);
    const seen = JSON.parse(reply.body);
    expect(seen).toMatchObject({ method: 'POST', size: body.length, sha256: createHash('sha256').update(body).digest('hex') });
    expect(seen.headers).toMatchObject({ 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
  });

  it('passes header values with unusual characters through byte for byte', async () => {
    const { front } = await serve(portable);
    const odd = 'a;b,c="d" \u00e9\u00ff\t{}[]<>\\/?#%';
    const reply = await exchange(
      front,
      scgiHead({ ...GET_INDEX, HTTP_X_ODD: odd, HTTP_X_EMPTY: '', HTTP_COOKIE: 'k=v; k2=v2', HTTP_ACCEPT_LANGUAGE: 'de-CH,de;q=0.9' }),
    );
    const seen = JSON.parse(reply.body);
    expect(seen.headers).toEqual({ 'x-odd': odd, 'x-empty': '', cookie: 'k=v; k2=v2', 'accept-language': 'de-CH,de;q=0.9' });
  });

  it('serves the same handler over HTTP and SCGI with the same results', async () => {
    const { front } = await serve(portable);
    const missing = await exchange(front, scgiHead({ ...GET_INDEX, REQUEST_URI: '/missing' }));
    expect(missing.status).toBe('404 Not Found');
    expect(missing.body).toBe('no such thing');
    const streamed = await exchange(front, scgiHead({ ...GET_INDEX, REQUEST_URI: '/stream' }));
    expect(streamed.status).toBe('200 OK');
    expect(streamed.body).toBe('one two three');
    expect(streamed.headers).not.toHaveProperty('transfer-encoding');

    const child = fakeChild();
    const http = await startFront(createHttpProtocol({ handler: portable, ctx: child.ctx, options: {}, reportError() {} }));
    fronts.push(http);
    const client = await connectClient(http.port);
    client.socket.write('GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const text = await client.closed;
    expect(text).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(text).toContain('Transfer-Encoding: chunked');
  });

  it('sends no body for HEAD, and strips a chunked framing the handler asked for', async () => {
    const { front } = await serve({
      request(req, res) {
        res.setHeader('Transfer-Encoding', 'chunked');
        res.write('abc');
        res.end('def');
      },
    });
    const head = await exchange(front, scgiHead({ ...GET_INDEX, REQUEST_METHOD: 'HEAD' }));
    expect(head.body).toBe('');
    const get = await exchange(front, scgiHead(GET_INDEX));
    expect(get.headers).not.toHaveProperty('transfer-encoding');
    expect(get.body).toBe('abcdef');
  });

  it('accepts a header block that arrives one byte at a time', async () => {
    const { front } = await serve(portable);
    const client = await connectClient(front.port);
    const bytes = scgiHead({ ...GET_INDEX, REQUEST_URI: '/slow' });
    for (const byte of bytes) client.socket.write(Buffer.from([byte]));
    expect(JSON.parse(parseCgi(await client.closed).body)).toMatchObject({ url: '/slow' });
  });

  it('resolves handle() after the answer is sent and the connection closed', async () => {
    const { front } = await serve(portable);
    await exchange(front, scgiHead(GET_INDEX));
    const handled = await front.nextHandled();
    await handled.done;
    expect(handled.resolved).toBe(true);
  });
});

describe('scgi protocol: bad input', () => {
  const refusals: Array<[string, () => Buffer, string, RegExp]> = [
    ['a length that is not a number', () => Buffer.from('abc:CONTENT_LENGTH\0' + '0\0,'), '400 Bad Request', /netstring length: got byte 0x61/],
    ['a length without ":"', () => Buffer.from('12,CONTENT_LENGTH'), '400 Bad Request', /netstring length: got byte 0x2c/],
    ['a ":" without a length', () => Buffer.from(':x,'), '400 Bad Request', /":" without a length/],
    ['a length with a leading zero', () => Buffer.from('024:CONTENT_LENGTH\0' + '0\0SCGI\0' + '1\0,'), '400 Bad Request', /leading zero/],
    ['a block not followed by ","', () => netstring('CONTENT_LENGTH\0' + '0\0SCGI\0' + '1\0', ';'), '400 Bad Request', /not followed by ","/],
    ['a block that does not end with NUL', () => netstring('CONTENT_LENGTH\0' + '0\0SCGI\0' + '1'), '400 Bad Request', /does not end with a NUL/],
    ['a header without a value', () => netstring('CONTENT_LENGTH\0' + '0\0SCGI\0' + '1\0ODD\0'), '400 Bad Request', /"ODD" has no value/],
    ['an empty header name', () => netstring('CONTENT_LENGTH\0' + '0\0SCGI\0' + '1\0\0x\0'), '400 Bad Request', /header 3 has an empty name/],
    ['CONTENT_LENGTH missing', () => netstring('SCGI\0' + '1\0'), '400 Bad Request', /first header must be CONTENT_LENGTH/],
    ['CONTENT_LENGTH not first', () => netstring('SCGI\0' + '1\0CONTENT_LENGTH\0' + '0\0'), '400 Bad Request', /first header must be CONTENT_LENGTH, got "SCGI"/],
    ['CONTENT_LENGTH not a number', () => netstring('CONTENT_LENGTH\0-12\0SCGI\0' + '1\0'), '400 Bad Request', /CONTENT_LENGTH must be a decimal number of bytes, got "-12"/],
    ['CONTENT_LENGTH repeated', () => netstring('CONTENT_LENGTH\0' + '0\0SCGI\0' + '1\0CONTENT_LENGTH\0' + '9\0'), '400 Bad Request', /repeated/],
    ['SCGI missing', () => netstring('CONTENT_LENGTH\0' + '0\0'), '400 Bad Request', /SCGI header is missing/],
    ['SCGI other than 1', () => netstring('CONTENT_LENGTH\0' + '0\0SCGI\0' + '2\0'), '400 Bad Request', /SCGI must be "1", got "2"/],
    ['REQUEST_METHOD missing', () => scgiHead({ REQUEST_URI: '/' }), '400 Bad Request', /REQUEST_METHOD is missing/],
    ['a method that is not a token', () => scgiHead({ REQUEST_METHOD: 'GE T', REQUEST_URI: '/' }), '400 Bad Request', /not a method name: "GE T"/],
    ['a length over maxHeaderSize', () => Buffer.from('5000:'), '431 Request Header Fields Too Large', /larger than maxHeaderSize \(1024 bytes\)/],
    ['a header block over maxHeaderSize', () => scgiHead({ ...GET_INDEX, HTTP_X_BIG: 'x'.repeat(2000) }), '431 Request Header Fields Too Large', /maxHeaderSize/],
  ];

  const cases = refusals.map(([what, bytes, status, reason]) => ({ what, bytes, status, reason }));
  it.each(cases)('answers $what with $status, logs it at debug level and does not call the handler', async ({ bytes, status, reason }) => {
    let called = false;
    const { front, lines, errors } = await serve(
      {
        request(_req, res) {
          called = true;
          res.end();
        },
      },
      { maxHeaderSize: 1024 },
    );
    const reply = await exchange(front, bytes());
    expect(reply.status).toBe(status);
    expect(reply.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(reply.body).toMatch(reason);
    expect(reply.headers['content-length']).toBe(String(Buffer.byteLength(reply.body)));
    expect(called).toBe(false);
    expect(errors).toEqual([]);
    expect(lines).toContainEqual(expect.objectContaining({ level: 'debug', message: 'scgi request refused', fields: expect.objectContaining({ status: Number(status.slice(0, 3)) }) }));
    await (await front.nextHandled()).done;
  });

  it('answers 400 to a body that ends before CONTENT_LENGTH, and the handler sees the request aborted', async () => {
    let aborted: unknown;
    const { front } = await serve(
      {
        async request(req) {
          try {
            for await (const _chunk of req) {
              // reading until the request ends or fails
            }
          } catch (error) {
            aborted = error;
          }
        },
      },
      {},
      { allowHalfOpen: true },
    );
    const client = await connectClient(front.port);
    client.socket.write(scgiHead({ ...GET_INDEX, REQUEST_METHOD: 'POST' }, 100));
    client.socket.end('only a little');
    const reply = parseCgi(await client.closed);
    expect(reply.status).toBe('400 Bad Request');
    expect(reply.body).toMatch(/ended 87 bytes before the end of the body/);
    await (await front.nextHandled()).done;
    expect(aborted).toMatchObject({ message: 'aborted', code: 'ECONNRESET' });
  });

  it('answers 400 to a connection that ends in the middle of the header block', async () => {
    const { front } = await serve(portable, {}, { allowHalfOpen: true });
    const client = await connectClient(front.port);
    client.socket.end(scgiHead(GET_INDEX).subarray(0, 20));
    const reply = parseCgi(await client.closed);
    expect(reply.status).toBe('400 Bad Request');
    expect(reply.body).toMatch(/before the header block was complete/);
  });

  it('closes quietly a connection that ends without sending anything', async () => {
    const { front, lines } = await serve(portable, {}, { allowHalfOpen: true });
    const client = await connectClient(front.port);
    client.socket.end();
    expect(await client.closed).toBe('');
    await (await front.nextHandled()).done;
    expect(lines.map((line) => line.message)).toEqual(['scgi connection closed before a request']);
  });

  it('resolves handle() when a client without half-close ends early, even though no answer can be written', async () => {
    const { front } = await serve(portable);
    const client = await connectClient(front.port);
    client.socket.end(scgiHead({ ...GET_INDEX, REQUEST_METHOD: 'POST' }, 100));
    await client.closed;
    await (await front.nextHandled()).done;
  });

  it('answers 408 to a header block that stalls past headerTimeout', async () => {
    const { front } = await serve(portable, { headerTimeout: 200 });
    // The limit runs from the server's accept, which can come before the client sees its connect:
    // the lower bound is measured from before the connect, the upper from the write.
    const connectingAt = Date.now();
    const client = await connectClient(front.port);
    const sentAt = Date.now();
    client.socket.write(scgiHead(GET_INDEX).subarray(0, 10));
    const reply = parseCgi(await client.closed);
    expect(reply.status).toBe('408 Request Timeout');
    expect(reply.body).toMatch(/headerTimeout \(200 ms\)/);
    expect(Date.now() - connectingAt).toBeGreaterThanOrEqual(200);
    expect(Date.now() - sentAt).toBeLessThan(200 + 1_000);
    await (await front.nextHandled()).done;
  });

  it('answers 408 to a body that stalls past bodyTimeout', async () => {
    const { front } = await serve(portable, { bodyTimeout: 200 });
    const client = await connectClient(front.port);
    client.socket.write(Buffer.concat([scgiHead({ ...GET_INDEX, REQUEST_METHOD: 'PUT' }, 50), Buffer.from('0123456789')]));
    const reply = parseCgi(await client.closed);
    expect(reply.status).toBe('408 Request Timeout');
    expect(reply.body).toMatch(/bodyTimeout \(200 ms\)/);
    await (await front.nextHandled()).done;
  });

  it('does not count a handler that has not read the body yet as a stalled body', async () => {
    const { front } = await serve(
      {
        async request(req, res) {
          // Let the socket fill the request's buffer and pause, for longer than bodyTimeout.
          await new Promise((resolve) => setTimeout(resolve, 400));
          let size = 0;
          for await (const chunk of req) size += (chunk as Buffer).length;
          res.end(String(size));
        },
      },
      { bodyTimeout: 100 },
    );
    const body = Buffer.alloc(4 * 1024 * 1024, 1);
    const reply = await exchange(front, scgiHead({ ...GET_INDEX, REQUEST_METHOD: 'POST' }, body.length), body);
    expect(reply.status).toBe('200 OK');
    expect(reply.body).toBe(String(body.length));
  });
});

describe('scgi protocol: handler errors', () => {
  it('answers 500 to a handler that throws and reports it', async () => {
    const failure = new Error('kaput');
    const { front, errors, lines } = await serve({
      request(_req, res) {
        res.setHeader('X-Internal', 'secret');
        throw failure;
      },
    });
    const reply = await exchange(front, scgiHead(GET_INDEX));
    expect(reply.status).toBe('500 Internal Server Error');
    expect(reply.headers).not.toHaveProperty('x-internal');
    expect(errors).toEqual([{ error: failure, where: 'request' }]);
    expect(lines.filter((line) => line.message === 'scgi request refused')).toEqual([]);
  });

  it('cuts the connection of a handler that fails after its answer started', async () => {
    const { front, errors } = await serve({
      async request(_req, res) {
        res.write('partial');
        await new Promise((resolve) => setImmediate(resolve));
        throw new Error('late');
      },
    });
    const client = await connectClient(front.port);
    client.socket.write(scgiHead(GET_INDEX));
    expect(await client.closed).toMatch(/^Status: 200 OK\r\n[\s\S]*partial$/);
    expect(errors).toHaveLength(1);
    await (await front.nextHandled()).done;
  });
});
