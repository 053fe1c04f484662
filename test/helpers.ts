import net from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from '../index.js';
import type { PoolOptions } from '../src/pool/options.js';
import type { Logger } from '../src/child/types.js';

/** Absolute path of a file in test/fixtures. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
}

/** A fresh directory for sockets and files of one test. */
export function tempDir(prefix = 'prefork-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A logger that keeps its lines for assertions (and prints nothing). */
export function memoryLogger(): Logger & { lines: { level: string; message: string; fields?: Record<string, unknown> }[] } {
  const lines: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => void lines.push({ level, message, fields });
  return { lines, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
}

const running = new Set<Pool>();

/** Starts a pool on 127.0.0.1, port 0, with the control fixture unless told otherwise. */
export async function startPool(options: Partial<PoolOptions> = {}): Promise<Pool & { logged: ReturnType<typeof memoryLogger> }> {
  const logged = memoryLogger();
  const pool = new Pool({
    handler: fixture('control.mjs'),
    listen: '127.0.0.1:0',
    logger: logged,
    ...options,
    children: { start: 2, ...options.children },
    timeouts: { accept: 2000, start: 5000, stop: 5000, ...options.timeouts },
  });
  running.add(pool);
  await pool.start();
  return Object.assign(pool, { logged });
}

/** Stops every pool a test started (call from afterEach). */
export async function stopPools(): Promise<void> {
  await Promise.all([...running].map((pool) => pool.stop('test done')));
  running.clear();
}

/** Where a pool listens, as net.connect options. */
export function target(pool: Pool, index = 0): net.NetConnectOpts {
  const address = pool.addresses()[index]!;
  return address.path ? { path: address.path } : { host: address.address, port: address.port };
}

/** Opens a connection and waits until it is established. */
export async function connect(pool: Pool, index = 0): Promise<net.Socket> {
  const socket = net.connect(target(pool, index));
  await once(socket, 'connect');
  return socket;
}

/** Reads from a socket until it has a full line; resolves with that line. */
export function readLine(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const newline = text.indexOf('\n');
      if (newline >= 0) {
        cleanup();
        resolve(text.slice(0, newline));
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new Error(`connection ended before a full line (got ${JSON.stringify(text)})`));
    };
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onEnd);
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onEnd);
  });
}

/** Sends one command to the control fixture and returns the first line of the answer. */
export async function command(pool: Pool, line: string, index = 0): Promise<{ socket: net.Socket; answer: string }> {
  const socket = await connect(pool, index);
  const answer = readLine(socket);
  socket.write(`${line}\n`);
  return { socket, answer: await answer };
}

/** Sends a command, reads the whole answer until the server closes. */
export async function ask(pool: Pool, line: string, index = 0): Promise<string> {
  const socket = net.connect(target(pool, index));
  socket.write(`${line}\n`);
  let text = '';
  socket.on('data', (chunk) => (text += chunk.toString('utf8')));
  // A reset after the answer (the server closed with our bytes unread) still ends the exchange;
  // events.once would reject on 'error', so wait for 'close' by hand.
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('close', resolve));
  return text;
}

/** Resolves when `predicate` holds, checking on every pool event loop turn via setImmediate, up to `ms`. */
export async function until(predicate: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Blocks this process's event loop (the parent's, in these tests) for `ms` without burning CPU. */
export function blockEventLoop(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Resolves with the arguments of the next call of a sync hook that satisfies `predicate`
 * (awaiting the event itself, not polling for its effects).
 */
export function nextHook<Args extends unknown[]>(
  hook: { tap(name: string, fn: (...args: Args) => undefined): void },
  predicate: (...args: Args) => boolean = () => true,
  ms = 10000,
): Promise<Args> {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      reject(new Error(`hook not called within ${ms} ms`));
    }, ms);
    // Stage -100: observe before any plugin's Bail tap answers and ends the call.
    hook.tap({ name: 'test', stage: -100 } as never, (...args: Args) => {
      if (done || !predicate(...args)) return undefined;
      done = true;
      clearTimeout(timer);
      resolve(args);
      return undefined;
    });
  });
}

/**
 * Resolves once `predicate()` holds, checking now and after every call of `hook`: waits for the
 * pool's own event, never a fixed time. Rejects after `ms`.
 */
export function waitFor(
  hook: { tap(options: never, fn: (...args: never[]) => undefined): void },
  predicate: () => boolean,
  ms = 10000,
): Promise<void> {
  if (predicate()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      reject(new Error(`condition not reached within ${ms} ms`));
    }, ms);
    hook.tap({ name: 'test-wait', stage: -100 } as never, () => {
      if (!done && predicate()) {
        done = true;
        clearTimeout(timer);
        // Let the pool finish the step that called the hook before the test looks at it.
        setImmediate(resolve);
      }
      return undefined;
    });
  });
}

/** Resolves once the pool has finished `count` connections in all (awaits the children's DONE reports). */
export function served(pool: Pool, count: number, ms?: number): Promise<void> {
  return waitFor(pool.hooks.onConnectionDone as never, () => pool.stats().connections.served >= count, ms);
}

/** Resolves once `count` accept orders in all were answered "accepted". */
export function accepted(pool: Pool, count: number, ms?: number): Promise<void> {
  return waitFor(pool.hooks.afterDispatch as never, () => pool.stats().connections.accepted >= count, ms);
}

/** Whether a process of that pid is still there and has not exited (a zombie counts as gone). */
export function alive(pid: number): boolean {
  // A zombie has exited; it only waits to be reaped (by init, for an orphan, which may be slow).
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Polls (bounded) until none of the pids is alive: no event tells us when a foreign process died. */
export async function allGone(pids: number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!pids.some(alive)) return [];
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return pids.filter(alive);
}
