/**
 * The typed face of prefork's native addon (built from `src/native/*.c`, found by `./load.ts`):
 * what Node's `net` module cannot do for a preforking server.
 *
 * The parent watches a listening socket for readability without accepting from it
 * ({@link createWatcher}, {@link acceptQueueLength}) and orders one idle child to take the
 * connection; each child inherited the listener and takes it with a non-blocking {@link accept},
 * then wraps the fd with `new net.Socket({ fd })`.
 *
 * Errors. Opening or adopting a listener fails with `PreforkError` `PREFORK_ERR_LISTEN`; the fd
 * utilities with `PREFORK_ERR_SOCKET`; both carry the system error as `cause` (see
 * {@link systemErrorCode}). The hot-path functions ({@link accept}, {@link acceptQueueLength},
 * {@link acceptQueue}, {@link acceptAndClose}) throw the system error itself, an `Error` whose
 * `code` is the errno name (`'EMFILE'`), `errno` the (negative, as in Node) number and `syscall`
 * the call, because callers branch on those codes right where the call is.
 *
 * The addon is loaded on first use, so importing prefork (for `--help`, for types) works even
 * where the addon has not been built.
 */
import { isIP } from 'node:net';
import { PreforkError } from '../errors.js';
import { loadAddon } from './load.js';

/** What a listening socket is bound to, as getsockname() reports it. */
export interface ListenerInfo {
  /** The listening socket's file descriptor. */
  fd: number;
  family: 'IPv4' | 'IPv6' | 'unix';
  /** The IP address (`'127.0.0.1'`, `'::'`), or for a Unix socket its path, so that log lines can always print it. */
  address: string;
  /** The TCP port; 0 for a Unix socket. */
  port: number;
  /** The Unix socket's path (an adopted abstract name keeps its leading NUL byte); absent for TCP. */
  path?: string;
}

/** Options of {@link listenTcp}. */
export interface ListenTcpOptions {
  /**
   * Length of the kernel's queue of connections waiting for accept(); Linux caps it at
   * `net.core.somaxconn`.
   * @default 511
   */
  backlog?: number;
  /**
   * IPV6_V6ONLY for an IPv6 address. When not given: on for a specific address (it cannot accept
   * IPv4 anyway), the system default (normally dual-stack) for `'::'`. Ignored for IPv4.
   */
  ipv6Only?: boolean;
  /**
   * Seconds that Linux may hold a new connection until its first data arrives (TCP_DEFER_ACCEPT),
   * so that children are not woken for clients that connect and say nothing; 0 turns it off.
   * @default 0
   */
  deferAccept?: number;
}

/** Options of {@link listenUnix}. */
export interface ListenUnixOptions {
  /** @default 511 */
  backlog?: number;
  /**
   * File mode of the socket (e.g. `0o660`), applied before listen() so that nobody connects
   * under the wrong mode. Without it the umask decides.
   */
  mode?: number;
}

/** The accept queue of a TCP listener. */
export interface AcceptQueue {
  /** Connections that completed the handshake and wait for accept(). */
  length: number;
  /** The most the kernel will queue: the backlog after the `somaxconn` cap. */
  limit: number;
}

/** What {@link listenerInfo} reports: the socket's address and whether it listens. */
export interface SocketInfo extends ListenerInfo {
  /** True when listen() was called on the socket (SO_ACCEPTCONN). */
  listening: boolean;
}

/** A readability watcher on a listener, created by {@link createWatcher}. */
export interface Watcher {
  /**
   * Starts watching for `events` ({@link READABLE} by default, {@link WRITABLE}, or both); cheap
   * and idempotent, and starting again with other events switches to them. Throws
   * `PREFORK_ERR_SOCKET` after {@link Watcher.close}.
   */
  start(events?: number): void;
  /** Stops watching; cheap and idempotent. A stopped watcher never keeps the process alive. */
  stop(): void;
  /** Stops for good and frees the native handle. Idempotent. Close the watcher before its fd. */
  close(): void;
  /** Lets a started watcher keep the process alive again (the default). */
  ref(): void;
  /** Lets the process exit even while the watcher is started. */
  unref(): void;
  /** True between start() and stop()/close(). */
  readonly active: boolean;
}

/** The raw native watcher; {@link SocketWatcher} adds prefork's errors around it. */
interface NativeWatcher {
  start(events?: number): void;
  stop(): void;
  close(): void;
  ref(): void;
  unref(): void;
  readonly active: boolean;
}

