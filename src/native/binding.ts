/**
 * The addon itself: its exports as TypeScript sees them, loading it on first use, and the error
 * wrapping and argument checks that the typed functions of the other modules share.
 */
import { PreforkError } from '../errors.js';
import type { AcceptQueue } from './accept.js';
import type { ListenerInfo, SocketInfo } from './listeners.js';
import type { SchedPolicy } from './sched.js';
import { loadAddon } from './load.js';
import type { Watcher } from './watcher.js';

/**
 * The raw native watcher: the methods of {@link Watcher}, without prefork's errors, which
 * `SocketWatcher` (`./watcher.ts`) adds around it.
 */
export type NativeWatcher = Watcher;

/** The addon's exports; the TypeScript functions validate and default before calling them. */
export interface NativeBinding {
  listenTcp(host: string, port: number, backlog: number, ipv6Only: number, deferAccept: number): ListenerInfo;
  listenUnix(path: string, backlog: number, mode: number): ListenerInfo;
  adoptListener(fd: number): ListenerInfo;
  listenerInfo(fd: number): SocketInfo;
  accept(fd: number): number;
  acceptQueueLength(fd: number): number;
  acceptQueue(fd: number): AcceptQueue | null;
  readable(fd: number): boolean;
  shutdownListener(fd: number): void;
  holdNewConnections(fd: number): boolean;
  pendingHandshakes(fd: number): number;
  createPage(): { fd: number; page: ArrayBuffer } | null;
  mapPage(fd: number): ArrayBuffer;
  bytesAcked(fd: number): number;
  tcpNoDelay(fd: number): boolean;
  setNotsentLowat(fd: number, bytes: number): boolean;
  notsentLowat(fd: number): number;
  socketpair(): [number, number];
  read(fd: number, buffer: Uint8Array, offset?: number, length?: number): number;
  write(fd: number, buffer: Uint8Array, offset?: number, length?: number): number;
  acceptAndClose(fd: number, max: number, response: Uint8Array | null): number;
  setCloexec(fd: number, on: boolean): void;
  setNonblocking(fd: number, on: boolean): void;
  close(fd: number): void;
  createWatcher(fd: number, onEvents: (events: number) => void): NativeWatcher;
  startLifeline(parentPid: number, listenerFds: number[], graceMs: number): void;
  schedPolicy(): SchedPolicy;
  setSchedPolicy(policy: 'other' | 'batch', everyThread: boolean): void;
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
  /** TCP_NOTSENT_LOWAT (Linux, macOS); otherwise `notsentLowat` has no effect. */
  notsentLowat: boolean;
  /** Socket filters (Linux): {@link holdNewConnections} can keep new connections out of a TCP listener. */
  holdNewConnections: boolean;
  /** Pages shared with each child (Linux memfd): HTTP children park waiting connections. */
  pages: boolean;
  /** Scheduling policies (Linux): the parent's main thread runs as SCHED_BATCH (`parentScheduling`). */
  schedBatch: boolean;
  /** Built with PREFORK_PORTABLE: the fallbacks forced on a system that has the fast paths. */
  portable: boolean;
}

let loadedBinding: NativeBinding | undefined;

/** The addon, loaded on first use. */
export function binding(): NativeBinding {
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

/** The error codes of this module's `PreforkError`s. */
export type NativeErrorCode = 'PREFORK_ERR_LISTEN' | 'PREFORK_ERR_SOCKET';

/** Wraps a native error, keeping the errno name readable in the message. */
export function wrapError(code: NativeErrorCode, what: string, error: unknown): PreforkError {
  if (error instanceof PreforkError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new PreforkError(code, `${what}: ${reason}`, { cause: error });
}

/**
 * Loads the addon (outside the `try`: a load failure keeps its own code), makes one native call and
 * wraps what it throws as `code`, prefixed with `what`.
 */
export function callNative<T>(code: NativeErrorCode, what: string, call: (native: NativeBinding) => T): T {
  const native = binding();
  try {
    return call(native);
  } catch (error) {
    throw wrapError(code, what, error);
  }
}

export function checkInteger(
  code: NativeErrorCode,
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

export function checkFd(what: string, fd: unknown): number {
  return checkInteger('PREFORK_ERR_SOCKET', what, 'fd', fd, 0, 2 ** 31 - 1);
}
