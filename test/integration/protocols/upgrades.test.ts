import net from 'node:net';
import { once } from 'node:events';
import { get } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { Pool } from '../../../index.js';
import { readFileSync } from 'node:fs';
import { fixture, nextHook, served, startPool, stopPools, until } from '../../helpers.js';
import { TestPki } from '../../pki.js';

// Connections that leave HTTP: WebSockets through `ws` in the handler's `upgrade` export, CONNECT
// through its `connect` export, and the refusal when the export is not there. Each holds a slot
// of its child until its socket closes, and counts as one connection served.

afterEach(stopPools);

const WS_APP = fixture('ws-app.mjs');

function portOf(pool: Pool): number {
  return pool.addresses()[0]!.port!;
}

async function openWebSocket(port: number, path = '/'): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
  await once(ws, 'open');
  return ws;
}

/** Sends one message and resolves with the next message received, as text. */
async function roundTrip(ws: WebSocket, message: string): Promise<string> {
  const reply = once(ws, 'message');
  ws.send(message);
  const [data] = (await reply) as [Buffer];
  return data.toString();
}

/** Closes from the client's side and resolves with the close code once the closing handshake is over. */
async function closeWebSocket(ws: WebSocket): Promise<number> {
  const closed = once(ws, 'close');
  ws.close(1000);
  const [code] = (await closed) as [number];
  return code;
}

/** The body of a plain GET on a new connection. */
function plainGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** Sends `text` on a new connection and resolves with all the server sent, once the connection has closed. */
async function untilClosed(port: number, text: string): Promise<string> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.write(text);
  await once(socket, 'close');
  return received;
}

const UPGRADE_REQUEST = 'GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';

