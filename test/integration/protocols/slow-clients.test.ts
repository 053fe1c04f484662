import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeFeatures } from '../../../src/native/index.js';
import type { Pool } from '../../../src/pool/Pool.js';
import { skipWithout } from '../../environment.js';
import { accepted, connect, fixture, startPool, stopPools, waitFor } from '../../helpers.js';
import { fetchAnswer, seen } from './client.js';

// Slow clients against the HTTP protocol: slowloris connections that dribble a header that never
// ends, idle connections that never send anything (TCP_DEFER_ACCEPT), and a reader that does not
// read (TCP_NOTSENT_LOWAT).

afterEach(stopPools);

/** Long enough never to complete within the test: after ~3 s at one byte per 200 ms, 15 bytes. */
const ENDLESS_HEAD = `GET /slowloris HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ${'a'.repeat(200)}`;
const DRIBBLE_INTERVAL_MS = 200;
/** A dribbler that the server has not closed by then gives up, so that a broken server fails the test instead of hanging it. */
const DRIBBLE_GIVE_UP_MS = 8_000;

/** What one slowloris connection saw. */
interface Dribbled {
  /** performance.now() at 'connect'. */
  connectedAt: number;
  /** performance.now() when the server closed (FIN or reset) or the client gave up. */
  closedAt: number;
  closedBy: 'server' | 'client';
  /** What the server wrote before closing. */
  received: string;
}

/**
 * Connects and sends one byte of a header that never ends every DRIBBLE_INTERVAL_MS (the pace is
 * the load's shape, not a synchronisation). Resolves once the server has closed the connection.
 */
function dribble(port: number): Promise<Dribbled> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let connectedAt = Number.NaN;
    let received = '';
    let sent = 0;
    let done = false;
    const send = () => {
      if (socket.writable) socket.write(ENDLESS_HEAD[sent++ % ENDLESS_HEAD.length]!);
    };
    const interval = setInterval(send, DRIBBLE_INTERVAL_MS);
    const giveUp = setTimeout(() => finish('client'), DRIBBLE_GIVE_UP_MS);
    const finish = (closedBy: Dribbled['closedBy']) => {
      if (done) return;
      done = true;
      const closedAt = performance.now();
      clearInterval(interval);
      clearTimeout(giveUp);
      socket.destroy();
      resolve({ connectedAt, closedAt, closedBy, received });
    };
    socket.on('connect', () => {
      connectedAt = performance.now();
      send();
    });
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('end', () => finish('server'));
    socket.on('error', () => finish('server'));
    socket.on('close', () => finish('server'));
  });
}

/** Answers from the server that a slowloris connection may see: Node's 408, or nothing (reset). */
function expectTimedOut(results: Dribbled[]): void {
  for (const result of results) {
    expect(Number.isFinite(result.connectedAt)).toBe(true);
    expect(result.closedBy).toBe('server');
    if (result.received !== '') expect(result.received).toMatch(/^HTTP\/1\.1 408 /);
  }
}

/**
 * The server's view: the proto-app fixture's probe (PROTO_APP_PROBE_CONNECTIONS) reports, for
 * every connection, the milliseconds from the child's hand-over of the accepted socket to its close.
 */
function probeLifetimes(pool: Pool): number[] {
  const lifetimes: number[] = [];
  // Stage -200: record before waitFor() (stage -100) checks the count on the same call.
  pool.hooks.onChildLog.tap({ name: 'probe', stage: -200 }, (_child, line) => {
    if (line.message === 'connection closed') lifetimes.push(Number(line.fields?.lifetimeMs));
  });
  return lifetimes;
}

/** After the slow clients: a normal request is answered within 1 s (the bound). */
async function expectPromptAnswer(pool: Pool): Promise<void> {
  const startedAt = performance.now();
  const answer = await fetchAnswer(pool.addresses()[0]!.port, '/after-the-storm');
  const elapsed = performance.now() - startedAt;
  expect(seen(answer).url).toBe('/after-the-storm');
  expect(elapsed).toBeLessThan(1000);
}

const SLOWLORIS_POOL = {
  handler: fixture('proto-app.mjs'),
  protocol: 'http',
  http: { headersTimeout: 2000 },
  env: { PROTO_APP_PROBE_CONNECTIONS: '1' },
} as const;

