import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isPreforkError } from '../../src/errors.js';
import { findAddon } from '../../src/native/load.js';
import { NO_IPV6, skipWithout } from '../environment.js';
import {
  accept,
  acceptAndClose,
  acceptQueue,
  acceptQueueLength,
  adoptListener,
  close,
  createWatcher,
  listenTcp,
  listenUnix,
  createPage,
  holdNewConnections,
  listenerInfo,
  mapPage,
  nativeFeatures,
  pendingHandshakes,
  readable,
  setCloexec,
  setNonblocking,
  systemErrorCode,
  tcpNoDelay,
  schedPolicy,
  setSchedPolicy,
  setNotsentLowat,
  notsentLowat,
  type ListenerInfo,
  type Watcher,
} from '../../src/native/index.js';

/** Octal flag bits of /proc/self/fdinfo/<fd>. */
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;

/** An fd number far above any fd table, so that it is certainly not open (a closed fd could be reused). */
const NEVER_OPEN_FD = 2 ** 30;

/** The file the pool loads: the checkout's build, or the prebuild that fits. */
const ADDON_PATH = findAddon();

/** What this build compiled (the Linux fast paths, or the POSIX fallbacks of `npm run test:portable`). */
const FEATURES = nativeFeatures();

/**
 * Asserts that `count` connections wait on a TCP listener: counted where the build reads the
 * accept queue (TCP_INFO), else only whether any waits (the listener polls readable).
 */
function expectWaiting(fd: number, count: number): void {
  if (FEATURES.acceptQueue) {
    expect(acceptQueueLength(fd)).toBe(count);
  } else {
    expect(acceptQueueLength(fd)).toBe(-1);
    expect(readable(fd)).toBe(count > 0);
  }
}

let directory: string;
const openFds = new Set<number>();
const sockets: Socket[] = [];
const watchers: Watcher[] = [];

beforeAll(() => {
  directory = mkdtempSync(join(tmpdir(), 'prefork-native-'));
});

afterAll(() => {
  rmSync(directory, { recursive: true, force: true });
});

afterEach(() => {
  for (const watcher of watchers.splice(0)) watcher.close();
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const fd of openFds) close(fd);
  openFds.clear();
});

/** Records an fd that the test owns, so that afterEach closes it even when the test fails. */
function track<T extends ListenerInfo | number>(opened: T): T {
  openFds.add(typeof opened === 'number' ? opened : opened.fd);
  return opened;
}

/** Hands an owned fd to a net.Socket, which closes it from now on. */
function adoptSocket(fd: number): Socket {
  openFds.delete(fd);
  const socket = new Socket({ fd });
  sockets.push(socket);
  return socket;
}

function closeTracked(fd: number): void {
  openFds.delete(fd);
  close(fd);
}

function fdFlags(fd: number): number {
  const match = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  if (match?.[1] === undefined) throw new Error(`no flags line in /proc/self/fdinfo/${fd}`);
  return Number.parseInt(match[1], 8);
}

async function connectClient(options: { port: number; host: string } | { path: string }): Promise<Socket> {
  const client = 'path' in options ? connect(options.path) : connect(options.port, options.host);
  sockets.push(client);
  await once(client, 'connect');
  return client;
}

/** Everything a client receives until the server ends the connection. */
async function readUntilEnd(client: Socket): Promise<string> {
  const chunks: Buffer[] = [];
  client.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(client, 'end');
  return Buffer.concat(chunks).toString();
}

