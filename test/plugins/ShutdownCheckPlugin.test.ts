import { once } from 'node:events';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ShutdownCheckPlugin } from '../../plugins/ShutdownCheckPlugin.js';
import type { Pool } from '../../src/pool/Pool.js';
import { ask, command, nextHook, startPool, stopPools, tempDir, waitFor } from '../helpers.js';

afterEach(stopPools);

/** Resolves after `n` more ticks of the pool. */
function ticks(pool: Pool, n: number): Promise<void> {
  let seen = 0;
  return waitFor(pool.hooks.onParentTick as never, () => ++seen > n);
}

/** Counts the shutdown requests a pool received; `reach(n)` resolves once the n-th was decided on. */
function requests(pool: Pool): { reach(n: number): Promise<void> } {
  let count = 0;
  pool.hooks.onShutdownRequest.tap({ name: 'test-count', stage: -200 }, () => void count++);
  // waitFor resolves after the hook call has finished, so every tap (the veto included) has run.
  return { reach: (n) => waitFor(pool.hooks.onShutdownRequest as never, () => count >= n) };
}

const small = { children: { start: 1, max: 1, minSpare: 0 }, tickInterval: 20 } as const;

describe('ShutdownCheckPlugin', () => {
  it('stops the server when the stop file appears; one left over from before does not count', async () => {
    const dir = tempDir();
    const stopFile = join(dir, 'stop');
    writeFileSync(stopFile, 'left over\n');
    const pool = await startPool({ ...small, plugins: [new ShutdownCheckPlugin({ stopFile })] });
    expect(pool.logged.lines.find((line) => line.fields?.event === 'shutdown.check')?.message).toMatch(/stop file exists already/);
    await ticks(pool, 5);
    expect(pool.state).toBe('running');
    rmSync(stopFile);
    await ticks(pool, 3);
    expect(pool.state).toBe('running');
    writeFileSync(stopFile, 'stop now\n');
    const outcome = await pool.wait();
    expect(outcome).toEqual({ reason: `stop file ${stopFile} appeared`, error: undefined });
    expect(pool.children()).toHaveLength(0);
  });

  it('stops the server when the stop file disappears; a relative path is resolved against cwd', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'running.flag'), '');
    const pool = await startPool({ ...small, cwd: dir, plugins: [new ShutdownCheckPlugin({ stopFile: 'running.flag', stopFileWhen: 'disappears' })] });
    await ticks(pool, 3);
    expect(pool.state).toBe('running');
    rmSync(join(dir, 'running.flag'));
    expect((await pool.wait()).reason).toBe(`stop file ${join(dir, 'running.flag')} disappeared`);
  });

  it('stops the server after maxUptime', async () => {
    const pool = await startPool({ ...small, plugins: [new ShutdownCheckPlugin({ maxUptime: 400 })] });
    let uptimeAtStop = 0;
    pool.hooks.beforeShutdown.tap('test', () => void (uptimeAtStop = pool.stats().uptimeMs));
    const outcome = await pool.wait();
    expect(outcome.reason).toBe('maximum uptime of 400 ms reached');
    expect(uptimeAtStop).toBeGreaterThanOrEqual(400);
  });

  it('stops the server after idleShutdown without connections; a held connection keeps it up', async () => {
    const pool = await startPool({ ...small, children: { start: 2, max: 2, minSpare: 0 }, plugins: [new ShutdownCheckPlugin({ idleShutdown: 250 })] });
    const held = await command(pool, 'hold');
    const heldAt = Date.now();
    await waitFor(pool.hooks.onParentTick as never, () => Date.now() - heldAt > 600);
    expect(pool.state).toBe('running');
    // New connections keep resetting the clock too.
    for (let i = 0; i < 3; i++) expect(await ask(pool, 'who')).toMatch(/^2 /);
    held.socket.write('release\n');
    await once(held.socket, 'close');
    const releasedAt = Date.now();
    const outcome = await pool.wait();
    expect(Date.now() - releasedAt).toBeGreaterThanOrEqual(250);
    expect(outcome.reason).toMatch(/^no connection for \d+ ms \(idleShutdown 250 ms\)$/);
  });

  it('stops the server when the predicate says so, with its reason; a pending promise is not asked again', async () => {
    let calls = 0;
    const pool = await startPool({
      ...small,
      plugins: [new ShutdownCheckPlugin({ predicate: (stats) => (++calls, stats.connections.served >= 3 ? 'served enough' : false) })],
    });
    for (let i = 0; i < 3; i++) await ask(pool, 'who');
    expect((await pool.wait()).reason).toBe('served enough');
    expect(calls).toBeGreaterThan(0);

    let asked = 0;
    let answer!: (value: boolean) => void;
    const later = await startPool({
      ...small,
      plugins: [new ShutdownCheckPlugin({ predicate: () => (asked++, new Promise<boolean>((resolve) => (answer = resolve))) })],
    });
    await ticks(later, 5);
    expect(asked).toBe(1);
    answer(true);
    expect((await later.wait()).reason).toBe('the shutdown predicate returned true');
  });

  it('honours only shutdown requests that carry a configured token', async () => {
    const pool = await startPool({ ...small, plugins: [new ShutdownCheckPlugin({ shutdownToken: ['s3cret', 'other'] })] });
    const received = requests(pool);
    expect(await ask(pool, 'shutdown maintenance')).toMatch(/^asked /);
    expect(await ask(pool, 'shutdown maintenance wrong')).toMatch(/^asked /);
    await received.reach(2);
    expect(pool.state).toBe('running');
    const refused = pool.logged.lines.filter((line) => line.fields?.event === 'shutdown.refused');
    expect(refused.map((line) => line.fields!.why)).toEqual(['the request carries no token', 'the request carries an unknown token']);
    expect(JSON.stringify(refused)).not.toContain('wrong');
    expect(await ask(pool, 'shutdown maintenance s3cret')).toMatch(/^asked /);
    expect((await pool.wait()).reason).toMatch(/^shutdown requested by child 1: maintenance$/);
  });

  it('vetoes every request with allowShutdownRequests: false, or those a user check refuses', async () => {
    const pool = await startPool({ ...small, plugins: [new ShutdownCheckPlugin({ allowShutdownRequests: false })] });
    const received = requests(pool);
    await ask(pool, 'shutdown please token');
    await received.reach(1);
    expect(pool.state).toBe('running');
    expect(pool.logged.lines.find((line) => line.fields?.event === 'shutdown.refused')!.fields!.why).toBe('shutdown requests from children are not allowed');

    const checked = await startPool({ ...small, plugins: [new ShutdownCheckPlugin({ honourRequest: (request) => request.reason === 'upgrade' })] });
    const receivedToo = requests(checked);
    await ask(checked, 'shutdown whim');
    await receivedToo.reach(1);
    expect(checked.state).toBe('running');
    await ask(checked, 'shutdown upgrade');
    expect((await checked.wait()).reason).toMatch(/upgrade$/);
  });

  for (const drainBacklog of [true, undefined, false]) {
    const name = drainBacklog === true ? 'with drainBacklog: true' : drainBacklog === undefined ? 'by default (timeouts.drain)' : 'with drainBacklog: false';
    it(`a check's stop ${drainBacklog === false ? 'resets the connections queued in a Unix socket backlog' : 'serves the connections queued in a Unix socket backlog'} ${name}`, async () => {
      const dir = tempDir();
      const stopFile = join(dir, 'stop');
      const pool = await startPool({
        ...small,
        listen: `unix:${join(dir, 'drain.sock')}`,
        children: { start: 1, min: 1, max: 1, minSpare: 0 },
        plugins: [new ShutdownCheckPlugin({ stopFile, drainBacklog })],
      });
      const held = await command(pool, 'hold');
      // Five clients wait in the backlog behind the busy child (graceful overload).
      const overloaded = nextHook(pool.hooks.onOverload);
      const queued = Array.from({ length: 5 }, () => ask(pool, 'who'));
      await overloaded;
      const stopping = nextHook(pool.hooks.beforeShutdown as never);
      writeFileSync(stopFile, '');
      await stopping;
      held.socket.write('release\n');
      expect((await pool.wait()).reason).toBe(`stop file ${stopFile} appeared`);
      const answers = await Promise.all(queued);
      if (drainBacklog !== false) {
        for (const answer of answers) expect(answer).toMatch(/^1 \d+\n$/);
        expect(pool.stats().connections.served).toBe(6);
      } else {
        for (const answer of answers) expect(answer).toBe('');
        expect(pool.stats().connections.served).toBe(1);
      }
    });
  }
});
