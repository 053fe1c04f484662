import { PreforkError, toError } from '../errors.js';
import { createLogger, levelGate, loggerLevel } from '../logger.js';
import type { Logger } from '../child/types.js';
import type { ListenerInfo } from '../native/index.js';
import type { ChildInfo } from './Child.js';
import { checkStarted, findChildEntry, spawnChild, startingCount, stopChild, watchdog } from './children.js';
import { createCounters, type PluginSet, type PoolContext, type PoolOutcome } from './context.js';
import { refreshSlots } from './dispatch.js';
import { beginReload, prepareReload } from './generations.js';
import { guardTaps } from './guard.js';
import { milliseconds } from './optionChecks.js';
import { createPoolHooks, type PoolHooks, type PoolPlugin } from './hooks.js';
import { bindListeners, closeListeners, watch } from './listeners.js';
import { warnExpiringCertificates } from './tls.js';
import { startStatusServer } from './status.js';
import { resolvePoolOptions, type PoolOptions, type ResolvedPoolOptions } from './options.js';
import { retryVetoed } from './overload.js';
import { enterBatchScheduling } from './scheduling.js';
import { shutdown } from './shutdown.js';
import { LatencyRecorder, snapshot, type PoolStats } from './stats.js';
import { probeV8Flag, wantedV8Flags } from './v8Flags.js';

export type { PoolOutcome } from './context.js';

/** Exit code a child uses when its handler cannot be loaded or initialised: do not respawn blindly. */
export const EXIT_HANDLER_INIT_FAILED = 3;

/**
 * The plugins a pool applies after the user's, built from the resolved options (the package's
 * `Pool` passes `defaultPlugins` from `plugins/defaults.ts`; the core itself knows no plugin).
 */
export type DefaultPlugins = (options: ResolvedPoolOptions) => PoolPlugin[];

/**
 * The plugins a pool applies for `options`: the user's, in order, then those of `defaults` whose
 * role none of them took (all of them left out with `defaultPlugins: false`).
 */
export function pluginsFor(options: ResolvedPoolOptions, defaults: DefaultPlugins | undefined): PoolPlugin[] {
  const applied: PoolPlugin[] = [...options.plugins];
  if (!options.defaultPlugins || !defaults) return applied;
  const roles = new Set(options.plugins.map((plugin) => plugin.role).filter(Boolean));
  for (const plugin of defaults(options)) if (!plugin.role || !roles.has(plugin.role)) applied.push(plugin);
  return applied;
}

/** Options of {@link Pool.stop}. */
export interface StopOptions {
  /**
   * New connections are kept out at once; before the children are told to stop, keep dispatching
   * the connections already waiting in the backlog, until it is empty or this many milliseconds
   * passed. Shutting a listening socket down resets the connections still queued on it; a drain
   * serves them instead. 0 = no drain: the listener shuts down at once.
   * @default `timeouts.drain` (5000)
   */
  drainMs?: number;
}

/**
 * The pool manager (the parent). It alone notices new connections: when a listening socket is
 * readable it orders one idle child (or as many as the accept queue holds connections) to
 * accept(), waits for every answer, and only then watches the socket again. It never accepts
 * itself, except to turn connections away in an abrupt overload.
 *
 * This class is the public face: construction, start/stop/reload/wait and the getters. The walk
 * of one connection is in `dispatch.ts`; spawning and reaping in `children.ts`; reloads in
 * `generations.ts`; stopping in `shutdown.ts`; the status reports in `routing.ts`.
 *
 * ```ts
 * const pool = new Pool({ handler: './app.js', listen: '127.0.0.1:8080' });
 * await pool.start();
 * // ...
 * await pool.stop();
 * ```
 */
export class Pool {
  /** The parent's logger (plugins log through it too): `options.logger` (a pino one adapted) behind a gate of `logLevel`, or prefork's own. */
  readonly logger: Logger;
  readonly #ctx: PoolContext;
  readonly #defaults: DefaultPlugins | undefined;
  readonly #outcome: Promise<PoolOutcome>;
  /** The intervals the tick and the watchdog run at now. */
  readonly #intervals = { tick: 0, watchdog: 0 };

