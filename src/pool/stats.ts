import * as native from '../native/index.js';
import type { ChildState } from './Child.js';
import type { PoolContext } from './context.js';

/** A snapshot of the pool, from `pool.stats()` and the `onParentTick` hook. */
export interface PoolStats {
  /** The pool's own state. */
  state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped';
  pid: number;
  /** The current generation (grows on every reload). */
  generation: number;
  /** Milliseconds since `start()`. */
  uptimeMs: number;
  /** Children by state. `total` counts every child not yet reaped. */
  children: Record<Exclude<ChildState, 'exited'>, number> & { total: number };
  connections: {
    /** Accept orders sent to children. */
    ordered: number;
    /** Connections children accepted: orders answered "accepted", plus `chained`. */
    accepted: number;
    /** Connections children accepted by themselves under a chain grant (see `acceptChain`). */
    chained: number;
    /** Connections children finished. */
    served: number;
    /** Connections whose child died before finishing them. */
    lost: number;
    /** Connections the parent accepted and closed during an abrupt overload. */
    rejected: number;
    /** Accepted connections now held by children. */
    active: number;
  };
  /** Orders answered "nothing" (EAGAIN: the connection had gone or another child took it). */
  acceptNothing: number;
  /** Orders that got no answer within the accept timeout (the child was killed). */
  acceptTimeouts: number;
  /**
   * Wake-ups of a listener with an empty accept queue. Counted only where the queue is read: TCP
   * listeners with `ordersPerWakeup` > 1 (with one order per wake-up the child's "nothing" tells).
   */
  spuriousWakeups: number;
  overload: {
    /** Overloads begun so far. */
    events: number;
    /** Whether a listener is overloaded now. */
    active: boolean;
    /** Total milliseconds spent overloaded (finished overloads only). */
    totalMs: number;
  };
  /**
   * Accept-queue of the first TCP listener (Linux), or null where the OS does not tell: its length
   * now, the longest seen (sampled at every tick and every stats read), and its limit.
   */
  acceptQueue: { length: number; max: number; limit: number } | null;
  /** Microseconds from "listening socket readable" to "child answered accepted", over the last samples. */
  dispatchLatencyUs: { p50: number; p99: number; max: number; samples: number };
  /** Children that exited so far, and how many of them before they were ready. */
  exits: { total: number; failedStarts: number; crashes: number };
  /**
   * Frames from children refused as invalid (a payload off its schema, a type only the parent
   * sends, bytes that are no frame): each one got its child killed. Above 0, a handler is broken
   * or hostile; the log says which child and what it sent.
   */
  invalidFrames: number;
}

/** Upper bounds (µs) of the dispatch latency histogram's buckets. */
export const LATENCY_BUCKETS_US: readonly number[] = Object.freeze([50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000]);

/**
 * Keeps the last `capacity` samples in a ring, so recording is one store and percentiles are
 * computed only when somebody asks for stats.
 */
export class LatencyRecorder {
  readonly #samples: Float64Array;
  #count = 0;
  /** Samples per bucket of {@link LATENCY_BUCKETS_US} (the last one: above them all), and their sum: for `/metrics`. */
  readonly #buckets = new Float64Array(LATENCY_BUCKETS_US.length + 1);
  #sum = 0;

  constructor(capacity = 8192) {
    this.#samples = new Float64Array(capacity);
  }

  record(value: number): void {
    this.#samples[this.#count % this.#samples.length] = value;
    this.#count++;
    this.#sum += value;
    let bucket = 0;
    while (bucket < LATENCY_BUCKETS_US.length && value > LATENCY_BUCKETS_US[bucket]!) bucket++;
    this.#buckets[bucket]!++;
  }

  /** Every sample since the start, as a histogram: cumulative counts per bound (µs), their sum and count. */
  histogram(): { cumulative: number[]; sum: number; count: number } {
    const cumulative: number[] = [];
    let total = 0;
    for (let i = 0; i < LATENCY_BUCKETS_US.length; i++) cumulative.push((total += this.#buckets[i]!));
    return { cumulative, sum: this.#sum, count: this.#count };
  }

  #cached: { at: number; count: number; value: { p50: number; p99: number; max: number; samples: number } } | undefined;

  /**
   * Percentiles of the kept samples. Sorting them costs about a millisecond, and stats are asked
   * for on the overload path too, so a result is reused for 250 ms.
   */
  summary(): { p50: number; p99: number; max: number; samples: number } {
    const now = Date.now();
    if (this.#cached && (this.#cached.count === this.#count || now - this.#cached.at < 250)) return this.#cached.value;
    const value = this.#compute();
    this.#cached = { at: now, count: this.#count, value };
    return value;
  }

  #compute(): { p50: number; p99: number; max: number; samples: number } {
    const n = Math.min(this.#count, this.#samples.length);
    if (n === 0) return { p50: 0, p99: 0, max: 0, samples: 0 };
    const sorted = this.#samples.slice(0, n).sort();
    const at = (q: number) => sorted[Math.min(n - 1, Math.floor(q * n))]!;
    return { p50: round(at(0.5)), p99: round(at(0.99)), max: round(sorted[n - 1]!), samples: this.#count };
  }
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

/** The snapshot `pool.stats()` returns and hooks receive. */
export function snapshot(ctx: PoolContext): PoolStats {
  const children = { total: 0, starting: 0, idle: 0, accepting: 0, busy: 0, stopping: 0 };
  let active = 0;
  for (const child of ctx.children) {
    children.total++;
    if (child.state !== 'exited') children[child.state]++;
    active += child.active;
  }
  let acceptQueue: PoolStats['acceptQueue'] = null;
  const tcp = ctx.listeners.find((listener) => listener.queueKnown && listener.state !== 'closed');
  const queue = tcp ? native.acceptQueue(tcp.fd) : null;
  if (queue) {
    ctx.acceptQueueMax = Math.max(ctx.acceptQueueMax, queue.length);
    acceptQueue = { length: queue.length, max: ctx.acceptQueueMax, limit: queue.limit };
  }
  const c = ctx.counters;
  return {
    state: ctx.state,
    pid: process.pid,
    generation: ctx.generation,
    uptimeMs: ctx.startedAt ? Date.now() - ctx.startedAt : 0,
    children,
    connections: { ordered: c.ordered, accepted: c.accepted, chained: c.chained, served: c.served, lost: c.lost, rejected: c.rejected, active },
    acceptNothing: c.acceptNothing,
    acceptTimeouts: c.acceptTimeouts,
    spuriousWakeups: c.spuriousWakeups,
    overload: { events: c.overloadEvents, active: ctx.listeners.some((l) => l.overloadedAt > 0), totalMs: c.overloadMs },
    acceptQueue,
    dispatchLatencyUs: ctx.latency.summary(),
    exits: { total: c.exits, failedStarts: c.failedStarts, crashes: c.crashes },
    invalidFrames: c.invalidFrames,
  };
}
