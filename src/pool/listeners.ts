import { lstatSync, unlinkSync } from 'node:fs';
import { PreforkError, toError } from '../errors.js';
import * as native from '../native/index.js';
import type { ListenerInfo, Watcher } from '../native/index.js';
import type { ChildInfo } from './Child.js';
import type { PoolContext } from './context.js';
import { onReadable } from './dispatch.js';
import type { DispatchRequest } from './hooks.js';
import type { ListenTarget } from './options.js';

/** Where a listening socket is in the walk of its connections. */
export type ListenerState =
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

/** The legal moves of a listener: anything else is a bug in the parent. */
const LISTENER_MOVES: Readonly<Record<ListenerState, readonly ListenerState[]>> = Object.freeze({
  closed: ['watching', 'closed'],
  // Watching again while watched: a drain re-arms every listener that has no order out.
  watching: ['scheduled', 'watching', 'closed'],
  scheduled: ['ordering', 'waiting', 'overloaded', 'watching', 'closed'],
  ordering: ['watching', 'closed'],
  waiting: ['watching', 'closed'],
  overloaded: ['watching', 'closed'],
});

/** One listening socket the pool watches. */
export interface Listener {
  readonly index: number;
  readonly fd: number;
  readonly info: ListenerInfo;
  readonly target: ListenTarget;
  readonly watcher: Watcher;
  /** TCP on Linux: the accept-queue length is known. */
  readonly queueKnown: boolean;
  /**
   * Passed in (`fd:N`, systemd): the socket belongs to whoever passed it, who usually keeps it
   * listening for the next instance, so a stop only stops accepting from it and closes this fd.
   */
  readonly inherited: boolean;
  /** A Unix socket file this pool created and must remove. */
  readonly ownedPath: string | undefined;
  /** That file's device and inode, so that a socket a newer server bound at the same path is left alone. */
  readonly ownedFile: { dev: number; ino: number } | undefined;
  /** Change it only through {@link moveListener}. */
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
  /** The parent's own abrupt accept failed (EMFILE...): said once, until one works again. */
  acceptFailing: boolean;
  /** Reused `beforeDispatch` request, so the hot path allocates nothing. */
  readonly request: DispatchRequest & { idle: ChildInfo[] };
}

/** An address as people write it: `127.0.0.1:8080`, `[::1]:8080`, `unix:/run/app.sock`. */
export function addressText(address: ListenerInfo): string {
  if (address.family === 'unix') return `unix:${address.path ?? address.address}`;
  return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
}

/** Moves a listener to `next` if the table allows it; an illegal move is logged as the bug it is and refused. */
export function moveListener(ctx: PoolContext, listener: Listener, next: ListenerState): boolean {
  if (LISTENER_MOVES[listener.state].includes(next)) {
    listener.state = next;
    return true;
  }
  ctx.logger.error('bug: illegal listener state change refused', { listener: listener.index, from: listener.state, to: next });
  return false;
}

/** Watches a listener again (unless the pool no longer dispatches). */
export function watch(ctx: PoolContext, listener: Listener): void {
  if (ctx.state !== 'running' && !ctx.draining) return;
  if (moveListener(ctx, listener, 'watching')) listener.watcher.start();
}

/** Binds (or adopts) every `listen` address. On a failure the ones already bound are closed again. */
export function bindListeners(ctx: PoolContext): void {
  const { backlog, deferAccept, notsentLowat } = ctx.options;
  try {
    for (const target of ctx.options.listen) {
      const infos: { info: ListenerInfo; ownedPath?: string }[] = [];
      if (target.kind === 'tcp') infos.push({ info: native.listenTcp(target.host, target.port, { backlog, deferAccept }) });
      else if (target.kind === 'unix') infos.push({ info: native.listenUnix(target.path, { backlog, mode: target.mode }), ownedPath: target.path });
      else if (target.kind === 'fd') infos.push({ info: native.adoptListener(target.fd) });
      else for (const fd of systemdListenFds()) infos.push({ info: native.adoptListener(fd) });
      for (const { info, ownedPath } of infos) {
        // Adopted TCP listeners too: the limit guards the machine's TCP memory however the socket came.
        if (notsentLowat > 0 && info.family !== 'unix') native.setNotsentLowat(info.fd, notsentLowat);
        addListener(ctx, info, target, ownedPath);
      }
    }
  } catch (error) {
    closeListeners(ctx);
    throw error;
  }
}

