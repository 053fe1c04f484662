import { AsyncSeriesHook, SyncBailHook, SyncHook, SyncWaterfallHook } from 'tapable';
import type { ChildInfo, ChildExitInfo, ChildTimeoutKind, SpawnRequest } from './Child.js';
import type { PoolStats } from './stats.js';

/** What `beforeDispatch` is asked about: one connection waiting on one listener. Reused, do not keep it. */
export interface DispatchRequest {
  /** Index of the listener (in `pool.addresses()`) whose socket is readable. */
  listener: number;
  /** How many orders this wake-up sends at most (the accept-queue length, bounded by idle children). */
  wanted: number;
  /** Idle children of the current generation in dispatch order (oldest first). Do not modify. */
  idle: readonly ChildInfo[];
}

/**
 * A `beforeDispatch` answer: a child (one of `request.idle`) to order, or `false` to refuse the
 * connection for now, which hands it to the overload policy. `undefined`: the default choice.
 */
export type DispatchDecision = ChildInfo | false | undefined;

/** What `onDispatch` is told about one accept order. */
export interface DispatchOrderInfo {
  /** Index of the listener the order is for. */
  listener: number;
  /** The order's chain grant: connections the child may accept by itself after this one. */
  chain: number;
}

/** What `afterDispatch` reports once every child ordered for one wake-up has answered. */
export interface DispatchResult {
  listener: number;
  /** Children ordered in this round. */
  ordered: number;
  /** How many answered "accepted". */
  accepted: number;
  /** How many answered "nothing" (the connection was gone, or another child got it). */
  nothing: number;
  /** How many did not answer in time and were killed. */
  timedOut: number;
}

/** Why the pool is overloaded, as `onOverload` is told. */
export interface OverloadInfo {
  listener: number;
  /** `no-child`: none idle and none could be started; `vetoed`: `beforeDispatch` refused. */
  reason: 'no-child' | 'vetoed';
  stats: PoolStats;
}

/**
 * An overload decision. `graceful`: stop watching the listening socket until a child is idle, so
 * clients wait in the kernel backlog. `abrupt`: the parent accepts and closes the waiting
 * connections at once, after writing `response` if given.
 */
export type OverloadDecision = { strategy: 'graceful' } | { strategy: 'abrupt'; response?: Buffer };

/** What `onOverloadEnd` reports. */
export interface OverloadEndInfo {
  listener: number;
  strategy: 'graceful' | 'abrupt';
  /** How long the overload lasted, in milliseconds. */
  durationMs: number;
  /** Connections closed by the parent during it (abrupt only). */
  rejected: number;
}

/** A child's request to stop the whole server. */
export interface ShutdownRequest {
  child: ChildInfo;
  reason: string | undefined;
  /** A token the handler passed to `requestShutdown`, for plugins that only honour known callers. */
  token: string | undefined;
}

/** An error reported by a child's handler. */
export interface ChildErrorInfo {
  message: string;
  stack?: string;
  code?: string;
  /** Where it happened: `connection`, `request`, `init`, `close`, `uncaught`, ... */
  where: string;
}

/** Why the pool stops. */
export interface ShutdownInfo {
  reason: string;
  /** True when a child asked for it through `requestShutdown`. */
  requestedByChild: boolean;
}

/** A connection that a child has finished. */
export interface ConnectionDoneInfo {
  /** Connections the child has finished so far, this one included. */
  served: number;
}

/** What `onChildNeeded` is told: a connection waits and no child is idle or starting. */
export interface ChildNeededInfo {
  listener: number;
  stats: PoolStats;
}

/** A log line a child wrote through `ctx.logger`. */
export interface ChildLogLine {
  level: 'error' | 'warn' | 'info' | 'debug';
  message: string;
  fields?: Record<string, unknown>;
}

/** Reload details for `beforeReload` / `afterReload`. */
export interface ReloadInfo {
  /** The generation that the new children belong to. */
  generation: number;
}

/**
 * Creates the pool's hooks. Every hook of the pool manager is declared here, grouped by phase.
 * Decisions are Bail hooks (`undefined` = no opinion, fall through to the next tap and finally to
 * the core's default); notifications are plain Sync hooks whose return is ignored. Everything on
 * the dispatch path is synchronous.
 */
