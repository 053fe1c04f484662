import type { ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Order, Status } from '../../../src/channel/frames.js';
import { PAGE } from '../../../src/channel/page.js';
import { Child } from '../../../src/pool/Child.js';
import { createCounters, type PoolContext } from '../../../src/pool/context.js';
import { dispatch } from '../../../src/pool/dispatch.js';
import { createPoolHooks } from '../../../src/pool/hooks.js';
import type { Listener } from '../../../src/pool/listeners.js';
import { routeFrame } from '../../../src/pool/routing.js';
import { LatencyRecorder } from '../../../src/pool/stats.js';
import { memoryLogger } from '../../helpers.js';

/** A parking child (it has a page) with one slot, idle; the orders the parent sends it are recorded. */
function parkingChild(): Child & { sent: number[][]; signals: string[] } {
  const signals: string[] = [];
  const sent: number[][] = [];
  const proc = { pid: 4242, kill: (signal: string) => void signals.push(signal) } as unknown as ChildProcess;
  const child = Object.assign(new Child(1, 1, 1, proc, Date.now()), { signals, sent });
  child.channel = { send: (frame: Buffer) => void sent.push([frame[0]!, frame.readUInt32LE(4)]) } as unknown as Child['channel'];
  child.page = new Int32Array(2);
  child.connectionLimit = 256;
  child.state = 'idle';
  return child;
}

function context(child: Child): PoolContext & { logger: ReturnType<typeof memoryLogger> } {
  const listener = {
    index: 0,
    state: 'scheduled',
    outstanding: 0,
    watcher: { start() {}, stop() {} },
    queueKnown: false,
    overloadedAt: 0,
  } as unknown as Listener;
  return {
    logger: memoryLogger(),
    state: 'running',
    listeners: [listener],
    children: [child],
    generation: 1,
    exhaustedChildren: 0,
    counters: createCounters(),
    latency: new LatencyRecorder(),
    current: { hooks: createPoolHooks(), plugins: [] },
    options: { acceptChain: 32, acceptChainChildren: 2, ordersPerWakeup: 1, timeouts: { accept: 1000, connection: 0 } },
  } as unknown as PoolContext & { logger: ReturnType<typeof memoryLogger> };
}

describe('chain grants of a parking child', () => {
  it("a DONE ending a grant that UNCHAINED already ended, arriving while the next order is unanswered, leaves that order's grant alone", () => {
    const child = parkingChild();
    const ctx = context(child);
    const listener = ctx.listeners[0]!;
    const frame = (type: number, argument = 0, count = 0) => routeFrame(ctx, child, type, argument, undefined, count);

    // Order 1, with a grant; the connection is accepted, and the child chains a second one.
    dispatch(ctx, listener);
    expect(child.sent).toEqual([[Order.ACCEPT, 0]]);
    expect(child.chainLeft).toBe(32);
    Atomics.store(child.page!, PAGE.BUSY, 1);
    frame(Status.ACCEPTED);
    expect(child.state).toBe('busy');
    frame(Status.CHAINED, 0, 1);
    // Its request is over and its connection parked: the grant ends, the slot is free.
    Atomics.store(child.page!, PAGE.BUSY, 0);
    frame(Status.UNCHAINED);
    expect(child.state).toBe('idle');

    // Order 2 goes out, with a new grant; before the child reads it, the parked connection of
    // order 1 closes and the child reports it as the end of order 1.
    listener.state = 'scheduled';
    dispatch(ctx, listener);
    expect(child.state).toBe('accepting');
    expect(child.chainLeft).toBe(32);
    frame(Status.DONE, 1);
    expect(child.chainLeft).toBe(32);
    expect(child.active).toBe(0);

    // Order 2 is answered, and the child chains under its grant: nothing here is a forgery.
    Atomics.store(child.page!, PAGE.BUSY, 1);
    frame(Status.ACCEPTED);
    frame(Status.CHAINED, 0, 10);
    expect(child.signals).toEqual([]);
    expect(ctx.counters.invalidFrames).toBe(0);
    expect(child.chainLeft).toBe(22);
    expect(child.state).toBe('busy');
    // Its end: the grant is over, the child idle again.
    Atomics.store(child.page!, PAGE.BUSY, 0);
    frame(Status.DONE, 2);
    expect(child.chainLeft).toBe(0);
    expect(child.state).toBe('idle');
    expect(ctx.counters.served).toBe(13);
  });
});