  /**
   * Checks `options` (throwing PREFORK_ERR_OPTION_INVALID naming the key), then applies the
   * plugins: `options.plugins` first, then those of `defaults` whose role no user plugin took.
   */
  constructor(options: PoolOptions, defaults?: DefaultPlugins) {
    const resolved = resolvePoolOptions(options);
    this.logger = resolved.logger === undefined ? createLogger({ level: resolved.logLevel }) : levelGate(resolved.logger, () => this.#ctx.options.logLevel);
    this.#defaults = defaults;
    let resolveOutcome!: (outcome: PoolOutcome) => void;
    this.#outcome = new Promise((resolve) => (resolveOutcome = resolve));
    this.#ctx = {
      current: { hooks: createPoolHooks(), plugins: [] },
      logger: this.logger,
      options: resolved,
      state: 'new',
      listeners: [],
      children: [],
      nextChildId: 0,
      spawnFailures: 0,
      spawnRetryAt: 0,
      exhaustedChildren: 0,
      generation: 1,
      spawnGeneration: 1,
      reload: undefined,
      readyGenerations: new Set(),
      startedAt: 0,
      dispatchScheduled: false,
      firstListener: 0,
      draining: false,
      drainCheck: undefined,
      status: undefined,
      metrics: undefined,
      acceptQueueMax: 0,
      exitReasons: { stopped: 0, killed: 0, crashed: 0, failed_start: 0 },
      counters: createCounters(),
      latency: new LatencyRecorder(),
      fatal: undefined,
      startWaiter: undefined,
      stopping: undefined,
      childrenGone: undefined,
      resolveOutcome,
      childEntry: findChildEntry(),
      tickTimer: undefined,
      watchdogTimer: undefined,
      batchScheduling: false,
    };
    this.#ctx.current = this.#applyPlugins(resolved);
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /** Binds the listeners, starts the initial children and waits for them, then watches for connections. */
  async start(): Promise<void> {
    const ctx = this.#ctx;
    if (ctx.state !== 'new') throw new PreforkError('PREFORK_ERR_POOL_STATE', `start() called on a pool that is ${ctx.state}`);
    ctx.state = 'starting';
    ctx.startedAt = Date.now();
    // Tried once per Node binary, in the background, before any socket is bound.
    await Promise.all(wantedV8Flags(ctx.options).map(probeV8Flag));
    if (ctx.state !== 'starting') throw new PreforkError('PREFORK_ERR_POOL_STATE', `the pool stopped while starting`);
    try {
      bindListeners(ctx);
      try {
        if (ctx.options.status) ctx.status = await startStatusServer(ctx, ctx.options.status);
      } catch (error) {
        closeListeners(ctx);
        throw error;
      }
    } catch (error) {
      ctx.state = 'stopped';
      ctx.resolveOutcome({ reason: 'listen failed', error: error as PreforkError });
      throw error;
    }
    warnExpiringCertificates(ctx.logger, ctx.options.tls);
    // Before the first fork: a child must know whether it inherits a switched policy.
    if (ctx.options.parentScheduling === 'batch') {
      ctx.batchScheduling = true;
      enterBatchScheduling(ctx.logger);
    }
    this.#armTimers();
    this.hooks.onStart.call();
    if (startingCount(ctx) > 0 && !ctx.fatal) {
      await new Promise<void>((resolve) => {
        ctx.startWaiter = resolve;
        checkStarted(ctx);
      });
    }
    if (ctx.fatal) {
      const error = ctx.fatal;
      await this.stop('start failed');
      throw error;
    }
    if (ctx.state !== 'starting') throw new PreforkError('PREFORK_ERR_POOL_STATE', `the pool stopped while starting`);
    ctx.state = 'running';
    for (const listener of ctx.listeners) watch(ctx, listener);
    this.hooks.afterStart.call();
  }

  /**
   * Stops gracefully: stop watching, tell every child to finish its connections and exit (killing
   * those still there after `timeouts.stop`), close the listeners. Safe to call more than once.
   */
  stop(reason = 'stop requested', options: StopOptions = {}): Promise<void> {
    const ctx = this.#ctx;
    if (ctx.stopping) return ctx.stopping;
    const drainMs = options.drainMs ?? ctx.options.timeouts.drain;
    if (!Number.isInteger(drainMs) || drainMs < 0) throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `stop: drainMs: expected a non-negative integer (ms), got ${JSON.stringify(drainMs)}`);
    milliseconds('stop: drainMs', drainMs, 0, 0);
    ctx.stopping = shutdown(ctx, reason, false, drainMs);
    return ctx.stopping;
  }

