import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Order, Status } from '../../src/channel/frames.js';
import { ask, nextHook, startPool, stopPools, target } from '../helpers.js';

afterEach(stopPools);

/** One frame as a child would write it: the 8-byte header, then `payload` (JSON text or raw bytes). */
function frame(type: number, payload?: string): string {
  const body = payload === undefined ? Buffer.alloc(0) : Buffer.from(payload, 'utf8');
  const header = Buffer.alloc(8);
  header.writeUInt8(type, 0);
  header.writeUInt32LE(body.length, 4);
  return Buffer.concat([header, body]).toString('hex');
}

const manyFields = JSON.stringify({ level: 'info', message: 'x', fields: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`f${i}`, i])) });

/** Frames the child runtime never sends; each must get its child killed, the pool serving on. */
const FORGED: [string, string, RegExp][] = [
  ['a DONE with a payload', frame(Status.DONE, '{}'), /type 19 carries a payload/],
  ['a DONE for a connection never accepted', frame(Status.DONE) + frame(Status.DONE), /never accepted/],
  ['a shutdown request whose reason is an object', frame(Status.SHUTDOWN_REQUEST, '{"reason":{"x":1}}'), /shutdown reason must be a string/],
  ['a shutdown token longer than a label', frame(Status.SHUTDOWN_REQUEST, JSON.stringify({ token: 't'.repeat(300) })), /shutdown token is longer than 256/],
  ['a retirement with an unknown key', frame(Status.EXITING, '{"reason":"x","path":"/etc/passwd"}'), /unknown key "path"/],
  ['an error report without a message', frame(Status.ERROR, '{"where":"request"}'), /error message must be a string/],
  ['a log line with 65 fields', frame(Status.LOG, manyFields), /more than 64 fields/],
  ['a log line with a key besides level, message and fields', frame(Status.LOG, '{"level":"info","message":"x","file":"/tmp/x"}'), /unknown key "file"/],
  ['an accept order, which only the parent sends', frame(Order.ACCEPT), /type 1, which only the parent sends/],
  ['a metrics report where the parent serves no metrics', frame(Status.METRICS, '{"metrics":[]}'), /metrics report nobody asked for/],
];

describe('the parent trusts nothing a child sends', () => {
  it.each(FORGED)('%s kills the child; its replacement serves', async (_name, hex, problem) => {
    const pool = await startPool({ children: { start: 1 } });
    const exit = nextHook(pool.hooks.onChildExit);
    const forged = net.connect(target(pool));
    forged.on('error', () => {});
    forged.write(`forge ${hex}\n`);
    const [child, info] = await exit;
    forged.destroy();
    expect(child.id).toBe(1);
    expect(info.signal).toBe('SIGKILL');
    const refusal = pool.logged.lines.find((line) => line.level === 'error' && line.message.startsWith('child '));
    expect(refusal?.fields).toMatchObject({ child: 1 });
    expect(String(refusal?.fields?.problem ?? refusal?.message)).toMatch(problem);
    expect(pool.stats().invalidFrames).toBe(1);
    expect(await ask(pool, 'who')).toMatch(/^2 \d+\n$/);
  });

  it("ctx.logger survives fields JSON cannot write, and a line's fields cannot pose as its level or time", async () => {
    const pool = await startPool({ children: { start: 1 } });
    expect(await ask(pool, 'log-odd')).toMatch(/^logged 1 /);
    expect(await ask(pool, 'who')).toMatch(/^1 /);
    const line = pool.logged.lines.find((l) => l.message === 'first line\nsecond line');
    expect(line?.level).toBe('info');
    expect(line?.fields).toMatchObject({ cyclic: { name: 'cyclic', self: '[Circular]' }, big: '12n', level: 'error', child: 1 });
  });
});

describe('control-channel fuzz', () => {
  /** A small seeded generator (mulberry32), so that a failing case can be replayed. */
  function generator(seed: number): () => number {
    let state = seed >>> 0;
    return () => {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  const valid = [
    frame(Status.LOG, JSON.stringify({ level: 'info', message: 'fuzz', fields: { a: [1, { b: 2 }] } })),
    frame(Status.SHUTDOWN_REQUEST, '{"reason":"fuzz"}'),
    frame(Status.ERROR, '{"message":"m","where":"request"}'),
    frame(Status.DONE),
    frame(Status.CHAINED),
  ];

  it('random and mutated frames never take the parent down: it kills the sender or ignores what is harmless, and serves on', async () => {
    const random = generator(20261201);
    // No chain grants: a killed child could otherwise have taken the next client by itself
    // before its SIGKILL landed, and that client's connection would be lost with it.
    const pool = await startPool({ children: { start: 2, min: 2, max: 4, minSpare: 0 }, acceptChain: 0 });
    // A shutdown request is a legal frame; the fuzz must not stop the server through it.
    pool.hooks.onShutdownRequest.tap('fuzz', () => false);
    let killed = 0;
    pool.hooks.onChildExit.tap('fuzz', (_child, exit) => void (exit.signal === 'SIGKILL' && killed++));
    for (let round = 0; round < 24; round++) {
      let bytes: Buffer;
      if (round % 2 === 0) {
        bytes = Buffer.from(Array.from({ length: 1 + Math.floor(random() * 40) }, () => Math.floor(random() * 256)));
      } else {
        bytes = Buffer.from(valid[Math.floor(random() * valid.length)]!, 'hex');
        for (let flips = 1 + Math.floor(random() * 3); flips > 0; flips--) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      }
      const socket = net.connect(target(pool));
      socket.on('error', () => {});
      socket.write(`forge ${bytes.toString('hex')}\n`);
      await new Promise((resolve) => {
        socket.once('data', resolve);
        socket.once('close', resolve);
      });
      socket.destroy();
      expect(pool.state, `round ${round}: ${bytes.toString('hex')}`).toBe('running');
      expect(await ask(pool, 'who'), `round ${round}: ${bytes.toString('hex')}`).toMatch(/^\d+ \d+\n$/);
    }
    expect(killed).toBeGreaterThan(0);
    // Each refused frame killed its child (a kill can also follow from a frame that made the child stop).
    expect(pool.stats().invalidFrames).toBeGreaterThan(0);
    expect(pool.stats().invalidFrames).toBeLessThanOrEqual(killed);
  });
});
