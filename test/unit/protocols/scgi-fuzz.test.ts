import { describe, expect, it } from 'vitest';
import { ScgiParser, ScgiProtocolError, parseScgiHeaders, type ScgiParsed } from '../../../src/protocols/scgi.js';

/**
 * The seed of every run. A failure message names the seed and the case number; rerun with
 * SCGI_FUZZ_SEED=<seed> to get exactly the same inputs.
 */
const SEED = Number(process.env.SCGI_FUZZ_SEED ?? 0x5c61);
const MAX_HEADER_SIZE = 2048;
const MUTATED_CASES = 6_000;
const GARBAGE_CASES = 2_000;
const BLOCK_CASES = 3_000;

/** mulberry32: small, fast and good enough to spread inputs; the same seed gives the same run. */
function createRandom(seed: number) {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const below = (limit: number): number => Math.floor(next() * limit);
  const bytes = (length: number): Buffer => {
    const buffer = Buffer.alloc(length);
    for (let index = 0; index < length; index += 1) buffer[index] = below(256);
    return buffer;
  };
  const pick = <T>(items: readonly T[]): T => items[below(items.length)] as T;
  return { next, below, bytes, pick };
}

type Random = ReturnType<typeof createRandom>;

/** A value or name made of printable ASCII, latin1 bytes and the characters that delimit the format. */
function randomText(random: Random, maxLength: number, alphabet: string): string {
  const length = random.below(maxLength + 1);
  let text = '';
  for (let index = 0; index < length; index += 1) text += alphabet[random.below(alphabet.length)];
  return text;
}

const NAME_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789';
const VALUE_ALPHABET = 'abcxyz0123456789 /?&=%:;,."\'\t\u00e9\u00ff\u0080-_';

/** The pairs of a valid request: CONTENT_LENGTH first, SCGI, the usual CGI variables, some headers. */
function validPairs(random: Random): Array<[string, string]> {
  const pairs: Array<[string, string]> = [
    ['CONTENT_LENGTH', String(random.pick([0, 0, 1, 17, 1024, 1_048_576, random.below(100_000)]))],
    ['SCGI', '1'],
    ['REQUEST_METHOD', random.pick(['GET', 'POST', 'PUT', 'DELETE', 'HEAD'])],
    ['REQUEST_URI', `/${randomText(random, 30, VALUE_ALPHABET)}`],
  ];
  const extra = random.below(random.next() < 0.1 ? 60 : 8);
  for (let index = 0; index < extra; index += 1) {
    pairs.push([`HTTP_${randomText(random, 12, NAME_ALPHABET) || 'X'}`, randomText(random, random.next() < 0.1 ? 200 : 20, VALUE_ALPHABET)]);
  }
  return pairs;
}

function encodeBlock(pairs: ReadonlyArray<readonly [string, string]> | readonly string[]): Buffer {
  const flat = (pairs as ReadonlyArray<string | readonly [string, string]>).flat() as string[];
  return Buffer.concat(flat.map((text) => Buffer.from(`${text}\0`, 'latin1')));
}

function encodeRequest(pairs: Array<[string, string]>, body: Buffer): Buffer {
  const block = encodeBlock(pairs);
  return Buffer.concat([Buffer.from(`${block.length}:`), block, Buffer.from(','), body]);
}

