import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { fixture, startPool, stopPools, target } from '../../helpers.js';

afterEach(stopPools);

/** One SCGI request: the netstring of headers, then the body. */
function scgiRequest(path: string, body = ''): Buffer {
  const headers = `CONTENT_LENGTH\0${Buffer.byteLength(body)}\0SCGI\x001\0REQUEST_METHOD\0${body ? 'POST' : 'GET'}\0REQUEST_URI\0${path}\0SERVER_PROTOCOL\0HTTP/1.1\0`;
  return Buffer.concat([Buffer.from(`${Buffer.byteLength(headers)}:${headers},`), Buffer.from(body)]);
}

/** Writes `bytes`, half-closes (as `nc -N` does), and resolves with everything read until the server closes. */
function halfClosed(pool: Parameters<typeof target>[0], bytes: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ ...target(pool), allowHalfOpen: true } as net.NetConnectOpts);
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString('utf8')));
    socket.on('error', reject);
    socket.on('close', () => resolve(text));
    socket.end(bytes);
  });
}

describe('SCGI from a client that half-closes after its request', () => {
  it('gets the whole answer of an async handler', async () => {
    const pool = await startPool({ handler: fixture('proto-app.mjs'), protocol: 'scgi', children: { start: 1 } });
    const answer = await halfClosed(pool, scgiRequest('/late?delay=50', 'body'));
    expect(answer).toMatch(/^Status: 200 OK\r\n/);
    expect(answer).toContain('"url":"/late?delay=50"');
  });

  it('still gets a 400 for a header block cut short by the half-close', async () => {
    const pool = await startPool({ handler: fixture('proto-app.mjs'), protocol: 'scgi', children: { start: 1 } });
    const answer = await halfClosed(pool, scgiRequest('/').subarray(0, 20));
    expect(answer).toMatch(/^Status: 400 Bad Request\r\n/);
    expect(answer).toContain('the connection ended before the header block was complete');
  });
});
