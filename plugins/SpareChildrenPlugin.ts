import type { ChildInfo } from '../src/pool/Child.js';
import type { SpawningPolicy } from '../src/pool/hooks.js';
import { integer, milliseconds, pluginOptions, pluginScope } from '../src/pool/optionChecks.js';
import type { Pool } from '../src/pool/Pool.js';
import { resolveSpawningBounds, type SpawningBounds } from '../src/pool/policyOptions.js';

const PLUGIN_NAME = 'SpareChildrenPlugin';
const OPTION_KEYS: ReadonlySet<string> = new Set(['start', 'min', 'max', 'minSpare', 'maxSpare', 'maxSpawnRate', 'backoffInitial', 'backoffMax', 'failedStartWindow']);

/** Options of {@link SpareChildrenPlugin}: the `children` section of the config, plus back-off bounds. */
export interface SpareChildrenOptions extends Partial<SpawningBounds> {
  /** Most children spawned in one tick while the shortage of spares lasts (the rate doubles up to it). @default 32 */
  maxSpawnRate?: number;
  /** First back-off after a failed start, in ms; it doubles with each consecutive failure. @default 100 */
  backoffInitial?: number;
  /** Longest back-off, in ms. @default 30000 */
  backoffMax?: number;
  /**
   * A child that exits within this many ms of reporting ready counts as a failed start (as does
   * one that exits before it). Counted from ready, not from the fork, so that a slow start on a
   * busy machine does not use the window up. @default 1000
   */
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
 * - Crash-loop protection: a child that exits by itself before it is ready, or within
 *   `failedStartWindow` of being ready, is a failed start; consecutive failed starts back off
 *   exponentially (`backoffInitial` doubling up to `backoffMax`), logged once per step with the
 *   exit code/signal and the tail of the child's stderr. When a back-off ends and connections
 *   wait, a child is started at once. The count resets once a child forked after the last failure
 *   has been ready for `failedStartWindow`, and on a reload (a back-off only holds back spawns of
 *   the generation that failed).
 */
export class SpareChildrenPlugin implements SpawningPolicy {
  readonly role = 'spawning';
  readonly #options: Required<SpareChildrenOptions>;
  #pool!: Pool;
  #rate = 1;
  /** Consecutive failed starts. */
  #failures = 0;
  #lastFailureAt = 0;
  #backoffUntil = 0;
  /** The generation whose failed starts the back-off is about: a reload starts with a clean slate. */
  #backoffGeneration = 0;
  /** Fires when a back-off ends, to start the child that a waiting connection needs. */
  #retryTimer: NodeJS.Timeout | undefined;

  /** Checks the options as `resolvePoolOptions` checks the `children` section (the same defaults and bounds). */
  constructor(options: SpareChildrenOptions = {}) {
    const raw = pluginOptions(PLUGIN_NAME, options, OPTION_KEYS);
    const scope = pluginScope(PLUGIN_NAME);
    const resolved: Required<SpareChildrenOptions> = {
      ...resolveSpawningBounds(raw, scope),
      maxSpawnRate: integer(scope.key('maxSpawnRate'), raw.maxSpawnRate, 32, 1),
      backoffInitial: milliseconds(scope.key('backoffInitial'), raw.backoffInitial, 100, 1),
      backoffMax: milliseconds(scope.key('backoffMax'), raw.backoffMax, 30000, 1),
      failedStartWindow: milliseconds(scope.key('failedStartWindow'), raw.failedStartWindow, 1000, 0),
    };
    scope.ordered('backoffInitial', resolved.backoffInitial, 'backoffMax', resolved.backoffMax);
    this.#options = resolved;
  }

  /** The least number of children kept now (`min`, moved by {@link adjust}). */
  get minimum(): number {
    return this.#options.min;
  }

  /** The most children it keeps (`max`). */
  get maximum(): number {
    return this.#options.max;
  }