  /** Resolves once the pool has stopped, for whatever reason (`stop()`, a child's request, a fatal error). */
  wait(): Promise<PoolOutcome> {
    return this.#outcome;
  }

  /**
   * Starts a new generation: new children, the old ones retired once idle. With `options` (a
   * re-read config) every option takes effect except the sockets (`listen`, `backlog`,
   * `deferAccept`, `notsentLowat`: the bound ones are kept), and the plugins are built afresh from them: the
   * user's plugins and the defaults for the new `children`, `overload`, `recycle`. Without, the
   * same options and plugins start new children. All or nothing: invalid options or a plugin
   * that fails to apply throw and change nothing; a generation that never gets ready is
   * abandoned and the previous options and plugins are restored. Returns the new generation.
   */
  reload(options?: PoolOptions): number {
    const ctx = this.#ctx;
    if (ctx.state !== 'running') throw new PreforkError('PREFORK_ERR_POOL_STATE', `reload() called on a pool that is ${ctx.state}`);
    const next = options ? this.#reloadOptions(options) : ctx.options;
    const generation = prepareReload(ctx);
    const previous = { options: ctx.options, plugins: ctx.current };
    let plugins = ctx.current;
    if (options) {
      try {
        plugins = this.#applyPlugins(next);
      } finally {
        ctx.options = previous.options;
        ctx.current = previous.plugins;
      }
    }
    beginReload(ctx, generation, next, plugins, previous);
    this.#armTimers();
    return generation;
  }

  // ---- children ----------------------------------------------------------------------------

