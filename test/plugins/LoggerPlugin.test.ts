import { hostname } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { LoggerPlugin } from '../../plugins/LoggerPlugin.js';
import { SpareChildrenPlugin } from '../../plugins/SpareChildrenPlugin.js';
import { Pool } from '../../index.js';
import { ask, command, fixture, memoryLogger, nextHook, served, startPool, stopPools, waitFor } from '../helpers.js';

afterEach(stopPools);

type Line = ReturnType<typeof memoryLogger>['lines'][number];
const events = (lines: Line[]) => lines.map((line) => line.fields?.event).filter((event) => event !== undefined);
const withEvent = (lines: Line[], event: string) => lines.filter((line) => line.fields?.event === event);

/** A stream that keeps what is written to it. */
function captureStream(isTTY: boolean): { write(line: string): boolean; isTTY: boolean; text: string[] } {
  const text: string[] = [];
  return { isTTY, text, write: (line: string) => void text.push(line) === undefined };
}

describe('LoggerPlugin', () => {
  it('is a default plugin and logs the lifecycle one line per event: start, spawn, ready, exit, stop', async () => {
    const pool = await startPool({ children: { start: 2, max: 2, minSpare: 0 } });
    expect(pool.plugin('logging')).toBeInstanceOf(LoggerPlugin);
    expect(events(pool.logged.lines)).toEqual(['pool.start', 'child.spawn', 'child.spawn', 'child.ready', 'child.ready', 'pool.started']);
    expect(withEvent(pool.logged.lines, 'pool.start')[0]).toMatchObject({ level: 'info', message: 'pool starting', fields: { protocol: 'raw', listen: [expect.stringMatching(/^127\.0\.0\.1:\d+$/)] } });
    const spawn = withEvent(pool.logged.lines, 'child.spawn')[0]!;
    expect(spawn).toMatchObject({ level: 'info', fields: { child: 1, pid: expect.any(Number), generation: 1 } });
    expect(withEvent(pool.logged.lines, 'child.ready')[0]!.fields!.startMs).toEqual(expect.any(Number));

    await pool.stop('test says stop');
    const stopLines = pool.logged.lines.slice(6);
    expect(events(stopLines)).toEqual(['pool.stopping', 'child.exit', 'child.exit', 'pool.stopped']);
    expect(withEvent(stopLines, 'pool.stopping')[0]).toMatchObject({ level: 'info', fields: { reason: 'test says stop', requestedByChild: false, children: 2 } });
    for (const exit of withEvent(stopLines, 'child.exit')) {
      expect(exit).toMatchObject({ level: 'info', message: 'child exited', fields: { code: 0, signal: null, expected: true, reason: 'test says stop', lost: 0 } });
    }
    expect(withEvent(stopLines, 'pool.stopped')[0]).toMatchObject({ level: 'info', fields: { reason: 'test says stop', served: 0, lost: 0 } });
  });

  it('writes nothing per connection at info', async () => {
    // 40 connections, each once the previous one was reported done: never an overload, so any
    // line would be one per connection.
    const pool = await startPool({ children: { start: 2, max: 2, minSpare: 0 } });
    const before = pool.logged.lines.length;
    for (let i = 0; i < 40; i++) {
      await ask(pool, 'who');
      await served(pool, i + 1);
    }
    expect(pool.logged.lines.slice(before)).toEqual([]);
  });

  it('logs each connection at debug', async () => {
    const logger = memoryLogger();
    const pool = await startPool({ children: { start: 1, max: 1, minSpare: 0 }, plugins: [new LoggerPlugin({ logger, level: 'debug' })] });
    await Promise.all(Array.from({ length: 5 }, () => ask(pool, 'who')));
    await served(pool, 5);
    expect(withEvent(logger.lines, 'connection.done').map((line) => line.fields!.served)).toEqual([1, 2, 3, 4, 5]);
    expect(withEvent(logger.lines, 'connection.dispatch').length).toBeGreaterThanOrEqual(1);
    expect(withEvent(logger.lines, 'connection.done').every((line) => line.level === 'debug')).toBe(true);
    // The plugin's own logger replaced the pool's for these lines.
    expect(withEvent(pool.logged.lines, 'child.spawn')).toEqual([]);
  });

  it('logs a crash with its signal and stderr tail: an error when a connection was lost, a warning otherwise', async () => {
    const pool = await startPool({ children: { start: 1, max: 1, minSpare: 0 } });
    const held = await command(pool, 'hold');
    const exited = nextHook(pool.hooks.onChildExit);
    process.kill(Number(held.answer.split(' ')[2]), 'SIGKILL');
    await exited;
    held.socket.destroy();
    const crash = withEvent(pool.logged.lines, 'child.exit')[0]!;
    expect(crash).toMatchObject({ level: 'error', message: 'child exited unexpectedly', fields: { child: 1, code: null, signal: 'SIGKILL', expected: false, lost: 1, state: 'busy' } });
    expect(crash.fields!.stderr).toEqual(expect.any(String));

    // An idle child that dies unexpectedly loses nothing: a warning.
    await waitFor(pool.hooks.onChildIdle as never, () => pool.stats().children.idle === 1);
    const exitedAgain = nextHook(pool.hooks.onChildExit);
    process.kill(pool.children()[0]!.pid, 'SIGTERM');
    await exitedAgain;
    expect(withEvent(pool.logged.lines, 'child.exit')[1]).toMatchObject({ level: 'warn', message: 'child exited unexpectedly', fields: { child: 2, signal: 'SIGTERM', expected: false, lost: 0, state: 'idle' } });
  });

  it('logs timeout kills, handler errors, shutdown requests and reloads', async () => {
    const pool = await startPool({ env: { HANG_INIT_IDS: '3' }, children: { start: 2, max: 3, minSpare: 0 }, timeouts: { start: 2500 } });
    const failed = nextHook(pool.hooks.onChildError);
    await ask(pool, 'reject');
    await failed;
    expect(withEvent(pool.logged.lines, 'child.error')[0]).toMatchObject({ level: 'error', message: 'handler error in connection', fields: { error: 'handler rejected on purpose', where: 'connection' } });
    expect(withEvent(pool.logged.lines, 'child.error')[0]!.fields!.stack).toBeUndefined();

    // Child 3 hangs in init: spawned for a reload, killed at its start deadline.
    const timedOut = nextHook(pool.hooks.onChildTimeout, (child) => child.id === 3);
    pool.reload();
    await timedOut;
    expect(withEvent(pool.logged.lines, 'reload.start')[0]).toMatchObject({ level: 'info', fields: { generation: 2, from: 1 } });
    expect(withEvent(pool.logged.lines, 'reload.spawned')[0]).toMatchObject({ level: 'info', fields: { generation: 2, children: 2 } });
    expect(withEvent(pool.logged.lines, 'child.timeout').find((line) => line.fields!.child === 3)).toMatchObject({ level: 'warn', fields: { kind: 'start', timeoutMs: 2500 } });

    expect(await ask(pool, 'shutdown maintenance s3cret')).toMatch(/^asked /);
    await pool.wait();
    const request = withEvent(pool.logged.lines, 'shutdown.request')[0]!;
    expect(request).toMatchObject({ level: 'info', fields: { reason: 'maintenance', token: true } });
    expect(JSON.stringify(request)).not.toContain('s3cret');
    expect(withEvent(pool.logged.lines, 'pool.stopping')[0]!.fields).toMatchObject({ requestedByChild: true, reason: expect.stringMatching(/maintenance/) });
  });

  it('logs overload start and end itself when the overload policy does not', async () => {
    const logger = memoryLogger();
    // No default plugins: the core's built-in graceful overload, which logs nothing on its own.
    const pool = await startPool({
      logger,
      tickInterval: 20,
      defaultPlugins: false,
      children: { start: 1, max: 1, minSpare: 0 },
      plugins: [new SpareChildrenPlugin({ start: 1, max: 1, minSpare: 0 }), new LoggerPlugin()],
    });
    const held = await command(pool, 'hold');
    const overloaded = nextHook(pool.hooks.onOverload);
    const waiting = ask(pool, 'who');
    await overloaded;
    held.socket.write('release\n');
    expect(await waiting).toMatch(/^1 /);
    await waitFor(pool.hooks.onParentTick as never, () => withEvent(logger.lines, 'overload.end').length > 0);
    expect(withEvent(logger.lines, 'overload.start')).toEqual([expect.objectContaining({ level: 'warn', fields: expect.objectContaining({ reason: 'no-child', children: 1 }) })]);
    expect(withEvent(logger.lines, 'overload.end')).toEqual([expect.objectContaining({ level: 'info', fields: expect.objectContaining({ overloads: 1, accepted: 1, durationMs: expect.any(Number) }) })]);
  });

  it('levels: error keeps only errors, warn drops the info lines', async () => {
    const logger = memoryLogger();
    const pool = await startPool({ plugins: [new LoggerPlugin({ logger, level: 'warn' })], children: { start: 1, max: 1, minSpare: 0 } });
    // Exiting mid-connection loses it: an error line, and the only line at this level.
    const exited = nextHook(pool.hooks.onChildExit);
    await ask(pool, 'exit 9');
    await exited;
    expect(logger.lines.map((line) => [line.level, line.fields?.event, line.fields?.code])).toEqual([['error', 'child.exit', 9]]);
    // An idle child killed: a warning, still above the level.
    await waitFor(pool.hooks.onChildIdle as never, () => pool.stats().children.idle === 1);
    const killed = nextHook(pool.hooks.onChildExit);
    process.kill(pool.children()[0]!.pid, 'SIGTERM');
    await killed;
    expect(logger.lines.map((line) => line.level)).toEqual(['error', 'warn']);

    const quiet = memoryLogger();
    const errorsOnly = await startPool({ plugins: [new LoggerPlugin({ logger: quiet, level: 'error' })], children: { start: 1, max: 1, minSpare: 0 } });
    const killedToo = nextHook(errorsOnly.hooks.onChildExit);
    process.kill(errorsOnly.children()[0]!.pid, 'SIGTERM');
    await killedToo;
    expect(quiet.lines).toEqual([]);
  });

  it('writes JSON lines by default and readable text on a TTY; accepts a console-like logger', async () => {
    const json = captureStream(false);
    const pretty = captureStream(true);
    const consoleLike = { calls: [] as string[], error: (m: string) => void consoleLike.calls.push(`E ${m}`), warn: (m: string) => void consoleLike.calls.push(`W ${m}`), info: (m: string) => void consoleLike.calls.push(`I ${m}`), debug: (m: string) => void consoleLike.calls.push(`D ${m}`) };
    for (const plugin of [new LoggerPlugin({ stream: json }), new LoggerPlugin({ stream: pretty }), new LoggerPlugin({ logger: consoleLike })]) {
      const pool = await startPool({ plugins: [plugin], children: { start: 1, max: 1, minSpare: 0 } });
      await pool.stop();
    }
    const parsed = json.text.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(parsed.map((line) => line.event)).toEqual(['pool.start', 'child.spawn', 'child.ready', 'pool.started', 'pool.stopping', 'child.exit', 'pool.stopped']);
    expect(parsed[0]).toMatchObject({ level: 30, msg: 'pool starting', pid: process.pid, hostname: hostname(), time: expect.any(Number) });
    // The line's pid is the writing process's; the child's is a field like any other.
    expect(parsed[1]).toMatchObject({ level: 30, msg: 'child spawned', pid: process.pid, child: 1, 'field.pid': expect.any(Number), generation: 1 });
    expect(parsed[1]!['field.pid']).not.toBe(process.pid);
    expect(pretty.text[1]).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z INFO  child spawned pid=${process.pid} event=child.spawn child=1 field.pid=\\d+ generation=1\n$`));
    expect(consoleLike.calls).toEqual(['I pool starting', 'I child spawned', 'I child ready', 'I pool started', 'I pool stopping', 'I child exited', 'I pool stopped']);
  });

  it('a plugin with role logging replaces it', () => {
    const custom = { role: 'logging', apply() {} };
    const pool = new Pool({ handler: fixture('control.mjs'), listen: '127.0.0.1:0', logger: memoryLogger(), plugins: [custom] });
    expect(pool.plugin('logging')).toBe(custom);
    expect(pool.plugins.some((plugin) => plugin instanceof LoggerPlugin)).toBe(false);
  });
});