describe('slowloris against the HTTP protocol, 4 children, headersTimeout 2000 ms', () => {
  // 4 children hold all 200 at once: with 64 slots each (one slot per connection, as without
  // parking), or with the default single slot, because a connection whose header block is still
  // arriving is parked and holds none (children.connections is 256 each). So every connection is
  // accepted as soon as the parent has dispatched it, and each is bounded by headersTimeout (408,
  // extended by the few bytes dribbled: 5 B/s at minDataRate 500, 1 %) plus the sweep interval.
  // "Accepted" is measured in the child (the probe); a client can only see its connect, which
  // comes earlier by the time the connection waited in the backlog for its turn to be dispatched.
  const holdsAll = async (slots: number) => {
    const pool = await startPool({ ...SLOWLORIS_POOL, children: { start: 4, min: 4, max: 4, slots } });
    const lifetimes = probeLifetimes(pool);
    const port = pool.addresses()[0]!.port;
    const results = await Promise.all(Array.from({ length: 200 }, () => dribble(port)));
    await waitFor(pool.hooks.onChildLog as never, () => lifetimes.length >= 200);

    expectTimedOut(results);
    expect(lifetimes).toHaveLength(200);
    // Held for the whole headersTimeout (the clients kept dribbling), closed within the sweep after it.
    expect(Math.min(...lifetimes)).toBeGreaterThanOrEqual(2000);
    expect(Math.max(...lifetimes)).toBeLessThanOrEqual(3000);
    const stats = pool.stats();
    expect(stats.exits).toEqual({ total: 0, failedStarts: 0, crashes: 0 });
    expect(stats.connections.accepted).toBe(200);
    await expectPromptAnswer(pool);
  };
  const title = 'each of 200 dribbling connections is closed within 3 s of being accepted; no child crashes; then a request is answered within 1 s';
  it(`with 64 slots per child, ${title}`, () => holdsAll(64));
  it.skipIf(!nativeFeatures().pages)(`with 1 slot per child (the default), the connections parked, ${title}`, () => holdsAll(1));

  it('with 1 slot and 1 connection per child (classic prefork, nothing parked), each connection is closed within 3 s of being accepted, but they are accepted in waves of 4', async () => {
    // With one connection per child only 4 connections are held at a time; the others wait in the
    // kernel's backlog until a child is free, so the 5th client waits a whole round longer than it
    // is held. 200 such connections would take 50 rounds (~110 s), so the bound is checked on 8.
    const pool = await startPool({ ...SLOWLORIS_POOL, children: { start: 4, min: 4, max: 4, slots: 1, connections: 1 } });
    const lifetimes = probeLifetimes(pool);
    const port = pool.addresses()[0]!.port;
    const results = await Promise.all(Array.from({ length: 8 }, () => dribble(port)));
    await waitFor(pool.hooks.onChildLog as never, () => lifetimes.length >= 8);

    expectTimedOut(results);
    expect(lifetimes).toHaveLength(8);
    // Held for the whole headersTimeout (the clients kept dribbling), closed within the sweep after it.
    expect(Math.min(...lifetimes)).toBeGreaterThanOrEqual(2000);
    expect(Math.max(...lifetimes)).toBeLessThanOrEqual(3000);
    // From the client's side the second round also waited for the first one.
    const waited = results.map((result) => result.closedAt - result.connectedAt).sort((a, b) => a - b);
    expect(waited[7]!).toBeGreaterThan(Math.max(...lifetimes));
    expect(pool.stats().exits).toEqual({ total: 0, failedStarts: 0, crashes: 0 });
    await expectPromptAnswer(pool);
  });
});

