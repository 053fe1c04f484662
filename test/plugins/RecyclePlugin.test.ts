import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { RecyclePlugin, residentMemory } from '../../plugins/RecyclePlugin.js';
import type { ChildExitInfo, ChildInfo } from '../../src/pool/Child.js';
import { Pool } from '../../index.js';
import type { SpareChildrenPlugin } from '../../plugins/SpareChildrenPlugin.js';
import { ask, command, fixture, memoryLogger, served, startPool, stopPools, waitFor } from '../helpers.js';

afterEach(stopPools);

/** Collects every child exit of a pool (before `waitFor`, at stage -100, looks at the list). */
function exits(pool: Pool): { child: ChildInfo; exit: ChildExitInfo }[] {
  const seen: { child: ChildInfo; exit: ChildExitInfo }[] = [];
  pool.hooks.onChildExit.tap({ name: 'test-record', stage: -200 }, (child, exit) => void seen.push({ child, exit }));
  return seen;
}

describe('RecyclePlugin', () => {
  it('replaces a child after maxConnectionsPerChild connections; it finishes its last one first', async () => {
    const pool = await startPool({ children: { start: 1, min: 1, max: 1, minSpare: 0 }, recycle: { maxConnectionsPerChild: 3 } });
    expect(pool.plugin('recycle')).toBeInstanceOf(RecyclePlugin);
    const gone = exits(pool);
    const answers: string[] = [];
    for (let i = 0; i < 7; i++) answers.push((await ask(pool, 'who')).split(' ')[0]!);
    expect(answers).toEqual(['1', '1', '1', '2', '2', '2', '3']);
    await served(pool, 7);
    await waitFor(pool.hooks.onChildExit as never, () => gone.length >= 2);
    for (const { child, exit } of gone) {
      expect(exit).toMatchObject({ code: 0, signal: null, expected: true, lost: 0 });
      expect(child.served).toBe(3);
      expect(child.stopReason).toBe('recycled: served 3 connections (maxConnectionsPerChild 3)');
    }
    expect(pool.stats().connections).toMatchObject({ served: 7, lost: 0 });
  });

  it('with slots > 1, a child that has accepted maxConnectionsPerChild takes no more, though it has free slots', async () => {
    const pool = await startPool({ children: { start: 1, min: 1, max: 2, minSpare: 0, maxSpare: 2, slots: 4 }, recycle: { maxConnectionsPerChild: 3, jitter: 0 }, acceptChain: 0 });
    const gone = exits(pool);
    const held = [];
    for (let i = 0; i < 3; i++) {
      const one = await command(pool, 'hold');
      expect(one.answer).toMatch(/^held 1 /);
      held.push(one.socket);
    }
    // Child 1 holds 3 of its 4 slots and has reached its limit: the 4th connection goes elsewhere.
    expect(await ask(pool, 'who')).toMatch(/^2 \d+\n$/);
    const first = pool.children().find((child) => child.id === 1)!;
    expect(first.accepted).toBe(3);
    expect(first.stopReason).toBe('recycled: accepted 3 connections (maxConnectionsPerChild 3)');
    for (const socket of held) socket.write('release\n');
    await waitFor(pool.hooks.onChildExit as never, () => gone.some(({ child }) => child.id === 1));
    expect(gone.find(({ child }) => child.id === 1)!.exit).toMatchObject({ code: 0, signal: null, lost: 0 });
  });

  it('jitter gives each child its own limit between maxConnectionsPerChild and maxConnectionsPerChild + jitter', async () => {
    // A fixed sequence instead of Math.random: limits 2 + floor(r * 4) = 2, 5, 3.
    const draws = [0, 0.99, 0.3];
    const plugin = new RecyclePlugin({ maxConnectionsPerChild: 2, jitter: 3 }, () => draws.shift() ?? 0);
    const pool = await startPool({ children: { start: 1, min: 1, max: 1, minSpare: 0 }, plugins: [plugin] });
    const gone = exits(pool);
    const answers: string[] = [];
    for (let i = 0; i < 10; i++) answers.push((await ask(pool, 'who')).split(' ')[0]!);
    expect(answers).toEqual(['1', '1', '2', '2', '2', '2', '2', '3', '3', '3']);
    await waitFor(pool.hooks.onChildExit as never, () => gone.length >= 2);
    expect(gone.map(({ child }) => [child.id, plugin.connectionLimit(child), child.served])).toEqual([
      [1, 2, 2],
      [2, 5, 5],
    ]);
    expect(plugin.connectionLimit(pool.children()[0]!)).toBe(3);
  });

  it('with the default random jitter every limit stays within its bounds', async () => {
    const plugin = new RecyclePlugin({ maxConnectionsPerChild: 1, jitter: 2 });
    const pool = await startPool({ children: { start: 3, min: 1, max: 3, minSpare: 0 }, plugins: [plugin] });
    const gone = exits(pool);
    for (let i = 0; i < 12; i++) await ask(pool, 'who');
    await waitFor(pool.hooks.onChildExit as never, () => gone.length >= 3);
    for (const { child } of gone) {
      expect(plugin.connectionLimit(child)).toBeGreaterThanOrEqual(1);
      expect(plugin.connectionLimit(child)).toBeLessThanOrEqual(3);
      expect(child.served).toBe(plugin.connectionLimit(child));
    }
  });

  it('replaces a child older than maxChildAge; a busy one finishes its connection first', async () => {
    const pool = await startPool({ tickInterval: 20, children: { start: 1, min: 1, max: 2, minSpare: 0 }, recycle: { maxChildAge: 300 } });
    const gone = exits(pool);
    const held = await command(pool, 'hold');
    // Usually child 1; on a slow machine child 1 may have aged out before the connection came.
    const holder = pool.children().find((child) => child.id === Number(held.answer.split(' ')[1]))!;
    await waitFor(pool.hooks.onParentTick as never, () => holder.state === 'stopping');
    expect(Date.now() - holder.startedAt).toBeGreaterThanOrEqual(300);
    expect(holder.stopReason).toMatch(/^recycled: \d+ ms old \(maxChildAge 300 ms\)$/);
    // Still serving: the held connection answers its release, then the child exits.
    held.socket.write('release\n');
    await once(held.socket, 'close');
    await waitFor(pool.hooks.onChildExit as never, () => gone.some(({ child }) => child === holder));
    expect(gone.find(({ child }) => child === holder)!.exit).toMatchObject({ code: 0, expected: true, lost: 0 });
    expect(holder.served).toBe(1);
    // Replaced: a younger child serves.
    expect(await ask(pool, 'who')).toMatch(/^\d+ /);
    expect(pool.children().every((child) => child.id > holder.id)).toBe(true);
  });

  it('replaces a child whose resident memory exceeds maxChildMemory, checked on tick', async () => {
    const pool = await startPool({
      handler: fixture('plugin-memory.mjs'),
      tickInterval: 20,
      children: { start: 1, min: 1, max: 1, minSpare: 0 },
      recycle: { maxChildMemory: '150MB' },
    });
    const gone = exits(pool);
    const child = pool.children()[0]!;
    const before = residentMemory(child.pid)!;
    expect(before).toBeGreaterThan(1024 * 1024);
    expect(before).toBeLessThan(150 * 1024 * 1024);
    // Below the limit nothing happens.
    await waitFor(pool.hooks.onParentTick as never, () => Date.now() - child.readyAt > 100);
    expect(child.state).toBe('idle');
    expect(await ask(pool, 'grow 200')).toMatch(/^grew 1 /);
    await waitFor(pool.hooks.onChildExit as never, () => gone.length >= 1);
    expect(gone[0]!.child.stopReason).toMatch(/^recycled: resident memory \d+\.\d MiB above maxChildMemory 150\.0 MiB$/);
    expect(gone[0]!.exit).toMatchObject({ code: 0, expected: true, lost: 0 });
    expect(await ask(pool, 'who')).toMatch(/^2 /);
  });

  it('an idle child exits after idleChildTimeout, only once it has served, and never below min', async () => {
    const pool = await startPool({ tickInterval: 20, children: { start: 3, min: 1, max: 3, minSpare: 0, maxSpare: 3 }, recycle: { idleChildTimeout: 200 } });
    const gone = exits(pool);
    // None has served yet: nobody goes, however long they idle.
    const readyAt = Math.max(...pool.children().map((child) => child.readyAt));
    await waitFor(pool.hooks.onParentTick as never, () => Date.now() - readyAt > 400);
    expect(gone).toHaveLength(0);

    // Each child serves one connection (three held at once go to three children).
    const held = [await command(pool, 'hold'), await command(pool, 'hold'), await command(pool, 'hold')];
    for (const h of held) h.socket.write('release\n');
    await waitFor(pool.hooks.onConnectionDone as never, () => pool.stats().connections.served === 3);
    const releasedAt = Date.now();
    await waitFor(pool.hooks.onChildExit as never, () => gone.length >= 2);
    let seen = 0;
    await waitFor(pool.hooks.onParentTick as never, () => ++seen > 10);
    expect(gone).toHaveLength(2);
    expect(Date.now() - releasedAt).toBeGreaterThanOrEqual(200);
    for (const { child, exit } of gone) {
      expect(child.stopReason).toMatch(/^recycled: idle for \d+ ms \(idleChildTimeout 200 ms\)$/);
      expect(exit).toMatchObject({ code: 0, expected: true });
    }
    expect(pool.children()).toHaveLength(1);
  });

  it('idleChildTimeout respects the spawning policy min as changed at run time', async () => {
    const pool = await startPool({ tickInterval: 20, children: { start: 3, min: 1, max: 3, minSpare: 0, maxSpare: 3 }, recycle: { idleChildTimeout: 100 } });
    const gone = exits(pool);
    // min 1 -> 2 (three children live already, so nothing is spawned or retired by this).
    expect(pool.plugin<SpareChildrenPlugin>('spawning')!.adjust(1)).toBe(2);
    const held = [await command(pool, 'hold'), await command(pool, 'hold'), await command(pool, 'hold')];
    for (const h of held) h.socket.write('release\n');
    await waitFor(pool.hooks.onConnectionDone as never, () => pool.stats().connections.served === 3);
    await waitFor(pool.hooks.onChildExit as never, () => gone.length >= 1);
    let seen = 0;
    await waitFor(pool.hooks.onParentTick as never, () => ++seen > 10);
    expect(gone).toHaveLength(1);
    expect(gone[0]!.child.stopReason).toMatch(/^recycled: idle for/);
    expect(pool.children()).toHaveLength(2);
  });

  it('is not applied unless the recycle option is set', () => {
    const pool = new Pool({ handler: fixture('control.mjs'), listen: '127.0.0.1:0', logger: memoryLogger() });
    expect(pool.plugin('recycle')).toBeUndefined();
    expect(pool.plugins.map((plugin) => plugin.constructor.name)).toEqual(['SpareChildrenPlugin', 'GracefulOverloadPlugin', 'LoggerPlugin']);
  });
});