  /**
   * Grows or shrinks the pool by `delta` children at run time (SIGTTIN / SIGTTOU): moves `min`
   * within 0..max, spawns at once when growing, retires the longest-idle child when shrinking.
   * Counts the children of the generation being spawned (the new one during a reload).
   * Returns the new `min`.
   */
  adjust(delta: number): number {
    const pool = this.#pool;
    const next = Math.max(0, Math.min(this.#options.max, this.#options.min + delta));
    this.#options.min = next;
    if (this.#options.start > next && delta < 0) this.#options.start = next;
    // During a reload this plugin is the new generation's: its children are the ones it sizes (the
    // old ones go when it commits).
    const live = pool.children().filter((child) => child.state !== 'stopping' && child.generation === pool.spawnGeneration);
    if (delta > 0) {
      for (let i = live.length; i < next; i++) if (!pool.spawnChild()) break;
    } else if (delta < 0 && live.length > next) {
      const idle = live.filter((child) => child.state === 'idle').sort((a, b) => a.idleSince - b.idleSince);
      for (let i = 0; i < Math.min(-delta, live.length - next, idle.length); i++) pool.retireChild(idle[i]!, 'pool shrunk');
    }
    return next;
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

    pool.hooks.beforeSpawn.tap(PLUGIN_NAME, (request) => (request.generation === this.#backoffGeneration && Date.now() < this.#backoffUntil ? false : undefined));

    // A reload (new code or config, often the fix for what failed) is not held back by the old
    // generation's back-off; the new generation's own failures back off from the start.
    // A reload may replace this plugin too: its retry timer must not act for the new one.
    pool.hooks.beforeReload.tap(PLUGIN_NAME, () => {
      this.#failures = 0;
      this.#backoffUntil = 0;
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    });

    pool.hooks.spawnCount.tap(PLUGIN_NAME, (count, stats) => {
      const live = stats.children.total - stats.children.stopping;
      const spare = stats.children.idle + stats.children.starting;
      const room = Math.max(0, options.max - live);
      let wanted = Math.max(0, options.min - live);
      // Children still starting count as spares, so a slow start does not pile up more forks.
      const shortage = options.minSpare - spare;
      // Connections wait (an overload) and nothing idle or starting will take them: a spawn that a
      // back-off vetoed when they arrived is due now.
      if (stats.overload.active && spare === 0) wanted = Math.max(wanted, 1);
      if (shortage > 0) {
        wanted = Math.max(wanted, Math.min(this.#rate, shortage));
        this.#rate = Math.min(this.#rate * 2, options.maxSpawnRate);
      } else {
        this.#rate = 1;
      }
      return count + Math.min(wanted, room);
    });

    pool.hooks.onParentTick.tap(PLUGIN_NAME, (stats) => {
      if (this.#failures > 0) this.#forgetFailures();
      const live = stats.children.total - stats.children.stopping;
      if (stats.children.idle <= options.maxSpare || live <= options.min) return;
      let longest: ChildInfo | undefined;
      for (const child of pool.children()) {
        if (child.state === 'idle' && child.generation === pool.generation && (!longest || child.idleSince < longest.idleSince)) longest = child;
      }
      if (longest) pool.retireChild(longest, 'more idle children than maxSpare');
    });

    // A connection waits with nothing idle or starting: fork one at once while there is room.
    pool.hooks.onChildNeeded.tap(PLUGIN_NAME, (info) => (info.stats.children.total - info.stats.children.stopping < options.max ? true : undefined));

    pool.hooks.onChildExit.tap(PLUGIN_NAME, (child, exit) => {
      if (pool.state !== 'running' && pool.state !== 'starting') return;
      // A child killed at its start deadline is not counted: the parent ended it, and the start
      // timeout already spaces such attempts out.
      const failed = !exit.expected && (exit.failedStart || Date.now() - child.readyAt < options.failedStartWindow);
      if (failed) {
        // Failures of a generation that a reload has replaced say nothing about the new one.
        if (child.generation < this.#backoffGeneration) return;
        if (child.generation > this.#backoffGeneration) this.#failures = 0;
        this.#backoffGeneration = child.generation;
        this.#failures++;
        this.#lastFailureAt = Date.now();
        const delay = Math.min(options.backoffInitial * 2 ** Math.min(this.#failures - 1, 30), options.backoffMax);
        this.#backoffUntil = this.#lastFailureAt + delay;
        this.#scheduleRetry(pool, delay);
        pool.logger.error('child failed to start; backing off before the next spawn', {
          event: 'spawn.backoff',
          child: child.id,
          pid: child.pid,
          code: exit.code,
          signal: exit.signal,
          lifetimeMs: exit.lifetimeMs,
          failures: this.#failures,
          backoffMs: delay,
          stderr: child.stderrTail().slice(-1024),
        });
        return;
      }
      if (this.#failures > 0) this.#forgetFailures();
      // Replace a lost child at once when the pool would fall under its minimum.
      const live = pool.children().filter((c) => c.state !== 'stopping').length;
      if (live < options.min) pool.spawnChild();
    });
  }

  /**
   * When the back-off ends, starts a child at once if connections wait with none idle or starting
   * (their spawn was vetoed), instead of leaving them to the next tick.
   */
  #scheduleRetry(pool: Pool, delay: number): void {
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (pool.state !== 'running') return;
      const { overload, children } = pool.stats();
      if (overload.active && children.idle === 0 && children.starting === 0 && children.total - children.stopping < this.#options.max) pool.spawnChild();
    }, delay);
    // The pool's own timers keep the process alive while it runs; this one must not outlive it.
    this.#retryTimer.unref();
  }

  /**
   * Resets the back-off once a child forked after the last failure has been ready for the whole
   * `failedStartWindow`: the handler starts again. Being ready alone is not enough, a handler that
   * dies right after `init` would otherwise never back off beyond the first step.
   */
  #forgetFailures(): void {
    const now = Date.now();
    const window = this.#options.failedStartWindow;
    for (const child of this.#pool.children()) {
      if (child.readyAt > 0 && child.startedAt > this.#lastFailureAt && now - child.readyAt >= window) {
        this.#failures = 0;
        this.#backoffUntil = 0;
        return;
      }
    }
  }
}