/** The addon's exports; the TypeScript functions below validate and default before calling them. */
interface NativeBinding {
  listenTcp(host: string, port: number, backlog: number, ipv6Only: number, deferAccept: number): ListenerInfo;
  listenUnix(path: string, backlog: number, mode: number): ListenerInfo;
  adoptListener(fd: number): ListenerInfo;
  listenerInfo(fd: number): SocketInfo;
  accept(fd: number): number;
  acceptQueueLength(fd: number): number;
  acceptQueue(fd: number): AcceptQueue | null;
  readable(fd: number): boolean;
  shutdownListener(fd: number): void;
  socketpair(): [number, number];
  read(fd: number, buffer: Uint8Array, offset?: number, length?: number): number;
  write(fd: number, buffer: Uint8Array, offset?: number, length?: number): number;
  acceptAndClose(fd: number, max: number, response: Uint8Array | null): number;
  setCloexec(fd: number, on: boolean): void;
  setNonblocking(fd: number, on: boolean): void;
  close(fd: number): void;
  createWatcher(fd: number, onEvents: (events: number) => void): NativeWatcher;
  readonly features: NativeFeatures;
}

/**
 * The fast paths a build of the addon has (see `prefork.h`). The Linux build has all of them; a
 * build for macOS or the BSDs, or one made with `portable=1`, uses the POSIX fallbacks.
 */
export interface NativeFeatures {
  /** accept4() and SOCK_NONBLOCK | SOCK_CLOEXEC, one call per fd; otherwise fcntl() follows. */
  sockFlags: boolean;
  /** The accept queue of a TCP listener (TCP_INFO); otherwise {@link acceptQueue} answers null for TCP. */
  acceptQueue: boolean;
  /** TCP_DEFER_ACCEPT; otherwise `deferAccept` has no effect. */
  deferAccept: boolean;
  /** Built with PREFORK_PORTABLE: the fallbacks forced on a system that has the fast paths. */
  portable: boolean;
}

const DEFAULT_BACKLOG = 511;

let loadedBinding: NativeBinding | undefined;

/** The addon, loaded on first use. */
function binding(): NativeBinding {
  return (loadedBinding ??= loadAddon<NativeBinding>());
}

/**
 * Loads the addon now rather than on first use, so that a missing build is reported at start-up.
 * Throws `PREFORK_ERR_NATIVE_LOAD` with the path tried and how to fix it.
 */
export function loadNative(): void {
  binding();
}

/** The fast paths this build of the addon has. */
export function nativeFeatures(): NativeFeatures {
  return { ...binding().features };
}

/**
 * The errno name (`'EADDRINUSE'`) of a system error thrown by this module: its own `code` for
 * the hot-path functions, its `cause`'s code for a wrapped `PreforkError`. Undefined otherwise.
 */
export function systemErrorCode(error: unknown): string | undefined {
  for (let current = error; current instanceof Error; current = current.cause) {
    const code = (current as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && typeof (current as NodeJS.ErrnoException).syscall === 'string') return code;
  }
  return undefined;
}

/** Wraps a native error, keeping the errno name readable in the message. */
function wrapError(code: 'PREFORK_ERR_LISTEN' | 'PREFORK_ERR_SOCKET', what: string, error: unknown): PreforkError {
  if (error instanceof PreforkError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new PreforkError(code, `${what}: ${reason}`, { cause: error });
}

function formatEndpoint(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

function checkInteger(
  code: 'PREFORK_ERR_LISTEN' | 'PREFORK_ERR_SOCKET',
  what: string,
  name: string,
  value: unknown,
  minimum: number,
  maximum: number,
): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum || value > maximum) {
    throw new PreforkError(
      code,
      `${what}: ${name} must be an integer from ${minimum} to ${maximum}, got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`,
    );
  }
  return value;
}

function checkFd(what: string, fd: unknown): number {
  return checkInteger('PREFORK_ERR_SOCKET', what, 'fd', fd, 0, 2 ** 31 - 1);
}

/**
 * Opens a TCP listener: SO_REUSEADDR, non-blocking, close-on-exec.
 *
 * @param host An IPv4 or IPv6 literal. `''` means every address, as in Node: `'::'` (dual-stack),
 *   or `'0.0.0.0'` where IPv6 is unavailable. `'localhost'` means `'127.0.0.1'`. Host names are
 *   not resolved: a resolver can block, and which address a name picks should be explicit.
 * @param port 0 asks the system for a free port; the returned `port` is the real one.
 * @throws PreforkError `PREFORK_ERR_LISTEN`, naming the address and the errno (`EADDRINUSE`, ...).
 */
