import { PreforkError } from '../src/errors.js';
import type { ChildInfo } from '../src/pool/Child.js';
import type { PoolPlugin } from '../src/pool/hooks.js';
import type { Pool } from '../src/pool/Pool.js';
import { CHILDREN_DEFAULTS, integer, type ChildrenOptions } from '../src/pool/options.js';

const PLUGIN_NAME = 'SpareChildrenPlugin';

/** Options of {@link SpareChildrenPlugin}: the `children` section of the config, plus back-off bounds. */
export interface SpareChildrenOptions extends Partial<Omit<ChildrenOptions, 'slots'>> {
  /** Most children spawned in one tick while the shortage of spares lasts (the rate doubles up to it). @default 32 */
  maxSpawnRate?: number;
  /** First back-off after a failed start, in ms; it doubles with each consecutive failure. @default 100 */
  backoffInitial?: number;
  /** Longest back-off, in ms. @default 30000 */
  backoffMax?: number;
  /** A child that exits within this many ms of its start counts as a failed start. @default 1000 */
  failedStartWindow?: number;
}

/**
 * The default spawning policy, after Apache's prefork MPM: keep between `minSpare` and `maxSpare`
 * idle children, never fewer than `min` nor more than `max` in all.
 *
 * - At start, fork `start` children.
 * - Each tick with fewer than `minSpare` idle (or starting) children, spawn 1, 2, 4, ... up to
 *   `maxSpawnRate` per tick while the shortage lasts; the rate resets when it ends.
 * - Each tick with more than `maxSpare` idle children, retire the one idle longest (not below `min`).
 * - A connection waiting with no idle child and room under `max`: spawn at once.
 * - Crash-loop protection: a child that dies before it is ready, or within `failedStartWindow`,
 *   is a failed start; consecutive failed starts back off exponentially, logged once per step.
 */
export class SpareChildrenPlugin implements PoolPlugin {
  readonly role = 'spawning';
  readonly #options: Required<SpareChildrenOptions>;
  #pool!: Pool;
  #rate = 1;
  #failures = 0;
  #backoffUntil = 0;

  constructor(options: SpareChildrenOptions = {}) {
    const key = (name: string) => `${PLUGIN_NAME} ${name}`;
    const max = integer(key('max'), options.max, CHILDREN_DEFAULTS.max, 1);
    const resolved: Required<SpareChildrenOptions> = {
      start: integer(key('start'), options.start, Math.min(CHILDREN_DEFAULTS.start, max), 0),
      min: integer(key('min'), options.min, Math.min(CHILDREN_DEFAULTS.min, max), 0),
      max,
      minSpare: integer(key('minSpare'), options.minSpare, Math.min(CHILDREN_DEFAULTS.minSpare, max), 0),
      maxSpare: integer(key('maxSpare'), options.maxSpare, CHILDREN_DEFAULTS.maxSpare, 0),
      maxSpawnRate: integer(key('maxSpawnRate'), options.maxSpawnRate, 32, 1),
      backoffInitial: integer(key('backoffInitial'), options.backoffInitial, 100, 1),
      backoffMax: integer(key('backoffMax'), options.backoffMax, 30000, 1),
      failedStartWindow: integer(key('failedStartWindow'), options.failedStartWindow, 1000, 0),
    };
    const order = (low: keyof SpareChildrenOptions, high: keyof SpareChildrenOptions) => {
      if ((resolved[low] as number) > (resolved[high] as number)) {
        throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${PLUGIN_NAME}: ${low} (${resolved[low]}) must not exceed ${high} (${resolved[high]})`);
      }
    };
    order('min', 'max');
    order('start', 'max');
    order('minSpare', 'maxSpare');
    order('backoffInitial', 'backoffMax');
    this.#options = resolved;
  }

  /** The options in force, after defaults. */
  get options(): Readonly<Required<SpareChildrenOptions>> {
    return this.#options;
  }

  apply(pool: Pool): void {
    this.#pool = pool;
    const options = this.#options;
    pool.hooks.onStart.tap(PLUGIN_NAME, () => {
      for (let i = 0; i < options.start; i++) pool.spawnChild();
    });

    pool.hooks.beforeSpawn.tap(PLUGIN_NAME, () => (Date.now() < this.#backoffUntil ? false : undefined));

    pool.hooks.spawnCount.tap(PLUGIN_NAME, (count, stats) => {
      const live = stats.children.total - stats.children.stopping;
      const spare = stats.children.idle + stats.children.starting;
      const room = Math.max(0, options.max - live);
      let wanted = Math.max(0, options.min - live);
      // Children still starting count as spares, so a slow start does not pile up more forks.
      const shortage = options.minSpare - spare;
      if (shortage > 0) {
        wanted = Math.max(wanted, Math.min(this.#rate, shortage));
        this.#rate = Math.min(this.#rate * 2, options.maxSpawnRate);
      } else {
        this.#rate = 1;
      }
      return count + Math.min(wanted, room);
    });

    pool.hooks.onParentTick.tap(PLUGIN_NAME, (stats) => {
      const live = stats.children.total - stats.children.stopping;
      if (stats.children.idle <= options.maxSpare || live <= options.min) return;
      let longest: ChildInfo | undefined;
      for (const child of pool.children()) {
        if (child.state === 'idle' && child.generation === pool.generation && (!longest || child.idleSince < longest.idleSince)) longest = child;
      }
      if (longest) pool.retireChild(longest, 'more idle children than maxSpare');
    });

    pool.hooks.onChildNeeded.tap(PLUGIN_NAME, () => (pool.spawnChild() ? true : undefined));

    pool.hooks.onChildReady.tap(PLUGIN_NAME, () => {
      this.#failures = 0;
      this.#backoffUntil = 0;
    });

    pool.hooks.onChildExit.tap(PLUGIN_NAME, (child, exit) => {
      if (pool.state !== 'running' && pool.state !== 'starting') return;
      const failed = !exit.expected && (exit.failedStart || exit.lifetimeMs < options.failedStartWindow);
      if (failed) {
        this.#failures++;
        const delay = Math.min(options.backoffInitial * 2 ** (this.#failures - 1), options.backoffMax);
        this.#backoffUntil = Date.now() + delay;
        pool.logger.error('child failed to start; backing off before the next spawn', {
          child: child.id,
          code: exit.code,
          signal: exit.signal,
          failures: this.#failures,
          backoffMs: delay,
          stderr: child.stderrTail().slice(-1024),
        });
        return;
      }
      // Replace a lost child at once when the pool would fall under its minimum.
      const live = pool.children().filter((c) => c.state !== 'stopping').length;
      if (live < options.min) pool.spawnChild();
    });
  }
}
