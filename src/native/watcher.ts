/** Watching a listener (or the control channel) for readiness in this process's event loop. */
import { PreforkError } from '../errors.js';
import { callNative, checkFd, wrapError, type NativeWatcher } from './binding.js';

/** Watcher events: the fd is readable. */
export const READABLE = 1;
/** Watcher events: the fd is writable. */
export const WRITABLE = 2;

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
export function createWatcher(fd: number, onReadable: (events: number) => void): Watcher {
  const what = `could not watch fd ${fd}`;
  checkFd(what, fd);
  if (typeof onReadable !== 'function') {
    throw new PreforkError('PREFORK_ERR_SOCKET', `${what}: onReadable must be a function, got ${typeof onReadable}`);
  }
  return callNative('PREFORK_ERR_SOCKET', what, (native) => new SocketWatcher(native.createWatcher(fd, onReadable), fd));
}
