import { spawn } from 'node:child_process';
import { existsSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { Tap } from 'tapable';
import { Channel } from '../channel/Channel.js';
import { Status } from '../channel/frames.js';
import { parseLogLine } from '../channel/payloads.js';
import { PreforkError, toError } from '../errors.js';
import { createLogger } from '../logger.js';
import type { Logger } from '../child/types.js';
import * as native from '../native/index.js';
import type { ListenerInfo, Watcher } from '../native/index.js';
import { Child, type ChildInfo, type ChildTimeoutKind, type SpawnRequest } from './Child.js';
import { createPoolHooks, type DispatchRequest, type OverloadDecision, type PoolHooks, type PoolPlugin } from './hooks.js';
import { resolvePoolOptions, type ListenTarget, type PoolOptions, type ResolvedPoolOptions } from './options.js';
import { LatencyRecorder, type PoolStats } from './stats.js';
import { defaultPlugins } from '../../plugins/defaults.js';
import type { ChildBootstrap } from '../child/bootstrap.js';

/** Exit code a child uses when its handler cannot be loaded or initialised: do not respawn blindly. */
export const EXIT_HANDLER_INIT_FAILED = 3;

/** The first fd number of the listening sockets in a child; fd 3 is the control channel. */
export const CHILD_LISTENER_FD_BASE = 4;

const GRACEFUL: OverloadDecision = Object.freeze({ strategy: 'graceful' });

/**
 * A child counts as chaining (for `acceptChainChildren`) for this long after its grant or its last
 * CHAINED report. A child that turns connections over reports at least every 100 ms; one that
 * holds a long connection uses no CPU and stops counting, so it does not keep grants from others.
 */
const CHAIN_ACTIVE_MS = 250;

type ListenerState =
  /** The poll watcher is started. */
  | 'watching'
  /** Readable; dispatch is scheduled for after this loop turn's status reports. */
  | 'scheduled'
  /** Accept orders are out; waiting for every answer. */
  | 'ordering'
  /** No child is idle but one is starting: wait for it. */
  | 'waiting'
  /** Graceful overload: not watched until a child is idle. */
  | 'overloaded'
  | 'closed';

interface Listener {
  readonly index: number;
  readonly fd: number;
  readonly info: ListenerInfo;
  readonly target: ListenTarget;
  readonly watcher: Watcher;
  /** TCP on Linux: the accept-queue length is known. */
  readonly queueKnown: boolean;
  /** A Unix socket file this pool created and must remove. */
  readonly ownedPath: string | undefined;
  state: ListenerState;
  readableAt: number;
  outstanding: number;
  roundOrdered: number;
  roundAccepted: number;
  roundNothing: number;
  roundTimedOut: number;
  overloadedAt: number;
  overloadStrategy: 'graceful' | 'abrupt';
  rejected: number;
  /** Reused `beforeDispatch` request, so the hot path allocates nothing. */
  readonly request: DispatchRequest & { idle: ChildInfo[] };
}

/** Options of {@link Pool.stop}. */
export interface StopOptions {
  /**
   * Before the children are told to stop, keep dispatching the connections already waiting in
   * the backlog, until it is empty or this many milliseconds passed. Closing a listening socket
   * resets the connections still queued on it; a drain serves them instead. 0 = no drain.
   * @default 0
   */
  drainMs?: number;
}

/** What `pool.wait()` resolves with once the pool has stopped. */
export interface PoolOutcome {
  reason: string;
  /** Set when the pool stopped because of a fatal error (the handler cannot start, ...). */
  error: PreforkError | undefined;
}

function findChildEntry(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // Bundled: dist/index.js and dist/child.js are siblings. From the sources (tests): walk up to the
  // package root and use its build output, which `npm test` builds first.
  const candidates = [join(here, 'child.js')];
  let dir = here;
  for (let depth = 0; depth < 4; depth++) {
    candidates.push(join(dir, 'dist', 'child.js'));
    dir = dirname(dir);
  }
  const found = candidates.find((file) => existsSync(file));
  if (!found) {
    throw new PreforkError('PREFORK_ERR_POOL_STATE', `the child runtime was not found (looked for ${candidates[0]} and dist/child.js above it); run "npm run build"`);
  }
  return found;
}

/**
 * The pool manager (the parent). It alone notices new connections: when a listening socket is
 * readable it orders one idle child (or as many as the accept queue holds connections) to
 * accept(), waits for every answer, and only then watches the socket again. It never accepts
 * itself, except to turn connections away in an abrupt overload.
 *
 * ```ts
 * const pool = new Pool({ handler: './app.js', listen: '127.0.0.1:8080' });
 * await pool.start();
 * // ...
 * await pool.stop();
 * ```
 */
export class Pool {
  /** The pool's hooks; see `src/pool/hooks.ts` for when each fires. */
  readonly hooks: PoolHooks = createPoolHooks();
  /** The parent's logger (plugins log through it too). */
  readonly logger: Logger;
  /** The plugins applied to this pool, the user's first, then the defaults that were not replaced. */
  readonly plugins: readonly PoolPlugin[];
  /** The options in force, after defaults. */
  get options(): Readonly<ResolvedPoolOptions> {
    return this.#options;
  }

  #options: ResolvedPoolOptions;
  #state: PoolStats['state'] = 'new';
  #listeners: Listener[] = [];
  /** Children not yet reaped, in spawn order (so the first idle one is the oldest). */
  #children: Child[] = [];
  #nextChildId = 0;
  /** Generation whose children get orders. */
  #generation = 1;
  /** Generation new children are spawned in (ahead of #generation during a reload). */
  #spawnGeneration = 1;
  /** Options of a reload in progress, and those to restore when it fails. */
  #reload: { generation: number; previous: ResolvedPoolOptions } | undefined;
  #startedAt = 0;
  #dispatchScheduled = false;
  /** Where #runScheduled starts, rotating over the listeners. */
  #firstListener = 0;
  /** A stop is serving what the backlog still holds; dispatch goes on meanwhile. */
  #draining = false;
  #drainCheck: (() => void) | undefined;
  #tickTimer: NodeJS.Timeout | undefined;
  #watchdogTimer: NodeJS.Timeout | undefined;
  #latency = new LatencyRecorder();
  #counters = {
    ordered: 0,
    accepted: 0,
    chained: 0,
    served: 0,
    lost: 0,
    rejected: 0,
    acceptNothing: 0,
    acceptTimeouts: 0,
    spuriousWakeups: 0,
    overloadEvents: 0,
    overloadMs: 0,
    exits: 0,
    failedStarts: 0,
    crashes: 0,
  };
  #fatal: PreforkError | undefined;
  #startWaiter: (() => void) | undefined;
  #stopping: Promise<void> | undefined;
  #childrenGone: (() => void) | undefined;
  #outcome: Promise<PoolOutcome>;
  #resolveOutcome!: (outcome: PoolOutcome) => void;
  #childEntry: string;

  constructor(options: PoolOptions) {
    this.#options = resolvePoolOptions(options);
    this.logger = this.#options.logger ?? createLogger({ level: this.#options.logLevel, base: { pid: process.pid } });
    this.#childEntry = findChildEntry();
    this.#outcome = new Promise((resolve) => (this.#resolveOutcome = resolve));
    this.#guardPluginTaps();
    const applied: PoolPlugin[] = [...this.#options.plugins];
    if (this.#options.defaultPlugins) {
      const roles = new Set(this.#options.plugins.map((plugin) => plugin.role).filter(Boolean));
      for (const plugin of defaultPlugins(this.#options)) {
        if (!plugin.role || !roles.has(plugin.role)) applied.push(plugin);
      }
    }
    this.plugins = Object.freeze(applied);
    for (const plugin of applied) plugin.apply(this);
  }

  // ---- public surface ----------------------------------------------------------------------

  /** Binds the listeners, starts the initial children and waits for them, then watches for connections. */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new PreforkError('PREFORK_ERR_POOL_STATE', `start() called on a pool that is ${this.#state}`);
    this.#state = 'starting';
    this.#startedAt = Date.now();
    try {
      this.#bindListeners();
    } catch (error) {
      this.#state = 'stopped';
      this.#resolveOutcome({ reason: 'listen failed', error: error as PreforkError });
      throw error;
    }
    const watchdogEvery = Math.max(5, Math.min(100, Math.floor(Math.min(this.#options.timeouts.accept, this.#options.timeouts.start) / 5)));
    this.#watchdogTimer = setInterval(() => this.#watchdog(), watchdogEvery);
    this.#tickTimer = setInterval(() => this.#tick(), this.#options.tickInterval);
    this.hooks.onStart.call();
    if (this.#startingCount() > 0 && !this.#fatal) {
      await new Promise<void>((resolve) => (this.#startWaiter = resolve));
    }
    if (this.#fatal) {
      const error = this.#fatal;
      await this.stop('start failed');
      throw error;
    }
    if (this.#state !== 'starting') throw new PreforkError('PREFORK_ERR_POOL_STATE', `the pool stopped while starting`);
    this.#state = 'running';
    for (const listener of this.#listeners) this.#watch(listener);
    this.hooks.afterStart.call();
  }

  /**
   * Stops gracefully: stop watching, tell every child to finish its connections and exit (killing
   * those still there after `timeouts.stop`), close the listeners. Safe to call more than once.
   */
  stop(reason = 'stop requested', options: StopOptions = {}): Promise<void> {
    if (this.#stopping) return this.#stopping;
    const drainMs = options.drainMs ?? 0;
    if (!Number.isInteger(drainMs) || drainMs < 0) throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `stop: drainMs: expected a non-negative integer (ms), got ${JSON.stringify(drainMs)}`);
    this.#stopping = this.#shutdown(reason, false, drainMs);
    return this.#stopping;
  }

  /** Resolves once the pool has stopped, for whatever reason (`stop()`, a child's request, a fatal error). */
  wait(): Promise<PoolOutcome> {
    return this.#outcome;
  }

  /** The bound addresses, in the order of the `listen` option (port 0 replaced by the real port). */
  addresses(): ListenerInfo[] {
    return this.#listeners.map((listener) => ({ ...listener.info }));
  }

  /** The children not yet reaped, oldest first. */
  children(): ChildInfo[] {
    return [...this.#children];
  }

  /** The applied plugin with this role (`spawning`, `overload`, ...), if any. */
  plugin<T extends PoolPlugin = PoolPlugin>(role: string): T | undefined {
    return this.plugins.find((plugin) => plugin.role === role) as T | undefined;
  }

  /** The pool's state. */
  get state(): PoolStats['state'] {
    return this.#state;
  }

  /** The generation whose children receive connections. */
  get generation(): number {
    return this.#generation;
  }

  /** A snapshot of the pool's counters. */
  stats(): PoolStats {
    const children = { total: 0, starting: 0, idle: 0, accepting: 0, busy: 0, stopping: 0 };
    let active = 0;
    for (const child of this.#children) {
      children.total++;
      if (child.state !== 'exited') children[child.state]++;
      active += child.active;
    }
    let acceptQueue: PoolStats['acceptQueue'] = null;
    const tcp = this.#listeners.find((listener) => listener.queueKnown && listener.state !== 'closed');
    if (tcp) acceptQueue = native.acceptQueue(tcp.fd);
    const c = this.#counters;
    return {
      state: this.#state,
      pid: process.pid,
      generation: this.#generation,
      uptimeMs: this.#startedAt ? Date.now() - this.#startedAt : 0,
      children,
      connections: { ordered: c.ordered, accepted: c.accepted, chained: c.chained, served: c.served, lost: c.lost, rejected: c.rejected, active },
      acceptNothing: c.acceptNothing,
      acceptTimeouts: c.acceptTimeouts,
      spuriousWakeups: c.spuriousWakeups,
      overload: { events: c.overloadEvents, active: this.#listeners.some((l) => l.overloadedAt > 0), totalMs: c.overloadMs },
      acceptQueue,
      dispatchLatencyUs: this.#latency.summary(),
      exits: { total: c.exits, failedStarts: c.failedStarts, crashes: c.crashes },
    };
  }

  /**
   * Forks one child of the spawn generation, unless the pool is not running, `children.max`
   * children of that generation already live, or a `beforeSpawn` tap vetoes. Returns it, or undefined.
   */
  spawnChild(): ChildInfo | undefined {
    if (this.#state !== 'starting' && this.#state !== 'running') return undefined;
    if (this.#fatal) return undefined;
    const generation = this.#spawnGeneration;
    let live = 0;
    for (const child of this.#children) if (child.generation === generation && child.state !== 'stopping') live++;
    if (live >= this.#options.children.max) return undefined;
    const id = this.#nextChildId + 1;
    const request: SpawnRequest = { id, generation, env: this.#childEnv(id, generation), execArgv: [...this.#options.execArgv] };
    if (this.hooks.beforeSpawn.call(request) === false) return undefined;
    this.#nextChildId = id;
    // The control channel: a socketpair whose child end becomes the child's fd 3.
    const [parentEnd, childEnd] = native.socketpair();
    const stdio: ('ignore' | 'inherit' | 'pipe' | number)[] = ['ignore', 'inherit', this.#options.childStderr, childEnd];
    for (const listener of this.#listeners) stdio.push(listener.fd);
    let proc;
    try {
      proc = spawn(process.execPath, [...request.execArgv, this.#childEntry], {
        stdio,
        env: request.env as NodeJS.ProcessEnv,
        cwd: this.#options.cwd,
        uid: this.#options.uid,
        gid: this.#options.gid,
      });
    } catch (error) {
      native.close(parentEnd);
      throw error;
    } finally {
      native.close(childEnd);
    }
    const child = new Child(id, generation, this.#options.children.slots, proc, Date.now());
    child.channel = new Channel(parentEnd, {
      onFrame: (type, argument, payload, count) => this.#onFrame(child, type, argument, payload, count),
      // EOF comes when the child exits; the process's 'close' event (below) does the reaping.
      onClose: () => {},
      onError: (error) => {
        this.logger.error('killing child after a control channel error', { child: child.id, pid: child.pid, error: error.message });
        this.#kill(child);
      },
    });
    child.deadline = child.startedAt + this.#options.timeouts.start;
    this.#children.push(child);
    proc.stderr?.on('data', (chunk: Buffer) => {
      child.recordStderr(chunk);
      process.stderr.write(chunk);
    });
    proc.on('error', (error) => {
      this.logger.error('could not fork a child', { child: id, error: error.message });
      if (proc.pid === undefined) this.#reap(child, null, null);
    });
    proc.on('close', (code, signal) => this.#reap(child, code, signal));
    this.hooks.onChildStart.call(child);
    return child;
  }

  /** Asks a child to finish its connections and exit; it is replaced per the spawning policy. */
  retireChild(child: ChildInfo, reason = 'retired'): void {
    const record = this.#children.find((candidate) => candidate === child);
    if (record && record.state !== 'stopping' && record.state !== 'exited') this.#stopChild(record, reason);
  }

  /** Starts a new generation with new options (e.g. a re-read config): new children, old ones retired once idle. */
  reload(options?: PoolOptions): number {
    if (this.#state !== 'running') throw new PreforkError('PREFORK_ERR_POOL_STATE', `reload() called on a pool that is ${this.#state}`);
    const next = options ? resolvePoolOptions(options) : this.#options;
    if (options) {
      const same = JSON.stringify(next.listen) === JSON.stringify(this.#options.listen);
      if (!same) this.logger.warn('listen addresses cannot change on reload; keeping the bound sockets', {});
      next.listen = this.#options.listen;
      next.plugins = this.#options.plugins;
    }
    if (this.#reload) this.#abandonReload('superseded by a newer reload');
    this.#endChains();
    const generation = Math.max(this.#generation, this.#spawnGeneration) + 1;
    this.#reload = { generation, previous: this.#options };
    this.#options = next;
    this.#spawnGeneration = generation;
    this.hooks.beforeReload.call({ generation });
    const count = Math.max(1, Math.min(next.children.start || next.children.min || 1, next.children.max));
    for (let i = 0; i < count; i++) this.spawnChild();
    this.hooks.afterReload.call({ generation });
    return generation;
  }

  // ---- listeners ---------------------------------------------------------------------------

  #bindListeners(): void {
    const { backlog, deferAccept } = this.#options;
    try {
      for (const target of this.#options.listen) {
        const infos: { info: ListenerInfo; ownedPath?: string }[] = [];
        if (target.kind === 'tcp') infos.push({ info: native.listenTcp(target.host, target.port, { backlog, deferAccept }) });
        else if (target.kind === 'unix') infos.push({ info: native.listenUnix(target.path, { backlog, mode: target.mode }), ownedPath: target.path });
        else if (target.kind === 'fd') infos.push({ info: native.adoptListener(target.fd) });
        else for (const fd of systemdListenFds()) infos.push({ info: native.adoptListener(fd) });
        for (const { info, ownedPath } of infos) this.#addListener(info, target, ownedPath);
      }
    } catch (error) {
      this.#closeListeners();
      throw error;
    }
  }

  #addListener(info: ListenerInfo, target: ListenTarget, ownedPath: string | undefined): void {
    const index = this.#listeners.length;
    const queueKnown = info.family !== 'unix' && native.acceptQueueLength(info.fd) >= 0;
    const listener: Listener = {
      index,
      fd: info.fd,
      info,
      target,
      watcher: native.createWatcher(info.fd, () => this.#onReadable(listener)),
      queueKnown,
      ownedPath,
      state: 'closed',
      readableAt: 0,
      outstanding: 0,
      roundOrdered: 0,
      roundAccepted: 0,
      roundNothing: 0,
      roundTimedOut: 0,
      overloadedAt: 0,
      overloadStrategy: 'graceful',
      rejected: 0,
      request: { listener: index, wanted: 1, idle: [] },
    };
    this.#listeners.push(listener);
  }

  #closeListeners(): void {
    for (const listener of this.#listeners) {
      listener.state = 'closed';
      listener.watcher.close();
      native.close(listener.fd);
      if (listener.ownedPath) {
        try {
          unlinkSync(listener.ownedPath);
        } catch {
          // Already gone: nothing to clean.
        }
      }
    }
  }

  #watch(listener: Listener): void {
    if (this.#state !== 'running' && !this.#draining) return;
    listener.state = 'watching';
    listener.watcher.start();
  }

  // ---- dispatch: readable -> order -> answers -> watch again --------------------------------

  #onReadable(listener: Listener): void {
    // Level-triggered: stop now or the callback repeats until the connection is accepted.
    listener.watcher.stop();
    if (listener.state !== 'watching') return;
    listener.state = 'scheduled';
    listener.readableAt = performance.now();
    // Dispatch after this loop turn's other I/O callbacks, so that status reports that arrived
    // together with the connection (a child's DONE, READY) are handled first.
    if (!this.#dispatchScheduled) {
      this.#dispatchScheduled = true;
      setImmediate(this.#runScheduled);
    }
  }

  #runScheduled = (): void => {
    this.#dispatchScheduled = false;
    // Start after the listener that got the last order (see #order).
    const count = this.#listeners.length;
    const first = this.#firstListener;
    for (let i = 0; i < count; i++) {
      const listener = this.#listeners[(first + i) % count]!;
      if (listener.state === 'scheduled') this.#dispatch(listener);
    }
  };

  #dispatch(listener: Listener): void {
    if (this.#state !== 'running' && !this.#draining) return;
    let wanted = 1;
    // Ordering several children per wake-up (as many as the accept queue holds) was measured
    // slower on 2 cores: the round lasts until the last ordered child is scheduled. So it is
    // opt-in (`ordersPerWakeup`), and the TCP_INFO syscall is only paid when it is on.
    const cap = this.#options.ordersPerWakeup;
    if (cap > 1 && listener.queueKnown) {
      const queued = native.acceptQueueLength(listener.fd);
      if (queued === 0) {
        this.#counters.spuriousWakeups++;
        this.#watch(listener);
        return;
      }
      if (queued > 1) wanted = Math.min(queued, cap);
    }
    listener.roundOrdered = listener.roundAccepted = listener.roundNothing = listener.roundTimedOut = 0;
    let vetoed = false;
    for (let n = 0; n < wanted; n++) {
      const child = this.#choose(listener, wanted);
      if (child === false) {
        vetoed = listener.roundOrdered === 0;
        break;
      }
      if (!child) break;
      this.#order(child, listener);
    }
    if (listener.roundOrdered > 0) {
      listener.state = 'ordering';
      return;
    }
    this.#noIdleChild(listener, vetoed);
  }

  /**
   * The child for the next accept order: `beforeDispatch`'s choice when a plugin makes one (an
   * idle child), `false` when it refuses, else the oldest idle child. Without taps no request is built.
   */
  #choose(listener: Listener, wanted: number): Child | false | undefined {
    if (this.hooks.beforeDispatch.taps.length === 0) return this.#oldestIdle();
    const request = listener.request;
    request.wanted = wanted;
    request.idle.length = 0;
    for (const child of this.#children) if (child.state === 'idle') request.idle.push(child);
    if (request.idle.length === 0) return undefined;
    const choice = this.hooks.beforeDispatch.call(request);
    if (choice === false) return false;
    return (choice && this.#children.find((child) => child === choice && child.state === 'idle')) || this.#oldestIdle();
  }

  /** The idle child that started first, preferring the serving generation. */
  #oldestIdle(): Child | undefined {
    let fallback: Child | undefined;
    for (const child of this.#children) {
      if (child.state !== 'idle') continue;
      if (child.generation === this.#generation) return child;
      fallback ??= child;
    }
    return fallback;
  }

  #order(child: Child, listener: Listener): void {
    child.state = 'accepting';
    child.orderListener = listener.index;
    child.deadline = Date.now() + this.#options.timeouts.accept;
    listener.outstanding++;
    listener.roundOrdered++;
    this.#counters.ordered++;
    const chain = this.#chainGrant(child, listener);
    child.chainLeft = chain;
    child.chainListener = listener.index;
    child.chainEnding = false;
    if (chain > 0) child.chainActiveAt = performance.now();
    // The next dispatch starts with the listener after this one: with few children, a busy
    // listener cannot keep the others waiting.
    const count = this.#listeners.length;
    if (count > 1) this.#firstListener = listener.index + 1 < count ? listener.index + 1 : 0;
    child.orderAccept(listener.index, chain);
  }

  /**
   * The chain grant of an order: how many connections the child may accept by itself once it
   * has finished this one. None while a plugin chooses children per connection (`beforeDispatch`),
   * for multi-slot children, while a reload or stop is under way, while another listener has a
   * connection waiting for a child, or while `acceptChainChildren` children already chain.
   */
  #chainGrant(child: Child, listener: Listener): number {
    let grant = this.#options.acceptChain;
    if (grant === 0 || child.slots !== 1 || this.#state !== 'running' || this.#reload || this.hooks.beforeDispatch.taps.length > 0) return 0;
    if (this.#listeners.length > 1) {
      for (const other of this.#listeners) {
        if (other !== listener && (other.state === 'scheduled' || other.state === 'waiting' || other.state === 'overloaded')) return 0;
      }
    }
    // Chaining children keep a CPU each: beyond a few per CPU they only take turns. Those that
    // only hold a long connection under their grant do not count.
    const recent = performance.now() - CHAIN_ACTIVE_MS;
    let chaining = 0;
    for (const other of this.#children) {
      if (other !== child && other.chainLeft > 0 && !other.chainEnding && other.chainActiveAt > recent && (other.state === 'busy' || other.state === 'accepting')) chaining++;
    }
    if (chaining >= this.#options.acceptChainChildren) return 0;
    // Each tap may only lower the grant: one plugin's cap (recycling) must hold whatever the
    // taps after it return, which a plain waterfall would not guarantee.
    const taps = this.hooks.chainBudget.taps;
    for (let i = 0; i < taps.length && grant > 0; i++) {
      const budget = (taps[i]!.fn as (count: number, child: ChildInfo) => unknown)(grant, child);
      if (typeof budget === 'number' && Number.isInteger(budget)) grant = Math.max(0, Math.min(grant, budget));
      else if (budget !== undefined) grant = 0;
    }
    return grant;
  }

  #noIdleChild(listener: Listener, vetoed: boolean): void {
    // Children serving another listener under a grant come back after their current connection.
    if (this.#listeners.length > 1) this.#endChains(listener);
    if (!vetoed) {
      // A pending child will report idle (or be killed at its start deadline): wait for it.
      if (this.#startingCount(this.#spawnGeneration) > 0) {
        listener.state = 'waiting';
        return;
      }
      if (this.hooks.onChildNeeded.call({ listener: listener.index, stats: this.stats() }) === true && this.#startingCount() > 0) {
        listener.state = 'waiting';
        return;
      }
    }
    const decision = this.hooks.onOverload.call({ listener: listener.index, reason: vetoed ? 'vetoed' : 'no-child', stats: this.stats() }) ?? GRACEFUL;
    if (listener.overloadedAt === 0) {
      listener.overloadedAt = Date.now();
      listener.overloadStrategy = decision.strategy;
      listener.rejected = 0;
      this.#counters.overloadEvents++;
    }
    if (decision.strategy === 'abrupt') {
      let closed = 0;
      try {
        closed = native.acceptAndClose(listener.fd, 256, decision.response ?? null);
      } catch (error) {
        this.logger.error('abrupt overload: accept failed', { listener: listener.index, error: toError(error).message });
      }
      listener.rejected += closed;
      this.#counters.rejected += closed;
      this.#watch(listener);
    } else {
      listener.state = 'overloaded';
    }
  }

  /** A child answered an accept order. */
  #onAnswer(child: Child, accepted: boolean): void {
    if (child.state === 'stopping') {
      // The order was counted as answered when the child was told to stop; the connection it
      // accepted meanwhile is still one it serves.
      if (accepted) {
        child.active++;
        child.accepted++;
        this.#counters.accepted++;
      }
      return;
    }
    if (child.state !== 'accepting') {
      this.logger.error('child answered an accept order it never got; killing it', { child: child.id, pid: child.pid });
      this.#kill(child);
      return;
    }
    const listener = this.#listeners[child.orderListener]!;
    child.orderListener = -1;
    child.deadline = 0;
    if (accepted) {
      child.active++;
      child.accepted++;
      this.#counters.accepted++;
      listener.roundAccepted++;
      this.#latency.record((performance.now() - listener.readableAt) * 1000);
    } else {
      child.chainLeft = 0;
      this.#counters.acceptNothing++;
      listener.roundNothing++;
    }
    this.#settle(child);
    this.#orderAnswered(listener);
  }

  #orderAnswered(listener: Listener): void {
    listener.outstanding--;
    if (listener.outstanding > 0) return;
    if (this.hooks.afterDispatch.taps.length > 0) {
      this.hooks.afterDispatch.call({
        listener: listener.index,
        ordered: listener.roundOrdered,
        accepted: listener.roundAccepted,
        nothing: listener.roundNothing,
        timedOut: listener.roundTimedOut,
      });
    }
    this.#watch(listener);
    this.#drainCheck?.();
  }

  /** Puts a child that has just answered, finished or started into the state its slots say. */
  #settle(child: Child): void {
    if (child.state === 'stopping' || child.state === 'exited') return;
    if (child.generation < this.#generation) {
      this.#stopChild(child, 'replaced by a reload');
      return;
    }
    if (child.active < child.slots) {
      const wasIdle = child.state === 'idle';
      child.state = 'idle';
      if (!wasIdle) {
        child.idleSince = Date.now();
        this.hooks.onChildIdle.call(child);
        this.#childBecameIdle();
      }
    } else {
      child.state = 'busy';
    }
  }

  /** A child is idle: listeners that wait for one (or are in a graceful overload) go back to watching. */
  #childBecameIdle(): void {
    for (const listener of this.#listeners) {
      if (listener.overloadedAt > 0) this.#endOverload(listener);
      if (listener.state === 'waiting' || listener.state === 'overloaded') this.#watch(listener);
    }
  }

  #endOverload(listener: Listener): void {
    if (listener.overloadedAt === 0) return;
    const durationMs = Date.now() - listener.overloadedAt;
    listener.overloadedAt = 0;
    this.#counters.overloadMs += durationMs;
    this.hooks.onOverloadEnd.call({ listener: listener.index, strategy: listener.overloadStrategy, durationMs, rejected: listener.rejected });
  }

  // ---- status reports ------------------------------------------------------------------------

  #onFrame(child: Child, type: number, _argument: number, payload: unknown, count: number): void {
    switch (type) {
      case Status.ACCEPTED:
        this.#onAnswer(child, true);
        return;
      case Status.NOTHING:
        this.#onAnswer(child, false);
        return;
      case Status.DONE:
        this.#onDone(child);
        return;
      case Status.CHAINED:
        this.#onChained(child, count);
        return;
      case Status.READY:
        this.#onReady(child);
        return;
      case Status.SHUTDOWN_REQUEST: {
        const { reason, token } = (payload ?? {}) as { reason?: string; token?: string };
        this.#onShutdownRequest(child, reason, token);
        return;
      }
      case Status.EXITING:
        this.#stopChild(child, ((payload ?? {}) as { reason?: string }).reason ?? 'asked to be retired');
        return;
      case Status.ERROR:
        this.hooks.onChildError.call(child, errorInfo(payload));
        return;
      case Status.INIT_FAILED:
        this.#onInitFailed(child, errorInfo(payload));
        return;
      case Status.LOG: {
        // The level must not pick a method of the logger: `configure` or `setStream` would let a
        // child reopen the parent's log on any file, with the parent's privileges.
        const line = parseLogLine(payload);
        if (typeof line === 'string') {
          this.logger.error('child sent an invalid log frame; killing it', { child: child.id, pid: child.pid, problem: line });
          this.#kill(child);
          return;
        }
        this.hooks.onChildLog.call(child, line);
        this.logger[line.level](line.message, { ...line.fields, child: child.id, pid: child.pid });
        return;
      }
      default:
        this.logger.error('child sent an unexpected frame; killing it', { child: child.id, type });
        this.#kill(child);
    }
  }

  #onReady(child: Child): void {
    if (child.state !== 'starting') return;
    child.readyAt = Date.now();
    child.deadline = 0;
    this.hooks.onChildReady.call(child);
    if (this.#reload && child.generation === this.#reload.generation) this.#commitReload();
    this.#settle(child);
    this.#checkStarted();
  }

  #onDone(child: Child): void {
    // The child reports a plain DONE only when its chain grant (if any) has ended.
    child.chainLeft = 0;
    child.active--;
    child.served++;
    this.#counters.served++;
    if (this.hooks.onConnectionDone.taps.length > 0) this.hooks.onConnectionDone.call(child, { served: child.served });
    if (child.state === 'busy' || (child.state === 'idle' && child.generation < this.#generation)) this.#settle(child);
  }

  /**
   * Ends the chain grants still running: all of them when a stop or reload begins, those on other
   * listeners than `except` when a connection there finds no idle child. From then on the parent
   * decides each of those children's accepts again. A CHAINED frame already on its way is still valid.
   */
  #endChains(except?: Listener): void {
    for (const child of this.#children) {
      if (child.chainLeft <= 0 || child.chainEnding || child.state === 'stopping' || child.state === 'exited') continue;
      if (except && child.chainListener === except.index) continue;
      child.chainEnding = true;
      child.orderEndChain();
    }
  }

  /**
   * DONE and ACCEPTED, `count` times: the child finished connections and after each took the next
   * under its chain grant. Reports are batched, so `onConnectionDone` fires once per connection here.
   */
  #onChained(child: Child, count: number): void {
    if (count < 1 || count > child.chainLeft || (child.state !== 'busy' && child.state !== 'stopping')) {
      this.logger.error('child accepted a connection without a chain grant; killing it', { child: child.id, pid: child.pid, state: child.state, reported: count, granted: child.chainLeft });
      this.#kill(child);
      return;
    }
    child.chainLeft -= count;
    child.chainActiveAt = performance.now();
    const notify = this.hooks.onConnectionDone.taps.length > 0;
    const counters = this.#counters;
    for (let i = 0; i < count; i++) {
      // Counted one by one, so that a tap sees the stats as of its own connection.
      child.served++;
      child.accepted++;
      counters.served++;
      counters.accepted++;
      counters.chained++;
      if (notify) this.hooks.onConnectionDone.call(child, { served: child.served });
    }
    // Still busy: no settle. A child of a replaced generation got END_CHAIN when the reload began
    // and is stopped at its DONE, like any busy child of that generation.
  }

  #onShutdownRequest(child: Child, reason: string | undefined, token: string | undefined): void {
    const verdict = this.hooks.onShutdownRequest.call({ child, reason, token });
    if (verdict === false) {
      return;
    }
    if (this.#stopping) return;
    this.#stopping = this.#shutdown(`shutdown requested by child ${child.id}${reason ? `: ${reason}` : ''}`, true);
  }

  #onInitFailed(child: Child, error: ReturnType<typeof errorInfo>): void {
    this.hooks.onChildError.call(child, error);
    child.expectedExit = true;
    if (this.#reload && child.generation === this.#reload.generation) {
      this.#abandonReload(`a child of the new generation failed to start: ${error.message}`);
      return;
    }
    // A handler that never started anywhere is broken: stop instead of respawning forever. One
    // that ran before and now fails (a database down at init) is a failed start, backed off by the
    // spawning policy.
    const generationEverReady = this.#children.some((c) => c.generation === child.generation && c.readyAt > 0) || this.#counters.served > 0;
    if (generationEverReady) return;
    this.#fatal ??= new PreforkError('PREFORK_ERR_HANDLER_INIT', `the handler ${this.#options.handler} failed to start: ${error.message}`, { cause: Object.assign(new Error(error.message), { stack: error.stack }) });
    if (this.#state === 'starting') this.#checkStarted();
    else if (!this.#stopping) this.#stopping = this.#shutdown('the handler failed to start', false);
  }

  #commitReload(): void {
    const reload = this.#reload!;
    this.#reload = undefined;
    this.#generation = reload.generation;
    for (const child of [...this.#children]) {
      if (child.generation < this.#generation && (child.state === 'idle' || child.state === 'starting')) this.#stopChild(child, 'replaced by a reload');
    }
    this.logger.info('reload complete', { generation: this.#generation });
  }

  #abandonReload(reason: string): void {
    const reload = this.#reload;
    if (!reload) return;
    this.#reload = undefined;
    this.#options = reload.previous;
    this.#spawnGeneration = this.#generation;
    for (const child of [...this.#children]) if (child.generation === reload.generation) this.#stopChild(child, 'reload abandoned');
    this.logger.error('reload failed; the previous generation keeps serving', { generation: reload.generation, reason });
  }

  // ---- children: stop, kill, reap, deadlines ----------------------------------------------------

  #stopChild(child: Child, reason: string): void {
    if (child.state === 'stopping' || child.state === 'exited') return;
    // A stopping child takes no orders; an order still out is counted as answered now, and the
    // child's late ACCEPTED/NOTHING for it is ignored (the child serves what it accepted).
    const wasAccepting = child.state === 'accepting';
    child.state = 'stopping';
    child.stopReason = reason;
    child.expectedExit = true;
    child.deadline = Date.now() + this.#options.timeouts.stop;
    if (wasAccepting) this.#resolveOrder(child, false);
    child.orderStop();
  }

  /** Counts an order as answered without an answer (the child is stopping, killed or gone). */
  #resolveOrder(child: Child, timedOut: boolean): void {
    if (child.orderListener < 0) return;
    const listener = this.#listeners[child.orderListener]!;
    child.orderListener = -1;
    if (timedOut) listener.roundTimedOut++;
    this.#orderAnswered(listener);
  }

  #kill(child: Child): void {
    if (child.state === 'exited') return;
    child.expectedExit = true;
    if (child.state === 'accepting') this.#resolveOrder(child, true);
    if (child.state !== 'stopping') child.state = 'stopping';
    child.deadline = 0;
    try {
      child.process.kill('SIGKILL');
    } catch {
      // Already gone; 'close' reaps it.
    }
  }

  #watchdog(): void {
    const now = Date.now();
    for (const child of this.#children) {
      if (child.deadline === 0 || now < child.deadline) continue;
      const kind: ChildTimeoutKind = child.state === 'starting' ? 'start' : child.state === 'accepting' ? 'accept' : 'stop';
      if (kind === 'accept') this.#counters.acceptTimeouts++;
      this.hooks.onChildTimeout.call(child, kind);
      this.#kill(child);
    }
  }

  #reap(child: Child, code: number | null, signal: NodeJS.Signals | null): void {
    const index = this.#children.indexOf(child);
    if (index < 0) return;
    // The child is gone, but its last frames (a DONE, an error report) may still be unread.
    child.channel.drain();
    this.#children.splice(index, 1);
    const state = child.state;
    if (state === 'accepting') this.#resolveOrder(child, false);
    child.state = 'exited';
    child.deadline = 0;
    const lost = child.active;
    this.#counters.lost += lost;
    this.#counters.exits++;
    const failedStart = child.readyAt === 0;
    if (failedStart) this.#counters.failedStarts++;
    if (!child.expectedExit) this.#counters.crashes++;
    child.channel.close();
    this.hooks.onChildExit.call(child, {
      code,
      signal,
      state,
      lost,
      failedStart,
      expected: child.expectedExit,
      lifetimeMs: Date.now() - child.startedAt,
    });
    if (this.#reload && child.generation === this.#reload.generation && !this.#children.some((c) => c.generation === child.generation)) {
      this.#abandonReload(`every child of the new generation exited before it was ready (last: code ${code}, signal ${signal})`);
    }
    this.#checkStarted();
    if (this.#state === 'running') {
      // A listener waiting for a pending child that will now never come: dispatch again, which
      // asks for a new child or declares an overload.
      for (const listener of this.#listeners) {
        if (listener.state === 'waiting' && this.#startingCount(this.#spawnGeneration) === 0) this.#watch(listener);
      }
    }
    if (this.#children.length === 0) this.#childrenGone?.();
    this.#drainCheck?.();
  }

  #startingCount(generation?: number): number {
    let count = 0;
    for (const child of this.#children) if (child.state === 'starting' && (generation === undefined || child.generation === generation)) count++;
    return count;
  }

  #checkStarted(): void {
    if (this.#state !== 'starting' || !this.#startWaiter) return;
    if (this.#fatal || this.#startingCount() === 0) {
      const resolve = this.#startWaiter;
      this.#startWaiter = undefined;
      resolve();
    }
  }

  #tick(): void {
    if (this.#state !== 'running') return;
    // A connection refused by a `beforeDispatch` veto waits (graceful overload) even though
    // children are idle; no child will *become* idle to wake it, so retry it on the tick.
    for (const listener of this.#listeners) {
      if (listener.state === 'overloaded' && this.#oldestIdle()) this.#watch(listener);
    }
    const spawnUsed = this.hooks.spawnCount.taps.length > 0;
    const tickUsed = this.hooks.onParentTick.taps.length > 0;
    if (!spawnUsed && !tickUsed) return;
    const stats = this.stats();
    if (spawnUsed) {
      const count = this.hooks.spawnCount.call(0, stats);
      for (let i = 0; i < count; i++) if (!this.spawnChild()) break;
    }
    if (tickUsed) this.hooks.onParentTick.call(stats);
  }

  async #shutdown(reason: string, requestedByChild: boolean, drainMs = 0): Promise<void> {
    if (this.#state === 'new' || this.#state === 'stopped') {
      this.#state = 'stopped';
      this.#resolveOutcome({ reason, error: this.#fatal });
      return;
    }
    const info = { reason, requestedByChild };
    this.#state = 'stopping';
    this.#endChains();
    this.#startWaiter?.();
    for (const listener of this.#listeners) {
      listener.watcher.stop();
      this.#endOverload(listener);
    }
    try {
      await this.hooks.beforeShutdown.promise(info);
    } catch (error) {
      this.logger.error('beforeShutdown failed', { error: toError(error).message });
    }
    if (drainMs > 0 && this.#children.length > 0) await this.#drain(drainMs);
    this.#refuseNewConnections();
    if (this.#tickTimer) clearInterval(this.#tickTimer);
    if (this.#children.length > 0) {
      const gone = new Promise<void>((resolve) => (this.#childrenGone = resolve));
      for (const child of [...this.#children]) this.#stopChild(child, reason);
      await gone;
    }
    if (this.#watchdogTimer) clearInterval(this.#watchdogTimer);
    this.#closeListeners();
    this.#state = 'stopped';
    try {
      await this.hooks.afterShutdown.promise(info);
    } catch (error) {
      this.logger.error('afterShutdown failed', { error: toError(error).message });
    }
    this.#resolveOutcome({ reason, error: this.#fatal });
  }

  /**
   * From here on nobody will accept: refuse new connections at once instead of letting the kernel
   * queue them until the last child exits (and then reset them). A front proxy then retries
   * elsewhere without having sent its request. The socket file of a Unix listener goes too.
   */
  #refuseNewConnections(): void {
    for (const listener of this.#listeners) {
      try {
        native.shutdownListener(listener.fd);
      } catch (error) {
        this.logger.warn('could not shut the listening socket down', { listener: listener.index, error: toError(error).message });
      }
      if (listener.ownedPath) {
        try {
          unlinkSync(listener.ownedPath);
        } catch {
          // Already gone.
        }
      }
    }
  }

  /** Dispatches until no listener has a connection waiting (and no order is out), or `ms` passed. */
  async #drain(ms: number): Promise<void> {
    this.#draining = true;
    await new Promise<void>((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.#drainCheck = undefined;
        resolve();
      };
      const timer = setTimeout(() => {
        this.logger.warn('stop: the backlog was not drained in time', { drainMs: ms });
        finish();
      }, ms);
      this.#drainCheck = () => {
        if (this.#children.length === 0 || this.#listeners.every((l) => l.state !== 'ordering' && !native.readable(l.fd))) finish();
      };
      for (const listener of this.#listeners) if (listener.state !== 'ordering') this.#watch(listener);
      this.#drainCheck();
    });
    this.#draining = false;
    for (const listener of this.#listeners) {
      listener.watcher.stop();
      if (listener.state !== 'ordering') listener.state = 'closed';
    }
  }

  // ---- plumbing ----------------------------------------------------------------------------

  #childEnv(id: number, generation: number): Record<string, string | undefined> {
    const bootstrap: ChildBootstrap = {
      id,
      generation,
      handler: this.#options.handler,
      protocol: this.#options.protocol,
      protocolOptions: this.#options.protocolOptions,
      listeners: this.#listeners.length,
      slots: this.#options.children.slots,
      logLevel: this.#options.logLevel,
    };
    const env: Record<string, string | undefined> = { ...process.env, ...this.#options.env, PREFORK_CHILD: JSON.stringify(bootstrap) };
    // Sockets systemd handed to the parent are the parent's; a child must not adopt them again.
    delete env.LISTEN_FDS;
    delete env.LISTEN_PID;
    delete env.LISTEN_FDNAMES;
    return env;
  }

  /**
   * Wraps every tap so that a plugin that throws is reported with the hook's and the plugin's
   * names and the pool carries on (a Bail hook then falls through to the next tap).
   */
  #guardPluginTaps(): void {
    for (const [hookName, hook] of Object.entries(this.hooks)) {
      hook.intercept({
        register: (tap: Tap & { type: string; fn: (...args: unknown[]) => unknown }) => {
          const fn = tap.fn;
          const report = (error: unknown) => {
            const wrapped = new PreforkError('PREFORK_ERR_PLUGIN', `plugin "${tap.name}" failed in hook ${hookName}: ${toError(error).message}`, { cause: error });
            this.logger.error(wrapped.message, { code: wrapped.code, hook: hookName, plugin: tap.name, stack: toError(error).stack });
          };
          if (tap.type === 'sync') {
            tap.fn = (...args: unknown[]) => {
              try {
                return fn(...args);
              } catch (error) {
                report(error);
                return undefined;
              }
            };
          } else if (tap.type === 'promise') {
            tap.fn = async (...args: unknown[]) => {
              try {
                return await fn(...args);
              } catch (error) {
                report(error);
                return undefined;
              }
            };
          } else if (tap.type === 'async') {
            tap.fn = (...args: unknown[]) => {
              const callback = args.pop() as (error?: unknown, result?: unknown) => void;
              try {
                fn(...args, (error: unknown, result: unknown) => {
                  if (error) report(error);
                  callback(null, result);
                });
              } catch (error) {
                report(error);
                callback(null);
              }
            };
          }
          return tap;
        },
      } as never);
    }
  }
}

function errorInfo(payload: unknown): { message: string; stack?: string; code?: string; where: string } {
  const data = (payload ?? {}) as { message?: unknown; stack?: unknown; code?: unknown; where?: unknown };
  return {
    message: typeof data.message === 'string' ? data.message : 'unknown error',
    stack: typeof data.stack === 'string' ? data.stack : undefined,
    code: typeof data.code === 'string' ? data.code : undefined,
    where: typeof data.where === 'string' ? data.where : 'unknown',
  };
}

/** The fds systemd passed (socket activation), only when they are meant for this process. */
function systemdListenFds(): number[] {
  const pid = Number(process.env.LISTEN_PID);
  const count = Number(process.env.LISTEN_FDS);
  if (pid !== process.pid || !Number.isInteger(count) || count < 1) {
    throw new PreforkError('PREFORK_ERR_LISTEN', `listen "systemd": no sockets were passed to this process (LISTEN_PID=${process.env.LISTEN_PID ?? 'unset'}, LISTEN_FDS=${process.env.LISTEN_FDS ?? 'unset'}, pid ${process.pid})`);
  }
  const fds: number[] = [];
  for (let i = 0; i < count; i++) fds.push(3 + i);
  delete process.env.LISTEN_FDS;
  delete process.env.LISTEN_PID;
  delete process.env.LISTEN_FDNAMES;
  return fds;
}
