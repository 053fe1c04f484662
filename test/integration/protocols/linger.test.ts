import net from 'node:net';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../../index.js';
import { ask, fixture, startPool, stopPools, target, until } from '../../helpers.js';

afterEach(stopPools);

/** One SCGI request without a body. */
function scgiRequest(path: string): Buffer {
  const headers = `CONTENT_LENGTH\x000\0SCGI\x001\0REQUEST_METHOD\0GET\0REQUEST_URI\0${path}\0SERVER_PROTOCOL\0HTTP/1.1\0`;
  return Buffer.from(`${Buffer.byteLength(headers)}:${headers},`);
}

/**
 * Connects with its side kept open after the server's end (allowHalfOpen), sends `bytes`, and
 * resolves with the socket and everything read once the server has ended its side.
 */
async function untilServerEnds(pool: Pool, bytes: Buffer | string): Promise<{ socket: net.Socket; text: string }> {
  const socket = net.connect({ ...target(pool), allowHalfOpen: true } as net.NetConnectOpts);
  let text = '';
  socket.on('data', (chunk) => (text += chunk.toString('utf8')));
  socket.write(bytes);
  await once(socket, 'end');
  return { socket, text };
}

/**
 * The state of the server's end of the connection from `clientPort` to `serverPort` on loopback,
 * from /proc/net/tcp: whether a process still holds it (inode 0: its descriptor is closed, the
 * kernel finishes the close alone), or undefined when it is gone.
 */
function serverEnd(serverPort: number, clientPort: number): { held: boolean } | undefined {
  const hex = (port: number) => `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[1]?.endsWith(hex(serverPort)) && fields[2]?.endsWith(hex(clientPort))) return { held: fields[9] !== '0' };
  }
  return undefined;
}

describe('a connection whose side the server ended no longer holds its child', () => {
  it('raw: a single child serves the next client while the first keeps its side open, reads what it still sends, and lets it go within the linger', async () => {
    const pool = await startPool({ handler: fixture('answer-end.mjs'), protocol: 'raw', children: { start: 1, min: 1, max: 1 } });
    const first = await untilServerEnds(pool, 'hello\n');
    // The only child takes the next connection while the first client has not closed.
    const second = await ask(pool, 'hello');
    expect(second).toBe(first.text);
    // The first connection is still open on the child's side: what its client sends is read.
    first.socket.write('late\n');
    await until(() => pool.logged.lines.some((line) => line.message === 'read after the end'), 5000, 'the late bytes read');
    const port = pool.addresses()[0]!.port!;
    expect(serverEnd(port, first.socket.localPort!)).toEqual({ held: true });
    // A client that never closes: the child closes its descriptor after the linger (2 s).
    await until(() => serverEnd(port, first.socket.localPort!)?.held !== true, 8000, "the child's descriptor of the lingering connection closed");
    first.socket.destroy();
    expect(pool.stats().connections.served).toBe(2);
  });

  it('raw: a stopping child exits only after a lingering connection has closed (its close hook runs after)', async () => {
    const pool = await startPool({ handler: fixture('answer-end.mjs'), protocol: 'raw', children: { start: 1, min: 1, max: 1 } });
    const first = await untilServerEnds(pool, 'hello\n');
    const stopped = pool.stop('test');
    // Still reading during the stop: the child has not exited.
    first.socket.write('late\n');
    await until(() => pool.logged.lines.some((line) => line.message === 'read after the end'), 5000, 'the late bytes read');
    expect(pool.logged.lines.some((line) => line.message === 'close hook')).toBe(false);
    first.socket.end();
    await stopped;
    const messages = pool.logged.lines.map((line) => line.message);
    expect(messages.indexOf('close hook')).toBeGreaterThan(messages.indexOf('read after the end'));
  });

  it('scgi: a single child answers the next request while the first client keeps its side open', async () => {
    const pool = await startPool({ handler: fixture('answer-end.mjs'), protocol: 'scgi', children: { start: 1, min: 1, max: 1 } });
    const first = await untilServerEnds(pool, scgiRequest('/first'));
    expect(first.text).toMatch(/^Status: 200 OK\r\n/);
    const second = await untilServerEnds(pool, scgiRequest('/second'));
    expect(second.text).toBe(first.text);
    // Answered while the child still held the first connection, not after its linger ran out.
    expect(serverEnd(pool.addresses()[0]!.port!, first.socket.localPort!)).toEqual({ held: true });
    first.socket.destroy();
    second.socket.destroy();
  });
});
