import type { StatusServer } from './status.js';
import type { PoolMetrics } from './metrics.js';
import type { Logger } from '../child/types.js';
import type { PreforkError } from '../errors.js';
import type { Child } from './Child.js';
import type { PoolHooks, PoolPlugin } from './hooks.js';
import type { Listener } from './listeners.js';
import type { ResolvedPoolOptions } from './options.js';
import type { LatencyRecorder, PoolStats } from './stats.js';

/** The pool's own state. */
export type PoolState = PoolStats['state'];

/** The pool's counters; `stats()` reports them (see `PoolStats` for what each counts). */
const COUNTER_NAMES = ['ordered', 'accepted', 'chained', 'served', 'lost', 'rejected', 'acceptNothing', 'acceptTimeouts', 'spuriousWakeups', 'overloadEvents', 'overloadMs', 'exits', 'failedStarts', 'crashes', 'invalidFrames'] as const;

/** The pool's counters, each a number. */
export type Counters = Record<(typeof COUNTER_NAMES)[number], number>;

/** The plugins in force and the hooks they tapped: what a reload replaces, and an abandoned one restores. */
export interface PluginSet {
  readonly hooks: PoolHooks;
  readonly plugins: readonly PoolPlugin[];
}

/** A reload under way: its generation, and what to restore when it fails. */
export interface ReloadInProgress {
  readonly generation: number;
  /** Ready children of the new generation it takes to commit. */
  readonly needed: number;
  readonly previousOptions: ResolvedPoolOptions;
  readonly previousPlugins: PluginSet;
}

/** What `pool.wait()` resolves with once the pool has stopped. */
export interface PoolOutcome {
  reason: string;
  /** Set when the pool stopped because of a fatal error (the handler cannot start, ...). */
  error: PreforkError | undefined;
}

/**
 * Everything the parent knows, shared by the modules that act on it (`dispatch`, `children`,
 * `generations`, `shutdown`, ...). Only those modules change it; `Pool` is its public face.
 * Like Apache's scoreboard, it is data: the verbs live in the modules named for their job.
 */
export interface PoolContext {
  /** The hooks and plugins in force (a reload swaps them). */
  current: PluginSet;
  readonly logger: Logger;
  options: ResolvedPoolOptions;
  state: PoolState;
  readonly listeners: Listener[];
  /** Children not yet reaped, in spawn order (so the first idle one is the oldest). */
  readonly children: Child[];
  nextChildId: number;
  /** Forks that failed in a row (EMFILE, ENOMEM, ...), and when spawning may be tried again. */
  spawnFailures: number;
  spawnRetryAt: number;
  /** Children retired in a row because they could not accept (EMFILE...): an episode, logged once. */
  exhaustedChildren: number;
  /** Generation whose children get orders. */
  generation: number;
  /** Generation new children are spawned in (ahead of `generation` during a reload). */
  spawnGeneration: number;
  reload: ReloadInProgress | undefined;
  /** Generations that had a child ready at least once: an init failure there is an outage, not a broken handler. */
  readonly readyGenerations: Set<number>;
  startedAt: number;
  /** A dispatch is scheduled for after this loop turn's status reports. */
  dispatchScheduled: boolean;
  /** Where a scheduled dispatch starts, rotating over the listeners. */
  firstListener: number;
  /** A stop is serving what the backlog still holds; dispatch goes on meanwhile. */
  draining: boolean;
  /** Called whenever an order is answered or a child reaped while a drain runs. */
  drainCheck: (() => void) | undefined;
  /** The status listener (`status.listen`), while it runs. */
  status: StatusServer | undefined;
  /** `/metrics` of the status listener: kept after the listener closes, for stopping children's last reports. */
  metrics: PoolMetrics | undefined;
  /** The longest accept queue a stats snapshot has seen. */
  acceptQueueMax: number;
  /** Children that exited, by why (disjoint: see `prefork_child_exits_total`). */
  readonly exitReasons: Record<ExitReason, number>;
  readonly counters: Counters;
  readonly latency: LatencyRecorder;
  /** A fatal error (the handler never starts): the pool stops and `wait()` reports it. */
  fatal: PreforkError | undefined;
  /** Resolves `start()`'s wait for the initial children. */
  startWaiter: (() => void) | undefined;
  stopping: Promise<void> | undefined;
  /** Resolves the stop's wait for the last child. */
  childrenGone: (() => void) | undefined;
  resolveOutcome: (outcome: PoolOutcome) => void;
  /** The child runtime's entry file. */
  readonly childEntry: string;
  tickTimer: NodeJS.Timeout | undefined;
  watchdogTimer: NodeJS.Timeout | undefined;
  /** This pool asked for the parent's batch scheduling (scheduling.ts) and has not given it back. */
  batchScheduling: boolean;
}

/** Why a child exited: asked to stop and did, killed by the pool, crashed, or died before it was ready. */
export type ExitReason = 'stopped' | 'killed' | 'crashed' | 'failed_start';

/** Fresh counters, all zero. */
export function createCounters(): Counters {
  return Object.fromEntries(COUNTER_NAMES.map((name) => [name, 0])) as Counters;
}
