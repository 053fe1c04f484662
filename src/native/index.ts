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
 *
 * This file is the barrel: `./binding.ts` loads the addon, `./listeners.ts` opens and describes
 * listeners, `./accept.ts` has the hot-path accept calls, `./fds.ts` the fd utilities and
 * `./watcher.ts` the readiness watcher.
 */

export { loadNative, nativeFeatures, systemErrorCode, type NativeFeatures } from './binding.js';
export {
  adoptListener,
  listenTcp,
  listenUnix,
  listenerInfo,
  shutdownListener,
  holdNewConnections,
  pendingHandshakes,
  setNotsentLowat,
  notsentLowat,
  type ListenTcpOptions,
  type ListenUnixOptions,
  type ListenerInfo,
  type SocketInfo,
} from './listeners.js';
export { accept, acceptAndClose, acceptQueue, acceptQueueLength, bytesAcked, readable, tcpNoDelay, type AcceptQueue } from './accept.js';
export { close, createPage, mapPage, read, setCloexec, setNonblocking, socketpair, startLifeline, write } from './fds.js';
export { READABLE, WRITABLE, createWatcher, type Watcher } from './watcher.js';
export { schedPolicy, setSchedPolicy, type SchedPolicy } from './sched.js';
