import { describe, expect, it } from 'vitest';
import { constantFrame, encodeFrame, FrameDecoder, FRAME_HEADER_SIZE, Order, Status } from '../../../src/channel/frames.js';
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
