import { PreforkError } from '../errors.js';

/**
 * The control channel between the parent and one child is a dedicated AF_UNIX socketpair (an extra
 * stdio entry), carrying fixed 8-byte binary frames:
 *
 * ```
 * offset 0  u8   type      (one of ORDER / STOP from the parent, or a STATUS from the child)
 * offset 1  u8   count     (ACCEPT: the chain grant, 0-255; CHAINED: connections reported, 1-255; else 0)
 * offset 2  u16  argument  (the listener index of an accept order or answer)
 * offset 4  u32  length    (bytes of UTF-8 JSON payload that follow; 0 for every hot-path frame)
 * ```
 *
 * Frames on the dispatch path (accept order, accepted, nothing, done) never carry a payload, so
 * they are written from preallocated buffers and decoded without allocating.
 */
export const FRAME_HEADER_SIZE = 8;

/** Largest payload a frame may carry; anything bigger means the stream is corrupt. */
export const MAX_PAYLOAD_SIZE = 1 << 20;

/** Frames the parent sends to a child. */
export const Order = {
  /**
   * Accept one connection from listener `argument` now, then answer ACCEPTED or NOTHING. A
   * non-zero `count` is a chain grant: after finishing a connection the child may accept the next
   * one from the same listener itself, up to `count` times, answering CHAINED (or DONE once the
   * accept finds nothing). The grant ends with the first DONE, NOTHING or STOP.
   */
  ACCEPT: 1,
  /** Take no more orders, finish the current connections, run `close`, exit 0. */
  STOP: 2,
  /** The chain grant ends now: report DONE after the current connection and wait for an order. */
  END_CHAIN: 3,
  /** Answer PONG: the heartbeat, which a child whose event loop is stuck cannot answer. */
  PING: 4,
  /** Answer METRICS with the handler's own prom-client metrics; `argument` names the request. */
  METRICS: 5,
} as const;

/** Frames a child sends to the parent. */
export const Status = {
  /** Startup is complete (`init` ran): the child is idle. Sent once, unprompted. */
  READY: 16,
  /** Answer to ACCEPT: accept() returned a connection, which the child now serves. */
  ACCEPTED: 17,
  /** Answer to ACCEPT: accept() found nothing (EAGAIN and friends); the child is idle again. */
  NOTHING: 18,
  /**
   * A connection is finished; sent unprompted. `argument`: the number (low 16 bits) of the accept
   * order that brought it, counting the child's ACCEPTED answers from 1. The end of the last
   * order's connection ends that order's chain grant; that of an earlier one (a parked keep-alive
   * connection of a child that took more since) does not.
   */
  DONE: 19,
  /** The handler asked for the whole server to stop. Payload: `{ reason?, token? }`. */
  SHUTDOWN_REQUEST: 20,
  /** The child will exit once its connections are done (it asked to be retired). Payload: `{ reason? }`. */
  EXITING: 21,
  /** A handler call threw or rejected. Payload: `{ message, stack?, where, code? }`. */
  ERROR: 22,
  /** The handler module failed to load or its `init` threw; the child exits. Payload like ERROR. */
  INIT_FAILED: 23,
  /** A log line from the child's logger. Payload: `{ level, message, fields? }`. */
  LOG: 24,
  /**
   * DONE and ACCEPTED, `count` times, under a chain grant: the child finished `count` connections
   * and after each accepted the next one from listener `argument` by itself (it stays busy). A
   * child batches these reports (see the child runtime) and always sends them before its DONE.
   */
  CHAINED: 25,
  /** Answer to PING: the event loop runs. */
  PONG: 26,
  /** A slot is free again after the parent asked to be told (its page's WAKE word). */
  FREE: 27,
  /**
   * The chain grant ended while the child still holds its connection: the connection's request is
   * answered and the connection parked (kept alive), so the child would otherwise sit under a grant
   * that only ends with that connection. Sent after any CHAINED report of the grant.
   */
  UNCHAINED: 28,
  /**
   * Answer to METRICS (`argument`: the request's number), or, with `argument` 0xffff, the last
   * report of a stopping child (sent unasked when the parent serves metrics). Payload: `{ metrics }` or `{ error }`
   * (see `src/channel/metrics.ts`).
   */
  METRICS: 29,
} as const;

/** A frame type number. */
export type FrameType = (typeof Order)[keyof typeof Order] | (typeof Status)[keyof typeof Status];

const KNOWN_TYPES = new Set<number>([...Object.values(Order), ...Object.values(Status)]);
/** Frames whose count byte may be non-zero. */
const COUNTED_TYPES = new Set<number>([Order.ACCEPT, Status.CHAINED]);

/** Encodes one frame. Hot-path callers should use {@link constantFrame} instead. */
export function encodeFrame(type: FrameType, argument = 0, payload?: unknown, count = 0): Buffer {
  const body = payload === undefined ? undefined : Buffer.from(JSON.stringify(payload), 'utf8');
  const length = body ? body.length : 0;
  if (length > MAX_PAYLOAD_SIZE) {
    throw new PreforkError('PREFORK_ERR_CHANNEL', `frame payload of ${length} bytes exceeds ${MAX_PAYLOAD_SIZE}`);
  }
  const frame = Buffer.allocUnsafe(FRAME_HEADER_SIZE + length);
  frame.writeUInt8(type, 0);
  if (count !== 0 && (!COUNTED_TYPES.has(type) || !Number.isInteger(count) || count < 0 || count > 255)) {
    throw new PreforkError('PREFORK_ERR_CHANNEL', `frame count ${count} is only valid on an accept order or a chained report, from 0 to 255`);
  }
  frame.writeUInt8(count, 1);
  frame.writeUInt16LE(argument, 2);
  frame.writeUInt32LE(length, 4);
  if (body) body.copy(frame, FRAME_HEADER_SIZE);
  return frame;
}

