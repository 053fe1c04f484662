import type { Socket } from 'node:net';
import { Channel } from '../channel/Channel.js';
import { pathToFileURL } from 'node:url';
import { constantFrame, encodeFrame, FRAME_HEADER_SIZE, Order, Status, type FrameType } from '../channel/frames.js';
import { clip, MAX_LABEL_LENGTH, MAX_TEXT_LENGTH, shapeErrorReport, shapeLogLine } from '../channel/payloads.js';
import { PreforkError, toError } from '../errors.js';
import { LOG_LEVEL_RANK } from '../logger.js';
import * as native from '../native/index.js';
import { protocolFactory } from '../protocols/index.js';
import { whenClosed } from '../protocols/sockets.js';
import type { ChildBootstrap } from './bootstrap.js';
import { HoldTimes, RequestSlots, type Reservation } from './slots.js';
import { AcceptedSockets } from './accepted.js';
import { HandlerMetrics } from './metrics.js';
import { FINAL_METRICS_REPORT } from '../channel/metrics.js';
import { PAGE } from '../channel/page.js';
import type { ChildContext, HandlerModule, Logger, LogLevel, ProtocolAdapter } from './types.js';
import { readListenerTls, secureServerSocket, type ListenerTls } from './tls.js';

/** The control channel's fd in a child (stdio index 3). */
const CHANNEL_FD = 3;
/** The first listening socket's fd (stdio index 4). */
const LISTENER_FD_BASE = 4;
/** Exit codes of a child. 3: the handler cannot start (the parent must not respawn blindly). */
const EXIT_OK = 0;
const EXIT_INIT_FAILED = 3;
const EXIT_UNCAUGHT = 70;

/**
 * Under a chain grant the parent needs no report to decide anything (the child stays busy), and
 * every frame wakes it; so chained connections are reported together: when the grant ends (with
 * the DONE), and otherwise at most this many milliseconds after the first unreported one (a
 * timer), so that the parent's counters lag little even behind a long connection.
 */
const CHAIN_REPORT_MS = 100;
/** accept() errors after which a child cannot take connections any more (it retires). */
const EXHAUSTED: ReadonlySet<string> = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);
/** Most connections one CHAINED frame reports (its count byte). */
const CHAIN_REPORT_MAX = 255;
/** Most connections of its grant a chaining child holds at once (see #batchLimit). */
const CHAIN_BATCH_MAX = 16;

/**
 * DONE for a connection that came with accept order number `order` (the low 16 bits, in the
 * argument), so that the parent tells the end of the last order's connection (its grant ends)
 * from that of an earlier one still parked. Not cached: the frame may wait in the channel's queue.
 */
function doneFrame(order: number): Buffer {
  const frame = Buffer.alloc(FRAME_HEADER_SIZE);
  frame[0] = Status.DONE;
  frame.writeUInt16LE(order & 0xffff, 2);
  return frame;
}

/** A CHAINED report followed by DONE, in one buffer: one write, one wake-up of the parent. */
function chainedThenDone(listener: number, count: number, order: number): Buffer {
  return Buffer.concat([constantFrame(Status.CHAINED, listener, count), doneFrame(order)]);
}

/**
 * The connections of one accept order: the one it brought and those its chain grant brought. The
 * parent counts one open connection per order; each other connection of the order is reported as
 * chained (one accepted and one finished, in a CHAINED count) when one of the order's connections
 * ends while others stay open, and the last to end sends the order's DONE.
 */
interface OrderGroup {
  /** Its accept order's number: the orders that brought a connection, counted from 1 (the parent counts the same). */
  readonly order: number;
  /** Its connections still open. */
  open: number;
  /**
   * Of those, how many the parent already counts as chained and finished: reported when the grant
   * ended (UNCHAINED) while they were open, so that no CHAINED comes after it. They end silently.
   */
  prepaid: number;
}

/**
 * The child's side of the model: load the handler once, report idle, then wait for orders. On an
 * accept order, accept() without blocking and answer only after it returned; report DONE when a
 * connection is finished. When the parent goes away (even killed), finish the current
 * connections and exit: no orphans.
 */
