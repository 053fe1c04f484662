import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { bytesAcked } from '../native/index.js';

/**
 * Time limits on the three ways a slow client holds a connection, after mod_reqtimeout's
 * `header=20-40,MinRate=500`: each phase gets a base time, extended by one second for every
 * `minDataRate` bytes that moved, so a slow but honest client finishes and one that dribbles is
 * cut. Parked connections hold no slot, but each holds memory and a place under
 * `children.connections`; these limits give the places back.
 *
 * - **header**: from the first byte of a request's header block (as the sweep sees it) until the
 *   request arrives: `headersTimeout`, extended by the header bytes, at most twice `headersTimeout`
 *   (Node's own limit is set to that cap);
 * - **body**: from the request until its body has arrived (while it is buffered before the
 *   handler, and while the handler reads it): `bodyTimeout`, extended by the body bytes;
 * - **send**: from the end of the handler's answer until the client has taken it: every window of
 *   `sendTimeout` must see the client acknowledge `minDataRate` bytes a second (Linux TCP_INFO,
 *   nginx's `send_timeout` with a rate); where acknowledgements are not known (a Unix socket), the
 *   whole answer gets `sendTimeout` plus its unsent bytes at `minDataRate`.
 *
 * A sweep checks every connection of the child on an interval; a connection past its limit is
 * answered 408 when nothing was sent on it yet (header, body) and closed.
 */
export interface TransferLimits {
  headersTimeout: number;
  bodyTimeout: number;
  sendTimeout: number;
  /** Bytes per second; 0 turns the extensions off (each limit is then its base time). */
  minDataRate: number;
}

/** Where one connection is, as the sweep measures it. */
export interface TransferState {
  phase: 'idle' | 'header' | 'body' | 'send' | 'handler';
  /** When the phase began (ms since the epoch). */
  since: number;
  /** `socket.bytesRead` when the phase began. */
  readAtStart: number;
  /** For `send`: the bytes the peer had acknowledged when the answer ended, or -1 (unknown). */
  ackedAtStart: number;
  /** For `send` where acknowledgements are unknown: the deadline computed when the answer ended. */
  sendDeadline: number;
}

/**
 * The fd of a socket made from one (every accepted connection), or -1. A TLS socket's handle
 * passes on its TCP handle's fd, whose acknowledgements count the encrypted bytes: a little more
 * than the answer's, so a TLS client is measured slightly more leniently.
 */
function socketFd(socket: Socket): number {
  return (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
}

function acked(socket: Socket): number {
  const fd = socketFd(socket);
  if (fd < 0) return -1;
  try {
    return bytesAcked(fd);
  } catch {
    return -1;
  }
}

/** A new connection's state: its first header block is on its way. */
export function newTransfer(socket: Socket, now: number): TransferState {
  return { phase: 'header', since: now, readAtStart: socket.bytesRead, ackedAtStart: -1, sendDeadline: 0 };
}

/** Moves a connection to `phase` now. */
export function enterPhase(state: TransferState, socket: Socket, phase: TransferState['phase'], now: number): void {
  state.phase = phase;
  state.since = now;
  state.readAtStart = socket.bytesRead;
}

/** The answer ended with `socket.writableLength` bytes not yet sent: the send phase begins. */
export function enterSend(state: TransferState, socket: Socket, limits: TransferLimits, now: number): void {
  const unsent = socket.writableLength;
  if (unsent === 0) {
    // All of it is with the kernel already (the usual case): nothing to watch.
    enterPhase(state, socket, 'idle', now);
    return;
  }
  enterPhase(state, socket, 'send', now);
  state.ackedAtStart = acked(socket);
  const allowance = limits.minDataRate > 0 ? Math.ceil((unsent / limits.minDataRate) * 1000) : 0;
  state.sendDeadline = limits.sendTimeout > 0 ? now + limits.sendTimeout + allowance : 0;
}

/**
 * Which limit, if any, the connection is past at `now`. An idle connection's next header block
 * starts the header phase when its first bytes are seen.
 */
export function expiredPhase(state: TransferState, socket: Socket, limits: TransferLimits, now: number): 'header' | 'body' | 'send' | undefined {
  switch (state.phase) {
    case 'idle':
      if (socket.bytesRead > state.readAtStart) enterPhase(state, socket, 'header', now);
      return undefined;
    case 'send':
      if (socket.writableLength === 0) {
        enterPhase(state, socket, 'idle', now);
        return undefined;
      }
      if (limits.sendTimeout === 0) return undefined;
      if (state.ackedAtStart >= 0) {
        // Each window of sendTimeout must see the client take minDataRate (at least a byte):
        // one that stopped reading, or reads a few bytes now and then, is cut at the window's end.
        if (now - state.since < limits.sendTimeout) return undefined;
        const ackedNow = acked(socket);
        const needed = Math.max(1, (limits.minDataRate * limits.sendTimeout) / 1000);
        if (ackedNow - state.ackedAtStart < needed) return 'send';
        state.since = now;
        state.ackedAtStart = ackedNow;
        return undefined;
      }
      return now > state.sendDeadline ? 'send' : undefined;
    case 'header':
    case 'body': {
      const base = state.phase === 'header' ? limits.headersTimeout : limits.bodyTimeout;
      if (base === 0) return undefined;
      const moved = socket.bytesRead - state.readAtStart;
      const extension = limits.minDataRate > 0 ? (moved / limits.minDataRate) * 1000 : 0;
      const allowed = state.phase === 'header' ? Math.min(base + extension, 2 * base) : base + extension;
      return now - state.since > allowed ? state.phase : undefined;
    }
    default:
      return undefined;
  }
}

/**
 * Resolves once the request's body has arrived and waits, unread, in `req`'s buffer (at once for a
 * request without one), or once that buffer is full (a body too large to hold back: the handler
 * reads the rest as it comes), or the request was aborted. Reading nothing, it leaves the body to
 * the handler exactly as Node delivers it.
 */
export function bodyBuffered(req: IncomingMessage): Promise<void> {
  if (!bodyExpected(req)) return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (!req.complete && req.readableLength < req.readableHighWaterMark && !req.destroyed) return;
      req.removeListener('readable', check);
      req.removeListener('close', check);
      resolve();
    };
    // A 'readable' listener switches the stream to paused reading without consuming anything;
    // once it is removed, the handler's 'data' listener or async iteration reads as usual.
    req.on('readable', check);
    req.on('close', check);
    check();
  });
}

/** Whether a body is still to come for the request (it has one, and it has not all arrived). */
export function bodyExpected(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}