export function createPoolHooks() {
  return Object.freeze({
    // ---- pool lifecycle -------------------------------------------------------------------
    /** The listeners are bound and the pool is about to spawn its first children. Spawning policies start children here. */
    onStart: new SyncHook<[]>([]),
    /** The pool is running: the initial children are ready and the listeners are watched. */
    afterStart: new SyncHook<[]>([]),
    /** Every `tickInterval` ms, with a stats snapshot. Maintenance (spawn, retire, checks) happens here. */
    onParentTick: new SyncHook<[PoolStats]>(['stats']),
    /** The pool begins a graceful stop. Awaited before children are told to stop. */
    beforeShutdown: new AsyncSeriesHook<[ShutdownInfo]>(['info']),
    /** Every child has exited and every listener is closed. */
    afterShutdown: new AsyncSeriesHook<[ShutdownInfo]>(['info']),
    /**
     * A reload starts: children of `info.generation` are about to be spawned. Called on the plugins
     * in force before the reload, so that those a new config replaces can flush what they hold.
     */
    beforeReload: new SyncHook<[ReloadInfo]>(['info']),
    /**
     * A reload has started the new generation; old children are being retired as they become idle.
     * Called on the plugins of the new config (built afresh when `reload()` got options).
     */
    afterReload: new SyncHook<[ReloadInfo]>(['info']),

    // ---- children -------------------------------------------------------------------------
    /** A child is about to be forked. Taps may edit `request.env` / `request.execArgv`; returning `false` vetoes the spawn. */
    beforeSpawn: new SyncBailHook<[SpawnRequest], false | undefined>(['request']),
    /** A child process was forked; it is pending ("starting") until it reports idle. */
    onChildStart: new SyncHook<[ChildInfo]>(['child']),
    /** A child reported idle for the first time (its `init` ran). */
    onChildReady: new SyncHook<[ChildInfo]>(['child']),
    /** A child became idle (after starting, after an accept order, or after finishing a connection). Hot path. */
    onChildIdle: new SyncHook<[ChildInfo]>(['child']),
    /** A child finished a connection. Hot path: keep taps cheap (counters), log nothing at info. */
    onConnectionDone: new SyncHook<[ChildInfo, ConnectionDoneInfo]>(['child', 'info']),
    /** A child's handler threw or rejected, or failed in `init`/`close`. */
    onChildError: new SyncHook<[ChildInfo, ChildErrorInfo]>(['child', 'error']),
    /** A child wrote a log line through `ctx.logger`. */
    onChildLog: new SyncHook<[ChildInfo, ChildLogLine]>(['child', 'line']),
    /**
     * A child missed a deadline and is about to be killed with SIGKILL: `start`, `accept`, `stop`,
     * `heartbeat` (its event loop did not answer a ping) or `connection` (`timeouts.connection`).
     */
    onChildTimeout: new SyncHook<[ChildInfo, ChildTimeoutKind]>(['child', 'kind']),
    /** A child process is gone (reaped): exit code or signal, and how many of its connections were lost. */
    onChildExit: new SyncHook<[ChildInfo, ChildExitInfo]>(['child', 'exit']),

    // ---- dispatch -------------------------------------------------------------------------
    /**
     * Choose which idle child gets the next accept order, or `false` to refuse the connection. Hot
     * path. A tap here decides every connection, so while any is registered no chain grant is
     * given (connections a child took by itself would bypass it); to watch orders, tap `onDispatch`.
     */
    beforeDispatch: new SyncBailHook<[DispatchRequest], DispatchDecision>(['request']),
    /**
     * An accept order is about to be sent to `child`. Observers only; taps here cost no chain
     * grant. Connections a child accepts by itself under a grant have no order: `onConnectionDone`
     * reports them. Hot path.
     */
    onDispatch: new SyncHook<[ChildInfo, DispatchOrderInfo]>(['child', 'order']),
    /**
     * How many connections an accept order lets the child accept by itself after this one (the
     * chain grant; starts at the `acceptChain` option). Each tap gets the grant so far and may
     * lower it: a larger number is ignored (a cap such as recycling's always holds), `undefined`
     * leaves it, anything but an integer ends it, 0 makes the child report after this connection
     * and wait for a new order. Called through tapable (interceptors see it), only when a grant is
     * possible (no `beforeDispatch` tap, one slot, no reload or stop in progress, no other listener
     * waiting for a child, fewer than `acceptChainChildren` chaining). Hot path.
     */
    chainBudget: new SyncWaterfallHook<[number, ChildInfo]>(['count', 'child']),
    /** Every child ordered in one round has answered (or timed out). Hot path. */
    afterDispatch: new SyncHook<[DispatchResult]>(['result']),
    /**
     * A connection waits and no child is idle or starting. `true`: fork one now (the pool forks it,
     * within `children.max` and `beforeSpawn`; the connection waits for it); `undefined` lets the
     * overload policy decide.
     */
    onChildNeeded: new SyncBailHook<[ChildNeededInfo], boolean | undefined>(['info']),
    /** No child can take the waiting connection: decide graceful or abrupt. `undefined` = the core default (graceful). */
    onOverload: new SyncBailHook<[OverloadInfo], OverloadDecision | undefined>(['info']),
    /** A child became idle again after an overload. */
    onOverloadEnd: new SyncHook<[OverloadEndInfo]>(['info']),

    // ---- control --------------------------------------------------------------------------
    /** A child asked to stop the server. Return `false` to veto; anything else lets the pool stop gracefully. */
    onShutdownRequest: new SyncBailHook<[ShutdownRequest], boolean | undefined>(['request']),
    /** How many children to spawn now, adjusted by each tap in turn (spawning policies, limits). Starts at 0 each tick. */
    spawnCount: new SyncWaterfallHook<[number, PoolStats]>(['count', 'stats']),
  });
}

/** The hooks of a pool. */
export type PoolHooks = ReturnType<typeof createPoolHooks>;

/** The name of one hook. */
export type PoolHookName = keyof PoolHooks;

/** A prefork plugin: `apply(pool)` taps hooks. `role` marks it as a replacement for a default plugin. */
export interface PoolPlugin {
  /** `overload`, `spawning`, `recycle`, `logging`: a user plugin with a role replaces the default with that role. */
  readonly role?: string;
  apply(pool: import('./Pool.js').Pool): void;
}

/**
 * What the pool and other plugins may ask of the plugin with role `spawning` (the command's
 * SIGTTIN/SIGTTOU, recycling's floor). A spawning policy without these is still a spawning policy;
 * the callers then fall back to `children.min` and do nothing on a signal.
 */
export interface SpawningPolicy extends PoolPlugin {
  /** The least number of children it keeps now (it can change at run time). */
  readonly minimum: number;
  /** The most children it starts. */
  readonly maximum: number;
  /**
   * Moves the minimum by `delta` at run time, spawning or retiring at once; returns the new minimum.
   * It sizes the children of `pool.spawnGeneration` (during a reload, the new generation's).
   */
  adjust(delta: number): number;
}

/** A plugin with role `overload` that logs each overload's start and end itself, so `LoggerPlugin` does not. */
export interface OverloadReporter extends PoolPlugin {
  readonly reportsOverload: true;
}

