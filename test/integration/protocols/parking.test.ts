import net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeFeatures } from '../../../src/native/index.js';
import { fixture, startPool, stopPools, waitFor } from '../../helpers.js';

// A child parks the connections that only wait (an idle keep-alive connection, one whose request
// is still arriving) in its event loop: they hold none of its slots, so one child with one slot
// serves new clients while it holds many such connections, and still runs one request at a time.

const SKIP = !nativeFeatures().pages;

const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await stopPools();
});

/** A connection that sends `GET path` and resolves with the first complete answer, the socket left open. */
async function ask(port: number, path: string): Promise<{ socket: net.Socket; body: { pid: number; running: number; most: number } }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  sockets.push(socket);
  socket.on('error', () => {});
  socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  return { socket, body: await answer(socket) };
}

/** The JSON body of the next answer on `socket`. */
async function answer(socket: net.Socket): Promise<{ pid: number; running: number; most: number }> {
  let text = '';
  for (;;) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    text += chunk.toString('latin1');
    const head = text.indexOf('\r\n\r\n');
    const length = /content-length: (\d+)/i.exec(text);
    if (head >= 0 && length && text.length >= head + 4 + Number(length[1])) return JSON.parse(text.slice(head + 4, head + 4 + Number(length[1])));
  }
}

const oneChild = { start: 1, min: 1, max: 1, minSpare: 0, slots: 1 };

describe.skipIf(SKIP)('parked connections (HTTP)', () => {
  it('idle keep-alive connections and slowloris headers hold no slot: one child with one slot serves a new client at once', async () => {
    // Long limits: on a loaded machine the set-up may take longer than the default keepAliveTimeout.
    const pool = await startPool({ handler: fixture('slots-app.mjs'), protocol: 'http', http: { keepAliveTimeout: 60_000, headersTimeout: 60_000 }, children: oneChild });
    const { port } = pool.addresses()[0]!;
    // 20 connections that got an answer and stay open, idle.
    for (let i = 0; i < 20; i++) await ask(port, `/idle-${i}`);
    // 20 that send half a header and nothing more.
    for (let i = 0; i < 20; i++) {
      const slow = net.connect({ host: '127.0.0.1', port });
      sockets.push(slow);
      slow.on('error', () => {});
      slow.write('GET /never HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    }
    await waitFor(pool.hooks.afterDispatch as never, () => pool.stats().connections.accepted >= 40, 5000);
    // Held a slot each, they would keep it until keepAliveTimeout (5 s) or headersTimeout (20 s).
    const askedAt = Date.now();
    const { body } = await ask(port, '/new');
    expect(Date.now() - askedAt).toBeLessThan(1000);
    expect(body.running).toBe(1);
    expect(pool.stats().connections.active).toBe(41);
  });

  it('still runs one request at a time in a one-slot child: a parked connection whose request arrives waits for the slot', async () => {
    const pool = await startPool({ handler: fixture('slots-app.mjs'), protocol: 'http', children: oneChild });
    const { port } = pool.addresses()[0]!;
    const first = await ask(port, '/a');
    const second = await ask(port, '/b');
    // Both requests at once, on two parked connections of the same child.
    first.socket.write('GET /held?hold=300 HTTP/1.1\r\nHost: x\r\n\r\n');
    second.socket.write('GET /also?hold=300 HTTP/1.1\r\nHost: x\r\n\r\n');
    const answers = await Promise.all([answer(first.socket), answer(second.socket)]);
    expect(answers.map((body) => body.running)).toEqual([1, 1]);
    expect(Math.max(...answers.map((body) => body.most))).toBe(1);
  });

  it('a child whose slot is taken gets no new connection; when the request ends (its connection kept alive) the parent is woken and the waiting client served', async () => {
    const pool = await startPool({ handler: fixture('slots-app.mjs'), protocol: 'http', children: oneChild });
    const { port } = pool.addresses()[0]!;
    const holder = net.connect({ host: '127.0.0.1', port });
    sockets.push(holder);
    holder.write('GET /held?hold=400 HTTP/1.1\r\nHost: x\r\n\r\n');
    const held = answer(holder);
    await waitFor(pool.hooks.afterDispatch as never, () => pool.stats().connections.accepted >= 1, 5000);
    // The only slot is taken: this client waits in the backlog (a graceful overload) ...
    const overloaded = new Promise<void>((resolve) => pool.hooks.onOverload.tap({ name: 'test', stage: -100 }, () => void resolve()));
    const waiting = ask(port, '/next');
    await overloaded;
    // ... until the held request ends; its connection stays open, so only the FREE wakes the parent.
    const startedAt = Date.now();
    await held;
    const { body } = await waiting;
    expect(body.running).toBe(1);
    expect(Date.now() - startedAt).toBeLessThan(1000);
    expect(pool.stats().connections.served).toBe(0);
  });

  it('children.connections bounds what a child holds: a new client waits for a connection to close', async () => {
    const pool = await startPool({ handler: fixture('slots-app.mjs'), protocol: 'http', children: { ...oneChild, connections: 3 } });
    const { port } = pool.addresses()[0]!;
    const open = [await ask(port, '/1'), await ask(port, '/2'), await ask(port, '/3')];
    const overloaded = new Promise<void>((resolve) => pool.hooks.onOverload.tap({ name: 'test', stage: -100 }, () => void resolve()));
    const fourth = ask(port, '/4');
    await overloaded;
    open[0]!.socket.destroy();
    const { body } = await fourth;
    expect(body.running).toBe(1);
    expect(pool.stats().connections.served).toBe(1);
  });

  it('chain grants and parked connections: a parked connection of an earlier order that closes does not end the grant running now', async () => {
    // One child with the default chain grants: each order may chain further accepts. A parked
    // keep-alive connection from an earlier order closes while connection-per-request clients are
    // being chained; its DONE names its own order, so the parent does not count the grant as over
    // (it would then kill the child for the chained reports that follow).
    const pool = await startPool({ handler: fixture('slots-app.mjs'), protocol: 'http', children: oneChild });
    const { port } = pool.addresses()[0]!;
    const parked = await ask(port, '/parked');
    const oneShot = async () => {
      const socket = net.connect({ host: '127.0.0.1', port });
      sockets.push(socket);
      socket.on('error', () => {});
      socket.write('GET /once HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      const body = await answer(socket);
      await once(socket, 'close');
      return body;
    };
    const load = Promise.all(Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 50; i++) await oneShot();
    }));
    await waitFor(pool.hooks.onConnectionDone as never, () => pool.stats().connections.chained > 0, 5000);
    parked.socket.destroy();
    await load;
    // Clients see their answers before the parent reads the last DONE.
    await waitFor(pool.hooks.onConnectionDone as never, () => pool.stats().connections.served >= 201, 5000);
    const stats = pool.stats();
    expect(stats.invalidFrames).toBe(0);
    expect(stats.exits.total).toBe(0);
    expect(stats.connections.chained).toBeGreaterThan(0);
    expect(stats.connections.served).toBe(201);
  });
});