/** One way of breaking an input; each keeps the rest of the bytes as they were. */
const MUTATIONS: ReadonlyArray<(input: Buffer, random: Random) => Buffer> = [
  function flipBits(input, random) {
    const output = Buffer.from(input);
    const flips = 1 + random.below(4);
    for (let flip = 0; flip < flips && output.length > 0; flip += 1) {
      const index = random.below(output.length);
      output[index] = (output[index] as number) ^ (1 << random.below(8));
    }
    return output;
  },
  function truncate(input, random) {
    return input.subarray(0, random.below(input.length + 1));
  },
  function insertBytes(input, random) {
    const at = random.below(input.length + 1);
    const inserted = random.next() < 0.5 ? random.bytes(1 + random.below(8)) : Buffer.from(random.pick(['\0', ':', ',', '0', '9', '\0\0', 'SCGI\x001\0']), 'latin1');
    return Buffer.concat([input.subarray(0, at), inserted, input.subarray(at)]);
  },
  function deleteBytes(input, random) {
    const at = random.below(input.length + 1);
    return Buffer.concat([input.subarray(0, at), input.subarray(at + 1 + random.below(8))]);
  },
  function tamperLength(input, random) {
    const colon = input.indexOf(':');
    const digits = colon < 0 ? 0 : colon;
    const length = Number(input.subarray(0, digits).toString('latin1'));
    const replacement = random.pick([
      String(length + 1 + random.below(5)),
      String(Math.max(0, length - 1 - random.below(5))),
      `0${length}`,
      '0',
      '',
      String(MAX_HEADER_SIZE),
      String(MAX_HEADER_SIZE + 1),
      '99999999999999999999999',
      `${length}x`,
      `-${length}`,
      ` ${length}`,
    ]);
    return Buffer.concat([Buffer.from(replacement, 'latin1'), input.subarray(digits)]);
  },
  function tamperContentLength(input, random) {
    const text = input.toString('latin1');
    const value = random.pick(['', '-1', '1e3', '0x10', ' 5', '5 ', '00012', '9'.repeat(20), 'NaN', '１']);
    const replaced = text.replace(/CONTENT_LENGTH\0[^\0]*\0/, `CONTENT_LENGTH\0${value}\0`);
    return Buffer.from(replaced, 'latin1');
  },
  function duplicateSection(input, random) {
    const from = random.below(input.length + 1);
    const to = Math.min(input.length, from + random.below(40));
    const at = random.below(input.length + 1);
    return Buffer.concat([input.subarray(0, at), input.subarray(from, to), input.subarray(at)]);
  },
];

type Outcome =
  | { kind: 'head'; pairs: readonly string[]; contentLength: number; consumed: number }
  | { kind: 'error'; status: number; message: string }
  | { kind: 'incomplete' };

/** Feeds the input in the given pieces; anything thrown that is not the documented error fails the test. */
function parse(input: Buffer, cuts: number[]): Outcome {
  const parser = new ScgiParser(MAX_HEADER_SIZE);
  let start = 0;
  try {
    for (const end of [...cuts, input.length]) {
      const parsed: ScgiParsed | undefined = parser.push(input.subarray(start, end));
      if (parsed) {
        const consumed = end - parsed.rest.length;
        expect(parsed.rest.equals(input.subarray(consumed, end))).toBe(true);
        return { kind: 'head', pairs: parsed.head.pairs, contentLength: parsed.head.contentLength, consumed };
      }
      start = end;
    }
  } catch (error) {
    if (!(error instanceof ScgiProtocolError)) throw error;
    return { kind: 'error', status: error.status, message: error.message };
  }
  return { kind: 'incomplete' };
}

function randomCuts(random: Random, length: number): number[] {
  const count = random.below(Math.min(length, 6) + 1);
  const cuts = Array.from({ length: count }, () => random.below(length + 1));
  return cuts.sort((a, b) => a - b);
}

