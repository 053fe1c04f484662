import net from 'node:net';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import * as native from '../../src/native/index.js';
import { isPreforkError } from '../../src/errors.js';
import { ask, fixture, startPool, stopPools, tempDir, until } from '../helpers.js';
import { NO_IPV6, skipWithout } from '../environment.js';

afterEach(stopPools);

describe('listeners', () => {
  it.skipIf(skipWithout(NO_IPV6))('serves IPv6 loopback, a Unix socket with a file mode and IPv4 from one pool', async () => {
    const path = join(tempDir(), 'app.sock');
    const pool = await startPool({ listen: ['[::1]:0', { path, mode: '600' }, '127.0.0.1:0'], children: { start: 2 } });
    const [v6, unix, v4] = pool.addresses();
    expect(v6).toMatchObject({ family: 'IPv6', address: '::1' });
    expect(v6!.port).toBeGreaterThan(0);
    expect(unix).toMatchObject({ family: 'unix', path });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(v4).toMatchObject({ family: 'IPv4', address: '127.0.0.1' });
    for (const index of [0, 1, 2]) expect(await ask(pool, 'who', index)).toMatch(/^\d+ \d+\n$/);
    await pool.stop();
    // The pool removes the socket file it created.
    expect(() => statSync(path)).toThrow();
  });

  it('adopts an already open listening descriptor ({ fd })', async () => {
    const info = native.listenTcp('127.0.0.1', 0);
    const pool = await startPool({ listen: { fd: info.fd }, children: { start: 1 } });
    expect(pool.addresses()[0]).toMatchObject({ fd: info.fd, port: info.port });
    expect(await ask(pool, 'who')).toMatch(/^1 /);
  });

  it('refuses a port that is taken, naming the address, before forking anything', async () => {
    const taken = net.createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const port = (taken.address() as net.AddressInfo).port;
    const error = await startPool({ listen: `127.0.0.1:${port}` }).catch((e: unknown) => e);
    taken.close();
    expect(isPreforkError(error, 'PREFORK_ERR_LISTEN')).toBe(true);
    expect((error as Error).message).toContain(`127.0.0.1:${port}`);
    expect((error as Error).message).toContain('EADDRINUSE');
  });

  it('takes systemd sockets only when LISTEN_PID is its own pid, and hides them from children', async () => {
    const info = native.listenTcp('127.0.0.1', 0);
    native.setCloexec(info.fd, false);
    const child = spawn('/bin/sh', ['-c', `LISTEN_PID=$$ LISTEN_FDS=1 exec "${process.execPath}" "${fixture('systemd-script.mjs')}"`], {
      stdio: ['ignore', 'pipe', 'inherit', info.fd],
    });
    native.close(info.fd);
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    const report = JSON.parse(line.toString()) as { addresses: { port: number }[]; env: (string | null)[] };
    expect(report.addresses).toHaveLength(1);
    expect(report.addresses[0]!.port).toBe(info.port);
    expect(report.env).toEqual([null, null]);
    const socket = net.connect({ host: '127.0.0.1', port: info.port });
    socket.write('who\n');
    let text = '';
    socket.on('data', (chunk) => (text += chunk));
    await once(socket, 'close');
    expect(text).toMatch(/^1 \d+\n$/);
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
  });

  it('a stop leaves a socket it was passed listening for its owner: what arrives meanwhile waits for the next instance', async () => {
    // systemd keeps a socket-activated listener across restarts; shutting it down would break it
    // for the next instance, and resetting its queue would lose what it holds.
    const info = native.listenTcp('127.0.0.1', 0);
    native.setCloexec(info.fd, false);
    const child = spawn('/bin/sh', ['-c', `LISTEN_PID=$$ LISTEN_FDS=1 exec "${process.execPath}" "${fixture('systemd-script.mjs')}"`], {
      stdio: ['ignore', 'pipe', 'inherit', info.fd],
    });
    // The test keeps its own descriptor, as systemd does.
    await once(child.stdout!, 'data');
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
    const socket = net.connect({ host: '127.0.0.1', port: info.port });
    socket.on('error', () => {});
    await once(socket, 'connect');
    await until(() => native.readable(info.fd), 5000, 'the connection queued on the listener');
    const accepted = native.accept(info.fd);
    expect(accepted).toBeGreaterThanOrEqual(0);
    native.close(accepted);
    socket.destroy();
    native.close(info.fd);
  });

  it('a stop removes its Unix socket file at once, so new connects fail, and serves what is already queued', async () => {
    const path = join(tempDir('prefork-unix-stop-'), 'app.sock');
    const pool = await startPool({ listen: `unix:${path}`, children: { start: 1, min: 1, max: 1, slots: 1 } });
    const { fd } = pool.addresses()[0]!;
    // The only slot is held, so the next connection waits in the backlog.
    const held = net.connect(path);
    held.write('hold\n');
    await once(held, 'data');
    const queued = net.connect(path);
    queued.write('who\n');
    let answer = '';
    queued.on('data', (chunk) => (answer += chunk.toString('utf8')));
    await until(() => native.readable(fd), 5000, 'the queued connection');
    const stopping = pool.stop('test');
    await until(() => !existsSync(path), 1000, 'the socket file to go');
    const late = net.connect(path);
    const [error] = (await once(late, 'error')) as [NodeJS.ErrnoException];
    expect(error.code).toBe('ENOENT');
    held.write('release');
    await once(queued, 'close');
    expect(answer).toMatch(/^1 \d+\n$/);
    await stopping;
    expect(pool.stats().connections.accepted).toBe(2);
  });

  it('refuses "systemd" when no sockets were passed to this process', async () => {
    const error = await startPool({ listen: 'systemd' }).catch((e: unknown) => e);
    expect(isPreforkError(error, 'PREFORK_ERR_LISTEN')).toBe(true);
    expect((error as Error).message).toMatch(/LISTEN_PID/);
  });
});
