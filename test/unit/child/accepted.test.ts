import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AcceptedSockets } from '../../../src/child/accepted.js';
import { accept, close, listenTcp, listenUnix, socketpair, write } from '../../../src/native/index.js';
import { tempDir } from '../../helpers.js';
import { join } from 'node:path';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** Accepts the next connection of listener `fd`, waiting for it to arrive (bounded). */
async function acceptNext(fd: number): Promise<number> {
  for (let i = 0; i < 400; i++) {
    const connection = accept(fd);
    if (connection >= 0) return connection;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error('no connection arrived');
}

/** Sends `text` each way between a client and the server's socket, and checks both arrive. */
async function exchange(client: Socket, server: Socket, text: string): Promise<void> {
  const atServer = once(server, 'data');
  client.write(`${text} to the server`);
  expect(String((await atServer)[0])).toBe(`${text} to the server`);
  const atClient = once(client, 'data');
  server.write(`${text} to the client`);
  expect(String((await atClient)[0])).toBe(`${text} to the client`);
}

describe('AcceptedSockets', () => {
  it('makes working TCP sockets; after the first, from a handle of the class Node picked for it', async () => {
    const listener = listenTcp('127.0.0.1', 0);
    cleanups.push(() => close(listener.fd));
    const sockets = new AcceptedSockets();
    const classOf = (socket: Socket) => (socket as unknown as { _handle: object })._handle.constructor;
    const classes: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      const client = connect(listener.port!, '127.0.0.1');
      cleanups.push(() => client.destroy());
      await once(client, 'connect');
      const server = sockets.socket(await acceptNext(listener.fd), 0, false);
      cleanups.push(() => server.destroy());
      classes.push(classOf(server));
      expect(server.remotePort).toBe(client.localPort);
      expect(server.remoteAddress).toBe('127.0.0.1');
      await exchange(client, server, `connection ${i}`);
      // The server's end ends the client's side too, as for any accepted socket.
      const ended = once(client, 'end');
      server.end();
      await ended;
    }
    expect((classes[0] as { name: string }).name).toBe('TCP');
    expect(new Set(classes).size).toBe(1);
  });

  it('keeps one class per listener: a Unix listener gets Pipe handles next to a TCP one', async () => {
    const tcp = listenTcp('127.0.0.1', 0);
    const path = join(tempDir(), 's.sock');
    const unix = listenUnix(path);
    cleanups.push(() => close(tcp.fd), () => close(unix.fd));
    const sockets = new AcceptedSockets();
    for (let i = 0; i < 2; i++) {
      for (const [index, listener, target] of [[0, tcp, { port: tcp.port!, host: '127.0.0.1' }], [1, unix, { path }]] as const) {
        const client = connect(target);
        cleanups.push(() => client.destroy());
        await once(client, 'connect');
        const server = sockets.socket(await acceptNext(listener.fd), index, false);
        cleanups.push(() => server.destroy());
        expect((server as unknown as { _handle: object })._handle.constructor.name).toBe(index === 0 ? 'TCP' : 'Pipe');
        await exchange(client, server, `${index === 0 ? 'tcp' : 'unix'} ${i}`);
      }
    }
  });

  it('fails on a descriptor that is not open as new Socket({ fd }) does, and still makes sockets after', async () => {
    const sockets = new AcceptedSockets();
    const [first, firstPeer] = socketpair();
    const one = sockets.socket(first, 0, false);
    cleanups.push(() => one.destroy(), () => close(firstPeer));
    // Far above any descriptor this process has open.
    expect(() => sockets.socket(2 ** 30, 0, false)).toThrow();
    const [next, nextPeer] = socketpair();
    const two = sockets.socket(next, 0, false);
    cleanups.push(() => two.destroy(), () => close(nextPeer));
    const read = once(two, 'data');
    write(nextPeer, Buffer.from('still works'));
    expect(String((await read)[0])).toBe('still works');
  });
});