function addListener(ctx: PoolContext, info: ListenerInfo, target: ListenTarget, ownedPath: string | undefined): void {
  const index = ctx.listeners.length;
  const queueKnown = info.family !== 'unix' && native.acceptQueueLength(info.fd) >= 0;
  const listener: Listener = {
    index,
    fd: info.fd,
    info,
    target,
    watcher: native.createWatcher(info.fd, () => onReadable(ctx, listener)),
    queueKnown,
    inherited: target.kind === 'fd' || target.kind === 'systemd',
    ownedPath,
    ownedFile: ownedPath === undefined ? undefined : fileIdentity(ownedPath),
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
    acceptFailing: false,
    request: { listener: index, wanted: 1, idle: [] },
  };
  ctx.listeners.push(listener);
}

/** Closes every listening socket and removes the socket files this pool created. */
export function closeListeners(ctx: PoolContext): void {
  for (const listener of ctx.listeners) {
    moveListener(ctx, listener, 'closed');
    listener.watcher.close();
    native.close(listener.fd);
    removeSocketFile(listener);
  }
}

/**
 * The first step of a stop: no new connection may enter a backlog this pool is about to stop
 * serving, while the ones already queued stay, to be drained. A TCP listener drops new SYNs
 * (the client retries and is refused once {@link refuseNewConnections} ran); a Unix listener's
 * socket file is removed, so new connects fail at once. Inherited listeners are left as they
 * are. Returns the fds of the TCP listeners held, on which the drain lets the handshakes already
 * under way complete before it calls the backlog empty.
 */
export function holdNewConnections(ctx: PoolContext): number[] {
  const held: number[] = [];
  for (const listener of ctx.listeners) {
    if (listener.inherited) continue;
    if (listener.ownedPath) {
      removeSocketFile(listener);
      continue;
    }
    try {
      if (native.holdNewConnections(listener.fd)) held.push(listener.fd);
    } catch (error) {
      ctx.logger.warn('could not hold new connections on the listening socket', { listener: listener.index, error: toError(error).message });
    }
  }
  return held;
}

/**
 * From here on nobody will accept: refuse new connections at once instead of letting the kernel
 * queue them until the last child exits (and then reset them). A front proxy then retries
 * elsewhere without having sent its request. The socket file of a Unix listener goes too. An
 * inherited listener is not touched: its owner (systemd) keeps it, and what it queues meanwhile
 * waits for the next instance instead of being reset.
 */
export function refuseNewConnections(ctx: PoolContext): void {
  for (const listener of ctx.listeners) {
    if (listener.inherited) continue;
    try {
      native.shutdownListener(listener.fd);
    } catch (error) {
      ctx.logger.warn('could not shut the listening socket down', { listener: listener.index, error: toError(error).message });
    }
    removeSocketFile(listener);
  }
}

/**
 * Removes the socket file this pool bound, unless the path now names another file: a server
 * started after this one (a restart) may have replaced it with its own socket while this one stops.
 */
function removeSocketFile(listener: Listener): void {
  if (!listener.ownedPath || !listener.ownedFile) return;
  const now = fileIdentity(listener.ownedPath);
  if (!now || now.dev !== listener.ownedFile.dev || now.ino !== listener.ownedFile.ino) return;
  try {
    unlinkSync(listener.ownedPath);
  } catch {
    // Already gone: nothing to clean.
  }
}

/** The device and inode of `path` itself (a symlink is not followed), or undefined when it is gone. */
function fileIdentity(path: string): { dev: number; ino: number } | undefined {
  try {
    const stats = lstatSync(path);
    return { dev: stats.dev, ino: stats.ino };
  } catch {
    return undefined;
  }
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
