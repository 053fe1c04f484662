import net from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import * as native from '../../src/native/index.js';
import type { ChildInfo } from '../../src/pool/Child.js';
import type { Pool } from '../../src/pool/Pool.js';
import type { PoolStats } from '../../src/pool/stats.js';
import { AbruptOverloadPlugin } from '../../plugins/AbruptOverloadPlugin.js';
import { accepted, ask, blockEventLoop, command, connect, nextHook, readLine, served, startPool, stopPools, target, tempDir } from '../helpers.js';

afterEach(stopPools);

/**
 * Round `round` of the rule 1 tests on a one-child pool: child 1 holds a connection, which is then
 * released while the next client connects, so that the child's DONE and the new connection reach
 * the parent in the same loop turn. Returns the new client (its `who` sent) and the stats before.
 */
async function doneWithNextConnection(pool: Pool, round: number): Promise<{ next: net.Socket; before: PoolStats }> {
  const held = await command(pool, 'hold');
  expect(held.answer).toMatch(/^held 1 /);
  await accepted(pool, 2 * round + 1);
  const before = pool.stats();
  held.socket.write('release\n');
  const next = net.connect(target(pool));
  // Let the connect syscall go out (net.connect defers it by one tick), then keep the parent's
  // loop away long enough for the child's DONE and the SYN to both be waiting.
  await new Promise((resolve) => process.nextTick(resolve));
  blockEventLoop(150);
  next.write('who\n');
  return { next, before };
}

