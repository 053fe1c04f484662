/** Listening sockets: opening TCP and Unix listeners, adopting inherited ones, describing and stopping them. */
import { isIP } from 'node:net';
import { PreforkError } from '../errors.js';
import { binding, callNative, checkFd, checkInteger, systemErrorCode } from './binding.js';

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

/** What {@link listenerInfo} reports: the socket's address and whether it listens. */
export interface SocketInfo extends ListenerInfo {
  /** True when listen() was called on the socket (SO_ACCEPTCONN). */
  listening: boolean;
}

const DEFAULT_BACKLOG = 511;

function formatEndpoint(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
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
  return callNative('PREFORK_ERR_LISTEN', where, (native) => {
    if (address !== '') return native.listenTcp(address, port, backlog, ipv6Only, deferAccept);
    try {
      return native.listenTcp('::', port, backlog, ipv6Only, deferAccept);
    } catch (error) {
      if (systemErrorCode(error) !== 'EAFNOSUPPORT') throw error;
      return native.listenTcp('0.0.0.0', port, backlog, ipv6Only, deferAccept);
    }
  });
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
  return callNative('PREFORK_ERR_LISTEN', where, (native) => native.listenUnix(path, backlog, mode));
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
  return callNative('PREFORK_ERR_LISTEN', where, (native) => native.adoptListener(fd));
}

/**
 * Describes any socket fd, listening or not, for diagnostics.
 * @throws PreforkError `PREFORK_ERR_SOCKET` when the fd is not an open socket.
 */
export function listenerInfo(fd: number): SocketInfo {
  const what = `could not describe fd ${fd}`;
  checkFd(what, fd);
  return callNative('PREFORK_ERR_SOCKET', what, (native) => native.listenerInfo(fd));
}

/**
 * Stops a listening socket for every process that shares it (shutdown SHUT_RD): connections
 * still queued are reset and new ones refused at once. A stopping pool calls it once its drain is
 * over, so clients (and a front proxy) move on instead of waiting for the last child to exit.
 */
export function shutdownListener(fd: number): void {
  binding().shutdownListener(fd);
}

/**
 * Keeps new connections out of a TCP listener, for every process that shares it, while the ones
 * already queued stay to be accepted (Linux: a socket filter drops new SYNs; clients retry, and
 * are refused once the listener is shut down). The first step of a stop that loses nothing.
 * Returns false, doing nothing, for a Unix socket or a build without socket filters.
 * @throws PreforkError `PREFORK_ERR_SOCKET` when the fd is not a socket.
 */
export function holdNewConnections(fd: number): boolean {
  const what = `could not hold new connections on fd ${fd}`;
  checkFd(what, fd);
  return callNative('PREFORK_ERR_SOCKET', what, (native) => native.holdNewConnections(fd));
}

/**
 * Sets TCP_NOTSENT_LOWAT on a TCP socket: on a listener, for every connection accepted from it
 * from then on. A write to such a connection takes only about `bytes` more than the peer has
 * received; the rest of an answer waits in the process (see `notsentLowat` in the pool options).
 * `0` gives the system's default back. Returns false, doing nothing, where the system has no such
 * option.
 * @throws PreforkError `PREFORK_ERR_SOCKET` when the fd is not a TCP socket or `bytes` is not an
 *   integer from 0 to 2^31 - 1.
 */
export function setNotsentLowat(fd: number, bytes: number): boolean {
  const what = `could not set TCP_NOTSENT_LOWAT on fd ${fd}`;
  checkFd(what, fd);
  checkInteger('PREFORK_ERR_SOCKET', what, 'bytes', bytes, 0, 2 ** 31 - 1);
  return callNative('PREFORK_ERR_SOCKET', what, (native) => native.setNotsentLowat(fd, bytes));
}

/** A TCP socket's TCP_NOTSENT_LOWAT (0: the system's default), or -1 where it is unknown. */
export function notsentLowat(fd: number): number {
  return binding().notsentLowat(fd);
}

/**
 * How many connections to a TCP listener are half-way through their handshake (Linux: the
 * SYN-RECV entries of its address and port, read with sock_diag), or -1 where the system does not
 * tell. Those complete into the accept queue one round trip later.
 * @throws PreforkError `PREFORK_ERR_SOCKET` when the fd is not a socket or sock_diag fails.
 */
export function pendingHandshakes(fd: number): number {
  const what = `could not count the handshakes under way on fd ${fd}`;
  checkFd(what, fd);
  return callNative('PREFORK_ERR_SOCKET', what, (native) => native.pendingHandshakes(fd));
}