describe('deferAccept (Linux TCP_DEFER_ACCEPT)', () => {
  const options = {
    handler: fixture('proto-app.mjs'),
    protocol: 'http',
    children: { start: 2, min: 2, max: 2, slots: 4 },
  } as const;

  it('with deferAccept: 1, connections that send nothing are not offered to children, and one that sends a request is served', async () => {
    const pool = await startPool({ ...options, deferAccept: 1 });
    // The client's handshake completes; the kernel holds the connection back until data comes
    // (or, after about deferAccept seconds, offers it after all).
    const idle = await Promise.all(Array.from({ length: 3 }, () => connect(pool)));
    try {
      const answer = await fetchAnswer(pool.addresses()[0]!.port, '/deferred');
      expect(seen(answer).url).toBe('/deferred');
      await accepted(pool, 1);
      // Had the idle connections been queued, they would have come first (the queue is FIFO).
      expect(pool.stats().connections.accepted).toBe(1);
      expect(pool.stats().acceptQueue?.length).toBe(0);
      expect(idle.every((socket) => !socket.destroyed)).toBe(true);
    } finally {
      for (const socket of idle) socket.destroy();
    }
  });

  it('without it, the same idle connections are accepted and each holds a slot', async () => {
    const pool = await startPool(options);
    const idle = await Promise.all(Array.from({ length: 3 }, () => connect(pool)));
    try {
      const answer = await fetchAnswer(pool.addresses()[0]!.port, '/not-deferred');
      expect(seen(answer).url).toBe('/not-deferred');
      await accepted(pool, 4);
      expect(pool.stats().connections.accepted).toBe(4);
      expect(pool.stats().connections.active).toBeGreaterThanOrEqual(3);
    } finally {
      for (const socket of idle) socket.destroy();
    }
  });
});

/**
 * The kernel's send queue of the server's end of a connection (`tx_queue` in /proc/net/tcp: bytes
 * written and not yet acknowledged by the client's kernel), found by the two ports; -1 while absent.
 */
function serverSendQueue(serverPort: number, clientPort: number): number {
  const hex = (port: number) => port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'latin1').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 5 || !fields[1]!.endsWith(`:${hex(serverPort)}`) || !fields[2]!.endsWith(`:${hex(clientPort)}`)) continue;
    return Number.parseInt(fields[4]!.split(':')[0]!, 16);
  }
  return -1;
}

/**
 * Asks for `/big` (1 MiB, one shared buffer) and does not read: returns the server's send queue
 * once it has stopped growing (the client's receive window is full and the kernel took what it
 * takes), then reads the whole answer and returns its body's length too.
 */
async function stalledReader(port: number): Promise<{ queued: number; bodyBytes: number }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  socket.pause();
  socket.write('GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  // Bounded: the queue settles within milliseconds on loopback; 5 s only stop a broken run.
  let queued = -1;
  let previous = -2;
  const deadline = performance.now() + 5000;
  while (performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    queued = serverSendQueue(port, socket.localPort!);
    if (queued > 0 && queued === previous) break;
    previous = queued;
  }
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.resume();
  await once(socket, 'close');
  const answer = Buffer.concat(chunks);
  const bodyBytes = answer.length - (answer.indexOf('\r\n\r\n') + 4);
  return { queued, bodyBytes };
}

/** The send queue is read from Linux's /proc/net/tcp; the option itself exists on macOS too. */
const NO_SEND_QUEUE = skipWithout(
  nativeFeatures().notsentLowat && process.platform === 'linux' ? undefined : 'this system has no TCP_NOTSENT_LOWAT or no /proc/net/tcp, so the notsentLowat tests are skipped',
);

describe.skipIf(NO_SEND_QUEUE)('notsentLowat (TCP_NOTSENT_LOWAT): what the kernel holds for a client that does not read', () => {
  const options = { handler: fixture('slow-target.mjs'), protocol: 'http', children: { start: 1, min: 1, max: 1 } } as const;

  it('at the default (64 KiB), the kernel holds little of a 1 MiB answer; the rest waits in the child, and the client gets all of it once it reads', async () => {
    const pool = await startPool(options);
    const { queued, bodyBytes } = await stalledReader(pool.addresses()[0]!.port);
    expect(queued).toBeGreaterThan(0);
    expect(queued).toBeLessThan(256 * 1024);
    expect(bodyBytes).toBe(1024 * 1024);
  });

  it('with notsentLowat: 0 (the system default), the kernel takes most of the answer into its own memory', async () => {
    const pool = await startPool({ ...options, notsentLowat: 0 });
    const { queued, bodyBytes } = await stalledReader(pool.addresses()[0]!.port);
    expect(queued).toBeGreaterThan(512 * 1024);
    expect(bodyBytes).toBe(1024 * 1024);
  });
});
