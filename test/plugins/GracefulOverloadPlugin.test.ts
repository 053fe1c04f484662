import net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { GracefulOverloadPlugin } from '../../plugins/GracefulOverloadPlugin.js';
import { command, nextHook, readLine, served, startPool, stopPools, target, waitFor } from '../helpers.js';

afterEach(stopPools);

/** Opens `count` connections that each send "who" and resolve with their answer once served. */
async function waitingClients(pool: Parameters<typeof target>[0], count: number): Promise<Promise<string>[]> {
  const sockets = Array.from({ length: count }, () => net.connect(target(pool)));
  await Promise.all(sockets.map((socket) => once(socket, 'connect')));
  return sockets.map((socket) => {
    const answer = readLine(socket);
    socket.write('who\n');
    return answer.finally(() => socket.destroy());
  });
}

describe('GracefulOverloadPlugin', () => {
  it('is the default overload policy', async () => {
    const pool = await startPool({ children: { start: 1, max: 1, minSpare: 0 } });
    expect(pool.plugin('overload')).toBeInstanceOf(GracefulOverloadPlugin);
  });

  it('while overloaded the parent does not spin: < 100 ms of CPU over 2 s with 100 waiting clients; all are served afterwards', async () => {
    const pool = await startPool({ children: { start: 2, max: 2, minSpare: 0 } });
    const held = [await command(pool, 'hold'), await command(pool, 'hold')];
    const overloaded = nextHook(pool.hooks.onOverload);
    const answers = await waitingClients(pool, 100);
    await overloaded;
    expect(pool.stats().overload.active).toBe(true);

    // This test process is the parent: its CPU time over the window is the parent's.
    const before = process.cpuUsage();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const used = process.cpuUsage(before);
    const cpuMs = (used.user + used.system) / 1000;
    expect(pool.stats().overload.active).toBe(true);
    expect(pool.stats().connections.accepted).toBe(2);
    if (process.env.PRINT_MEASUREMENTS) console.log(`parent CPU over 2 s of overload: ${cpuMs.toFixed(1)} ms`);
    expect(cpuMs).toBeLessThan(100);

    const ended = nextHook(pool.hooks.onOverloadEnd);
    for (const h of held) h.socket.write('release\n');
    const [end] = await ended;
    expect(end.strategy).toBe('graceful');
    expect(end.durationMs).toBeGreaterThanOrEqual(2000);
    const replies = await Promise.all(answers);
    for (const answer of replies) expect(answer).toMatch(/^[12] \d+$/);
    // Children report chained connections in batches: wait for the reports, not just the answers.
    await served(pool, 102);
    expect(pool.stats().connections.rejected).toBe(0);
    expect(pool.stats().connections.accepted).toBe(102);
  });

  it('logs one line when an overload starts and one when it is over, with its duration and counts', async () => {
    // One child and five waiting clients: the core reports five overloads (each finished
    // connection frees the child, the next client overloads it again); the log shows one episode.
    const pool = await startPool({ tickInterval: 20, children: { start: 1, max: 1, minSpare: 0 } });
    const held = await command(pool, 'hold');
    const overloaded = nextHook(pool.hooks.onOverload);
    const answers = await waitingClients(pool, 5);
    await overloaded;
    held.socket.write('release\n');
    await Promise.all(answers);
    const endLine = () => pool.logged.lines.find((line) => line.fields?.event === 'overload.end');
    await waitFor(pool.hooks.onParentTick as never, () => endLine() !== undefined);

    const starts = pool.logged.lines.filter((line) => line.fields?.event === 'overload.start');
    const ends = pool.logged.lines.filter((line) => line.fields?.event === 'overload.end');
    expect(starts).toHaveLength(1);
    expect(ends).toHaveLength(1);
    expect(starts[0]).toMatchObject({ level: 'warn', fields: { strategy: 'graceful', reason: 'no-child', children: 1, busy: 1 } });
    expect(starts[0]!.fields!.queued).toBeGreaterThanOrEqual(1);
    expect(ends[0]).toMatchObject({ level: 'info', fields: { strategy: 'graceful', listener: 0, rejected: 0 } });
    expect(ends[0]!.fields!.overloads).toBe(pool.stats().overload.events);
    expect(ends[0]!.fields!.overloads).toBeGreaterThanOrEqual(1);
    // The held connection and the five that waited were all accepted within the episode.
    expect(ends[0]!.fields!.accepted).toBe(5);
    expect(ends[0]!.fields!.durationMs).toBeGreaterThanOrEqual(0);
    expect(ends[0]!.fields!.durationMs).toBeLessThanOrEqual(pool.stats().uptimeMs);
  });

  it('refuses options', () => {
    expect(() => new GracefulOverloadPlugin({ response: 'x' } as never)).toThrow(/GracefulOverloadPlugin: takes no options/);
  });
});
