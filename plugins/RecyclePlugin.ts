import { readFileSync } from 'node:fs';
import type { ChildInfo } from '../src/pool/Child.js';
import type { PoolPlugin, SpawningPolicy } from '../src/pool/hooks.js';
import { pluginOptions, pluginScope } from '../src/pool/optionChecks.js';
import type { Pool } from '../src/pool/Pool.js';
import { RECYCLE_KEYS, resolveRecycleOptions, type RecycleOptions, type ResolvedRecycleOptions } from '../src/pool/policyOptions.js';

export { parseMemorySize, type RecycleOptions, type ResolvedRecycleOptions } from '../src/pool/policyOptions.js';

const PLUGIN_NAME = 'RecyclePlugin';

/**
 * The resident set size of a process in bytes, from `/proc/<pid>/status` (Linux), or undefined
 * when the process is gone or the file cannot be read.
 */
export function residentMemory(pid: number): number | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return undefined;
  }
  const match = /^VmRSS:\s*(\d+)\s*kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : undefined;
}

/**
 * Replaces children before they degrade: after `maxConnectionsPerChild` (+ a random `jitter`)
 * connections, after `maxChildAge`, above `maxChildMemory` of RSS, or after `idleChildTimeout` of
 * idleness once they have served. A recycled child is retired gracefully: it takes no new
 * connection, finishes those it holds, exits, and the spawning policy replaces it.
 *
 * Connection counts are checked when a child finishes a connection (or, with `slots > 1`, when it
 * has accepted its last one); age, memory and idleness on every `onParentTick`. Age retirements
 * are staggered, one child per tick (the oldest), so that children forked together are not all
 * gone at once.
 */
export class RecyclePlugin implements PoolPlugin {
  readonly role = 'recycle';
  readonly #options: ResolvedRecycleOptions;
  readonly #limits = new WeakMap<ChildInfo, number>();
  readonly #random: () => number;

  /** `random` is for tests: a source of numbers in [0, 1) for the jitter. @default Math.random */
  constructor(options: RecycleOptions = {}, random: () => number = Math.random) {
    this.#options = resolveRecycleOptions(pluginOptions(PLUGIN_NAME, options, RECYCLE_KEYS), pluginScope(PLUGIN_NAME));
    this.#random = random;
  }

  /** The options in force, after defaults (`maxChildMemory` in bytes). */
  get options(): Readonly<ResolvedRecycleOptions> {
    return this.#options;
  }

  /** How many connections this child serves before it is recycled (its jitter included), or 0 for no limit. */
  connectionLimit(child: ChildInfo): number {
    return this.#limits.get(child) ?? 0;
  }

  apply(pool: Pool): void {
    const options = this.#options;
    if (options.maxConnectionsPerChild > 0) {
      pool.hooks.onChildStart.tap(PLUGIN_NAME, (child) => {
        const extra = options.jitter > 0 ? Math.floor(this.#random() * (options.jitter + 1)) : 0;
        this.#limits.set(child, options.maxConnectionsPerChild + extra);
      });
      // Hot path: one map lookup per finished connection. Retiring here, before the pool marks the
      // child idle again, means it is never offered another connection.
      pool.hooks.onConnectionDone.tap(PLUGIN_NAME, (child, info) => {
        const limit = this.#limits.get(child);
        if (limit !== undefined && info.served >= limit) this.#recycle(pool, child, `served ${info.served} connections (maxConnectionsPerChild ${limit})`);
      });
      // A chain grant must not take a child past its limit: the order's own connection plus the
      // grant is at most what is left of it.
      pool.hooks.chainBudget.tap(PLUGIN_NAME, (count, child) => {
        const limit = this.#limits.get(child);
        return limit === undefined ? count : Math.max(0, Math.min(count, limit - child.accepted - 1));
      });
      // With slots > 1 a child is idle again while it still serves: stop it from taking more than its limit.
      pool.hooks.onChildIdle.tap(PLUGIN_NAME, (child) => {
        if (child.slots === 1) return;
        const limit = this.#limits.get(child);
        if (limit !== undefined && child.accepted >= limit) this.#recycle(pool, child, `accepted ${child.accepted} connections (maxConnectionsPerChild ${limit})`);
      });
    }
    if (options.maxChildAge > 0 || options.maxChildMemory > 0 || options.idleChildTimeout > 0) {
      pool.hooks.onParentTick.tap(PLUGIN_NAME, () => this.#check(pool));
    }
  }

  /** The checks of one tick: memory, age (one child per tick), then idleness (not below `min`). */
  #check(pool: Pool): void {
    const { maxChildAge, maxChildMemory, idleChildTimeout } = this.#options;
    const now = Date.now();
    let oldest: ChildInfo | undefined;
    const idleTooLong: ChildInfo[] = [];
    for (const child of pool.children()) {
      if (child.state === 'starting' || child.state === 'stopping' || child.state === 'exited') continue;
      if (maxChildMemory > 0) {
        const rss = residentMemory(child.pid);
        if (rss !== undefined && rss > maxChildMemory) {
          this.#recycle(pool, child, `resident memory ${formatBytes(rss)} above maxChildMemory ${formatBytes(maxChildMemory)}`);
          continue;
        }
      }
      if (maxChildAge > 0 && now - child.startedAt >= maxChildAge && (!oldest || child.startedAt < oldest.startedAt)) oldest = child;
      if (idleChildTimeout > 0 && child.state === 'idle' && child.served > 0 && now - child.idleSince >= idleChildTimeout) idleTooLong.push(child);
    }
    if (oldest) this.#recycle(pool, oldest, `${now - oldest.startedAt} ms old (maxChildAge ${maxChildAge} ms)`);
    if (idleTooLong.length === 0) return;
    const min = spawningMinimum(pool);
    let live = 0;
    for (const child of pool.children()) if (child.state !== 'stopping' && child.state !== 'exited') live++;
    idleTooLong.sort((a, b) => a.idleSince - b.idleSince);
    for (const child of idleTooLong) {
      if (live <= min) break;
      if (child.state !== 'idle') continue;
      this.#recycle(pool, child, `idle for ${now - child.idleSince} ms (idleChildTimeout ${idleChildTimeout} ms)`);
      live--;
    }
  }

  #recycle(pool: Pool, child: ChildInfo, why: string): void {
    if (child.state === 'stopping' || child.state === 'exited') return;
    pool.logger.debug('recycling child', { event: 'child.recycle', child: child.id, pid: child.pid, reason: why });
    pool.retireChild(child, `recycled: ${why}`);
  }
}

/** The spawning policy's minimum in force (it can change at run time), else the pool's `children.min`. */
function spawningMinimum(pool: Pool): number {
  const minimum = pool.plugin<PoolPlugin & Partial<SpawningPolicy>>('spawning')?.minimum;
  return typeof minimum === 'number' ? minimum : pool.options.children.min;
}

function formatBytes(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${Math.round(bytes / 1024)} KiB`;
}
