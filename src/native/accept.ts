/**
 * Taking connections in a child, and the parent's view of a listener's queue: the hot-path calls,
 * which throw the system error itself (an `Error` with the errno name as `code`).
 */
import { binding } from './binding.js';

/** The accept queue of a TCP listener. */
export interface AcceptQueue {
  /** Connections that completed the handshake and wait for accept(). */
  length: number;
  /** The most the kernel will queue: the backlog after the `somaxconn` cap. */
  limit: number;
}

/**
 * Takes one waiting connection without blocking (accept4 with SOCK_CLOEXEC). The new fd is left
 * blocking on purpose: `new net.Socket({ fd })` makes it non-blocking itself.
 *
 * The listener must be non-blocking, as every listener from this module is, or this blocks.
 *
 * @returns The connection's fd, or -1 when there was nothing to take: the queue was empty
 *   (EAGAIN: another child was faster) or the waiting connection died first (ECONNABORTED,
 *   EPROTO, and the network errors Linux reports through accept()).
 * @throws Error with `code` `'EMFILE'`, `'ENFILE'`, `'EBADF'`, ... for anything else.
 */
export function accept(fd: number): number {
  return binding().accept(fd);
}

/**
 * How many connections wait in a TCP listener's accept queue (Linux TCP_INFO), without an object
 * per call. Connections held back by `deferAccept` are not counted until their data arrives.
 *
 * @returns The queue length, or -1 when unknown: not TCP (a Unix socket), not listening, not Linux.
 */
export function acceptQueueLength(fd: number): number {
  return binding().acceptQueueLength(fd);
}

/**
 * Whether a connection waits on the listener right now (a poll with a zero timeout). Unlike
 * {@link acceptQueueLength} it works for Unix sockets too; a stop that drains the backlog uses it.
 */
export function readable(fd: number): boolean {
  return binding().readable(fd);
}

/** The accept queue's length and limit, as {@link acceptQueueLength}; null when unknown. */
export function acceptQueue(fd: number): AcceptQueue | null {
  return binding().acceptQueue(fd);
}

/**
 * Sheds load: takes up to `max` waiting connections and closes each one, after sending `response`
 * (best effort, never blocking; e.g. an HTTP 503) and reading what the client had already sent,
 * so that the close is a FIN behind the response rather than a RST that could destroy it.
 *
 * @returns How many connections were closed.
 * @throws Error with an errno `code` (like {@link accept}) only when the first accept fails; a
 *   failure after some were closed ends the batch quietly and will recur on the next call.
 */
export function acceptAndClose(fd: number, max: number, response?: Buffer | null): number {
  return binding().acceptAndClose(fd, max, response ?? null);
}

/**
 * How many bytes written to the TCP connection `fd` its peer has acknowledged (Linux TCP_INFO), or
 * -1 where the system does not tell (a Unix socket, another system). Hot enough for a sweep over a
 * child's connections: one system call, no allocation, no throw but for a closed fd.
 */
export function bytesAcked(fd: number): number {
  return binding().bytesAcked(fd);
}

/** Whether TCP_NODELAY is on for socket `fd` (false where it is not TCP). */
export function tcpNoDelay(fd: number): boolean {
  return binding().tcpNoDelay(fd);
}
