import net from 'node:net';
import { hostname } from 'node:os';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { LoggerPlugin } from '../../plugins/LoggerPlugin.js';
import { ask, nextHook, served, startPool, stopPools, target } from '../helpers.js';

afterEach(stopPools);

/** A real pino logger at `level` writing to an array, one parsed JSON object a line. */
function collectingPino(level: string): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

describe("a user's pino logger in place of prefork's", () => {
  it("gets the parent's lines and a child's ctx.logger line, with pino's level numbers and the child's fields", async () => {
    const { logger, lines } = collectingPino('debug');
    const pool = await startPool({ logger, children: { start: 1, max: 1, minSpare: 0 } });
    // pino at debug: prefork's threshold follows it, in the parent and in the child.
    expect(pool.options.logLevel).toBe('debug');
    const child = pool.children()[0]!;

    const own = { level: 30, time: expect.any(Number), pid: process.pid, hostname: hostname() };
    expect(lines.find((line) => line.event === 'pool.start')).toMatchObject({ ...own, msg: 'pool starting', protocol: 'raw' });
    expect(lines.find((line) => line.event === 'child.spawn')).toEqual({ ...own, msg: 'child spawned', event: 'child.spawn', child: 1, 'field.pid': child.pid, generation: 1 });

    const logged = nextHook(pool.hooks.onChildLog);
    expect(await ask(pool, 'log')).toMatch(/^logged 1 /);
    await logged;
    await served(pool, 1);
    expect(lines.filter((line) => line.msg === 'hello from the handler')).toEqual([{ ...own, msg: 'hello from the handler', answer: 42, child: 1, 'field.pid': child.pid }]);
    // Per-connection lines exist only at debug: pino's level let them through.
    expect(lines.find((line) => line.event === 'connection.done')).toMatchObject({ ...own, level: 20, msg: 'connection done', child: 1 });

    const failed = nextHook(pool.hooks.onChildError);
    const socket = net.connect(target(pool));
    socket.on('error', () => {});
    socket.write('reject\n');
    await failed;
    socket.destroy();
    expect(lines.find((line) => line.event === 'child.error')).toMatchObject({ ...own, level: 50, msg: 'handler error in connection', child: 1, 'field.pid': child.pid, error: 'handler rejected on purpose' });
    // Every line has one pid, the parent's: pino writes no second one after its own.
    expect(lines.every((line) => line.pid === process.pid)).toBe(true);
  });

  it("lets pino's level decide unless logLevel is given, which then filters before pino sees a line", async () => {
    const quiet = collectingPino('warn');
    const atWarn = await startPool({ logger: quiet.logger, children: { start: 1, max: 1, minSpare: 0 } });
    expect(atWarn.options.logLevel).toBe('warn');
    await atWarn.stop('test');
    expect(quiet.lines.filter((line) => (line.level as number) < 40)).toEqual([]);

    const verbose = collectingPino('debug');
    const atError = await startPool({ logger: verbose.logger, logLevel: 'error', children: { start: 1, max: 1, minSpare: 0 } });
    expect(atError.options.logLevel).toBe('error');
    await atError.stop('test');
    expect(verbose.lines).toEqual([]);
  });

  it('LoggerPlugin takes a pino logger too, at its level', async () => {
    const { logger, lines } = collectingPino('warn');
    const pool = await startPool({ plugins: [new LoggerPlugin({ logger })], children: { start: 1, max: 1, minSpare: 0 } });
    const exited = nextHook(pool.hooks.onChildExit);
    const victim = pool.children()[0]!;
    process.kill(victim.pid, 'SIGKILL');
    await exited;
    // At warn: the lifecycle's info lines are left out, the unexpected exit is in.
    expect(lines).toEqual([
      expect.objectContaining({ level: 40, pid: process.pid, msg: 'child exited unexpectedly', event: 'child.exit', child: 1, 'field.pid': victim.pid, signal: 'SIGKILL' }),
    ]);
    // The plugin writes to its logger only, not also to the pool's (the test's memory logger).
    expect(pool.logged.lines.some((line) => line.message === 'pool starting')).toBe(false);
  });
});