function thrownBy(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

describe('features', () => {
  it('the Linux build has every fast path; the portable build (PREFORK_EXPECT_PORTABLE=1) none', () => {
    const portable = process.env.PREFORK_EXPECT_PORTABLE === '1';
    // TCP_NOTSENT_LOWAT is a plain socket option that macOS has too, so the portable build keeps it.
    const notsentLowat = process.platform === 'linux' || process.platform === 'darwin';
    expect(FEATURES).toEqual({ sockFlags: !portable, acceptQueue: !portable, deferAccept: !portable, notsentLowat, holdNewConnections: !portable, pages: !portable, schedBatch: !portable, portable });
  });
});

describe('listenTcp', () => {
  it('binds port 0 to a real free port that clients can connect to', async () => {
    const listener = track(listenTcp('127.0.0.1', 0));
    expect(listener).toEqual({ fd: expect.any(Number), family: 'IPv4', address: '127.0.0.1', port: expect.any(Number) });
    expect(listener.port).toBeGreaterThan(0);
    await connectClient({ port: listener.port, host: '127.0.0.1' });
    expect(track(accept(listener.fd))).toBeGreaterThanOrEqual(0);
  });

  it.skipIf(skipWithout(NO_IPV6))('listens on the IPv6 loopback ::1', async () => {
    const listener = track(listenTcp('::1', 0));
    expect(listener).toMatchObject({ family: 'IPv6', address: '::1' });
    await connectClient({ port: listener.port, host: '::1' });
    expectWaiting(listener.fd, 1);
  });

  it('makes the listener non-blocking and close-on-exec', () => {
    const listener = track(listenTcp('127.0.0.1', 0));
    expect(fdFlags(listener.fd) & O_NONBLOCK).toBe(O_NONBLOCK);
    expect(fdFlags(listener.fd) & O_CLOEXEC).toBe(O_CLOEXEC);
  });

  it.skipIf(skipWithout(NO_IPV6))('applies ipv6Only to the wildcard address: dual-stack holds the IPv4 port too, IPv6-only does not', () => {
    const dualStack = track(listenTcp('::', 0, { ipv6Only: false }));
    expect(systemErrorCode(thrownBy(() => listenTcp('127.0.0.1', dualStack.port)))).toBe('EADDRINUSE');
    const ipv6Only = track(listenTcp('::', 0, { ipv6Only: true }));
    expect(track(listenTcp('127.0.0.1', ipv6Only.port)).port).toBe(ipv6Only.port);
  });

  it('takes localhost as 127.0.0.1', () => {
    expect(track(listenTcp('localhost', 0)).address).toBe('127.0.0.1');
  });

  it('refuses a host name instead of resolving it, naming the host', () => {
    const error = thrownBy(() => listenTcp('example.com', 0));
    expect(isPreforkError(error, 'PREFORK_ERR_LISTEN')).toBe(true);
    expect((error as Error).message).toContain('"example.com"');
    expect((error as Error).message).toContain('not resolved');
  });

  it('reports a taken port as PREFORK_ERR_LISTEN naming the address and EADDRINUSE', () => {
    const listener = track(listenTcp('127.0.0.1', 0));
    const error = thrownBy(() => listenTcp('127.0.0.1', listener.port));
    expect(isPreforkError(error, 'PREFORK_ERR_LISTEN')).toBe(true);
    expect((error as Error).message).toContain(`127.0.0.1:${listener.port}`);
    expect((error as Error).message).toContain('EADDRINUSE');
    expect(systemErrorCode(error)).toBe('EADDRINUSE');
    expect((error as Error).cause).toMatchObject({ code: 'EADDRINUSE', syscall: 'bind' });
  });
});

describe('listenUnix', () => {
  it('creates a non-blocking, close-on-exec socket file with the requested mode', async () => {
    const path = join(directory, 'mode.sock');
    const listener = track(listenUnix(path, { mode: 0o660 }));
    expect(listener).toEqual({ fd: listener.fd, family: 'unix', address: path, port: 0, path });
    expect(statSync(path).isSocket()).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o660);
    expect(fdFlags(listener.fd) & (O_NONBLOCK | O_CLOEXEC)).toBe(O_NONBLOCK | O_CLOEXEC);
    await connectClient({ path });
  });

  it('never applies the mode through a symlink swapped in for the new socket file (raced by another process)', async () => {
    // Someone who can write the directory replaces the socket file, between bind() and chmod, by
    // a symlink to a file of the parent's: following it would give that file the socket's mode.
    const dir = mkdtempSync(join(directory, 'race-'));
    const path = join(dir, 'raced.sock');
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'secret');
    chmodSync(victim, 0o600);
    const racer = spawn(process.execPath, ['-e', `
      const fs = require('node:fs');
      const [path, victim] = process.argv.slice(1);
      const until = Date.now() + 4000;
      process.stdout.write('go\\n');
      while (Date.now() < until) {
        try { fs.unlinkSync(path); } catch {}
        try { fs.symlinkSync(victim, path); } catch {}
      }`, path, victim], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(racer.stdout!, 'data');
    const outcomes = new Map<string, number>();
    const deadline = Date.now() + 1500;
    while (Date.now() < deadline) {
      let outcome: string;
      try {
        closeTracked(track(listenUnix(path, { mode: 0o666 })).fd);
        outcome = 'bound';
      } catch (error) {
        outcome = String((error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message);
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      expect(statSync(victim).mode & 0o777, JSON.stringify([...outcomes])).toBe(0o600);
    }
    racer.kill();
    await once(racer, 'exit');
    expect(statSync(victim).mode & 0o777).toBe(0o600);
    expect(outcomes.size).toBeGreaterThan(0);
  });

  it('replaces a stale socket file that nobody listens on', async () => {
    const path = join(directory, 'stale.sock');
    closeTracked(track(listenUnix(path)).fd);
    expect(existsSync(path)).toBe(true);
    const listener = track(listenUnix(path));
    await connectClient({ path });
    expect(track(accept(listener.fd))).toBeGreaterThanOrEqual(0);
  });

  it('refuses a path where another socket listens, with EADDRINUSE naming the path', async () => {
    const path = join(directory, 'busy.sock');
    track(listenUnix(path));
    const error = thrownBy(() => listenUnix(path));
    expect(isPreforkError(error, 'PREFORK_ERR_LISTEN')).toBe(true);
    expect(systemErrorCode(error)).toBe('EADDRINUSE');
    expect((error as Error).message).toContain(path);
    await connectClient({ path });
  });

  it('refuses an abstract name (a leading NUL byte), which Node clients cannot reliably reach', () => {
    const error = thrownBy(() => listenUnix(`\0prefork-native-test-${process.pid}`));
    expect(isPreforkError(error, 'PREFORK_ERR_LISTEN')).toBe(true);
    expect(systemErrorCode(error)).toBe('EINVAL');
    expect((error as Error).message).toContain('abstract');
  });

  it('refuses a path longer than a Unix socket address holds, saying so', () => {
    const error = thrownBy(() => listenUnix(join(directory, 'x'.repeat(120))));
    expect(isPreforkError(error, 'PREFORK_ERR_LISTEN')).toBe(true);
    expect(systemErrorCode(error)).toBe('ENAMETOOLONG');
    expect((error as Error).message).toContain('too long');
  });

  it('counts bytes, not characters: a path whose last character does not fit whole is refused, not cut', () => {
    // 109 bytes in all, the last two one character: a copy cut to fit would be 107 bytes and bind.
    const base = join(directory, 'm');
    const path = base + 'x'.repeat(107 - Buffer.byteLength(base)) + 'é';
    expect(Buffer.byteLength(path)).toBe(109);
    const error = thrownBy(() => listenUnix(path));
    expect(systemErrorCode(error)).toBe('ENAMETOOLONG');
    expect((error as Error).message).toContain('this one has 109');
    expect(readdirSync(directory).filter((name) => name.startsWith('mx'))).toEqual([]);
  });

  it('refuses to replace a path that is not a socket', () => {
    const path = join(directory, 'regular-file');
    writeFileSync(path, 'keep me');
    const error = thrownBy(() => listenUnix(path));
    expect(isPreforkError(error, 'PREFORK_ERR_LISTEN')).toBe(true);
    expect(systemErrorCode(error)).toBe('ENOTSOCK');
    expect((error as Error).message).toContain('not a socket');
    expect(readFileSync(path, 'utf8')).toBe('keep me');
  });
});

describe('accept', () => {
  it('returns -1 at once when no connection waits', () => {
    const listener = track(listenTcp('127.0.0.1', 0));
    expect(accept(listener.fd)).toBe(-1);
  });

  it('returns a blocking, close-on-exec fd that net.Socket can serve', async () => {
    const listener = track(listenTcp('127.0.0.1', 0));
    const client = await connectClient({ port: listener.port, host: '127.0.0.1' });
    const fd = track(accept(listener.fd));
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(fdFlags(fd) & O_CLOEXEC).toBe(O_CLOEXEC);
    expect(fdFlags(fd) & O_NONBLOCK).toBe(0);

    const server = adoptSocket(fd);
    server.on('data', (data: Buffer) => server.write(data));
    client.write('ping');
    const [reply] = (await once(client, 'data')) as [Buffer];
    expect(reply.toString()).toBe('ping');
  });

  it('gives connections with TCP_NODELAY on where the system passes it on from the listener, which listenTcp sets (children then skip a setsockopt each)', async () => {
    const listener = track(listenTcp('127.0.0.1', 0));
    expect(tcpNoDelay(listener.fd)).toBe(true);
    await connectClient({ port: listener.port, host: '127.0.0.1' });
    const fd = track(accept(listener.fd));
    // Linux copies it into the accepted socket; elsewhere the child runtime keeps setting it.
    if (process.platform === 'linux') expect(tcpNoDelay(fd)).toBe(true);
    const unix = track(listenUnix(join(mkdtempSync(join(tmpdir(), 'prefork-nodelay-')), 's.sock')));
    expect(tcpNoDelay(unix.fd)).toBe(false);
    expect(thrownBy(() => tcpNoDelay(NEVER_OPEN_FD))).toMatchObject({ code: 'EBADF' });
  });

  it.skipIf(!FEATURES.notsentLowat)('gives connections the TCP_NOTSENT_LOWAT set on their listener (Linux copies it into each accepted socket)', async () => {
    const listener = track(listenTcp('127.0.0.1', 0));
    expect(notsentLowat(listener.fd)).toBe(0);
    expect(setNotsentLowat(listener.fd, 65536)).toBe(true);
    expect(notsentLowat(listener.fd)).toBe(65536);
    await connectClient({ port: listener.port, host: '127.0.0.1' });
    const fd = track(accept(listener.fd));
    if (process.platform === 'linux') expect(notsentLowat(fd)).toBe(65536);
    // 0 gives the system's default back, for the connections accepted from then on.
    expect(setNotsentLowat(listener.fd, 0)).toBe(true);
    await connectClient({ port: listener.port, host: '127.0.0.1' });
    expect(notsentLowat(track(accept(listener.fd)))).toBe(0);
    expect(notsentLowat(fd)).toBe(65536);
    const refused = thrownBy(() => setNotsentLowat(listener.fd, -1));
    expect(isPreforkError(refused) && refused.code).toBe('PREFORK_ERR_SOCKET');
    expect(String(refused)).toContain('bytes');
    const unix = track(listenUnix(join(mkdtempSync(join(tmpdir(), 'prefork-lowat-')), 's.sock')));
    const notTcp = thrownBy(() => setNotsentLowat(unix.fd, 65536));
    expect(isPreforkError(notTcp) && notTcp.code).toBe('PREFORK_ERR_SOCKET');
    expect(notsentLowat(unix.fd)).toBe(-1);
  });

  it('throws an Error with code EBADF for an fd that is not open', () => {
    const error = thrownBy(() => accept(NEVER_OPEN_FD));
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ code: 'EBADF', syscall: 'accept', errno: -9 });
  });
});