export class ChildRuntime {
  readonly #boot: ChildBootstrap;
  readonly #channel: Channel;
  readonly #listenerFds: number[] = [];
  #handler: HandlerModule = {};
  #adapter: ProtocolAdapter | undefined;
  /** Where it parks (HTTP with a page): the request slots, and waiting connections parked. */
  readonly #slots: RequestSlots | undefined;
  /** The handler's prom-client metrics, read once the parent asks. */
  #metrics: HandlerMetrics | undefined;
  /** The page shared with the parent, when it gave one (Linux): the ORDERS word, and the slots' words where it parks. */
  readonly #page: Int32Array | undefined;
  /** The TLS of each listener (undefined: plain), read from the parent's pipe at start. */
  #tls: (ListenerTls | undefined)[] = [];
  #ctx!: ChildContext;
  #active = 0;
  #connections = 0;
  #stopping = false;
  #exiting = false;
  #ready = false;
  /** Connections this child may still accept by itself under the current chain grant. */
  #chainLeft = 0;
  /** The listener of the current chain grant. */
  #chainListener = 0;
  /**
   * The connections of the last accept order that brought one; its `order` counts those orders. A
   * connection (and the ones its grant chained) belongs to its order; one of an earlier order that
   * ends while a later order's grant runs (a parked keep-alive connection) must not end that grant.
   */
  #group: OrderGroup = { order: 0, open: 0, prepaid: 0 };
  /** The parent counts the current order's grant as running: from the order until its DONE or UNCHAINED. */
  #grantRunning = false;
  /** Chained connections not yet reported to the parent. */
  #chainUnreported = 0;
  /**
   * Sockets of finished connections that are still open: their side ended, waiting (a bounded
   * while, see ProtocolAdapter.handle) for the peer to close. The child exits only after them.
   */
  readonly #lingering = new Set<Socket>();
  /** Why the inherited SCHED_BATCH could not be put back (logged once the handler's logger exists). */
  #schedulingError: string | undefined;
  /** Makes the sockets of accepted connections. */
  readonly #sockets = new AcceptedSockets();
  /** Connections in the protocol adapter now; where it does not park, at most `slots` (the rest wait in #waiting). */
  #handling = 0;
  /**
   * Where it does not park: connections of a chain batch taken while the child's slot was held,
   * waiting for it in arrival order. Their sockets exist and read meanwhile, so a handler finds
   * its client's first bytes there at once.
   */
  readonly #waiting: (() => void)[] = [];
  /** Where it does not park: how long recent connections held the child (see #batchLimit). */
  readonly #holds = new HoldTimes();
  /** Fires CHAIN_REPORT_MS after the first unreported chained connection; re-armed, never reallocated. */
  readonly #chainReportTimer = setTimeout(() => {
    if (this.#chainUnreported > 0) this.#reportChained();
  }, CHAIN_REPORT_MS).unref();

  constructor(boot: ChildBootstrap) {
    this.#boot = boot;
    // First: every thread of this process (V8's and libuv's too) runs as it would under a parent
    // that kept its policy; the handler's own subprocesses inherit this.
    if (boot.restoreScheduling) this.#schedulingError = native.setSchedPolicy('other', true);
    // Inherited descriptors arrive without close-on-exec; the handler's own subprocesses must not
    // inherit the listening sockets or the control channel.
    native.setCloexec(CHANNEL_FD, true);
    for (let i = 0; i < boot.listeners; i++) {
      const fd = LISTENER_FD_BASE + i;
      native.setCloexec(fd, true);
      native.setNonblocking(fd, true);
      this.#listenerFds.push(fd);
    }
    native.setNonblocking(CHANNEL_FD, true);
    const tlsFd = LISTENER_FD_BASE + boot.listeners;
    if (boot.page) {
      const page = new Int32Array(native.mapPage(tlsFd + (boot.tls ? 1 : 0)));
      this.#page = page;
      if (boot.parks) this.#slots = new RequestSlots(boot.slots, page, (frame) => this.#channel.send(frame), () => this.#unchain());
    }
    // Started before any user code runs, so that a handler stuck from its first line is covered.
    native.startLifeline(boot.parentPid, this.#listenerFds, boot.orphanGraceMs);
    this.#channel = new Channel(CHANNEL_FD, {
      onFrame: (type, argument, _payload, count) => this.#onOrder(type, argument, count),
      // EOF: the parent is gone (even killed); finish the current connections and exit.
      onClose: () => this.#parentGone(),
      onError: (error) => process.stderr.write(`prefork child ${boot.id}: ${error.message}\n`),
    });
  }

  /** Loads the handler, runs `init`, creates the protocol adapter and reports READY. */
  async start(): Promise<void> {
    this.#ctx = this.#createContext();
    if (this.#schedulingError !== undefined) this.#ctx.logger.warn('could not put this child back to SCHED_OTHER: it runs as SCHED_BATCH, as the parent does', { code: this.#schedulingError });
    // Ctrl-C in a terminal (and a hang-up) reach the whole process group; the parent alone
    // decides when children stop, so busy connections are not cut by a keystroke.
    process.on('SIGINT', () => {});
    process.on('SIGHUP', () => {});
    // stderr is a pipe the parent reads: once the parent is gone a write fails with EPIPE, which
    // unhandled would crash an orphan that is finishing its connections. Its output is lost anyway.
    process.stderr.on('error', () => {});
    process.stdout.on('error', () => {});
    process.on('uncaughtException', (error) => this.#uncaught(error));
    process.on('unhandledRejection', (reason) => this.#uncaught(reason));
    try {
      // Before any user code: the handler's subprocesses must not find the keys' pipe open.
      if (this.#boot.tls) this.#tls = readListenerTls(LISTENER_FD_BASE + this.#boot.listeners);
      this.#dropPrivileges();
      const loaded = (await import(pathToFileURL(this.#boot.handler).href)) as HandlerModule & { default?: HandlerModule };
      // A CommonJS module arrives as `default`; an ES module's named exports are on the namespace.
      const exports = loaded.connection || loaded.request || loaded.init ? loaded : loaded.default && typeof loaded.default === 'object' ? loaded.default : typeof loaded.default === 'function' ? { request: loaded.default as never } : loaded;
      this.#handler = exports;
      this.#adapter = protocolFactory(this.#boot.protocol)({
        handler: this.#handler,
        ctx: this.#ctx,
        options: this.#boot.protocolOptions,
        reportError: (error, where) => this.#reportError(error, where),
        slots: this.#slots,
        noDelayInherited: process.platform === 'linux' && this.#listenerFds.every((fd) => native.tcpNoDelay(fd)),
      });
      await this.#handler.init?.(this.#ctx);
    } catch (error) {
      const err = toError(error);
      this.#channel.send(encodeFrame(Status.INIT_FAILED, 0, shapeErrorReport(err, 'init')));
      this.#exit(EXIT_INIT_FAILED);
      return;
    }
    this.#ready = true;
    if (this.#stopping) {
      void this.#finish();
      return;
    }
    this.#send(Status.READY);
  }

  /**
   * Becomes the run-as user before any user code is loaded: its supplementary groups from the
   * group database (initgroups), then its group, then its uid. The pool starts children as itself
   * for this, because a spawn with uid/gid drops every supplementary group.
   */
  #dropPrivileges(): void {
    const runAs = this.#boot.runAs;
    if (!runAs) return;
    // POSIX-only methods, optional in Node's types.
    const posix = process as unknown as { initgroups(user: number, group: number): void; setgid(id: number): void; setuid(id: number): void };
    try {
      posix.initgroups(runAs.uid, runAs.gid);
      posix.setgid(runAs.gid);
      posix.setuid(runAs.uid);
    } catch (error) {
      throw new Error(`could not run as uid ${runAs.uid}, gid ${runAs.gid}: ${toError(error).message}`, { cause: error });
    }
  }

  #createContext(): ChildContext {
    const runtime = this;
    const threshold = LOG_LEVEL_RANK[this.#boot.logLevel] ?? LOG_LEVEL_RANK.info;
    const log = (level: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
      if (LOG_LEVEL_RANK[level] > threshold) return;
      runtime.#sendPayload(Status.LOG, shapeLogLine(level, message, fields));
    };
    const logger: Logger = { error: log('error'), warn: log('warn'), info: log('info'), debug: log('debug') };
    return {
      id: this.#boot.id,
      pid: process.pid,
      generation: this.#boot.generation,
      logger,
      get connections() {
        return runtime.#connections;
      },
      requestShutdown(reason?: string, token?: string) {
        runtime.#sendPayload(Status.SHUTDOWN_REQUEST, { reason: reason === undefined ? undefined : clip(reason, MAX_TEXT_LENGTH), token: token === undefined ? undefined : clip(token, MAX_LABEL_LENGTH) });
      },
      retire(reason?: string) {
        runtime.#sendPayload(Status.EXITING, { reason: reason === undefined ? undefined : clip(reason, MAX_TEXT_LENGTH) });
        runtime.#stop();
      },
    };
  }

  #onOrder(type: number, argument: number, count: number): void {
    if (type === Order.ACCEPT) this.#accept(argument, count);
    else if (type === Order.STOP) this.#stop();
    else if (type === Order.END_CHAIN) this.#chainLeft = 0;
    else if (type === Order.PING) this.#send(Status.PONG);
    else if (type === Order.METRICS) void this.#answerMetrics(argument);
  }

  /** The accept order: one non-blocking accept, then the answer; never blocks, never throws. */
  #accept(listener: number, chain: number): void {
    const connection = this.#tryAccept(listener);
    if (connection < 0) {
      this.#chainLeft = 0;
      this.#send(Status.NOTHING, listener);
      return;
    }
    // The grant holds until it is used up, an accept finds nothing, or the child stops.
    this.#chainLeft = chain;
    this.#chainListener = listener;
    this.#grantRunning = chain > 0;
    this.#active++;
    this.#connections++;
    const group: OrderGroup = { order: this.#group.order + 1, open: 1, prepaid: 0 };
    this.#group = group;
    // Before the answer: the parent reads the page when it answers, and must see the slot taken.
    const reservation = this.#slots?.reserve();
    this.#send(Status.ACCEPTED, listener);
    this.#serve(connection, listener, reservation, group);
  }

  /**
   * How many connections of its grant this child may hold at once. Taking what waits in one go
   * serves it in the same turns of the event loop, as a single process does, instead of one
   * connection per turn. Where it parks (HTTP with a page) its request slots bound the handler's
   * requests, whatever it holds; elsewhere the connections wait for its slot in arrival order
   * (#waiting), their sockets already reading. The batch is what the child gets through within
   * `acceptChainBatchMs` by its recent requests' time in their slot, or elsewhere its recent
   * connections' time from the handler's call to their end (the median of the last 8), so that
   * one taken early waits about that long at most; a handler that takes longer (CPU work, I/O
   * awaited in its one slot, a connection held open) gets one at a time, and the others stay in
   * the backlog for other children.
   */
  #batchLimit(): number {
    const held = this.#slots === undefined ? this.#holds.median() : this.#slots.recentHoldMs();
    if (!(held > 0)) return 1;
    // Where it parks, `children.connections` bounds what it holds; elsewhere only the batch's size.
    const most = this.#slots === undefined ? CHAIN_BATCH_MAX : Math.min(CHAIN_BATCH_MAX, this.#boot.connections);
    return Math.max(1, Math.min(most, Math.floor(this.#boot.chainBatchMs / held)));
  }

  /**
   * Under a chain grant, after one of its connections ended: accepts connections of the grant's
   * listener by itself while the batch limit allows, without blocking; an accept that finds
   * nothing ends the grant. Never while the channel's frames are decoded (it reads them). Orders come
   * before the grant: what the parent sent (an END_CHAIN or STOP of a stop or reload that has
   * begun) is read before accepting. With a page, only when its ORDERS word says one was sent;
   * without, a read that usually finds nothing.
   */
  #acceptBatch(group: OrderGroup): void {
    if (this.#chainLeft === 0) return;
    const limit = this.#batchLimit();
    while (this.#chainLeft > 0 && group.open < limit) {
      if (this.#page === undefined || Atomics.exchange(this.#page, PAGE.ORDERS, 0) === 1) this.#channel.drain();
      if (this.#chainLeft === 0) return;
      const next = this.#tryAccept(this.#chainListener);
      if (next < 0) {
        this.#chainLeft = 0;
        return;
      }
      this.#chainLeft--;
      this.#connections++;
      this.#active++;
      group.open++;
      this.#serve(next, this.#chainListener, this.#slots?.reserve(), group);
    }
  }

  /** One non-blocking accept on listener `listener`: the connection's fd, or -1 for none. */
  #tryAccept(listener: number): number {
    const fd = this.#listenerFds[listener];
    if (fd === undefined || this.#stopping) return -1;
    try {
      return native.accept(fd);
    } catch (error) {
      const code = (error as { code?: string }).code ?? '';
      // EINVAL: the parent shut the listener down (a stop), which a chained accept can race.
      if (code === 'EINVAL') return -1;
      // Out of descriptors or memory: this child cannot take connections any more, and answering
      // "nothing" alone would have it ordered again at once, in a loop. It retires instead (before
      // its answer, so the parent orders another child); the connection stays in the backlog.
      if (EXHAUSTED.has(code)) {
        this.#sendPayload(Status.EXITING, { reason: `cannot accept: ${code} (out of file descriptors or memory)` });
        this.#stop();
        return -1;
      }
      this.#reportError(error, 'accept');
      return -1;
    }
  }

  #serve(connection: number, listener: number, reservation: Reservation | undefined, group: OrderGroup): void {
    let socket: Socket;
    try {
      socket = this.#sockets.socket(connection, listener, this.#adapter!.allowHalfOpen === true);
    } catch (error) {
      native.close(connection);
      this.#serveFailed(error, reservation, group);
      return;
    }
    const tls = this.#tls[listener];
    if (tls) {
      try {
        socket = secureServerSocket(socket, tls, this.#boot.protocol);
      } catch (error) {
        // The socket owns the fd now: destroying it closes it.
        socket.destroy();
        this.#serveFailed(error, reservation, group);
        return;
      }
    }
    if (this.#slots === undefined && this.#handling >= this.#boot.slots) this.#waiting.push(() => this.#handle(socket, reservation, group));
    else this.#handle(socket, reservation, group);
  }

  /** Gives a connection's socket to the protocol adapter, and sees to what follows its end. */
  #handle(socket: Socket, reservation: Reservation | undefined, group: OrderGroup): void {
    this.#handling++;
    // Where it parks, the HTTP adapter times each request in its slot instead.
    const began = this.#slots === undefined ? performance.now() : undefined;
    const finished = (): void => {
      this.#handling--;
      if (began !== undefined) this.#holds.record(performance.now() - began);
      this.#keepLingering(socket);
      // The connections that waited come before any the batch takes next.
      this.#waiting.shift()?.();
      this.#connectionDone(group);
    };
    this.#adapter!.handle(socket, reservation).then(finished, (error: unknown) => {
      this.#reportError(error, 'connection');
      finished();
    });
  }

  /** A finished connection's socket still open, waiting for its peer's close: the child exits only after it. */
  #keepLingering(socket: Socket): void {
    if (socket.closed) return;
    this.#lingering.add(socket);
    socket.once('close', () => this.#lingering.delete(socket));
  }

  /** A connection could not be handed to the adapter: its slot goes back and it counts as done. */
  #serveFailed(error: unknown, reservation: Reservation | undefined, group: OrderGroup): void {
    reservation?.cancel();
    this.#reportError(error, 'accept');
    // Not synchronously: this can run inside the channel's frame decoding (an accept order), and
    // #connectionDone reads the channel again.
    queueMicrotask(() => this.#connectionDone(group));
  }

  /**
   * A connection is finished. Under a chain grant the child first accepts what waits itself
   * (#acceptBatch). While other connections of its order stay open, its end is reported as chained
   * (batched in a CHAINED count); the last one of the order reports what is unreported, then DONE,
   * and the grant ends.
   */
  #connectionDone(group: OrderGroup): void {
    this.#active--;
    group.open--;
    if (group.prepaid > 0) {
      // Counted as finished when its grant ended early: nothing to report.
      group.prepaid--;
    } else if (group !== this.#group) {
      // Parked while later orders came: its end says nothing about the current grant.
      this.#channel.send(doneFrame(group.order));
    } else {
      this.#acceptBatch(group);
      if (group.open > 0) {
        this.#chainUnreported++;
        if (this.#chainUnreported === 1) this.#chainReportTimer.refresh();
        else if (this.#chainUnreported === CHAIN_REPORT_MAX) this.#reportChained();
        return;
      }
      this.#grantRunning = false;
      this.#chainLeft = 0;
      if (this.#chainUnreported > 0) {
        // Both frames in one write: one wake-up of the parent.
        this.#channel.send(chainedThenDone(this.#chainListener, this.#chainUnreported, group.order));
        this.#chainUnreported = 0;
      } else {
        this.#channel.send(doneFrame(group.order));
      }
    }
    if (this.#stopping && this.#active === 0) void this.#finish();
  }

  /**
   * A connection of this child is parked: a grant that would only end with that connection ends
   * now, and the parent hears it (after the connections chained so far), so it orders this child
   * again instead of waiting for the connection to close.
   */
  #unchain(): void {
    if (!this.#grantRunning) return;
    this.#grantRunning = false;
    this.#chainLeft = 0;
    // The parent counts one open connection of this order: the others still open are reported
    // chained now (and end silently), as no CHAINED may follow the grant's end.
    const group = this.#group;
    const others = group.open - 1 - group.prepaid;
    if (others > 0) {
      group.prepaid += others;
      this.#chainUnreported += others;
    }
    if (this.#chainUnreported > 0) this.#reportChained();
    this.#send(Status.UNCHAINED);
  }

  #reportChained(): void {
    this.#channel.send(constantFrame(Status.CHAINED, this.#chainListener, this.#chainUnreported));
    this.#chainUnreported = 0;
  }

  #stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#chainLeft = 0;
    this.#adapter?.stop?.();
    if (this.#active === 0 && this.#ready) void this.#finish();
  }

  #parentGone(): void {
    if (this.#exiting) return;
    // Nobody will order an accept again: refuse connections now, so that a new server can bind
    // the addresses. Shut down, not closed: the fd numbers stay taken until exit.
    for (const fd of this.#listenerFds) {
      try {
        native.shutdownListener(fd);
      } catch {
        // Another child (or the lifeline) did it first.
      }
    }
    this.#stop();
  }

  async #finish(): Promise<void> {
    if (this.#exiting) return;
    this.#exiting = true;
    // Exiting would close them with what the peer still sends unread: a reset, which can destroy
    // the end of an answer before the peer has read it.
    if (this.#lingering.size > 0) await Promise.all([...this.#lingering].map(whenClosed));
    try {
      await this.#handler.close?.(this.#ctx);
    } catch (error) {
      this.#reportError(error, 'close');
    }
    // The parent serves metrics: its last report, so that its counters are not lost with it.
    if (this.#boot.metrics) await this.#answerMetrics(FINAL_METRICS_REPORT);
    this.#exit(EXIT_OK);
  }

  /** Answers a METRICS order (or sends the last report, FINAL_METRICS_REPORT) with the handler's own metrics. */
  async #answerMetrics(request: number): Promise<void> {
    this.#metrics ??= new HandlerMetrics(this.#boot.handler, (message, fields) => this.#ctx.logger.warn(message, fields));
    const report = await this.#metrics.report();
    if (this.#channel.closed) return;
    this.#channel.send(encodeFrame(Status.METRICS, request, report));
  }

  /** Delivers the frames still queued, then exits. */
  #exit(code: number): never {
    if (this.#chainUnreported > 0) this.#reportChained();
    this.#channel.flushSync();
    process.exit(code);
  }

  #reportError(error: unknown, where: string): void {
    const err = toError(error);
    this.#sendPayload(Status.ERROR, shapeErrorReport(err, where));
  }

  #uncaught(error: unknown): void {
    // Some callback of the handler threw outside any promise we await: the child's state is
    // unknown, so report it and exit; the pool replaces the child.
    const err = toError(error);
    process.stderr.write(`prefork child ${this.#boot.id}: uncaught ${err.stack ?? err.message}\n`);
    this.#reportError(err, 'uncaught');
    this.#exit(EXIT_UNCAUGHT);
  }

  #send(type: FrameType, argument = 0): void {
    this.#channel.send(constantFrame(type, argument));
  }

  #sendPayload(type: FrameType, payload: unknown): void {
    if (this.#channel.closed) return;
    try {
      this.#channel.send(encodeFrame(type, 0, payload));
    } catch (error) {
      if (!(error instanceof PreforkError)) throw error;
      this.#channel.send(encodeFrame(type, 0, { message: 'payload too large to report', where: 'channel' }));
    }
  }
}
