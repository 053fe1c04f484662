/** File descriptors that no Node handle owns: their flags, closing them, and the control channel's socket pair. */
import { binding, callNative, checkFd } from './binding.js';

/**
 * Turns close-on-exec on or off, e.g. off for a listener that an exec()'d program must inherit.
 * @throws PreforkError `PREFORK_ERR_SOCKET`.
 */
export function setCloexec(fd: number, on: boolean): void {
  const what = `could not ${on ? 'set' : 'clear'} close-on-exec on fd ${fd}`;
  checkFd(what, fd);
  callNative('PREFORK_ERR_SOCKET', what, (native) => native.setCloexec(fd, on));
}

/**
 * Turns O_NONBLOCK on or off. The flag belongs to the open file, so it changes for every process
 * sharing the fd (all children of a pool).
 * @throws PreforkError `PREFORK_ERR_SOCKET`.
 */
export function setNonblocking(fd: number, on: boolean): void {
  const what = `could not ${on ? 'set' : 'clear'} O_NONBLOCK on fd ${fd}`;
  checkFd(what, fd);
  callNative('PREFORK_ERR_SOCKET', what, (native) => native.setNonblocking(fd, on));
}

/**
 * Closes an fd that no Node handle owns (a listener, an accepted fd not given to `net.Socket`).
 * Close a {@link Watcher} on the fd first.
 * @throws PreforkError `PREFORK_ERR_SOCKET` (with `EBADF` when it was not open).
 */
export function close(fd: number): void {
  const what = `could not close fd ${fd}`;
  checkFd(what, fd);
  callNative('PREFORK_ERR_SOCKET', what, (native) => native.close(fd));
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

/**
 * Starts the child's lifeline (once per process): a native thread that, when the parent process
 * `parentPid` is gone, shuts `listenerFds` down at once (a new server can then bind their
 * addresses) and kills this process if it is still alive `graceMs` later, even with its event loop
 * stuck in user code. A healthy child exits before that, when its control channel closes.
 * @throws PreforkError `PREFORK_ERR_SOCKET` when the thread cannot be started.
 */
export function startLifeline(parentPid: number, listenerFds: readonly number[], graceMs: number): void {
  callNative('PREFORK_ERR_SOCKET', 'could not start the lifeline thread', (native) => native.startLifeline(parentPid, [...listenerFds], graceMs));
}

/**
 * A page of memory to share with one child (Linux: a sealed memfd, so the child cannot resize it
 * under the parent's mapping): the fd to pass to the child and the parent's view. Null where the
 * system has none.
 * @throws PreforkError `PREFORK_ERR_SOCKET` when it cannot be created.
 */
export function createPage(): { fd: number; page: ArrayBuffer } | null {
  return callNative('PREFORK_ERR_SOCKET', 'could not create a child page', (native) => native.createPage());
}

/**
 * The child's view of the page its parent passed as `fd`; the fd is closed.
 * @throws PreforkError `PREFORK_ERR_SOCKET` when it cannot be mapped.
 */
export function mapPage(fd: number): ArrayBuffer {
  const what = `could not map the page on fd ${fd}`;
  checkFd(what, fd);
  return callNative('PREFORK_ERR_SOCKET', what, (native) => native.mapPage(fd));
}
