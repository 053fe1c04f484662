import { constantFrame, Status } from '../channel/frames.js';
import { PAGE } from '../channel/page.js';

/**
 * How long a just-accepted connection keeps the slot it was given at its accept while its first
 * request is still arriving. The slot is reserved before the child answers ACCEPTED, so that the
 * parent, reading the page, sees the child as busy and orders the next connection elsewhere, as
 * it would without parking. A client that sends nothing complete within this time (a slowloris)
 * is parked, and the slot goes back.
 */
export const FIRST_REQUEST_GRACE_MS = 20;

/** A just-accepted connection's slot, held for its first request. */
export interface Reservation {
  /** The first request arrived: it takes the reserved slot. False when the grace ran out (acquire one then). */
  take(): boolean;
  /** The connection closed before its first request: the slot goes back. */
  cancel(): void;
}

const FREE_FRAME = constantFrame(Status.FREE);

/**
 * The child's slots when it parks waiting connections (HTTP with a page): at most `size` requests
 * in the handler at once; a request that finds every slot taken waits, in arrival order, for one
 * to free. The number of slots taken is published on the page for the parent, which orders this
 * child to accept only while one is free; when the parent asked (the page's WAKE word), a slot
 * that frees is reported with a FREE frame.
 */
export class RequestSlots {
  readonly size: number;
  readonly #page: Int32Array;
  readonly #send: (frame: Buffer) => void;
  readonly #onParked: () => void;
  readonly #waiting: (() => void)[] = [];
  #busy = 0;

  /** `onParked`: a slot freed and its connection stays open, parked (the child's chain grant ends). */
  constructor(size: number, page: Int32Array, send: (frame: Buffer) => void, onParked: () => void) {
    this.size = size;
    this.#page = page;
    this.#send = send;
    this.#onParked = onParked;
  }

  /** Reserves a slot for a connection about to be reported accepted; undefined when none is free. */
  reserve(): Reservation | undefined {
    if (this.#busy >= this.size) return undefined;
    this.#take();
    let held = true;
    const lapse = () => {
      if (!held) return;
      held = false;
      this.release(true);
    };
    // Timers run before I/O in a turn of the event loop: after a turn that ran long (a busy
    // child), a request already waiting in the socket is read only after the timer. Deciding one
    // turn later lets it take the slot first; only a connection that truly sent too little lapses.
    const timer = setTimeout(() => setImmediate(lapse), FIRST_REQUEST_GRACE_MS);
    return {
      take: () => {
        if (!held) return false;
        held = false;
        clearTimeout(timer);
        return true;
      },
      cancel: () => {
        if (!held) return;
        held = false;
        clearTimeout(timer);
        this.release(false);
      },
    };
  }

  /** Runs `start` in a slot: at once if one is free, else when one frees. Call {@link release} after. */
  acquire(start: () => void): void {
    if (this.#busy < this.size) {
      this.#take();
      start();
    } else {
      this.#waiting.push(start);
    }
  }

  /**
   * A slot's request is over: the next waiting request gets it, or it is free. `parked`: its
   * connection stays open with nothing to do (kept alive, or no request came), not closing.
   */
  release(parked: boolean): void {
    if (parked) this.#onParked();
    const next = this.#waiting.shift();
    if (next) {
      // Not from inside the caller's event (a response's end): the next request starts afresh.
      queueMicrotask(next);
      return;
    }
    this.#busy--;
    Atomics.store(this.#page, PAGE.BUSY, this.#busy);
    // A connection that is closing reports DONE anyway, which tells the parent as much: the FREE
    // (and the parent's wake-up) is spent only on a slot whose connection stays, parked.
    if (parked && Atomics.load(this.#page, PAGE.WAKE) === 1) {
      Atomics.store(this.#page, PAGE.WAKE, 0);
      this.#send(FREE_FRAME);
    }
  }

  #take(): void {
    this.#busy++;
    Atomics.store(this.#page, PAGE.BUSY, this.#busy);
  }
}