/** The checks every outcome must pass, whatever the input was. */
function checkOutcome(input: Buffer, outcome: Outcome): void {
  if (outcome.kind === 'error') {
    expect([400, 431]).toContain(outcome.status);
    expect(outcome.message.length).toBeGreaterThan(0);
  } else if (outcome.kind === 'head') {
    // A head is only ever the exact netstring it was parsed from, with the required variables.
    const block = encodeBlock(outcome.pairs);
    const netstring = Buffer.concat([Buffer.from(`${block.length}:`), block, Buffer.from(',')]);
    expect(input.subarray(0, outcome.consumed).equals(netstring)).toBe(true);
    expect(block.length).toBeLessThanOrEqual(MAX_HEADER_SIZE);
    expect(outcome.pairs[0]).toBe('CONTENT_LENGTH');
    expect(String(outcome.contentLength)).toBe(String(Number(outcome.pairs[1])));
    expect(outcome.pairs.includes('SCGI')).toBe(true);
  } else {
    // Waiting for more is only allowed while more could still make a request: a parser given
    // enough further bytes must come to a decision, so it can never wait forever.
    const more = Buffer.concat([input, Buffer.alloc(MAX_HEADER_SIZE + 2, ',')]);
    expect(parse(more, []).kind).not.toBe('incomplete');
  }
}

describe('scgi parser fuzzing', () => {
  it(`parses every valid request it is given, in any pieces (seed ${SEED})`, () => {
    const random = createRandom(SEED);
    for (let index = 0; index < 1_000; index += 1) {
      const pairs = validPairs(random);
      const block = encodeBlock(pairs);
      if (block.length > MAX_HEADER_SIZE) continue;
      const body = random.bytes(random.below(20));
      const input = encodeRequest(pairs, body);
      const outcome = parse(input, randomCuts(random, input.length));
      expect(outcome, `case ${index}`).toEqual({
        kind: 'head',
        pairs: pairs.flat(),
        contentLength: Number(pairs[0]?.[1]),
        consumed: input.length - body.length,
      });
    }
  });

  it(`gives a request or the documented error for mutated requests, whatever the pieces (seed ${SEED})`, () => {
    const random = createRandom(SEED + 1);
    const seen = { head: 0, error400: 0, error431: 0, incomplete: 0 };
    for (let index = 0; index < MUTATED_CASES; index += 1) {
      let input = encodeRequest(validPairs(random), random.bytes(random.below(10)));
      const rounds = 1 + random.below(3);
      for (let round = 0; round < rounds; round += 1) input = random.pick(MUTATIONS)(input, random);
      const whole = parse(input, []);
      const pieces = parse(input, randomCuts(random, input.length));
      expect(pieces, `case ${index}: ${input.toString('latin1').slice(0, 120)}`).toEqual(whole);
      checkOutcome(input, whole);
      if (whole.kind === 'error') seen[whole.status === 431 ? 'error431' : 'error400'] += 1;
      else seen[whole.kind] += 1;
    }
    // Each outcome must actually be reached, or the mutations have stopped exercising the parser.
    expect(seen.head).toBeGreaterThan(100);
    expect(seen.error400).toBeGreaterThan(100);
    expect(seen.error431).toBeGreaterThan(10);
    expect(seen.incomplete).toBeGreaterThan(100);
  });

  it(`gives a request or the documented error for random bytes (seed ${SEED})`, () => {
    const random = createRandom(SEED + 2);
    for (let index = 0; index < GARBAGE_CASES; index += 1) {
      const input =
        random.next() < 0.5
          ? random.bytes(random.below(64))
          : // Random bytes behind a plausible length, so that the block parser sees garbage too.
            ((block: Buffer) => Buffer.concat([Buffer.from(`${block.length}:`), block, Buffer.from(random.pick([',', ';', '']))]))(
              random.bytes(random.below(64)),
            );
      const outcome = parse(input, randomCuts(random, input.length));
      checkOutcome(input, outcome);
    }
  });

  it(`parseScgiHeaders throws nothing but ScgiProtocolError on any block (seed ${SEED})`, () => {
    const random = createRandom(SEED + 3);
    const alphabet = ['\0', '\0', 'CONTENT_LENGTH', 'SCGI', '1', '0', '12', 'X', '\u00ff', ''];
    for (let index = 0; index < BLOCK_CASES; index += 1) {
      const parts = Array.from({ length: random.below(10) }, () => random.pick(alphabet));
      const block = random.next() < 0.8 ? Buffer.from(parts.join(''), 'latin1') : random.bytes(random.below(32));
      try {
        const head = parseScgiHeaders(block);
        expect(head.env.SCGI).toBe('1');
        expect(encodeBlock(head.pairs).equals(block)).toBe(true);
      } catch (error) {
        expect(error).toBeInstanceOf(ScgiProtocolError);
        expect((error as ScgiProtocolError).code).toBe('PREFORK_ERR_PROTOCOL');
        expect((error as ScgiProtocolError).status).toBe(400);
      }
    }
  });
});