describe('acceptQueueLength', () => {
  it('counts the connections waiting on a TCP listener (where the build reads TCP_INFO; else says whether any wait)', async () => {
    const listener = track(listenTcp('127.0.0.1', 0));
    expectWaiting(listener.fd, 0);
    await Promise.all([1, 2, 3].map(() => connectClient({ port: listener.port, host: '127.0.0.1' })));
    expectWaiting(listener.fd, 3);
    expect(acceptQueue(listener.fd)).toEqual(FEATURES.acceptQueue ? { length: 3, limit: 511 } : null);
    track(accept(listener.fd));
    expectWaiting(listener.fd, 2);
  });

  it('is -1 (and acceptQueue null) for a Unix listener and for a socket that is not listening', async () => {
    const unixListener = track(listenUnix(join(directory, 'queue.sock')));
    expect(acceptQueueLength(unixListener.fd)).toBe(-1);
    expect(acceptQueue(unixListener.fd)).toBeNull();

    const tcpListener = track(listenTcp('127.0.0.1', 0));
    await connectClient({ port: tcpListener.port, host: '127.0.0.1' });
    const connection = track(accept(tcpListener.fd));
    expect(acceptQueueLength(connection)).toBe(-1);
  });
});

describe('createPage and mapPage', () => {
  it.skipIf(!FEATURES.pages)('shares a page that the other side sees at once, and that the fd given to a child cannot resize (its seals)', () => {
    const shared = createPage()!;
    expect(shared).not.toBeNull();
    openFds.add(shared.fd);
    const parent = new Int32Array(shared.page);
    // The child's view, through the same kind of fd it inherits.
    const childFd = openSync(`/proc/self/fd/${shared.fd}`, 'r+');
    const child = new Int32Array(mapPage(childFd));
    Atomics.store(child, 0, 7);
    expect(Atomics.load(parent, 0)).toBe(7);
    Atomics.store(parent, 1, 1);
    expect(Atomics.load(child, 1)).toBe(1);
    // Shrinking it would make the parent's next read a SIGBUS: the seals refuse it.
    expect(() => ftruncateSync(shared.fd, 0)).toThrow(/EPERM/);
    expect(() => ftruncateSync(shared.fd, 1 << 20)).toThrow(/EPERM/);
    expect(Atomics.load(parent, 0)).toBe(7);
  });
});