export function listenTcp(host: string, port: number, options: ListenTcpOptions = {}): ListenerInfo {
  const address = host === 'localhost' ? '127.0.0.1' : host;
  const where = `could not listen on ${formatEndpoint(host === '' ? '*' : host, port)}`;
  if (typeof host !== 'string' || (address !== '' && isIP(address) === 0)) {
    throw new PreforkError(
      'PREFORK_ERR_LISTEN',
      `${where}: the host must be an IPv4 or IPv6 address such as 127.0.0.1 or ::1 ('localhost' means ` +
        `127.0.0.1, '' every address); host names are not resolved, got ${JSON.stringify(host)}`,
    );
  }
  checkInteger('PREFORK_ERR_LISTEN', where, 'port', port, 0, 65535);
  const backlog = checkInteger('PREFORK_ERR_LISTEN', where, 'backlog', options.backlog ?? DEFAULT_BACKLOG, 0, 2 ** 31 - 1);
  const deferAccept = checkInteger('PREFORK_ERR_LISTEN', where, 'deferAccept', options.deferAccept ?? 0, 0, 2 ** 31 - 1);
  const ipv6Only = options.ipv6Only === undefined ? -1 : options.ipv6Only ? 1 : 0;
  const native = binding();
  try {
    if (address !== '') return native.listenTcp(address, port, backlog, ipv6Only, deferAccept);
    try {
      return native.listenTcp('::', port, backlog, ipv6Only, deferAccept);
    } catch (error) {
      if (systemErrorCode(error) !== 'EAFNOSUPPORT') throw error;
      return native.listenTcp('0.0.0.0', port, backlog, ipv6Only, deferAccept);
    }
  } catch (error) {
    throw wrapError('PREFORK_ERR_LISTEN', where, error);
  }
}

/**
 * Opens a Unix stream listener at `path`: non-blocking, close-on-exec. A socket file left behind
 * by a dead server (connecting is refused) is removed first; a live one fails with `EADDRINUSE`,
 * and a path that is not a socket with `ENOTSOCK`, rather than being deleted. Linux abstract names
 * (a leading NUL byte) are refused: Node 20's `net.connect` pads them to the full address length
 * while other programs use the exact length, so clients could not be relied on to reach one.
 *
 * @throws PreforkError `PREFORK_ERR_LISTEN`, naming the path and the errno.
 */
export function listenUnix(path: string, options: ListenUnixOptions = {}): ListenerInfo {
  const where = `could not listen on unix socket ${JSON.stringify(path)}`;
  if (typeof path !== 'string' || path === '') {
    throw new PreforkError('PREFORK_ERR_LISTEN', `${where}: the path must be a non-empty string`);
  }
  const backlog = checkInteger('PREFORK_ERR_LISTEN', where, 'backlog', options.backlog ?? DEFAULT_BACKLOG, 0, 2 ** 31 - 1);
  const mode = options.mode === undefined ? -1 : checkInteger('PREFORK_ERR_LISTEN', where, 'mode', options.mode, 0, 0o7777);
  const native = binding();
  try {
    return native.listenUnix(path, backlog, mode);
  } catch (error) {
    throw wrapError('PREFORK_ERR_LISTEN', where, error);
  }
}

/**
 * Adopts an inherited listening fd (systemd's LISTEN_FDS, a supervisor's socket): checks that it is
 * a listening stream socket, makes it non-blocking and close-on-exec, and reports its address.
 *
 * @throws PreforkError `PREFORK_ERR_LISTEN` when the fd is not open (`EBADF`), not a socket
 *   (`ENOTSOCK`), or not a listening stream socket (`EINVAL`).
 */