describe('dispatch follows the rules of the model', () => {
  it('handles status reports that arrive with a connection before dispatching it (rule 1)', async () => {
    // One child only. Its DONE and the next connection reach the parent in the same loop turn;
    // if the parent dispatched before reading the DONE it would see no idle child and overload.
    // No chain grants, so the parent itself must dispatch every connection.
    const pool = await startPool({ children: { start: 1, max: 1, min: 1, minSpare: 0, maxSpare: 1 }, acceptChain: 0 });
    for (let round = 0; round < 5; round++) {
      const { next, before } = await doneWithNextConnection(pool, round);
      const overloadsBefore = before.overload.events;
      expect(await readLine(next)).toMatch(/^1 /);
      expect(pool.stats().overload.events).toBe(overloadsBefore);
      next.destroy();
      await served(pool, 2 * round + 2);
    }
  });

  it('under chain grants too, a connection that arrives with the DONE is served without overload, accepted once (rule 1)', async () => {
    // Whether the child's grant takes the connection (chained) or the child reports DONE first and
    // the parent orders it depends on which comes first; either way it is accepted exactly once
    // and the parent, having read the DONE first, never sees the pool overloaded.
    const pool = await startPool({ children: { start: 1, max: 1, min: 1, minSpare: 0, maxSpare: 1 } });
    for (let round = 0; round < 5; round++) {
      const { next, before } = await doneWithNextConnection(pool, round);
      expect(await readLine(next)).toMatch(/^1 /);
      next.destroy();
      await served(pool, before.connections.served + 2);
      const after = pool.stats();
      const ordered = after.connections.ordered - before.connections.ordered;
      const chained = after.connections.chained - before.connections.chained;
      expect(ordered + chained).toBe(1);
      expect(after.connections.accepted - before.connections.accepted).toBe(1);
      expect(after.overload.events).toBe(before.overload.events);
    }
  });

  it('never orders a second child while an accept order is unanswered (rule 2)', async () => {
    // A Unix socket has no accept-queue length, so each wake-up orders exactly one child.
    const dir = tempDir();
    const pool = await startPool({ listen: `unix:${join(dir, 'rule2.sock')}`, children: { start: 4, max: 4, minSpare: 0 } });
    // Collected, then asserted: what a tap throws is caught and logged by the pool.
    let violations = 0;
    let rounds = 0;
    const wanted = new Set<number>();
    pool.hooks.beforeDispatch.tap('test', (request) => {
      rounds++;
      if (pool.children().some((child) => child.state === 'accepting')) violations++;
      wanted.add(request.wanted);
      return undefined;
    });
    const clients = Array.from({ length: 20 }, async () => {
      for (let i = 0; i < 10; i++) expect(await ask(pool, 'who')).toMatch(/^\d+ \d+\n$/);
    });
    await Promise.all(clients);
    await served(pool, 200);
    expect(rounds).toBeGreaterThanOrEqual(200);
    expect(violations).toBe(0);
    expect([...wanted]).toEqual([1]);
    const stats = pool.stats();
    expect(stats.connections.ordered).toBe(stats.connections.accepted + stats.acceptNothing);
    expect(stats.connections.served).toBe(200);
  });

  it('with ordersPerWakeup > 1, orders at most as many children as the TCP accept queue holds connections (rule 2)', async () => {
    const pool = await startPool({ children: { start: 4, max: 4, minSpare: 0 }, ordersPerWakeup: 4 });
    let overOrdered = 0;
    let multiOrderRounds = 0;
    let inRound = false;
    pool.hooks.beforeDispatch.tap('test', (request) => {
      // Only the first call of a round: later ones see a queue that children already drain.
      if (inRound) return undefined;
      inRound = true;
      const queued = native.acceptQueueLength(pool.addresses()[0]!.fd);
      if (request.wanted > Math.max(1, queued)) overOrdered++;
      if (request.wanted > 1) multiOrderRounds++;
      return undefined;
    });
    pool.hooks.afterDispatch.tap('test', () => {
      inRound = false;
    });
    await Promise.all(Array.from({ length: 200 }, () => ask(pool, 'who')));
    await served(pool, 200);
    expect(overOrdered).toBe(0);
    expect(multiOrderRounds).toBeGreaterThan(0);
    expect(pool.stats().connections.served).toBe(200);
  });

  it('a child that finds nothing to accept answers "nothing" and is idle again at once (rule 3)', async () => {
    const pool = await startPool({ children: { start: 1, max: 1, min: 1, minSpare: 0 } });
    const fd = pool.addresses()[0]!.fd;
    let stolen = -1;
    // Take the connection away between the wake-up and the order, as another process could.
    pool.hooks.beforeDispatch.tap('thief', () => {
      if (stolen < 0) stolen = native.accept(fd);
      return undefined;
    });
    const round = nextHook(pool.hooks.afterDispatch);
    const client = net.connect(target(pool));
    const [result] = await round;
    expect(result).toMatchObject({ ordered: 1, accepted: 0, nothing: 1 });
    expect(stolen).toBeGreaterThanOrEqual(0);
    expect(pool.stats().acceptNothing).toBe(1);
    expect(pool.children()[0]!.state).toBe('idle');
    native.close(stolen);
    client.destroy();
    // The same child takes the next connection normally.
    expect(await ask(pool, 'who')).toMatch(/^1 /);
  });

  it('children report ready once and done once per connection, nothing else unprompted (rule 4)', async () => {
    const pool = await startPool({ children: { start: 3, max: 3, minSpare: 0 } });
    let ready = 0;
    let done = 0;
    let idle = 0;
    pool.hooks.onChildReady.tap('test', () => void ready++);
    pool.hooks.onConnectionDone.tap('test', () => void done++);
    pool.hooks.onChildIdle.tap('test', () => void idle++);
    await Promise.all(Array.from({ length: 30 }, () => ask(pool, 'who')));
    await served(pool, 30);
    const stats = pool.stats();
    expect(ready).toBe(0); // all three were ready before start() resolved
    expect(done).toBe(30);
    expect(stats.connections.served).toBe(30);
    expect(idle).toBeLessThanOrEqual(30); // idle again at most once per finished connection
  });

  it('waits for a pending child when none is idle, then dispatches to it (rule 5)', async () => {
    const pool = await startPool({ env: { INIT_DELAY_MS: '300' }, children: { start: 1, max: 2, minSpare: 0, maxSpare: 2 } });
    const held = await command(pool, 'hold');
    expect(held.answer).toMatch(/^held 1 /);
    const started = nextHook(pool.hooks.onChildStart);
    const waiting = ask(pool, 'who');
    const [newChild] = await started;
    expect(newChild.id).toBe(2);
    expect(await waiting).toMatch(/^2 /);
    expect(pool.stats().overload.events).toBe(0);
    held.socket.destroy();
  });

  it('kills a pending child that never reports idle after the start timeout and tries the next (rule 5)', async () => {
    // Child 2 hangs in init; child 3 starts normally.
    const pool = await startPool({
      env: { HANG_INIT_IDS: '2' },
      children: { start: 1, max: 2, minSpare: 0, maxSpare: 2 },
      // Long enough that child 1 starts even on a loaded machine; child 2 never will.
      timeouts: { start: 2000 },
    });
    const held = await command(pool, 'hold');
    const timedOut = nextHook(pool.hooks.onChildTimeout);
    const waiting = ask(pool, 'who');
    const [child, kind] = await timedOut;
    expect(child.id).toBe(2);
    expect(kind).toBe('start');
    expect(await waiting).toMatch(/^3 /);
    expect(pool.stats().connections.lost).toBe(0);
    held.socket.destroy();
  });

  it('graceful overload stops watching until a child is idle; waiting clients are then served (rule 6)', async () => {
    const pool = await startPool({ children: { start: 2, max: 2, minSpare: 0 } });
    const held = [await command(pool, 'hold'), await command(pool, 'hold')];
    const overloaded = nextHook(pool.hooks.onOverload);
    const waiting = Array.from({ length: 10 }, () => ask(pool, 'who'));
    const [info] = await overloaded;
    expect(info.reason).toBe('no-child');
    expect(pool.stats().overload.active).toBe(true);
    const ended = nextHook(pool.hooks.onOverloadEnd);
    for (const h of held) h.socket.write('release\n');
    const [end] = await ended;
    expect(end.strategy).toBe('graceful');
    const answers = await Promise.all(waiting);
    for (const answer of answers) expect(answer).toMatch(/^[12] /);
    expect(pool.stats().connections.rejected).toBe(0);
  });

  it('abrupt overload: the parent accepts and closes at once, children keep their connections (rule 6)', async () => {
    const pool = await startPool({
      children: { start: 2, max: 2, minSpare: 0 },
      plugins: [new AbruptOverloadPlugin({ response: 'busy\n' })],
    });
    const held = [await command(pool, 'hold'), await command(pool, 'hold')];
    const answers = await Promise.all(Array.from({ length: 10 }, () => ask(pool, 'who')));
    for (const answer of answers) expect(answer).toBe('busy\n');
    expect(pool.stats().connections.rejected).toBe(10);
    // The held connections are untouched: they still echo their release.
    for (const h of held) {
      expect(h.socket.destroyed).toBe(false);
      h.socket.write('release\n');
      await once(h.socket, 'close');
    }
    // The client sees the close before the parent reads the child's DONE: wait for the reports,
    // or the next connection can still find both children busy and be turned away.
    await served(pool, 2);
    expect(await ask(pool, 'who')).toMatch(/^[12] /);
  });

  it("stops the server when a child asks for it, unless a plugin vetoes (rule 7)", async () => {
    const pool = await startPool({ children: { start: 2, max: 2, minSpare: 0 } });
    pool.hooks.onShutdownRequest.tap('token-check', (request) => (request.token === 'secret' ? undefined : false));
    expect(await ask(pool, 'shutdown nope wrong-token')).toMatch(/^asked /);
    expect(await ask(pool, 'who')).toMatch(/^\d /);
    expect(pool.state).toBe('running');
    expect(await ask(pool, 'shutdown maintenance secret')).toMatch(/^asked /);
    const outcome = await pool.wait();
    expect(outcome.reason).toMatch(/shutdown requested by child \d: maintenance/);
    expect(pool.state).toBe('stopped');
    expect(pool.children()).toHaveLength(0);
  });

  it('gives the order to the oldest idle child by default, so one child stays hot (rule 8)', async () => {
    const pool = await startPool({ children: { start: 4, max: 4, minSpare: 0 } });
    for (let i = 0; i < 10; i++) {
      expect(await ask(pool, 'who')).toMatch(/^1 /);
      // The client has its answer before the child reports DONE; wait for that report.
      await served(pool, i + 1);
    }
  });

  it('beforeDispatch can choose another child or veto (rule 8)', async () => {
    const pool = await startPool({ children: { start: 3, max: 3, minSpare: 0 }, tickInterval: 50 });
    let veto = false;
    pool.hooks.beforeDispatch.tap('newest-first', (request) => (veto ? false : (request.idle.at(-1) as ChildInfo)));
    expect(await ask(pool, 'who')).toMatch(/^3 /);
    await served(pool, 1);
    veto = true;
    const overloaded = nextHook(pool.hooks.onOverload);
    const client = net.connect(target(pool));
    const [info] = await overloaded;
    expect(info.reason).toBe('vetoed');
    veto = false;
    client.write('who\n');
    // The vetoed connection waited in the backlog (graceful) and is retried on the next tick.
    expect(await readLine(client)).toMatch(/^\d /);
    client.destroy();
  });

  it('slots > 1: one child serves several connections at once and is idle while a slot is free', async () => {
    const pool = await startPool({ children: { start: 1, max: 1, min: 1, minSpare: 0, slots: 3 } });
    const held = [await command(pool, 'hold'), await command(pool, 'hold')];
    await accepted(pool, 2);
    expect(pool.children()[0]!.state).toBe('idle');
    const third = await command(pool, 'hold');
    expect(third.answer).toMatch(/^held 1 /);
    await accepted(pool, 3);
    expect(pool.children()[0]!.state).toBe('busy');
    for (const h of [...held, third]) h.socket.destroy();
    await connect(pool).then((socket) => socket.destroy());
  });
});
