import { unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SpareChildrenPlugin } from '../../plugins/SpareChildrenPlugin.js';
import type { ChildInfo } from '../../src/pool/Child.js';
import { Pool } from '../../index.js';
import { ask, command, fixture, memoryLogger, nextHook, startPool, stopPools, tempDir, waitFor } from '../helpers.js';

afterEach(stopPools);

/** Records the number of children the spawning policy asks for on every tick (the waterfall's result). */
function spawnCounts(pool: Pool): number[] {
  const counts: number[] = [];
  pool.hooks.spawnCount.tap({ name: 'test-record', stage: 100 } as never, (count: number) => {
    counts.push(count);
    return count;
  });
  return counts;
}

/** Resolves after `n` more ticks of the pool. */
function ticks(pool: Pool, n: number): Promise<void> {
  let seen = 0;
  return waitFor(pool.hooks.onParentTick as never, () => ++seen > n, 10000);
}

describe('SpareChildrenPlugin', () => {
  it('forks `start` children at startup and is the default spawning policy', async () => {
    const pool = await startPool({ children: { start: 3, max: 4, minSpare: 0 } });
    expect(pool.plugin('spawning')).toBeInstanceOf(SpareChildrenPlugin);
    expect(pool.stats().children).toMatchObject({ total: 3, idle: 3 });
  });

  it('while fewer than minSpare are idle it spawns 1, 2, 4 ... per tick, and the rate resets when the shortage ends', async () => {
    const pool = await startPool({ tickInterval: 30, children: { start: 0, min: 0, max: 16, minSpare: 7, maxSpare: 16 } });
    const counts = spawnCounts(pool);
    // 1 + 2 + 4 = 7 spares (children still starting count as spares).
    await waitFor(pool.hooks.onParentTick as never, () => counts.length >= 4);
    expect(counts.slice(0, 4)).toEqual([1, 2, 4, 0]);
    await waitFor(pool.hooks.onChildIdle as never, () => pool.stats().children.idle === 7);

    // Three busy children make a new shortage of three: the rate starts again at 1. (A tick may
    // fall between two of the holds, so how the three spawns split over ticks may vary.)
    const from = counts.length;
    const held = [await command(pool, 'hold'), await command(pool, 'hold'), await command(pool, 'hold')];
    const spawned = () => counts.slice(from).filter((count) => count > 0);
    await waitFor(pool.hooks.onParentTick as never, () => spawned().reduce((sum, count) => sum + count, 0) >= 3);
    expect(spawned()[0]).toBe(1);
    expect(spawned().reduce((sum, count) => sum + count, 0)).toBe(3);
    await waitFor(pool.hooks.onChildIdle as never, () => pool.stats().children.idle === 7);
    for (const h of held) h.socket.destroy();
  });

  it('the spawn rate doubles up to 32 per tick while the shortage lasts', async () => {
    const pool = await startPool({ tickInterval: 10, children: { start: 1, min: 0, max: 500, minSpare: 400, maxSpare: 400 } });
    // Keep the shortage going without forking hundreds of processes: veto every spawn.
    pool.hooks.beforeSpawn.tap({ name: 'test-veto', stage: -100 } as never, () => false);
    const counts = spawnCounts(pool);
    await waitFor(pool.hooks.onParentTick as never, () => counts.length >= 8);
    expect(counts.slice(0, 8)).toEqual([1, 2, 4, 8, 16, 32, 32, 32]);
  });

  it('with more than maxSpare idle it retires one child per tick, the one idle longest, never going under min', async () => {
    const pool = await startPool({ tickInterval: 30, children: { start: 5, min: 2, max: 5, minSpare: 0, maxSpare: 1 } });
    // Tapped before the first tick of the running pool (start() resolved in this very turn).
    const retired: ChildInfo[] = [];
    const violations: string[] = [];
    const stopping = new Set<number>();
    pool.hooks.onParentTick.tap({ name: 'test-observe', stage: 100 } as never, () => {
      const now = pool.children().filter((child) => child.state === 'stopping' && !stopping.has(child.id));
      if (now.length > 1) violations.push(`${now.length} children retired in one tick`);
      for (const child of now) {
        stopping.add(child.id);
        retired.push(child);
        const idle = pool.children().filter((other) => other.state === 'idle');
        if (idle.some((other) => other.idleSince < child.idleSince)) violations.push(`child ${child.id} was not the one idle longest`);
      }
      return undefined;
    });
    await waitFor(pool.hooks.onParentTick as never, () => retired.length >= 3);
    await ticks(pool, 5);
    expect(violations).toEqual([]);
    expect(retired).toHaveLength(3);
    expect(retired.every((child) => child.stopReason === 'more idle children than maxSpare')).toBe(true);
    await waitFor(pool.hooks.onChildExit as never, () => pool.children().length === 2);
    expect(pool.children().map((child) => child.state)).toEqual(['idle', 'idle']);
  });

  it('spawns at once when a connection waits with no idle child and room under max, without waiting for a tick', async () => {
    const pool = await startPool({ tickInterval: 60000, children: { start: 1, max: 2, minSpare: 0 } });
    let ticked = 0;
    pool.hooks.onParentTick.tap('test', () => void ticked++);
    const held = await command(pool, 'hold');
    const started = nextHook(pool.hooks.onChildStart);
    const waiting = ask(pool, 'who');
    const [child] = await started;
    expect(child.id).toBe(2);
    expect(await waiting).toMatch(/^2 /);
    expect(ticked).toBe(0);
    expect(pool.stats().overload.events).toBe(0);
    held.socket.destroy();
  });

  it('never spawns beyond its own max for a waiting connection, even when the pool allows more', async () => {
    const pool = await startPool({ children: { start: 1, max: 8, minSpare: 0 }, plugins: [new SpareChildrenPlugin({ start: 1, max: 1, minSpare: 0 })] });
    const held = await command(pool, 'hold');
    const overloaded = nextHook(pool.hooks.onOverload);
    const waiting = ask(pool, 'who');
    const [info] = await overloaded;
    expect(info.reason).toBe('no-child');
    expect(pool.children()).toHaveLength(1);
    held.socket.write('release\n');
    expect(await waiting).toMatch(/^1 /);
  });

  it('backs off exponentially from a crash loop, logging each step once with the exit code and the stderr tail', async () => {
    const logger = memoryLogger();
    const pool = new Pool({
      handler: fixture('plugin-exit-at-start.mjs'),
      listen: '127.0.0.1:0',
      logger,
      tickInterval: 10,
      plugins: [new SpareChildrenPlugin({ start: 1, min: 1, max: 1, minSpare: 0, backoffInitial: 50, backoffMax: 400 })],
    });
    const spawnedAt = new Map<number, number>();
    const exitedAt = new Map<number, number>();
    pool.hooks.onChildStart.tap('test', (child) => void spawnedAt.set(child.id, child.startedAt));
    pool.hooks.onChildExit.tap('test', (child) => void exitedAt.set(child.id, Date.now()));
    const steps = () => logger.lines.filter((line) => line.fields?.event === 'spawn.backoff');
    try {
      await pool.start();
      await waitFor(pool.hooks.onChildExit as never, () => steps().length >= 6, 15000);
    } finally {
      await pool.stop();
    }

    const lines = steps().slice(0, 6);
    expect(lines.map((line) => line.fields!.backoffMs)).toEqual([50, 100, 200, 400, 400, 400]);
    expect(lines.map((line) => line.fields!.failures)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(lines.map((line) => line.fields!.child)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const line of lines) {
      expect(line.level).toBe('error');
      expect(line.fields).toMatchObject({ code: 5, signal: null });
      expect(line.fields!.stderr).toContain('plugin-exit-at-start: cannot reach the database');
    }
    // Child n+1 was forked only once the back-off after child n's failure had passed.
    for (const line of lines.slice(0, 5)) {
      const id = line.fields!.child as number;
      expect(spawnedAt.get(id + 1)! - exitedAt.get(id)!).toBeGreaterThanOrEqual((line.fields!.backoffMs as number) - 1);
    }
    expect(pool.stats().exits.failedStarts).toBeGreaterThanOrEqual(6);
  });

  it('a child that is ready but dies within failedStartWindow of it is a failed start too: the back-off grows', async () => {
    const pool = await startPool({
      handler: fixture('plugin-crash-after-ready.mjs'),
      env: { CRASH_AFTER_MS: '30' },
      tickInterval: 10,
      plugins: [new SpareChildrenPlugin({ start: 1, min: 1, max: 1, minSpare: 0, backoffInitial: 50 })],
    });
    const steps = () => pool.logged.lines.filter((line) => line.fields?.event === 'spawn.backoff');
    await waitFor(pool.hooks.onChildExit as never, () => steps().length >= 3, 15000);
    expect(steps().slice(0, 3).map((line) => [line.fields!.failures, line.fields!.backoffMs, line.fields!.code])).toEqual([
      [1, 50, 6],
      [2, 100, 6],
      [3, 200, 6],
    ]);
    expect(steps()[0]!.fields!.stderr).toContain('plugin-crash-after-ready: lost the connection pool');
  });

  it('a connection that waits through a back-off is served by the first child started after it; a healthy child resets the back-off', async () => {
    const children = { start: 1, min: 1, max: 3, minSpare: 0, maxSpare: 3 };
    const pool = await startPool({
      handler: fixture('plugin-fail-ids.mjs'),
      env: { FAIL_START_IDS: '2,4' },
      tickInterval: 20,
      children,
      plugins: [new SpareChildrenPlugin({ ...children, backoffInitial: 100, failedStartWindow: 200 })],
    });
    const holdOne = await command(pool, 'hold');
    expect(holdOne.answer).toMatch(/^held 1 /);
    // Child 2 fails to start; after its back-off child 3 takes the waiting connection.
    const holdThree = await command(pool, 'hold');
    expect(holdThree.answer).toMatch(/^held 3 /);
    const steps = () => pool.logged.lines.filter((line) => line.fields?.event === 'spawn.backoff');
    expect(steps().map((line) => [line.fields!.child, line.fields!.failures, line.fields!.backoffMs, line.fields!.code])).toEqual([[2, 1, 100, 5]]);
    expect(steps()[0]!.fields!.stderr).toContain('plugin-fail-ids: child 2 cannot start');

    // Once child 3 has been ready for failedStartWindow the count is reset: child 4's failure is a first one again.
    const three = pool.children().find((child) => child.id === 3)!;
    await waitFor(pool.hooks.onParentTick as never, () => Date.now() - three.readyAt > 250);
    await ticks(pool, 1);
    holdOne.socket.write('release\n');
    holdThree.socket.write('release\n');
    await waitFor(pool.hooks.onConnectionDone as never, () => pool.stats().connections.served >= 2);
    const third = await Promise.all([command(pool, 'hold'), command(pool, 'hold'), command(pool, 'hold')]);
    expect(third.map((h) => h.answer.split(' ')[1]).sort()).toEqual(['1', '3', '5']);
    expect(steps().map((line) => [line.fields!.child, line.fields!.failures, line.fields!.backoffMs])).toEqual([
      [2, 1, 100],
      [4, 1, 100],
    ]);
    for (const h of third) h.socket.destroy();
  });

  it('a reload is not held back by the previous generation\'s back-off', async () => {
    // The pool's own children options size the reload: one child.
    const children = { start: 1, min: 1, max: 2, minSpare: 0, maxSpare: 2 };
    const pool = await startPool({
      handler: fixture('plugin-fail-ids.mjs'),
      env: { FAIL_START_IDS: '2' },
      tickInterval: 20,
      children,
      plugins: [new SpareChildrenPlugin({ ...children, backoffInitial: 20000, backoffMax: 20000 })],
    });
    const held = await command(pool, 'hold');
    const failed = nextHook(pool.hooks.onChildExit);
    const waiting = ask(pool, 'who');
    const [child] = await failed;
    expect(child.id).toBe(2);
    // Twenty seconds of back-off for generation 1; the reload's children start at once.
    const started = nextHook(pool.hooks.onChildStart);
    expect(pool.reload()).toBe(2);
    const [fresh] = await started;
    expect(fresh.generation).toBe(2);
    expect(await waiting).toMatch(/^3 /);
    held.socket.destroy();
  });

  it('a handler that throws in init or does not parse makes start() reject with PREFORK_ERR_HANDLER_INIT, without respawning', async () => {
    for (const name of ['init-throws.mjs', 'syntax-error.mjs']) {
      const pool = new Pool({ handler: fixture(name), listen: '127.0.0.1:0', logger: memoryLogger(), tickInterval: 10, children: { start: 2, max: 4 } });
      let spawned = 0;
      pool.hooks.onChildStart.tap('test', () => void spawned++);
      const error = await pool.start().catch((caught: unknown) => caught);
      expect(error).toMatchObject({ name: 'PreforkError', code: 'PREFORK_ERR_HANDLER_INIT' });
      expect((error as Error).message).toContain(name);
      expect(await pool.wait()).toMatchObject({ error: { code: 'PREFORK_ERR_HANDLER_INIT' } });
      expect(pool.state).toBe('stopped');
      expect(spawned).toBe(2);
    }
  });

  it('adjust() moves min at run time: growing spawns at once, shrinking retires idle children', async () => {
    const pool = await startPool({ children: { start: 1, min: 1, max: 4, minSpare: 0 } });
    const spawning = pool.plugin<SpareChildrenPlugin>('spawning')!;
    expect(spawning.adjust(2)).toBe(3);
    await waitFor(pool.hooks.onChildIdle as never, () => pool.stats().children.idle === 3);
    expect(spawning.adjust(-2)).toBe(1);
    await waitFor(pool.hooks.onChildExit as never, () => pool.children().length === 1);
    expect(spawning.options.min).toBe(1);
    expect(spawning.adjust(10)).toBe(4);
  });
});

describe('init failures after the handler once started', () => {
  it('back off like any failed start (an outage), and the pool serves again once init works', async () => {
    const marker = join(tempDir(), 'database-down');
    const logger = memoryLogger();
    const pool = new Pool({
      handler: fixture('init-fails-when-marked.mjs'),
      listen: '127.0.0.1:0',
      logger,
      tickInterval: 10,
      env: { INIT_FAIL_MARKER: marker },
      plugins: [new SpareChildrenPlugin({ start: 1, min: 1, max: 4, minSpare: 0, backoffInitial: 50, backoffMax: 400 })],
    });
    const steps = () => logger.lines.filter((line) => line.fields?.event === 'spawn.backoff');
    try {
      await pool.start();
      writeFileSync(marker, '');
      process.kill(pool.children()[0]!.pid, 'SIGKILL');
      await waitFor(pool.hooks.onChildExit as never, () => steps().length >= 3, 15000);
      expect(steps().slice(0, 3).map((line) => line.fields!.backoffMs)).toEqual([50, 100, 200]);
      // The generation was ready once: an outage, not a broken handler, so the pool does not stop.
      expect(pool.state).toBe('running');
      unlinkSync(marker);
      await waitFor(pool.hooks.onChildReady as never, () => pool.children().some((child) => child.readyAt > 0), 15000);
      expect(await ask(pool, 'who')).toMatch(/^\d+ \d+\n$/);
    } finally {
      await pool.stop();
    }
  });
});
