import net from 'node:net';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isPreforkError } from '../../src/errors.js';
import { fetchStatus, statusTarget } from '../../src/statusClient.js';
import type { StatusReport } from '../../src/pool/status.js';
import { command, fixture, startPool, stopPools, target, tempDir, waitFor } from '../helpers.js';
import { killServers, project, requireBuild, runCli, Server, WHO_HANDLER } from './cli/cli-helpers.js';
import { freePort } from './protocols/nginx.js';

// The status listener: served by the parent, so it answers while every child is busy.

afterEach(async () => {
  await stopPools();
  await killServers();
});

/** GET from the status listener at `address` (`host:port` or `unix:/path`): status code and body. */
function get(address: string, path: string): Promise<{ status: number; body: string }> {
  const target = statusTarget(address);
  return new Promise((resolve, reject) => {
    const options = target.kind === 'unix' ? { path: target.path } : target.kind === 'tcp' ? { host: target.host, port: target.port } : undefined;
    const socket = net.connect(options as net.NetConnectOpts);
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString('utf8')));
    socket.on('error', reject);
    socket.on('end', () => {
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1]);
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    socket.write(`GET ${path} HTTP/1.1\r\nHost: status\r\nConnection: close\r\n\r\n`);
  });
}

describe('the status listener', () => {
  it('answers /status, /status?json and /ready from the parent while every child is busy', async () => {
    const pool = await startPool({ children: { start: 2, min: 2, max: 2, minSpare: 0 }, status: { listen: '127.0.0.1:0' } });
    const address = pool.statusAddress()!;
    expect(address).toMatch(/^127\.0\.0\.1:\d+$/);
    // Both children hold a connection: no child could answer anything.
    const held = [await command(pool, 'hold'), await command(pool, 'hold')];
    const json = await get(address, '/status?json');
    expect(json.status).toBe(200);
    const report = JSON.parse(json.body) as StatusReport;
    const pids = pool.children().map((child) => child.pid).sort();
    expect(report.children.map((child) => child.pid).sort()).toEqual(pids);
    expect(report.children.map((child) => [child.state, child.letter, child.active, child.slots])).toEqual([
      ['busy', 'B', 1, 1],
      ['busy', 'B', 1, 1],
    ]);
    for (const child of report.children) {
      expect(child.rssMiB).toBeGreaterThan(1);
      expect(child.cpuS).toBeGreaterThanOrEqual(0);
    }
    expect(report.pool).toMatchObject({ state: 'running', ready: true, children: { total: 2, busy: 2 }, connections: { accepted: 2, active: 2 } });
    const text = await get(address, '/status');
    expect(text.status).toBe(200);
    for (const pid of pids) expect(text.body).toMatch(new RegExp(`^\\s+\\d+\\s+${pid}\\s+1 B\\s+1/1\\s`, 'm'));
    expect(text.body).toContain('children: total 2,');
    expect(await get(address, '/ready')).toEqual({ status: 200, body: 'ready\n' });
    expect((await get(address, '/other')).status).toBe(404);
    for (const { socket } of held) socket.destroy();
  });

  it('reports the backlog now, the longest seen and its limit: a queue that built while every child was busy stays in the max', async () => {
    const pool = await startPool({ children: { start: 1, min: 1, max: 1, minSpare: 0 }, status: { listen: '127.0.0.1:0' } });
    const address = pool.statusAddress()!;
    const held = await command(pool, 'hold');
    const waiting = [0, 1, 2].map(() => net.connect(target(pool)));
    for (const socket of waiting) socket.on('error', () => {});
    await Promise.all(waiting.map((socket) => new Promise((resolve) => socket.once('connect', resolve))));
    const during = JSON.parse((await get(address, '/status?json')).body) as StatusReport;
    expect(during.pool.acceptQueue).toEqual({ length: 3, max: 3, limit: 511 });
    expect((await get(address, '/status')).body).toContain('backlog: 3 now, 3 at most, limit 511;');
    for (const socket of waiting) socket.destroy();
    held.socket.write('release');
    await waitFor(pool.hooks.onConnectionDone as never, () => pool.stats().connections.served >= 4, 5000);
    const after = JSON.parse((await get(address, '/status?json')).body) as StatusReport;
    expect(after.pool.acceptQueue).toEqual({ length: 0, max: 3, limit: 511 });
  });

  it('/ready answers 503 from the start of a stop, while the listening socket is still there and its queue drains, and the listener goes with the pool', async () => {
    const pool = await startPool({ children: { start: 1, min: 1, max: 1, minSpare: 0 }, status: { listen: '127.0.0.1:0' } });
    const address = pool.statusAddress()!;
    const held = await command(pool, 'hold');
    // A second client waits in the backlog behind the busy child: the stop's drain keeps the
    // listener for it.
    const queued = net.connect(target(pool));
    queued.on('error', () => {});
    await new Promise((resolve) => queued.once('connect', resolve));
    const answered = new Promise<string>((resolve) => queued.once('data', (chunk: Buffer) => resolve(chunk.toString('utf8'))));
    queued.write('who\n');
    const stopping = pool.stop('test');
    const ready = await get(address, '/ready');
    expect(ready.status).toBe(503);
    expect(ready.body).toBe('not ready: stopping\n');
    expect(JSON.parse((await get(address, '/status?json')).body).pool).toMatchObject({ state: 'stopping', ready: false, acceptQueue: { length: 1 } });
    // Still bound and listening (LISTEN, 0A, in /proc/net/tcp).
    const hexPort = pool.addresses()[0]!.port!.toString(16).toUpperCase().padStart(4, '0');
    const listening = readFileSync('/proc/net/tcp', 'utf8').split('\n').some((line) => line.split(/\s+/)[2]?.endsWith(`:${hexPort}`) && line.split(/\s+/)[4] === '0A');
    expect(listening).toBe(true);
    held.socket.write('release');
    expect(await answered).toMatch(/^1 \d+\n$/);
    await stopping;
    queued.destroy();
    await expect(get(address, '/ready')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('listens on a Unix socket with a file mode, removed at stop', async () => {
    const path = join(tempDir('prefork-status-'), 'status.sock');
    const pool = await startPool({ children: { start: 1 }, status: { listen: { path, mode: '600' } } });
    expect(pool.statusAddress()).toBe(`unix:${path}`);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await fetchStatus(statusTarget(`unix:${path}`), '/status?json')).children).toHaveLength(1);
    await pool.stop();
    expect(() => statSync(path)).toThrow();
  });

  it('refuses an address that is not loopback, naming the key', async () => {
    const error = await startPool({ status: { listen: '0.0.0.0:9740' } }).catch((e: unknown) => e);
    expect(isPreforkError(error, 'PREFORK_ERR_OPTION_INVALID')).toBe(true);
    expect((error as Error).message).toMatch(/^status\.listen: expected a loopback address .* got "0\.0\.0\.0:9740"/);
  });
});

describe('prefork status', () => {
  it("prints the scoreboard of a running server, found through the config's status.listen, as text and as JSON", async () => {
    requireBuild();
    const [port, statusPort] = [await freePort(), await freePort()];
    const dir = project({ 'app.mjs': WHO_HANDLER, 'prefork.config.json': { listen: `127.0.0.1:${port}`, handler: './app.mjs', children: { start: 2 }, status: { listen: `127.0.0.1:${statusPort}` } } });
    const server = new Server([], dir);
    await server.started();
    const json = await runCli(['status', '--json'], dir);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as StatusReport;
    expect(report.children).toHaveLength(2);
    const text = await runCli(['status'], dir);
    expect(text.code).toBe(0);
    for (const child of report.children) expect(text.stdout).toContain(` ${child.pid} `);
    expect((await runCli(['status', '--url', `127.0.0.1:${statusPort}`], dir)).stdout).toContain('pool: pid ');
    server.signal('SIGTERM');
    expect((await server.exited).code).toBe(0);
    const gone = await runCli(['status'], dir);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain(`could not read the status at 127.0.0.1:${statusPort}`);
  });

  it('says how to turn the listener on when the config has none (exit 78)', async () => {
    requireBuild();
    const dir = project({ 'app.mjs': WHO_HANDLER, 'prefork.config.json': { listen: '127.0.0.1:0', handler: './app.mjs' } });
    const result = await runCli(['status'], dir);
    expect(result.code).toBe(78);
    expect(result.stderr).toMatch(/prefork\.config\.json: no status\.listen: add "status": \{ "listen": "127\.0\.0\.1:9740" \}/);
  });
});
