import { describe, expect, it, vi } from 'vitest';
import { constantFrame, encodeFrame, FrameDecoder, FRAME_HEADER_SIZE, MAX_PAYLOAD_SIZE, Order, Status } from '../../../src/channel/frames.js';
import { isPreforkError } from '../../../src/errors.js';

function decodeAll(chunks: Buffer[]): [number, number, unknown][] {
  const frames: [number, number, unknown][] = [];
  const decoder = new FrameDecoder((type, argument, payload) => frames.push([type, argument, payload]));
  for (const chunk of chunks) decoder.push(chunk);
  return frames;
}

describe('control channel frames', () => {
  it('hot-path frames are 8 bytes without payload and shared', () => {
    const frame = constantFrame(Order.ACCEPT, 3);
    expect(frame.length).toBe(FRAME_HEADER_SIZE);
    expect(constantFrame(Order.ACCEPT, 3)).toBe(frame);
    expect(decodeAll([frame])).toEqual([[Order.ACCEPT, 3, undefined]]);
  });

  it('an accept order carries its chain grant in the count byte; no other frame may', () => {
    const granted = constantFrame(Order.ACCEPT, 2, 32);
    expect(granted[1]).toBe(32);
    expect(granted).not.toBe(constantFrame(Order.ACCEPT, 2));
    expect(constantFrame(Order.ACCEPT, 2, 32)).toBe(granted);
    const counts: number[] = [];
    new FrameDecoder((_type, _argument, _payload, count) => counts.push(count)).push(Buffer.concat([granted, constantFrame(Status.CHAINED, 2), constantFrame(Order.END_CHAIN)]));
    expect(counts).toEqual([32, 0, 0]);
    expect(() => constantFrame(Status.DONE, 0, 1)).toThrow(/only valid on an accept order or a chained report/);
    expect(() => constantFrame(Order.ACCEPT, 0, 256)).toThrow(/from 0 to 255/);
  });

  it('decodes the same frames however the stream is cut', () => {
    const stream = Buffer.concat([
      constantFrame(Status.READY),
      encodeFrame(Status.LOG, 0, { level: 'info', message: 'héllo ✓', fields: { n: 1 } }),
      constantFrame(Status.ACCEPTED, 1),
      encodeFrame(Status.SHUTDOWN_REQUEST, 0, { reason: 'x'.repeat(5000) }),
      constantFrame(Status.DONE),
    ]);
    const whole = decodeAll([stream]);
    expect(whole).toHaveLength(5);
    for (const size of [1, 3, 7, 8, 9, 100, 4096]) {
      const chunks: Buffer[] = [];
      for (let at = 0; at < stream.length; at += size) chunks.push(stream.subarray(at, at + size));
      expect(decodeAll(chunks)).toEqual(whole);
    }
  });

  it('rejects garbage with PREFORK_ERR_CHANNEL instead of misreading it', () => {
    for (const bad of [Buffer.from([99, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([Status.DONE, 7, 0, 0, 0, 0, 0, 0]), Buffer.from([Status.LOG, 0, 0, 0, 255, 255, 255, 127])]) {
      let error: unknown;
      try {
        decodeAll([bad]);
      } catch (caught) {
        error = caught;
      }
      expect(isPreforkError(error, 'PREFORK_ERR_CHANNEL')).toBe(true);
    }
    const notJson = encodeFrame(Status.LOG, 0, 'x');
    notJson.write('{', FRAME_HEADER_SIZE);
    expect(() => decodeAll([notJson])).toThrow(/not JSON/);
  });
});

describe('control channel frames: limits and exact bytes', () => {
  it('lays out type, count, argument (LE) and payload length (LE) as documented', () => {
    expect([...encodeFrame(Order.ACCEPT, 0x0102, undefined, 7)]).toEqual([Order.ACCEPT, 7, 0x02, 0x01, 0, 0, 0, 0]);
    const withPayload = encodeFrame(Status.LOG, 0, { a: 'é' });
    expect(withPayload.readUInt32LE(4)).toBe(Buffer.byteLength('{"a":"é"}'));
    expect(withPayload.subarray(FRAME_HEADER_SIZE).toString('utf8')).toBe('{"a":"é"}');
  });

  it('keeps one shared buffer per (type, argument, count), never mixing them up', () => {
    const frames = [constantFrame(Order.ACCEPT, 1, 2), constantFrame(Order.ACCEPT, 2, 1), constantFrame(Order.ACCEPT, 258), constantFrame(Order.ACCEPT, 1, 3), constantFrame(Status.CHAINED, 1, 2), constantFrame(Status.CHAINED, 0)];
    expect(frames.map((frame) => [...frame.subarray(0, 4)])).toEqual([
      [Order.ACCEPT, 2, 1, 0],
      [Order.ACCEPT, 1, 2, 0],
      [Order.ACCEPT, 0, 2, 1],
      [Order.ACCEPT, 3, 1, 0],
      [Status.CHAINED, 2, 1, 0],
      [Status.CHAINED, 0, 0, 0],
    ]);
    expect(new Set(frames).size).toBe(frames.length);
    // Same type and count, another listener: another buffer.
    expect(constantFrame(Order.ACCEPT, 5)).not.toBe(constantFrame(Order.ACCEPT, 6));
    expect(constantFrame(Order.ACCEPT, 6)[2]).toBe(6);
  });

  it('every error is PREFORK_ERR_CHANNEL', () => {
    const codeOf = (run: () => unknown) => {
      try {
        run();
      } catch (error) {
        return (error as { code?: string }).code;
      }
      return 'no error';
    };
    const notJson = encodeFrame(Status.ERROR, 0, 'x');
    notJson.write('{', FRAME_HEADER_SIZE);
    expect(codeOf(() => encodeFrame(Status.LOG, 0, 'x'.repeat(MAX_PAYLOAD_SIZE)))).toBe('PREFORK_ERR_CHANNEL');
    expect(codeOf(() => encodeFrame(Status.DONE, 0, undefined, 1))).toBe('PREFORK_ERR_CHANNEL');
    expect(codeOf(() => decodeAll([notJson]))).toBe('PREFORK_ERR_CHANNEL');
  });

  it('a frame cut after the first one of a chunk waits for its payload', () => {
    // A payload longer than what the chunk holds of it, but shorter than the whole chunk.
    const log = encodeFrame(Status.LOG, 0, { level: 'info', message: 'm' });
    const stream = Buffer.concat([constantFrame(Status.DONE), constantFrame(Status.DONE), log]);
    // The chunk ends 4 bytes into the LOG payload: not enough, though the chunk is longer than the payload.
    const cut = 2 * FRAME_HEADER_SIZE + FRAME_HEADER_SIZE + 4;
    const seen: number[] = [];
    const decoder = new FrameDecoder((type) => seen.push(type));
    decoder.push(stream.subarray(0, cut));
    expect(seen).toEqual([Status.DONE, Status.DONE]);
    decoder.push(stream.subarray(cut));
    expect(seen).toEqual([Status.DONE, Status.DONE, Status.LOG]);
  });

  it('accepts counts 0 to 255 on the two counted frames only, naming the count otherwise', () => {
    expect(constantFrame(Order.ACCEPT, 0, 255)[1]).toBe(255);
    expect(constantFrame(Status.CHAINED, 0, 1)[1]).toBe(1);
    for (const [type, count] of [[Status.DONE, 1], [Order.ACCEPT, 256], [Order.ACCEPT, -1], [Status.CHAINED, 1.5]] as const) {
      expect(() => encodeFrame(type, 0, undefined, count)).toThrow(`frame count ${count} is only valid on an accept order or a chained report, from 0 to 255`);
    }
  });

  it('carries a payload of exactly MAX_PAYLOAD_SIZE and refuses one byte more, on both sides', () => {
    // A JSON string of n characters is n + 2 bytes.
    const exact = encodeFrame(Status.LOG, 0, 'x'.repeat(MAX_PAYLOAD_SIZE - 2));
    expect(exact.length).toBe(FRAME_HEADER_SIZE + MAX_PAYLOAD_SIZE);
    expect(decodeAll([exact])[0]![2]).toHaveLength(MAX_PAYLOAD_SIZE - 2);
    expect(() => encodeFrame(Status.LOG, 0, 'x'.repeat(MAX_PAYLOAD_SIZE - 1))).toThrow(`frame payload of ${MAX_PAYLOAD_SIZE + 1} bytes exceeds ${MAX_PAYLOAD_SIZE}`);
    const header = Buffer.from([Status.LOG, 0, 0, 0, 0, 0, 0, 0]);
    header.writeUInt32LE(MAX_PAYLOAD_SIZE + 1, 4);
    expect(() => decodeAll([header])).toThrow(`corrupt frame on the control channel (type ${Status.LOG}, length ${MAX_PAYLOAD_SIZE + 1})`);
  });

  it('names the frame type when a payload is not JSON, keeping the parse error as the cause', () => {
    const notJson = encodeFrame(Status.ERROR, 0, 'x');
    notJson.write('{', FRAME_HEADER_SIZE);
    let error: (Error & { cause?: unknown }) | undefined;
    try {
      decodeAll([notJson]);
    } catch (caught) {
      error = caught as Error;
    }
    expect(error?.message).toBe(`frame of type ${Status.ERROR} carries a payload that is not JSON`);
    expect(error?.cause).toBeInstanceOf(SyntaxError);
  });

  it('waits for the rest of a frame split anywhere, and keeps nothing once a chunk ends on a frame boundary', () => {
    const frame = encodeFrame(Status.LOG, 0, { level: 'info', message: 'm' });
    const seen: unknown[] = [];
    const decoder = new FrameDecoder((_type, _argument, payload) => seen.push(payload));
    decoder.push(frame.subarray(0, FRAME_HEADER_SIZE + 2));
    expect(seen).toEqual([]);
    decoder.push(frame.subarray(FRAME_HEADER_SIZE + 2));
    expect(seen).toEqual([{ level: 'info', message: 'm' }]);
    // Nothing pending: the next frame alone decodes by itself.
    decoder.push(constantFrame(Status.DONE));
    expect(seen).toHaveLength(2);
  });
});

describe('FrameDecoder cost', () => {
  it('a payload dribbled one byte at a time is copied once, not re-joined on every read', () => {
    const payload = { level: 'info', message: 'x'.repeat(64 * 1024) };
    const stream = encodeFrame(Status.LOG, 0, payload);
    const concat = vi.spyOn(Buffer, 'concat');
    const allocate = vi.spyOn(Buffer, 'allocUnsafe');
    try {
      const frames = decodeAll(Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1)));
      expect(frames).toEqual([[Status.LOG, 0, payload]]);
      expect(concat).not.toHaveBeenCalled();
      // The 8-byte header, then the frame at its full size: two buffers for 65 KiB of single bytes.
      expect(allocate.mock.calls.map(([size]) => size)).toEqual([FRAME_HEADER_SIZE, stream.length]);
    } finally {
      concat.mockRestore();
      allocate.mockRestore();
    }
  });
});