describe('HTTP upgrades', () => {
  it('a ws client exchanges messages with the handler\'s upgrade export (ws with noServer) over a plain listener', async () => {
    const pool = await startPool({ handler: WS_APP, protocol: 'http', children: { start: 1 } });
    const ws = await openWebSocket(portOf(pool));
    expect(await roundTrip(ws, 'hello')).toBe('hello');
    expect(await roundTrip(ws, 'and again')).toBe('and again');
    expect(await closeWebSocket(ws)).toBe(1000);
    await served(pool, 1);
    expect(pool.stats().connections).toMatchObject({ served: 1, lost: 0, active: 0 });
  });

  it('a ws client exchanges messages over a TLS listener (wss://), the handshake and the upgrade both in the child', async () => {
    const pki = new TestPki();
    const { cert, key } = pki.issue('ws-server');
    const pool = await startPool({ handler: WS_APP, protocol: 'http', listen: { host: '127.0.0.1', port: 0, tls: { cert, key } }, children: { start: 1 } });
    const ws = new WebSocket(`wss://localhost:${portOf(pool)}/`, { ca: readFileSync(pki.ca) });
    await once(ws, 'open');
    expect(await roundTrip(ws, 'over tls')).toBe('over tls');
    expect(await closeWebSocket(ws)).toBe(1000);
    await served(pool, 1);
    expect(pool.stats().connections).toMatchObject({ served: 1, lost: 0, active: 0 });
    // A client that does not trust the certificate never gets a socket.
    const untrusting = new WebSocket(`wss://localhost:${portOf(pool)}/`);
    const [error] = (await once(untrusting, 'error')) as [Error & { code?: string }];
    expect(error.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  it('100 concurrent WebSockets over 2 children of 64 slots all exchange a message and close, counted as served; a child holding some still serves plain requests', async () => {
    const pool = await startPool({ handler: WS_APP, protocol: 'http', children: { start: 2, min: 2, max: 2, slots: 64 } });
    const port = portOf(pool);
    const sockets = await Promise.all(Array.from({ length: 100 }, () => openWebSocket(port)));
    const pids = new Set(await Promise.all(sockets.map((ws) => roundTrip(ws, 'pid'))));
    // 64 slots each: neither child can hold all 100, so both hold some.
    expect(pids.size).toBe(2);
    const echoes = await Promise.all(sockets.map((ws, index) => roundTrip(ws, `message ${index}`)));
    expect(echoes).toEqual(sockets.map((_ws, index) => `message ${index}`));
    const plain = await Promise.all([plainGet(port), plainGet(port), plainGet(port)]);
    for (const body of plain) expect([...pids]).toContain(/^pid (\d+)\n$/.exec(body)?.[1]);
    const codes = await Promise.all(sockets.map(closeWebSocket));
    expect(codes.every((code) => code === 1000)).toBe(true);
    await served(pool, 103);
    expect(pool.stats().connections).toMatchObject({ served: 103, lost: 0, active: 0 });
  });

  it('an upgrade request to a handler without an upgrade export is refused with 501 and its connection closed', async () => {
    const pool = await startPool({ handler: fixture('slots-app.mjs'), protocol: 'http', children: { start: 1 } });
    const answer = await untilClosed(portOf(pool), UPGRADE_REQUEST);
    expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 501 Not Implemented');
    expect(answer).toMatch(/\r\nConnection: close\r\n/);
    await served(pool, 1);
    // The handler's request export never saw it: the child still runs one request at a time from zero.
    expect(JSON.parse(await plainGet(portOf(pool)))).toMatchObject({ running: 1 });
  });

  it('a CONNECT to a handler without a connect export is refused with 501 too', async () => {
    const pool = await startPool({ handler: fixture('slots-app.mjs'), protocol: 'http', children: { start: 1 } });
    const answer = await untilClosed(portOf(pool), 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n');
    expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 501 Not Implemented');
  });

  it('a CONNECT reaches the handler\'s connect export, which tunnels the bytes after it (an echo here)', async () => {
    const pool = await startPool({ handler: WS_APP, protocol: 'http', children: { start: 1 } });
    const socket = net.connect({ host: '127.0.0.1', port: portOf(pool) });
    let received = '';
    const seen = (text: string) =>
      new Promise<void>((resolve) => {
        const check = () => received.includes(text) && (socket.off('data', check), resolve());
        socket.on('data', check);
      });
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    const established = seen('HTTP/1.1 200 Connection Established\r\n\r\nfirst bytes');
    // Bytes right behind the request reach the export as `head`.
    socket.write('CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\nfirst bytes');
    await established;
    expect(received.startsWith('HTTP/1.1 200 Connection Established\r\n\r\n')).toBe(true);
    const more = seen('first bytes and more');
    socket.write(' and more');
    await more;
    socket.end();
    await once(socket, 'close');
    await served(pool, 1);
    expect(pool.stats().connections).toMatchObject({ served: 1, lost: 0 });
  });

  it('an upgrade export that throws is reported as a child error and its connection destroyed; the child goes on', async () => {
    const pool = await startPool({ handler: WS_APP, protocol: 'http', children: { start: 1 } });
    const reported = nextHook(pool.hooks.onChildError);
    const answer = await untilClosed(portOf(pool), UPGRADE_REQUEST.replace('/chat', '/throw'));
    expect(answer).toBe('');
    const [, error] = await reported;
    expect(error).toMatchObject({ where: 'upgrade', message: 'upgrade refused by the fixture' });
    const ws = await openWebSocket(portOf(pool));
    expect(await roundTrip(ws, 'still here')).toBe('still here');
    await closeWebSocket(ws);
  });

  it('a graceful stop leaves an open WebSocket alone: it goes on echoing, and the child exits of itself once its peer closes it', async () => {
    const pool = await startPool({ handler: WS_APP, protocol: 'http', children: { start: 1, min: 1, max: 1, minSpare: 0 }, timeouts: { stop: 20_000, drain: 0 } });
    const ws = await openWebSocket(portOf(pool));
    let closing = false;
    let closedByServer = false;
    ws.on('close', () => (closedByServer = !closing));
    const exited = nextHook(pool.hooks.onChildExit, undefined, 20_000);
    let stopped = false;
    const stopping = pool.stop('test stop').then(() => (stopped = true));
    // The parent has ordered the stop; the unit tests of the adapter show the child's side of it.
    await until(() => pool.children().every((child) => child.state === 'stopping'), 5000, 'the child to be stopping');
    expect(await roundTrip(ws, 'during the stop')).toBe('during the stop');
    expect(stopped).toBe(false);
    closing = true;
    expect(await closeWebSocket(ws)).toBe(1000);
    expect(closedByServer).toBe(false);
    const [, exit] = await exited;
    expect(exit).toMatchObject({ code: 0, signal: null, lost: 0 });
    await stopping;
  });
});