describe('holdNewConnections and pendingHandshakes', () => {
  it.skipIf(!FEATURES.holdNewConnections)('keeps new connects out of a TCP listener while the queued one stays, and counts the handshakes under way', async () => {
    // TCP_DEFER_ACCEPT leaves a connection that has sent nothing half-way (SYN-RECV) on the server.
    const listener = track(listenTcp('127.0.0.1', 0, { deferAccept: 5 }));
    expect(pendingHandshakes(listener.fd)).toBe(0);
    const silent = await connectClient({ port: listener.port, host: '127.0.0.1' });
    expect(pendingHandshakes(listener.fd)).toBe(1);
    expectWaiting(listener.fd, 0);
    expect(holdNewConnections(listener.fd)).toBe(true);
    // Held: the handshake under way still completes into the queue once its data comes.
    silent.write('x');
    const deadline = Date.now() + 2000;
    while (pendingHandshakes(listener.fd) > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(pendingHandshakes(listener.fd)).toBe(0);
    expectWaiting(listener.fd, 1);
    // A new connect gets no answer: its SYN is dropped, so it is still connecting.
    const late = connect(listener.port, '127.0.0.1');
    sockets.push(late);
    late.on('error', () => {});
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(late.connecting).toBe(true);
    expectWaiting(listener.fd, 1);
    expect(track(accept(listener.fd))).toBeGreaterThanOrEqual(0);
  });

  it('does nothing to a Unix listener, which has no handshakes to count', () => {
    const listener = track(listenUnix(join(directory, 'hold.sock')));
    expect(holdNewConnections(listener.fd)).toBe(false);
    expect(pendingHandshakes(listener.fd)).toBe(-1);
  });
});

describe('acceptAndClose', () => {
  it('sends the response to each waiting client, then ends the connection', async () => {
    const listener = track(listenTcp('127.0.0.1', 0));
    const silent = await connectClient({ port: listener.port, host: '127.0.0.1' });
    const talking = await connectClient({ port: listener.port, host: '127.0.0.1' });
    await new Promise<void>((resolve, reject) =>
      talking.write('GET / HTTP/1.1\r\n\r\n', (error) => (error ? reject(error) : resolve())),
    );
    const received = [readUntilEnd(silent), readUntilEnd(talking)];

    expect(acceptAndClose(listener.fd, 10, Buffer.from('HTTP/1.1 503 busy\r\n\r\n'))).toBe(2);
    expect(await Promise.all(received)).toEqual(['HTTP/1.1 503 busy\r\n\r\n', 'HTTP/1.1 503 busy\r\n\r\n']);
    expectWaiting(listener.fd, 0);
  });

  it('closes at most max connections, and none when nothing waits', async () => {
    const listener = track(listenTcp('127.0.0.1', 0));
    expect(acceptAndClose(listener.fd, 10)).toBe(0);
    await Promise.all([1, 2, 3].map(() => connectClient({ port: listener.port, host: '127.0.0.1' })));
    expect(acceptAndClose(listener.fd, 2, null)).toBe(2);
    expectWaiting(listener.fd, 1);
  });

  it('throws the errno when not a single connection could be taken', () => {
    expect(thrownBy(() => acceptAndClose(NEVER_OPEN_FD, 1))).toMatchObject({ code: 'EBADF' });
  });
});

describe('createWatcher', () => {
  it('calls back when a client connects, and runs nextTicks queued by the callback', async () => {
    const listener = track(listenTcp('127.0.0.1', 0));
    let calls = 0;
    const tickRan = new Promise<void>((resolve) => {
      const watcher = createWatcher(listener.fd, () => {
        calls += 1;
        watcher.stop();
        process.nextTick(resolve);
      });
      watchers.push(watcher);
      watcher.start();
      expect(watcher.active).toBe(true);
    });
    await connectClient({ port: listener.port, host: '127.0.0.1' });
    await tickRan;
    expect(calls).toBe(1);
    expectWaiting(listener.fd, 1);
  });

  it('does not call back while stopped, and does once started for a connection already waiting', async () => {
    const listener = track(listenTcp('127.0.0.1', 0));
    let calls = 0;
    let notify = (): void => {};
    const watcher = createWatcher(listener.fd, () => {
      calls += 1;
      watcher.stop();
      notify();
    });
    watchers.push(watcher);
    watcher.start();
    watcher.start();
    watcher.stop();
    watcher.stop();
    expect(watcher.active).toBe(false);

    await connectClient({ port: listener.port, host: '127.0.0.1' });
    // A bounded wait is the only way to observe that something does not happen.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(calls).toBe(0);

    const called = new Promise<void>((resolve) => (notify = resolve));
    watcher.start();
    await called;
    expect(calls).toBe(1);
    expect(watcher.active).toBe(false);
  });

  it('cannot be started after close, while stop and close stay harmless', () => {
    const listener = track(listenTcp('127.0.0.1', 0));
    const watcher = createWatcher(listener.fd, () => {});
    watcher.start();
    watcher.close();
    expect(watcher.active).toBe(false);
    watcher.stop();
    watcher.close();
    expect(isPreforkError(thrownBy(() => watcher.start()), 'PREFORK_ERR_SOCKET')).toBe(true);
  });

  it('reports an fd that cannot be polled as PREFORK_ERR_SOCKET with EBADF', () => {
    const error = thrownBy(() => createWatcher(NEVER_OPEN_FD, () => {}));
    expect(isPreforkError(error, 'PREFORK_ERR_SOCKET')).toBe(true);
    expect(systemErrorCode(error)).toBe('EBADF');
  });

  it('lets the process exit while started but unref()ed, and turns a throwing callback into uncaughtException', () => {
    const script = `
      const native = require(${JSON.stringify(ADDON_PATH)});
      const net = require('node:net');
      const idle = native.listenTcp('127.0.0.1', 0, 511, -1, 0);
      const idleWatcher = native.createWatcher(idle.fd, () => {});
      idleWatcher.start();
      idleWatcher.unref();
      const busy = native.listenTcp('127.0.0.1', 0, 511, -1, 0);
      const busyWatcher = native.createWatcher(busy.fd, () => { throw new Error('boom'); });
      process.on('uncaughtException', (error) => {
        console.log('uncaught ' + error.message);
        busyWatcher.close();
        client.destroy();
      });
      busyWatcher.start();
      const client = net.connect(busy.port, '127.0.0.1');
    `;
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
    expect(child.stderr).toBe('');
    expect(child.stdout).toBe('uncaught boom\n');
    expect(child.status).toBe(0);
  });
});

describe('adoptListener', () => {
  it('adopts a listening fd, making it non-blocking and close-on-exec again', () => {
    const listener = track(listenTcp('127.0.0.1', 0));
    setNonblocking(listener.fd, false);
    setCloexec(listener.fd, false);
    expect(fdFlags(listener.fd) & (O_NONBLOCK | O_CLOEXEC)).toBe(0);

    expect(adoptListener(listener.fd)).toEqual(listener);
    expect(fdFlags(listener.fd) & (O_NONBLOCK | O_CLOEXEC)).toBe(O_NONBLOCK | O_CLOEXEC);
    expect(listenerInfo(listener.fd)).toEqual({ ...listener, listening: true });
  });

  it('refuses a connected socket with EINVAL, saying it is not listening', async () => {
    const listener = track(listenTcp('127.0.0.1', 0));
    await connectClient({ port: listener.port, host: '127.0.0.1' });
    const connection = track(accept(listener.fd));
    expect(listenerInfo(connection)).toMatchObject({ family: 'IPv4', listening: false });

    const error = thrownBy(() => adoptListener(connection));
    expect(isPreforkError(error, 'PREFORK_ERR_LISTEN')).toBe(true);
    expect(systemErrorCode(error)).toBe('EINVAL');
    expect((error as Error).message).toContain('not listening');
  });

  it('refuses an fd that is not a socket with ENOTSOCK', () => {
    const path = join(directory, 'plain-file');
    writeFileSync(path, '');
    const fd = openSync(path, 'r');
    try {
      const error = thrownBy(() => adoptListener(fd));
      expect(isPreforkError(error, 'PREFORK_ERR_LISTEN')).toBe(true);
      expect(systemErrorCode(error)).toBe('ENOTSOCK');
      expect((error as Error).message).toContain(`fd ${fd} is not a socket`);
    } finally {
      closeSync(fd);
    }
  });
});

describe('close', () => {
  it('reports an fd that is not open as PREFORK_ERR_SOCKET with EBADF', () => {
    const error = thrownBy(() => close(NEVER_OPEN_FD));
    expect(isPreforkError(error, 'PREFORK_ERR_SOCKET')).toBe(true);
    expect(systemErrorCode(error)).toBe('EBADF');
  });
});

describe.skipIf(!FEATURES.schedBatch)('schedPolicy / setSchedPolicy (Linux)', () => {
  it('switches the calling thread, or every thread of the process, between SCHED_OTHER and SCHED_BATCH', () => {
    // In a process of its own: policies are per thread, and this one runs the other tests.
    const script = `
      const { readdirSync, readFileSync } = require('node:fs');
      const native = require(${JSON.stringify(ADDON_PATH)});
      const policies = () => readdirSync('/proc/self/task').map((tid) => {
        const stat = readFileSync('/proc/self/task/' + tid + '/stat', 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38];
      });
      const seen = [native.schedPolicy()];
      native.setSchedPolicy('batch', false);
      const one = policies();
      seen.push(native.schedPolicy(), one[0], one.slice(1).every((p) => p === '0'));
      native.setSchedPolicy('batch', true);
      seen.push(policies().every((p) => p === '3'));
      native.setSchedPolicy('other', true);
      seen.push(policies().every((p) => p === '0'), native.schedPolicy());
      try { native.setSchedPolicy('fifo', false); } catch (error) { seen.push(error.name); }
      try { native.setSchedPolicy('batch'); } catch (error) { seen.push(error.name); }
      console.log(JSON.stringify(seen));
    `;
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
    expect(child.stderr).toBe('');
    expect(JSON.parse(child.stdout)).toEqual(['other', 'batch', '3', true, true, true, 'other', 'RangeError', 'TypeError']);
  });

  it('the typed wrapper reports a refusal by its code instead of throwing', () => {
    expect(setSchedPolicy('fifo' as 'batch', false)).toBe('EINVAL');
    expect(schedPolicy()).toBe('other');
  });
});