const constantFrames = new Map<number, Buffer>();

/**
 * A shared, never-modified buffer for a payload-less frame. Sockets may hold on to a written
 * buffer until it is flushed; that is safe here because its bytes never change.
 */
export function constantFrame(type: FrameType, argument = 0, count = 0): Buffer {
  const key = (type * 256 + count) * 65536 + argument;
  let frame = constantFrames.get(key);
  if (!frame) {
    frame = encodeFrame(type, argument, undefined, count);
    constantFrames.set(key, frame);
  }
  return frame;
}

/** Receives each decoded frame. `payload` is undefined for frames without one; `count` is 0 except on ACCEPT and CHAINED. */
export type FrameListener = (type: number, argument: number, payload: unknown, count: number) => void;

/**
 * Turns a byte stream into frames, whatever way the stream was cut into chunks, in time linear in
 * the bytes: frames are decoded straight from the chunk, and a frame cut across chunks is copied
 * once into a buffer of its own size (known from its header), never re-joined with each new chunk.
 */
export class FrameDecoder {
  readonly #onFrame: FrameListener;
  /** A frame being put together: its header (8 bytes) until that is complete, then the whole frame. */
  #partial: Buffer | undefined;
  #filled = 0;

  constructor(onFrame: FrameListener) {
    this.#onFrame = onFrame;
  }

  /** Feeds bytes; calls the listener for every complete frame. Throws PREFORK_ERR_CHANNEL on garbage. */
  push(chunk: Buffer): void {
    let offset = this.#partial ? this.#complete(chunk) : 0;
    const end = chunk.length;
    while (end - offset >= FRAME_HEADER_SIZE) {
      const length = checkHeader(chunk, offset);
      if (end - offset - FRAME_HEADER_SIZE < length) break;
      this.#emit(chunk, offset, length);
      offset += FRAME_HEADER_SIZE + length;
    }
    if (offset < end) this.#begin(chunk, offset);
  }

  /** Keeps the start of a frame that goes on in the next chunk. */
  #begin(chunk: Buffer, offset: number): void {
    const available = chunk.length - offset;
    const size = available >= FRAME_HEADER_SIZE ? FRAME_HEADER_SIZE + checkHeader(chunk, offset) : FRAME_HEADER_SIZE;
    this.#partial = Buffer.allocUnsafe(size);
    this.#filled = chunk.copy(this.#partial, 0, offset);
  }

  /** Adds the start of `chunk` to the frame under way; returns how many bytes of `chunk` it took. */
  #complete(chunk: Buffer): number {
    let used = 0;
    let partial = this.#partial!;
    if (this.#filled < FRAME_HEADER_SIZE) {
      const taken = chunk.copy(partial, this.#filled, 0, FRAME_HEADER_SIZE - this.#filled);
      this.#filled += taken;
      used += taken;
      if (this.#filled < FRAME_HEADER_SIZE) return used;
      const length = checkHeader(partial, 0);
      if (length > 0) {
        const frame = Buffer.allocUnsafe(FRAME_HEADER_SIZE + length);
        partial.copy(frame, 0, 0, FRAME_HEADER_SIZE);
        partial = this.#partial = frame;
      }
    }
    const taken = chunk.copy(partial, this.#filled, used, used + partial.length - this.#filled);
    this.#filled += taken;
    used += taken;
    if (this.#filled < partial.length) return used;
    this.#partial = undefined;
    this.#filled = 0;
    this.#emit(partial, 0, partial.length - FRAME_HEADER_SIZE);
    return used;
  }

  #emit(data: Buffer, offset: number, length: number): void {
    const type = data[offset]!;
    const count = data[offset + 1]!;
    const argument = data[offset + 2]! | (data[offset + 3]! << 8);
    let payload: unknown;
    if (length > 0) {
      const text = data.toString('utf8', offset + FRAME_HEADER_SIZE, offset + FRAME_HEADER_SIZE + length);
      try {
        payload = JSON.parse(text);
      } catch (error) {
        throw new PreforkError('PREFORK_ERR_CHANNEL', `frame of type ${type} carries a payload that is not JSON`, { cause: error });
      }
    }
    this.#onFrame(type, argument, payload, count);
  }
}

/** Checks the header at `offset` and returns its payload length. Throws PREFORK_ERR_CHANNEL on garbage. */
function checkHeader(data: Buffer, offset: number): number {
  const type = data[offset]!;
  const count = data[offset + 1]!;
  const length = data.readUInt32LE(offset + 4);
  if (!KNOWN_TYPES.has(type) || (count !== 0 && !COUNTED_TYPES.has(type)) || length > MAX_PAYLOAD_SIZE) {
    throw new PreforkError('PREFORK_ERR_CHANNEL', `corrupt frame on the control channel (type ${type}, length ${length})`);
  }
  return length;
}
