/**
 * The SCGI request head: the netstring (`<length>:<headers>,`) and the NUL-separated variables in it.
 * Pure code, with no I/O; `./scgi.ts` is the protocol adapter that feeds it and re-exports it.
 */
import { PreforkError } from '../errors.js';

/** The default of the `scgi.maxHeaderSize` option, in bytes. */
export const DEFAULT_MAX_HEADER_SIZE = 65_536;

/**
 * The input of an SCGI connection is not a valid request. `status` is the HTTP status it is
 * answered with (400, 431). Code PREFORK_ERR_PROTOCOL; the only error the parser throws.
 */
export class ScgiProtocolError extends PreforkError {
  /** The HTTP status the request is answered with. */
  readonly status: number;

  constructor(status: number, message: string) {
    super('PREFORK_ERR_PROTOCOL', message);
    this.name = 'ScgiProtocolError';
    this.status = status;
  }
}

/** The header block of one SCGI request. */
export interface ScgiHead {
  /**
   * The variables by name, as sent (`REQUEST_METHOD`, `HTTP_HOST`, ...). Bytes are decoded as
   * latin1, as Node decodes HTTP headers, so that no input is lost. A repeated name keeps its first
   * value. The object has no prototype, so a variable named `__proto__` is just a variable.
   */
  readonly env: Readonly<Record<string, string>>;
  /** Every variable in the order sent, duplicates included: `[name, value, name, value, ...]`. */
  readonly pairs: readonly string[];
  /** The body length announced by `CONTENT_LENGTH`. */
  readonly contentLength: number;
}

const NUL = 0x00;
const COLON = 0x3a;
const COMMA = 0x2c;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const MESSAGE_QUOTE_LIMIT = 40;

/** A piece of input quoted into an error message: JSON-escaped and cut short. */
export function quote(text: string): string {
  return JSON.stringify(text.length > MESSAGE_QUOTE_LIMIT ? `${text.slice(0, MESSAGE_QUOTE_LIMIT)}...` : text);
}

/**
 * Parses the content of an SCGI netstring (the bytes between `<length>:` and `,`): NUL-terminated
 * names and values, `CONTENT_LENGTH` first with a decimal value, and `SCGI` equal to `1`.
 * Pure; throws only {@link ScgiProtocolError} (status 400).
 */
export function parseScgiHeaders(block: Buffer): ScgiHead {
  if (block.length === 0) throw new ScgiProtocolError(400, 'the header block is empty');
  if (block[block.length - 1] !== NUL) throw new ScgiProtocolError(400, 'the header block does not end with a NUL byte');
  const env: Record<string, string> = Object.create(null) as Record<string, string>;
  const pairs: string[] = [];
  let position = 0;
  while (position < block.length) {
    const nameEnd = block.indexOf(NUL, position);
    const name = block.toString('latin1', position, nameEnd);
    if (name === '') throw new ScgiProtocolError(400, `header ${pairs.length / 2 + 1} has an empty name`);
    if (nameEnd === block.length - 1) throw new ScgiProtocolError(400, `header ${quote(name)} has no value`);
    // The block ends with NUL, so there is always one more.
    const valueEnd = block.indexOf(NUL, nameEnd + 1);
    const value = block.toString('latin1', nameEnd + 1, valueEnd);
    if (pairs.length === 0 && name !== 'CONTENT_LENGTH') {
      throw new ScgiProtocolError(400, `the first header must be CONTENT_LENGTH, got ${quote(name)}`);
    }
    if (name in env) {
      // The body length must be unambiguous; any other repeat is tolerated (older web servers
      // pass repeated HTTP headers one by one) and keeps its first value.
      if (name === 'CONTENT_LENGTH') throw new ScgiProtocolError(400, 'CONTENT_LENGTH is repeated');
    } else {
      env[name] = value;
    }
    pairs.push(name, value);
    position = valueEnd + 1;
  }
  const announced = env.CONTENT_LENGTH as string;
  const contentLength = /^[0-9]{1,15}$/.test(announced) ? Number(announced) : Number.NaN;
  if (!Number.isSafeInteger(contentLength)) {
    throw new ScgiProtocolError(400, `CONTENT_LENGTH must be a decimal number of bytes, got ${quote(announced)}`);
  }
  if (env.SCGI !== '1') {
    throw new ScgiProtocolError(400, env.SCGI === undefined ? 'the SCGI header is missing' : `SCGI must be "1", got ${quote(env.SCGI)}`);
  }
  return { env, pairs, contentLength };
}

