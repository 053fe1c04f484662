import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import type { ChildContext, ProtocolAdapter } from '../../../src/child/types.js';

/** One line the fake child logger received. */
export interface LogLine {
  readonly level: 'error' | 'warn' | 'info' | 'debug';
  readonly message: string;
  readonly fields?: Record<string, unknown>;
}

/** A ChildContext for a child that is not there, with the lines it logged and the errors reported. */
export function fakeChild(): { ctx: ChildContext; lines: LogLine[]; errors: Array<{ error: unknown; where: string }> } {
  const lines: LogLine[] = [];
  const log = (level: LogLine['level']) => (message: string, fields?: Record<string, unknown>) => {
    lines.push({ level, message, fields });
  };
  const ctx: ChildContext = {
    id: 1,
    pid: process.pid,
    generation: 1,
    logger: { error: log('error'), warn: log('warn'), info: log('info'), debug: log('debug') },
    connections: 0,
    requestShutdown() {},
    retire() {},
  };
  return { ctx, lines, errors: [] };
}

/** A connection the front server accepted and handed to the adapter. */
export interface Handled {
  readonly socket: Socket;
  /** The promise `adapter.handle(socket)` returned. */
  readonly done: Promise<void>;
  /** Whether `done` has resolved yet. */
  resolved: boolean;
}

/** A loopback listener that imitates the child runtime: every accepted socket goes to adapter.handle(). */
export interface Front {
  readonly port: number;
  readonly handled: Handled[];
  /** Resolves with the next connection handed to the adapter (or one already handed and not taken). */
  nextHandled(): Promise<Handled>;
  close(): Promise<void>;
}

export async function startFront(adapter: ProtocolAdapter, options: { allowHalfOpen?: boolean } = {}): Promise<Front> {
  const handled: Handled[] = [];
  const waiting: Array<(entry: Handled) => void> = [];
  let taken = 0;
  const server: Server = createServer({ allowHalfOpen: options.allowHalfOpen ?? false }, (socket) => {
    const entry: Handled = { socket, done: adapter.handle(socket), resolved: false };
    void entry.done.then(() => {
      entry.resolved = true;
    });
    handled.push(entry);
    const waiter = waiting.shift();
    if (waiter) {
      taken += 1;
      waiter(entry);
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    handled,
    nextHandled() {
      if (taken < handled.length) return Promise.resolve(handled[taken++] as Handled);
      return new Promise((resolve) => waiting.push(resolve));
    },
    async close() {
      for (const entry of handled) entry.socket.destroy();
      await Promise.all(handled.map((entry) => entry.done));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A client connection to the front, with everything it receives collected. */
export interface Client {
  readonly socket: Socket;
  /** Everything received so far, as latin1 text. */
  received(): string;
  /** Resolves once the received text satisfies the predicate (rejects if the socket closes first). */
  until(predicate: (text: string) => boolean): Promise<string>;
  /** Resolves with everything received once the server has closed the connection. */
  closed: Promise<string>;
}

export async function connectClient(port: number): Promise<Client> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  const waiters = new Set<() => void>();
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    for (const waiter of [...waiters]) waiter();
  });
  socket.on('error', () => {});
  const received = () => Buffer.concat(chunks).toString('latin1');
  const closed = new Promise<string>((resolve) => {
    socket.once('close', () => {
      for (const waiter of [...waiters]) waiter();
      resolve(received());
    });
  });
  return {
    socket,
    received,
    closed,
    until(predicate) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const text = received();
          if (predicate(text)) {
            waiters.delete(check);
            resolve(text);
          } else if (socket.closed) {
            waiters.delete(check);
            reject(new Error(`connection closed; received ${JSON.stringify(text)}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** A promise with its resolve function outside, to hold a handler until the test lets it go. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

/** Counts the complete HTTP responses with a Content-Length in `text`. */
export function countResponses(text: string): number {
  return text.split('HTTP/1.1 ').length - 1;
}