  /**
   * Forks one child of the spawn generation, unless the pool is not running, `children.max`
   * children of that generation already live, or a `beforeSpawn` tap vetoes. Returns it, or undefined.
   */
  spawnChild(): ChildInfo | undefined {
    return spawnChild(this.#ctx);
  }

  /** Asks a child to finish its connections and exit; it is replaced per the spawning policy. */
  retireChild(child: ChildInfo, reason = 'retired'): void {
    const record = this.#ctx.children.find((candidate) => candidate === child);
    if (record) stopChild(this.#ctx, record, reason);
  }

  // ---- what a caller may read --------------------------------------------------------------

  /** The pool's hooks (those of the plugins in force; a reload with options replaces them). See `hooks.ts`. */
  get hooks(): PoolHooks {
    return this.#ctx.current.hooks;
  }

  /** The plugins applied to this pool, the user's first, then the defaults that were not replaced. */
  get plugins(): readonly PoolPlugin[] {
    return this.#ctx.current.plugins;
  }

  /** The options in force, after defaults. */
  get options(): Readonly<ResolvedPoolOptions> {
    return this.#ctx.options;
  }

  /** The pool's state. */
  get state(): PoolStats['state'] {
    return this.#ctx.state;
  }

  /** The generation whose children receive connections. */
  get generation(): number {
    return this.#ctx.generation;
  }

  /**
   * The generation a child spawned now belongs to: during a reload the new one (whose options and
   * plugins are in force), otherwise {@link generation}.
   */
  get spawnGeneration(): number {
    return this.#ctx.spawnGeneration;
  }

  /** The applied plugin with this role (`spawning`, `overload`, ...), if any. */
  plugin<T extends PoolPlugin = PoolPlugin>(role: string): T | undefined {
    return this.plugins.find((plugin) => plugin.role === role) as T | undefined;
  }

  /** The bound addresses, in the order of the `listen` option (port 0 replaced by the real port). */
  addresses(): ListenerInfo[] {
    return this.#ctx.listeners.map((listener) => ({ ...listener.info }));
  }

  /** Where the status listener answers (`127.0.0.1:PORT`, `unix:/path`), or undefined when it is off or not started. */
  statusAddress(): string | undefined {
    return this.#ctx.status?.address;
  }

  /** The children not yet reaped, oldest first. */
  children(): ChildInfo[] {
    return [...this.#ctx.children];
  }

  /** A snapshot of the pool's counters. */
  stats(): PoolStats {
    return snapshot(this.#ctx);
  }

  // ---- plumbing ----------------------------------------------------------------------------

  /**
   * Applies the user's plugins and the defaults to fresh hooks, with `options` in force while
   * they are applied (a plugin reads `pool.options` and taps `pool.hooks` in `apply`).
   */
  #applyPlugins(options: ResolvedPoolOptions): PluginSet {
    const hooks = createPoolHooks();
    guardTaps(hooks, this.logger);
    const applied = pluginsFor(options, this.#defaults);
    const set: PluginSet = { hooks, plugins: Object.freeze(applied) };
    this.#ctx.options = options;
    this.#ctx.current = set;
    for (const plugin of applied) {
      try {
        plugin.apply(this);
      } catch (error) {
        const name = plugin.constructor?.name && plugin.constructor.name !== 'Object' ? plugin.constructor.name : 'a plugin';
        throw new PreforkError('PREFORK_ERR_PLUGIN', `plugin ${name} failed to apply: ${toError(error).message}`, { cause: error });
      }
    }
    return set;
  }

  /**
   * A reload's options: everything from `options`, except the sockets, which stay bound, and the
   * logger, which stays; with no `logLevel`, that logger's level now decides (a pino logger's may
   * have changed since the start).
   */
  #reloadOptions(options: PoolOptions): ResolvedPoolOptions {
    const current = this.#ctx.options;
    const next = resolvePoolOptions(options);
    const kept = { listen: current.listen, backlog: current.backlog, deferAccept: current.deferAccept, notsentLowat: current.notsentLowat };
    const changed = (Object.keys(kept) as (keyof typeof kept)[]).filter((key) => JSON.stringify(next[key]) !== JSON.stringify(kept[key]));
    if (changed.length > 0) this.logger.warn('the sockets cannot change on reload; keeping the bound ones', { keys: changed });
    // New certificates take effect on the bound sockets, but only where the sockets are the ones
    // the new options describe; otherwise the TLS of listener i might land on another address.
    // The ticket key is the new one either way: a reload rotates it.
    const tls = changed.includes('listen') ? { ...current.tls, ticketKeys: next.tls.ticketKeys } : next.tls;
    if (changed.includes('listen') && JSON.stringify(next.tls.certificates) !== JSON.stringify(current.tls.certificates)) this.logger.warn('the TLS of the listeners is kept too, as their addresses changed; restart to apply it');
    warnExpiringCertificates(this.logger, tls);
    const logLevel = options.logLevel ?? (current.logger === undefined ? undefined : loggerLevel(current.logger)) ?? next.logLevel;
    return { ...next, ...kept, tls, logger: current.logger, logLevel };
  }

  /**
   * (Re)starts the tick and the watchdog at the intervals the options in force ask for: at start,
   * after a reload, and on a tick after an abandoned reload restored the previous options.
   */
  #armTimers(): void {
    const ctx = this.#ctx;
    const { accept, start } = ctx.options.timeouts;
    // The watchdog runs often enough to kill a child within a fifth of its shortest deadline.
    const watchdogEvery = Math.max(5, Math.min(100, Math.floor(Math.min(accept, start) / 5)));
    if (watchdogEvery !== this.#intervals.watchdog) {
      clearInterval(ctx.watchdogTimer);
      ctx.watchdogTimer = setInterval(watchdog, watchdogEvery, ctx);
      this.#intervals.watchdog = watchdogEvery;
    }
    if (ctx.options.tickInterval !== this.#intervals.tick) {
      clearInterval(ctx.tickTimer);
      ctx.tickTimer = setInterval(() => this.#tick(), ctx.options.tickInterval);
      this.#intervals.tick = ctx.options.tickInterval;
    }
  }

  /** Maintenance: retry refused connections, let the spawning policy spawn, then `onParentTick`. */
  #tick(): void {
    const ctx = this.#ctx;
    if (ctx.state !== 'running') return;
    this.#armTimers();
    // Parked children free slots without a frame: the spawning policy must count them idle.
    refreshSlots(ctx);
    retryVetoed(ctx);
    const hooks = ctx.current.hooks;
    const spawnUsed = hooks.spawnCount.taps.length > 0;
    const tickUsed = hooks.onParentTick.taps.length > 0;
    if (!spawnUsed && !tickUsed) return;
    const stats = snapshot(ctx);
    if (spawnUsed) {
      const count = hooks.spawnCount.call(0, stats);
      for (let i = 0; i < count; i++) if (!spawnChild(ctx)) break;
    }
    if (tickUsed) hooks.onParentTick.call(stats);
  }
}
