import { performance } from 'node:perf_hooks';
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

/** A reservation and when its grace ends; `held` until taken, cancelled or lapsed. */
class HeldSlot implements Reservation {
  held = true;
  constructor(
    readonly slots: RequestSlots,
    readonly until: number,
  ) {}

  take(): boolean {
    if (!this.held) return false;
    this.held = false;
    return true;
  }

  cancel(): void {
    if (!this.held) return;
    this.held = false;
    this.slots.release(false);
  }
}

const FREE_FRAME = constantFrame(Status.FREE);

/** How many recent times a HoldTimes keeps. */
const HOLD_SAMPLES = 8;

/**
 * The last HOLD_SAMPLES times, ms, that a request held its slot or a connection its child (how
 * long a chain batch may be), and their median: a median, so that one request the system
 * preempted does not count as the handler's pace, while a handler slow half the time is seen as slow.
 */
export class HoldTimes {
  readonly #times = new Float64Array(HOLD_SAMPLES);
  #next = 0;
  #count = 0;

  record(ms: number): void {
    this.#times[this.#next] = ms;
    this.#next = (this.#next + 1) % HOLD_SAMPLES;
    if (this.#count < HOLD_SAMPLES) this.#count++;
  }

  /** 0 before the first. */
  median(): number {
    const count = this.#count;
    if (count === 0) return 0;
    const sorted = this.#times.slice(0, count).sort((a, b) => a - b);
    return sorted[count >> 1]!;
  }
}

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
  /** Reservations in the order made, some already taken or cancelled (dropped when the timer runs). */
  readonly #held: HeldSlot[] = [];
  #graceTimer: NodeJS.Timeout | undefined;
  #busy = 0;
  /** The recent requests' times in their slot (see recordHold). */
  readonly #holds = new HoldTimes();

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
    // One timer for all reservations (they share one grace, so they lapse in the order made):
    // a connection costs a push, not a timer of its own.
    const slot = new HeldSlot(this, performance.now() + FIRST_REQUEST_GRACE_MS);
    this.#held.push(slot);
    if (!this.#graceTimer) this.#graceTimer = setTimeout(this.#checkGrace, FIRST_REQUEST_GRACE_MS).unref();
    return slot;
  }

  /** Lapses the reservations whose grace is over (their slots go back, parked), and waits for the next. */
  readonly #checkGrace = (): void => {
    this.#graceTimer = undefined;
    const now = performance.now();
    const held = this.#held;
    let head = 0;
    const lapsing: HeldSlot[] = [];
    while (head < held.length) {
      const slot = held[head]!;
      if (slot.held && slot.until > now) break;
      if (slot.held) lapsing.push(slot);
      head++;
    }
    held.splice(0, head);
    // Timers run before I/O in a turn of the event loop: after a turn that ran long (a busy
    // child), a request already waiting in the socket is read only after the timer. Deciding one
    // turn later lets it take the slot first; only a connection that truly sent too little lapses.
    if (lapsing.length > 0) {
      setImmediate(() => {
        for (const slot of lapsing) {
          if (!slot.held) continue;
          slot.held = false;
          this.release(true);
        }
      });
    }
    if (held.length > 0) this.#graceTimer = setTimeout(this.#checkGrace, Math.max(1, held[0]!.until - now)).unref();
  };

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
   * A request's time in its slot, from its handler's call to the end of both the call and the
   * answer, as the HTTP adapter measured it. The last HOLD_SAMPLES are kept.
   */
  recordHold(ms: number): void {
    this.#holds.record(ms);
  }

  /**
   * The median of the recent requests' times in their slot ({@link recordHold}), ms; 0 before
   * the first. A median, so that one request the system preempted does not count as the
   * handler's pace, while a handler slow half the time is seen as slow.
   */
  recentHoldMs(): number {
    return this.#holds.median();
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
