import type { ChildProcess } from 'node:child_process';
import type { Channel } from '../channel/Channel.js';
import { constantFrame, Order } from '../channel/frames.js';
import { PAGE } from '../channel/page.js';
import type { ChildMetric } from '../channel/metrics.js';

/**
 * A child's state, as the parent sees it:
 *
 * ```
 * starting ──READY──▶ idle ──order──▶ accepting ──ACCEPTED──▶ busy ──DONE──▶ idle
 *                      ▲                  │ NOTHING              │  ▲  (idle again at once when
 *                      └──────────────────┘                      └──┘   slots > 1 and one is free)
 *                                                              CHAINED (a chain grant: done, and
 *                                                                       the next one accepted)
 * any state ──stop/retire──▶ stopping ──exit──▶ exited
 * ```
 */
export type ChildState = 'starting' | 'idle' | 'accepting' | 'busy' | 'stopping' | 'exited';

/**
 * The legal moves of a child (the diagram above). A self-move is a no-op the dispatcher makes when
 * a report leaves the state as it is (idle with a slot still free, busy after a CHAINED).
 */
const CHILD_MOVES: Readonly<Record<ChildState, readonly ChildState[]>> = Object.freeze({
  starting: ['idle', 'stopping', 'exited'],
  idle: ['accepting', 'idle', 'stopping', 'exited'],
  accepting: ['idle', 'busy', 'stopping', 'exited'],
  busy: ['idle', 'busy', 'stopping', 'exited'],
  stopping: ['stopping', 'exited'],
  exited: [],
});

/** Which deadline a child missed. */
export type ChildTimeoutKind = 'start' | 'accept' | 'stop' | 'heartbeat' | 'connection';

/** A read-only view of a child, as hooks and plugins receive it. */
export interface ChildInfo {
  /** Unique within the pool's lifetime: 1, 2, 3, ... in spawn order. */
  readonly id: number;
  readonly pid: number;
  readonly generation: number;
  readonly state: ChildState;
  /** Connections the child holds now (at most `slots`). */
  readonly active: number;
  readonly slots: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections finished so far. */
  readonly served: number;
  /** When the process was forked (ms since the epoch). */
  readonly startedAt: number;
  /** When it reported ready, or 0. */
  readonly readyAt: number;
  /** When it last became idle (ms since the epoch), or 0. */
  readonly idleSince: number;
  /** Why it is stopping, if it is. */
  readonly stopReason: string | undefined;
  /** The last bytes the child wrote to stderr, for crash reports. */
  stderrTail(): string;
}

/** What the pool passes to `beforeSpawn`; taps may edit `env` and `execArgv`. */
export interface SpawnRequest {
  readonly id: number;
  readonly generation: number;
  env: Record<string, string | undefined>;
  execArgv: string[];
}

/** How a child ended, as `onChildExit` reports it. */
export interface ChildExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The state it was in when it died. */
  state: ChildState;
  /** Connections it had accepted but not finished: lost. */
  lost: number;
  /** True when it exited before reporting ready (a failed start). */
  failedStart: boolean;
  /** True when the pool asked it to stop (retire, reload, shutdown) or killed it on a timeout. */
  expected: boolean;
  /** Milliseconds from fork to exit. */
  lifetimeMs: number;
}

const STDERR_TAIL_BYTES = 4096;