/** A complete request head and the bytes that followed it (the start of the body). */
export interface ScgiParsed {
  readonly head: ScgiHead;
  /** Input after the netstring's `,`: the first bytes of the body, possibly empty. */
  readonly rest: Buffer;
}

/**
 * An incremental parser of the SCGI request head (`<length>:<headers>,`), fed with the bytes of a
 * connection as they arrive. The length must be decimal digits without leading zeros (netstring
 * rules) and at most `maxHeaderSize`; it is refused as soon as it grows beyond that, without
 * buffering the block. Throws only {@link ScgiProtocolError}.
 */
export class ScgiParser {
  readonly #maxHeaderSize: number;
  #state: 'length' | 'block' | 'done' = 'length';
  #length = 0;
  #digits = 0;
  readonly #chunks: Buffer[] = [];
  #buffered = 0;

  /** @param maxHeaderSize the largest header block accepted, in bytes */
  constructor(maxHeaderSize: number = DEFAULT_MAX_HEADER_SIZE) {
    this.#maxHeaderSize = maxHeaderSize;
  }

  /**
   * Feeds the next bytes of the connection. Returns the parsed head once it is complete, and
   * `undefined` while more bytes are needed. Calling it again after it returned a head is a
   * programming error (the rest belongs to the body) and throws a plain Error.
   */
  push(chunk: Buffer): ScgiParsed | undefined {
    if (this.#state === 'done') throw new Error('ScgiParser.push() called after the head was complete');
    let offset = 0;
    if (this.#state === 'length') {
      offset = this.#readLength(chunk);
      if (offset < 0) return undefined;
    }
    const needed = this.#length + 1;
    const piece = chunk.subarray(offset);
    this.#chunks.push(piece);
    this.#buffered += piece.length;
    if (this.#buffered < needed) return undefined;
    const input = this.#chunks.length === 1 ? piece : Buffer.concat(this.#chunks, this.#buffered);
    this.#chunks.length = 0;
    if (input[this.#length] !== COMMA) {
      throw new ScgiProtocolError(400, `the header block is not followed by "," (netstring of ${this.#length} bytes)`);
    }
    const head = parseScgiHeaders(input.subarray(0, this.#length));
    this.#state = 'done';
    return { head, rest: input.subarray(needed) };
  }

  /** Reads length digits up to the ':'; returns the offset after it, or -1 if it has not come yet. */
  #readLength(chunk: Buffer): number {
    for (let index = 0; index < chunk.length; index += 1) {
      const byte = chunk[index] as number;
      if (byte >= DIGIT_0 && byte <= DIGIT_9) {
        if (this.#digits > 0 && this.#length === 0) {
          throw new ScgiProtocolError(400, 'the netstring length has a leading zero');
        }
        this.#length = this.#length * 10 + (byte - DIGIT_0);
        this.#digits += 1;
        if (this.#length > this.#maxHeaderSize) {
          throw new ScgiProtocolError(431, `the header block is larger than maxHeaderSize (${this.#maxHeaderSize} bytes)`);
        }
      } else if (byte === COLON && this.#digits > 0) {
        this.#state = 'block';
        return index + 1;
      } else {
        const what = byte === COLON ? '":" without a length' : `byte 0x${byte.toString(16).padStart(2, '0')}`;
        throw new ScgiProtocolError(400, `the request does not start with a netstring length: got ${what}`);
      }
    }
    return -1;
  }
}
