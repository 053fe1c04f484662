import * as native from '../native/index.js';
import { READABLE, WRITABLE, type Watcher } from '../native/index.js';
import { toError } from '../errors.js';
import { FrameDecoder, type FrameListener } from './frames.js';

/**
 * Reads land here. One buffer serves every channel of the process: a read is decoded before the
 * next one happens, and the decoder copies out the little it keeps (a frame cut in two).
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** What a channel reports besides frames. */
export interface ChannelEvents {
  /** A frame arrived. */
  onFrame: FrameListener;
  /** The peer closed its end (or the channel was closed here). Called once. */
  onClose(): void;
  /** The peer sent bytes that are not frames; the channel is closed after this. */
  onError(error: Error): void;
}

/**
 * One end of a control channel: a non-blocking AF_UNIX socket read with read(2) when the poll
 * watcher says so, and written with write(2) directly. Node's stream machinery is left out of
 * the dispatch path: no Buffer per read, no Writable queue per 8-byte frame, one syscall each way.
 */
export class Channel {
  readonly fd: number;
  readonly #watcher: Watcher;
  readonly #decoder: FrameDecoder;
  readonly #events: ChannelEvents;
  #pending: Buffer[] = [];
  #closed = false;

  constructor(fd: number, events: ChannelEvents) {
    this.fd = fd;
    this.#events = events;
    this.#decoder = new FrameDecoder(events.onFrame);
    this.#watcher = native.createWatcher(fd, (fired) => this.#onEvents(fired));
    this.#watcher.start(READABLE);
  }

  /** True once either side closed the channel. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends one frame. Written at once in the common case; when the socket buffer is full the rest
   * waits for the socket to be writable, in order. Returns false when the channel is closed.
   */
  send(frame: Buffer): boolean {
    if (this.#closed) return false;
    if (this.#pending.length > 0) {
      this.#pending.push(frame);
      return true;
    }
    let written: number;
    try {
      written = native.write(this.fd, frame);
    } catch {
      // EPIPE / ECONNRESET: the peer is gone; reading will tell (EOF) and close the channel.
      return false;
    }
    if (written === frame.length) return true;
    this.#pending.push(written > 0 ? frame.subarray(written) : frame);
    this.#watcher.start(READABLE | WRITABLE);
    return true;
  }

  /** Reads whatever is in the socket now (the peer has exited and wrote its last frames). */
  drain(): void {
    while (!this.#closed && this.#readOnce()) {
      // Keep reading until nothing is left.
    }
  }

  /**
   * Writes what is still queued, waiting for the peer as long as needed; for a process about
   * to exit, which must not lose its last frames.
   */
  flushSync(): void {
    if (this.#closed || this.#pending.length === 0) return;
    native.setNonblocking(this.fd, false);
    try {
      for (const chunk of this.#pending) {
        let offset = 0;
        while (offset < chunk.length) offset += Math.max(0, native.write(this.fd, chunk, offset));
      }
    } catch {
      // The peer went away: nothing more to deliver.
    }
    this.#pending = [];
  }

  /** Closes this end; the peer reads EOF. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher.close();
    native.close(this.fd);
    this.#events.onClose();
  }

  /** Lets the process exit while the channel is open (or, with `ref`, keeps it alive again). */
  unref(): void {
    this.#watcher.unref();
  }

  ref(): void {
    this.#watcher.ref();
  }

  #onEvents(fired: number): void {
    if (fired & WRITABLE) this.#flush();
    if (fired & READABLE) this.#readOnce();
  }

  /** One read; true when it got bytes (so there may be more). */
  #readOnce(): boolean {
    let got: number;
    try {
      got = native.read(this.fd, READ_BUFFER);
    } catch {
      got = 0;
    }
    if (got < 0) return false;
    if (got === 0) {
      this.close();
      return false;
    }
    try {
      this.#decoder.push(READ_BUFFER.subarray(0, got));
    } catch (error) {
      this.#events.onError(toError(error));
      this.close();
      return false;
    }
    return true;
  }

  #flush(): void {
    while (this.#pending.length > 0 && !this.#closed) {
      const chunk = this.#pending[0]!;
      let written: number;
      try {
        written = native.write(this.fd, chunk);
      } catch {
        this.#pending = [];
        return;
      }
      if (written < 0) return;
      if (written < chunk.length) {
        this.#pending[0] = chunk.subarray(written);
        return;
      }
      this.#pending.shift();
    }
    if (!this.#closed) this.#watcher.start(READABLE);
  }
}