export function adoptListener(fd: number): ListenerInfo {
  const where = `could not adopt fd ${fd} as a listener`;
  checkInteger('PREFORK_ERR_LISTEN', where, 'fd', fd, 0, 2 ** 31 - 1);
  const native = binding();
  try {
    return native.adoptListener(fd);
  } catch (error) {
    throw wrapError('PREFORK_ERR_LISTEN', where, error);
  }
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
 * Turns close-on-exec on or off, e.g. off for a listener that an exec()'d program must inherit.
 * @throws PreforkError `PREFORK_ERR_SOCKET`.
 */
export function setCloexec(fd: number, on: boolean): void {
  const what = `could not ${on ? 'set' : 'clear'} close-on-exec on fd ${fd}`;
  checkFd(what, fd);
  const native = binding();
  try {
    native.setCloexec(fd, on);
  } catch (error) {
    throw wrapError('PREFORK_ERR_SOCKET', what, error);
  }
}

/**
 * Turns O_NONBLOCK on or off. The flag belongs to the open file, so it changes for every process
 * sharing the fd (all children of a pool).
 * @throws PreforkError `PREFORK_ERR_SOCKET`.
 */
export function setNonblocking(fd: number, on: boolean): void {
  const what = `could not ${on ? 'set' : 'clear'} O_NONBLOCK on fd ${fd}`;
  checkFd(what, fd);
  const native = binding();
  try {
    native.setNonblocking(fd, on);
  } catch (error) {
    throw wrapError('PREFORK_ERR_SOCKET', what, error);
  }
}

/**
 * Closes an fd that no Node handle owns (a listener, an accepted fd not given to `net.Socket`).
 * Close a {@link Watcher} on the fd first.
 * @throws PreforkError `PREFORK_ERR_SOCKET` (with `EBADF` when it was not open).
 */
export function close(fd: number): void {
  const what = `could not close fd ${fd}`;
  checkFd(what, fd);
  const native = binding();
  try {
    native.close(fd);
  } catch (error) {
    throw wrapError('PREFORK_ERR_SOCKET', what, error);
  }
}

/**
 * Describes any socket fd, listening or not, for diagnostics.
 * @throws PreforkError `PREFORK_ERR_SOCKET` when the fd is not an open socket.
 */
export function listenerInfo(fd: number): SocketInfo {
  const what = `could not describe fd ${fd}`;
  checkFd(what, fd);
  const native = binding();
  try {
    return native.listenerInfo(fd);
  } catch (error) {
    throw wrapError('PREFORK_ERR_SOCKET', what, error);
  }
}

/** The {@link Watcher} that {@link createWatcher} returns: the native handle plus prefork's errors. */
class SocketWatcher implements Watcher {
  readonly #native: NativeWatcher;
  readonly #fd: number;
  #closed = false;

  constructor(native: NativeWatcher, fd: number) {
    this.#native = native;
    this.#fd = fd;
  }

  get active(): boolean {
    return this.#native.active;
  }

  start(events?: number): void {
    if (this.#closed) {
      throw new PreforkError('PREFORK_ERR_SOCKET', `cannot start the watcher on fd ${this.#fd}: it was closed`);
    }
    try {
      this.#native.start(events);
    } catch (error) {
      throw wrapError('PREFORK_ERR_SOCKET', `could not watch fd ${this.#fd}`, error);
    }
  }

  stop(): void {
    this.#native.stop();
  }

  close(): void {
    this.#closed = true;
    this.#native.close();
  }

  ref(): void {
    this.#native.ref();
  }

  unref(): void {
    this.#native.unref();
  }
}

/**
 * Watches `fd` for readability in this process's event loop without accepting: `onReadable` runs
 * (no arguments, inside its own async context so that nextTicks and promises it queues run right
 * after it) whenever a connection waits, and also when polling reports an error, so that the
 * caller's accept or queue check meets the error itself.
 *
 * Level-triggered: while connections wait and the watcher is started, `onReadable` runs on every
 * loop iteration, so the caller must get them accepted or call stop(). The watcher starts stopped.
 *
 * @throws PreforkError `PREFORK_ERR_SOCKET` when the fd cannot be polled (`EBADF`, or `EEXIST` when
 *   another handle of this process already polls it).
 */
/** Watcher events: the fd is readable. */
export const READABLE = 1;
/** Watcher events: the fd is writable. */
export const WRITABLE = 2;

/**
 * Stops a listening socket for every process that shares it (shutdown SHUT_RD): connections
 * still queued are reset and new ones refused at once. A stopping pool calls it once its drain is
 * over, so clients (and a front proxy) move on instead of waiting for the last child to exit.
 */
export function shutdownListener(fd: number): void {
  binding().shutdownListener(fd);
}

/**
 * A connected AF_UNIX stream socket pair, both ends non-blocking and close-on-exec: the control
 * channel between the parent and one child.
 */
export function socketpair(): [number, number] {
  return binding().socketpair();
}

/**
 * One read(2) into `buffer`: the byte count, 0 at the end of the stream (or a reset), -1 when
 * nothing is there yet. Other errors throw with the errno name as `code`. No allocation.
 */
export function read(fd: number, buffer: Uint8Array, offset = 0, length = buffer.length - offset): number {
  return binding().read(fd, buffer, offset, length);
}

/**
 * One non-blocking write of `buffer` (MSG_NOSIGNAL on sockets): the bytes written, possibly fewer,
 * or -1 when the socket buffer is full. EPIPE and friends throw with the errno name as `code`.
 */
export function write(fd: number, buffer: Uint8Array, offset = 0, length = buffer.length - offset): number {
  return binding().write(fd, buffer, offset, length);
}

export function createWatcher(fd: number, onReadable: (events: number) => void): Watcher {
  const what = `could not watch fd ${fd}`;
  checkFd(what, fd);
  if (typeof onReadable !== 'function') {
    throw new PreforkError('PREFORK_ERR_SOCKET', `${what}: onReadable must be a function, got ${typeof onReadable}`);
  }
  const native = binding();
  try {
    return new SocketWatcher(native.createWatcher(fd, onReadable), fd);
  } catch (error) {
    throw wrapError('PREFORK_ERR_SOCKET', what, error);
  }
}