/** The parent's record of one child process. Only the pool changes it. */
export class Child implements ChildInfo {
  readonly id: number;
  readonly generation: number;
  readonly slots: number;
  readonly process: ChildProcess;
  /** The parent's end of the control channel; set right after the fork. */
  channel!: Channel;
  readonly startedAt: number;
  pid: number;
  /** Changed only through `moveChild()` (children.ts), which checks the diagram. */
  state: ChildState = 'starting';
  active = 0;
  accepted = 0;
  served = 0;
  readyAt = 0;
  idleSince = 0;
  stopReason: string | undefined;
  /** The listener of the outstanding accept order, or -1. */
  orderListener = -1;
  /** Connections the child may still accept by itself under its last order's chain grant. */
  chainLeft = 0;
  /** The listener of that grant. */
  chainListener = -1;
  /** An END_CHAIN is on its way for the current grant (so it is not sent twice). */
  chainEnding = false;
  /** When the grant was given or last used (a CHAINED report), `performance.now()` ms. */
  chainActiveAt = 0;
  /** When the current deadline (start, accept or stop) expires, ms since the epoch; 0 = none. */
  deadline = 0;
  /** Whether the pool itself asked this child to go (so its exit is no crash). */
  expectedExit = false;
  /** When the child last answered a PING (or reported ready), ms since the epoch. */
  heardAt = 0;
  /** When the last PING went out, ms since the epoch. */
  pingedAt = 0;
  /**
   * The page of a child that parks (HTTP where the system has pages): its BUSY word says how many
   * requests its handler runs, so connections it parks hold no slot. Without one, every connection
   * it holds takes a slot.
   */
  page: Int32Array | undefined;
  /**
   * The page shared with the child, parking or not (where the system has pages): the parent sets
   * its ORDERS word after each order a chaining child must read before accepting by itself.
   */
  ordersPage: Int32Array | undefined;
  /** Connections it may hold at once: `children.connections` with a page, else `slots`. */
  connectionLimit: number;
  /** Accept orders it answered ACCEPTED: the number its DONE frames name their connection's order by. */
  orders = 0;
  /** The parent set the page's WAKE word and waits for the child's FREE. */
  wakeRequested = false;
  /** The METRICS request it has not answered yet, or -1. */
  metricsRequest = -1;
  /** Its handler's metrics as of its last answer (see metrics.ts). */
  metrics: ChildMetric[] | undefined;
  /** Its last report, sent as it stops, has come (there is one only). */
  metricsFinal = false;
  /** When each connection it holds began, oldest first (kept only with `timeouts.connection`). */
  readonly connectionsSince: number[] = [];
  #stderr: Buffer[] = [];
  #stderrBytes = 0;

  constructor(id: number, generation: number, slots: number, child: ChildProcess, startedAt: number) {
    this.id = id;
    this.generation = generation;
    this.slots = slots;
    this.connectionLimit = slots;
    this.process = child;
    this.startedAt = startedAt;
    this.pid = child.pid ?? -1;
  }

  /** Orders the child to accept one connection from listener `listener`, granting `chain` follow-on accepts. */
  orderAccept(listener: number, chain = 0): void {
    this.channel.send(constantFrame(Order.ACCEPT, listener, chain));
  }

  /** Ends the child's chain grant early (a stop or reload begins); it reports DONE after its connection. */
  orderEndChain(): void {
    this.channel.send(constantFrame(Order.END_CHAIN));
    this.#ordersWaiting();
  }

  /** Asks for a PONG: the heartbeat. */
  orderPing(): void {
    this.channel.send(constantFrame(Order.PING));
  }

  /** Asks for the handler's own metrics; the answer names `request`. */
  orderMetrics(request: number): void {
    this.channel.send(constantFrame(Order.METRICS, request));
  }

  /** Tells the child to finish its connections and exit. */
  orderStop(): void {
    this.channel.send(constantFrame(Order.STOP));
    this.#ordersWaiting();
  }

  /** After the frame is written: a chaining child that sees the word finds the order in its channel. */
  #ordersWaiting(): void {
    if (this.ordersPage !== undefined) Atomics.store(this.ordersPage, PAGE.ORDERS, 1);
  }

  /** Whether the state diagram allows a move from the current state to `next`. */
  canMoveTo(next: ChildState): boolean {
    return CHILD_MOVES[this.state].includes(next);
  }

  /** Keeps the last few KiB the child wrote to stderr. */
  recordStderr(chunk: Buffer): void {
    this.#stderr.push(chunk);
    this.#stderrBytes += chunk.length;
    while (this.#stderrBytes - this.#stderr[0]!.length >= STDERR_TAIL_BYTES) {
      this.#stderrBytes -= this.#stderr.shift()!.length;
    }
  }

  stderrTail(): string {
    const text = Buffer.concat(this.#stderr).toString('utf8');
    return text.length > STDERR_TAIL_BYTES ? text.slice(-STDERR_TAIL_BYTES) : text;
  }

  /** A plain snapshot for stats and logs. */
  toJSON(): Record<string, unknown> {
    return {
      id: this.id,
      pid: this.pid,
      generation: this.generation,
      state: this.state,
      active: this.active,
      slots: this.slots,
      accepted: this.accepted,
      served: this.served,
      startedAt: this.startedAt,
    };
  }
}
