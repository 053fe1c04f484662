import { execFile } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { AbruptOverloadPlugin, http503 } from '../../plugins/AbruptOverloadPlugin.js';
import { command, fixture, readLine, served, startPool, stopPools, target, waitFor } from '../helpers.js';

const execFileAsync = promisify(execFile);

afterEach(stopPools);

/** Connects, reads everything until the server closes; the time is from "connected" to "closed". */
function turnedAway(pool: Parameters<typeof target>[0]): Promise<{ bytes: Buffer; ms: number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(target(pool));
    const chunks: Buffer[] = [];
    let connectedAt = 0;
    socket.on('connect', () => (connectedAt = performance.now()));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve({ bytes: Buffer.concat(chunks), ms: performance.now() - connectedAt }));
  });
}

/** Runs `count` clients at once in another process; resolves with each one's connect-to-close time and bytes. */
async function turnedAwayElsewhere(pool: Parameters<typeof target>[0], count: number): Promise<{ ms: number; bytes: Buffer; error?: string }[]> {
  const { host, port } = target(pool) as { host: string; port: number };
  const { stdout } = await execFileAsync(process.execPath, [fixture('plugin-abrupt-clients.mjs'), host, String(port), String(count)]);
  return (JSON.parse(stdout) as { ms: number; bytes: string; error?: string }[]).map((result) => ({ ...result, bytes: Buffer.from(result.bytes, 'base64') }));
}

describe('AbruptOverloadPlugin', () => {
  it('with 2 busy children, 100 extra clients each get the response and are closed while the children stay busy; held connections are untouched', async () => {
    const pool = await startPool({
      children: { start: 2, max: 2, minSpare: 0 },
      plugins: [new AbruptOverloadPlugin({ response: 'http-503', retryAfter: 7 })],
    });
    const held = [await command(pool, 'hold'), await command(pool, 'hold')];
    // The clients run in another process, as they would in production: what is measured is the
    // pool's reaction, not this test process juggling 100 client sockets on the pool's own loop.
    // Every one of them is answered and closed while both children still hold their connections:
    // the parent turned them away itself, without waiting for a child (graceful overload would
    // keep them waiting until a release that only comes after). How fast is the benchmark's
    // business (its abrupt server); PRINT_MEASUREMENTS=1 prints this run's figures.
    const expected = http503(7);
    const results = await turnedAwayElsewhere(pool, 100);
    expect(results).toHaveLength(100);
    for (const { bytes, error } of results) {
      expect(error).toBeUndefined();
      expect(bytes.equals(expected)).toBe(true);
    }
    if (process.env.PRINT_MEASUREMENTS) {
      const sorted = results.map((result) => result.ms).sort((a, b) => a - b);
      console.log(`turned-away clients, connect to close: p50 ${sorted[49]!.toFixed(1)} ms, p90 ${sorted[89]!.toFixed(1)} ms, max ${sorted[99]!.toFixed(1)} ms`);
    }
    expect(expected.toString('latin1')).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n[\s\S]*Retry-After: 7\r\n/);

    const stats = pool.stats();
    expect(stats.connections.rejected).toBe(100);
    expect(stats.connections.accepted).toBe(2);
    expect(stats.connections.lost).toBe(0);
    // The children's connections still work: each answers its release by closing.
    for (const h of held) {
      expect(h.socket.destroyed).toBe(false);
      h.socket.write('release\n');
      await once(h.socket, 'close');
    }
    // The clients see the close before the parent reads the children's DONE; until then the pool
    // is still overloaded and would rightly turn the next connection away.
    await served(pool, 2);
    const next = net.connect(target(pool));
    next.write('who\n');
    expect(await readLine(next)).toMatch(/^[12] \d+$/);
    next.destroy();
  });

  it('sends a custom byte string, or nothing at all', async () => {
    const pool = await startPool({ children: { start: 1, max: 1, minSpare: 0 }, plugins: [new AbruptOverloadPlugin({ response: Buffer.from([0xde, 0xad, 0x0a]) })] });
    const held = await command(pool, 'hold');
    expect((await turnedAway(pool)).bytes).toEqual(Buffer.from([0xde, 0xad, 0x0a]));
    held.socket.destroy();

    const silent = await startPool({ children: { start: 1, max: 1, minSpare: 0 }, plugins: [new AbruptOverloadPlugin()] });
    const silentHeld = await command(silent, 'hold');
    expect((await turnedAway(silent)).bytes.length).toBe(0);
    expect(silent.stats().connections.rejected).toBe(1);
    silentHeld.socket.destroy();
  });

  it('logs one line when an overload starts and one when it is over, with its duration and how many were turned away', async () => {
    const pool = await startPool({ tickInterval: 20, children: { start: 1, max: 1, minSpare: 0 }, overload: 'abrupt' });
    expect(pool.plugin('overload')).toBeInstanceOf(AbruptOverloadPlugin);
    const held = await command(pool, 'hold');
    await Promise.all(Array.from({ length: 10 }, () => turnedAway(pool)));
    held.socket.write('release\n');
    await once(held.socket, 'close');
    const endLine = () => pool.logged.lines.find((line) => line.fields?.event === 'overload.end');
    await waitFor(pool.hooks.onParentTick as never, () => endLine() !== undefined);

    const starts = pool.logged.lines.filter((line) => line.fields?.event === 'overload.start');
    expect(starts).toHaveLength(1);
    expect(starts[0]).toMatchObject({ level: 'warn', fields: { strategy: 'abrupt', reason: 'no-child', children: 1, busy: 1 } });
    expect(endLine()).toMatchObject({ level: 'info', fields: { strategy: 'abrupt', listener: 0, rejected: 10, rejectedTotal: 10, overloads: 1 } });
    expect(endLine()!.fields!.durationMs).toEqual(expect.any(Number));
  });

  it('is chosen by the overload option, with its response', async () => {
    const pool = await startPool({ children: { start: 1, max: 1, minSpare: 0 }, overload: { strategy: 'abrupt', response: 'busy\n' } });
    const held = await command(pool, 'hold');
    expect((await turnedAway(pool)).bytes.toString()).toBe('busy\n');
    held.socket.destroy();
  });
});