describe('scgi parser limits', () => {
  /** A valid header block of exactly `size` bytes: CONTENT_LENGTH, SCGI, and a padded variable. */
  function blockOf(size: number): Buffer {
    const fixed = 'CONTENT_LENGTH\u00000\u0000SCGI\u00001\u0000HTTP_X_PAD\u0000\u0000';
    const block = Buffer.from(`CONTENT_LENGTH\u00000\u0000SCGI\u00001\u0000HTTP_X_PAD\u0000${'x'.repeat(size - fixed.length)}\u0000`, 'latin1');
    expect(block.length).toBe(size);
    return Buffer.concat([Buffer.from(`${size}:`), block, Buffer.from(',')]);
  }

  it('accepts a header block of exactly maxHeaderSize bytes and refuses one byte more with 431', () => {
    const exact = new ScgiParser(256).push(blockOf(256));
    expect(exact?.head.contentLength).toBe(0);
    expect(() => new ScgiParser(256).push(blockOf(257))).toThrow(expect.objectContaining({ status: 431 }) as Error);
  });
});

describe('scgi parser messages', () => {
  const refusal = (input: Buffer | (() => unknown)) => {
    try {
      if (typeof input === 'function') input();
      else new ScgiParser(1024).push(input);
    } catch (error) {
      return { name: (error as Error).name, status: (error as ScgiProtocolError).status, message: (error as Error).message };
    }
    return undefined;
  };

  it('names the error class and quotes input cut at 40 characters', () => {
    expect(refusal(() => parseScgiHeaders(Buffer.alloc(0)))).toEqual({ name: 'ScgiProtocolError', status: 400, message: 'the header block is empty' });
    const forty = 'A'.repeat(40);
    expect(refusal(() => parseScgiHeaders(Buffer.from(`${forty}\u0000v\u0000`, 'latin1')))?.message).toBe(`the first header must be CONTENT_LENGTH, got "${forty}"`);
    expect(refusal(() => parseScgiHeaders(Buffer.from(`${forty}B\u0000v\u0000`, 'latin1')))?.message).toBe(`the first header must be CONTENT_LENGTH, got "${forty}..."`);
    expect(refusal(() => parseScgiHeaders(Buffer.from('CONTENT_LENGTH\u000012x\u0000SCGI\u00001\u0000', 'latin1')))?.message).toBe('CONTENT_LENGTH must be a decimal number of bytes, got "12x"');
    expect(refusal(Buffer.from(':x'))?.message).toBe('the request does not start with a netstring length: got ":" without a length');
    expect(refusal(Buffer.from('a:'))?.message).toBe('the request does not start with a netstring length: got byte 0x61');
    expect(refusal(Buffer.from([0x05]))?.message).toBe('the request does not start with a netstring length: got byte 0x05');
  });

  it('refuses to be fed after the head was complete', () => {
    const parser = new ScgiParser(1024);
    const head = Buffer.from('CONTENT_LENGTH\u00000\u0000SCGI\u00001\u0000', 'latin1');
    expect(parser.push(Buffer.concat([Buffer.from(`${head.length}:`), head, Buffer.from(',rest')]))?.rest.toString()).toBe('rest');
    expect(() => parser.push(Buffer.from('more'))).toThrow('ScgiParser.push() called after the head was complete');
  });
});
