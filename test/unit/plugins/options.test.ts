/**
 * The option checks of the built-in plugins' constructors: pure, no pool started, so that the
 * mutation tester (npm run test:mutation) can run them for every mutant.
 */
import { describe, expect, it } from 'vitest';
import { AbruptOverloadPlugin, http503 } from '../../../plugins/AbruptOverloadPlugin.js';
import { GracefulOverloadPlugin } from '../../../plugins/GracefulOverloadPlugin.js';
import { LoggerPlugin } from '../../../plugins/LoggerPlugin.js';
import { parseMemorySize, RecyclePlugin } from '../../../plugins/RecyclePlugin.js';
import { ShutdownCheckPlugin } from '../../../plugins/ShutdownCheckPlugin.js';
import { SpareChildrenPlugin } from '../../../plugins/SpareChildrenPlugin.js';
import { Pool } from '../../../index.js';
import { fixture, memoryLogger } from '../../helpers.js';

describe('AbruptOverloadPlugin', () => {
  it('checks its options', () => {
    expect(() => new AbruptOverloadPlugin({ retryAfter: -1 })).toThrow(/AbruptOverloadPlugin retryAfter: expected a non-negative integer/);
    expect(() => new AbruptOverloadPlugin({ response: 42 as never })).toThrow(/AbruptOverloadPlugin response: expected a string, a Buffer or "http-503", got 42/);
    expect(() => new AbruptOverloadPlugin({ respones: 'x' } as never)).toThrow(/AbruptOverloadPlugin respones: unknown option/);
    try {
      new AbruptOverloadPlugin({ retryAfter: 1.5 });
      expect.unreachable();
    } catch (error) {
      expect((error as { code?: string }).code).toBe('PREFORK_ERR_OPTION_INVALID');
    }
  });
});

describe('GracefulOverloadPlugin', () => {
  it('takes no options', () => {
    expect(() => new GracefulOverloadPlugin()).not.toThrow();
    expect(() => new GracefulOverloadPlugin({ response: 'x' } as never)).toThrow(/GracefulOverloadPlugin: takes no options, got/);
  });
});

describe('LoggerPlugin', () => {
  it('checks its options', () => {
    expect(() => new LoggerPlugin({ level: 'verbose' as never })).toThrow(/LoggerPlugin level: expected one of error, warn, info, debug, got "verbose"/);
    expect(() => new LoggerPlugin({ logger: { info() {} } as never })).toThrow(/LoggerPlugin logger: expected an object with error\/warn\/info\/debug methods, missing error, warn, debug/);
    expect(() => new LoggerPlugin({ logger: memoryLogger(), format: 'json' })).toThrow(/cannot be combined with logger/);
    expect(() => new LoggerPlugin({ format: 'xml' as never })).toThrow(/LoggerPlugin format/);
    expect(() => new LoggerPlugin({ levle: 'info' } as never)).toThrow(/LoggerPlugin levle: unknown option/);
  });
});

describe('RecyclePlugin', () => {
  it('checks its options', () => {
    expect(() => new RecyclePlugin({ maxConnectionsPerChild: -1 })).toThrow(/RecyclePlugin maxConnectionsPerChild: expected a non-negative integer, got -1/);
    expect(() => new RecyclePlugin({ maxChildAge: '1h' as never })).toThrow(/RecyclePlugin maxChildAge: expected a non-negative integer, got "1h"/);
    expect(() => new RecyclePlugin({ maxChildMemory: 'lots' })).toThrow(/RecyclePlugin maxChildMemory: expected a size in bytes or a string such as "512MB", got "lots"/);
    expect(() => new RecyclePlugin({ jitter: 5 })).toThrow(/RecyclePlugin jitter: only applies with maxConnectionsPerChild > 0/);
    expect(() => new RecyclePlugin({ maxConectionsPerChild: 5 } as never)).toThrow(/RecyclePlugin maxConectionsPerChild: unknown option \(known: maxConnectionsPerChild, /);
    expect(() => new Pool({ handler: fixture('control.mjs'), listen: '127.0.0.1:0', recycle: { idleChildTimeout: 'soon' as never } })).toThrow(/^recycle\.idleChildTimeout: expected a non-negative integer, got "soon"$/);
    expect(new RecyclePlugin({ maxChildMemory: '1.5G' }).options.maxChildMemory).toBe(1.5 * 1024 ** 3);
    expect(parseMemorySize('x', '512MB')).toBe(512 * 1024 ** 2);
    expect(parseMemorySize('x', '800 KiB')).toBe(800 * 1024);
    expect(parseMemorySize('x', 4096)).toBe(4096);
  });
});

describe('ShutdownCheckPlugin', () => {
  it('checks its options', () => {
    expect(() => new ShutdownCheckPlugin({ drainBacklog: -1 })).toThrow(/ShutdownCheckPlugin drainBacklog: expected a non-negative integer, got -1/);
    expect(() => new ShutdownCheckPlugin({ maxUptime: -5 })).toThrow(/ShutdownCheckPlugin maxUptime: expected a non-negative integer, got -5/);
    expect(() => new ShutdownCheckPlugin({ stopFile: '' })).toThrow(/ShutdownCheckPlugin stopFile: expected a file path/);
    expect(() => new ShutdownCheckPlugin({ stopFile: '/tmp/x', stopFileWhen: 'changes' as never })).toThrow(/ShutdownCheckPlugin stopFileWhen: expected "appears" or "disappears", got "changes"/);
    expect(() => new ShutdownCheckPlugin({ stopFileWhen: 'appears' })).toThrow(/stopFileWhen: expected a stopFile to go with it/);
    expect(() => new ShutdownCheckPlugin({ shutdownToken: [] })).toThrow(/ShutdownCheckPlugin shutdownToken: expected a non-empty string or an array of them/);
    expect(() => new ShutdownCheckPlugin({ predicate: 'yes' as never })).toThrow(/ShutdownCheckPlugin predicate: expected a function/);
    expect(() => new ShutdownCheckPlugin({ drainBacklg: true } as never)).toThrow(/ShutdownCheckPlugin drainBacklg: unknown option/);
  });
});

describe('SpareChildrenPlugin', () => {
  it('checks its options', () => {
    expect(() => new SpareChildrenPlugin({ min: 5, max: 2 })).toThrow(/SpareChildrenPlugin: min \(5\) must not exceed max \(2\)/);
    expect(() => new SpareChildrenPlugin({ backoffInitial: 0 })).toThrow(/SpareChildrenPlugin backoffInitial: expected a positive integer, got 0/);
    expect(() => new SpareChildrenPlugin({ maxSpawnRate: 1.5 })).toThrow(/SpareChildrenPlugin maxSpawnRate/);
    expect(() => new SpareChildrenPlugin({ slots: 2 } as never)).toThrow(/SpareChildrenPlugin slots: unknown option/);
  });
});

describe('every plugin refusal, word for word', () => {
  const PLUGINS = { AbruptOverloadPlugin, GracefulOverloadPlugin, LoggerPlugin, RecyclePlugin, ShutdownCheckPlugin, SpareChildrenPlugin } as const;
  const cases: [keyof typeof PLUGINS, unknown, string][] = [
    ['AbruptOverloadPlugin', null, 'AbruptOverloadPlugin: expected an options object, got null'],
    ['AbruptOverloadPlugin', [], 'AbruptOverloadPlugin: expected an options object, got []'],
    ['AbruptOverloadPlugin', 'x', 'AbruptOverloadPlugin: expected an options object, got "x"'],
    ['AbruptOverloadPlugin', { retryAfter: -1 }, 'AbruptOverloadPlugin retryAfter: expected a non-negative integer (seconds), got -1'],
    ['AbruptOverloadPlugin', { retryAfter: 1.5 }, 'AbruptOverloadPlugin retryAfter: expected a non-negative integer (seconds), got 1.5'],
    ['AbruptOverloadPlugin', { response: 42 }, 'AbruptOverloadPlugin response: expected a string, a Buffer or "http-503", got 42'],
    ['AbruptOverloadPlugin', { bogus: 1 }, 'AbruptOverloadPlugin bogus: unknown option (known: response, retryAfter)'],
    ['GracefulOverloadPlugin', null, 'GracefulOverloadPlugin: takes no options, got null'],
    ['GracefulOverloadPlugin', { a: 1 }, 'GracefulOverloadPlugin: takes no options, got {"a":1}'],
    ['LoggerPlugin', null, 'LoggerPlugin: expected an options object, got null'],
    ['LoggerPlugin', [], 'LoggerPlugin: expected an options object, got []'],
    ['LoggerPlugin', { levl: 1 }, 'LoggerPlugin levl: unknown option (known: logger, level, format, stream)'],
    ['LoggerPlugin', { level: 'verbose' }, 'LoggerPlugin level: expected one of error, warn, info, debug, got "verbose"'],
    ['LoggerPlugin', { logger: { info() {} } }, 'LoggerPlugin logger: expected an object with error/warn/info/debug methods, missing error, warn, debug'],
    ['LoggerPlugin', { logger: null }, 'LoggerPlugin logger: expected an object with error/warn/info/debug methods, missing error, warn, info, debug'],
    ['LoggerPlugin', { logger: console, format: 'json' }, 'LoggerPlugin: format and stream configure a new logger; they cannot be combined with logger'],
    ['LoggerPlugin', { logger: console, stream: { write() {} } }, 'LoggerPlugin: format and stream configure a new logger; they cannot be combined with logger'],
    ['LoggerPlugin', { format: 'xml' }, 'LoggerPlugin format: expected "json", "pretty" or "auto", got "xml"'],
    ['LoggerPlugin', { stream: {} }, 'LoggerPlugin stream: expected a writable stream (an object with write()), got {}'],
    ['LoggerPlugin', { stream: null }, 'LoggerPlugin stream: expected a writable stream (an object with write()), got null'],
    ['RecyclePlugin', null, 'RecyclePlugin: expected an options object, got null'],
    ['RecyclePlugin', [], 'RecyclePlugin: expected an options object, got []'],
    ['RecyclePlugin', { bogus: 1 }, 'RecyclePlugin bogus: unknown option (known: maxConnectionsPerChild, jitter, maxChildAge, maxChildMemory, idleChildTimeout)'],
    ['RecyclePlugin', { maxConnectionsPerChild: -1 }, 'RecyclePlugin maxConnectionsPerChild: expected a non-negative integer, got -1'],
    ['RecyclePlugin', { maxChildAge: -1 }, 'RecyclePlugin maxChildAge: expected a non-negative integer, got -1'],
    ['RecyclePlugin', { idleChildTimeout: 1.5 }, 'RecyclePlugin idleChildTimeout: expected a non-negative integer, got 1.5'],
    ['RecyclePlugin', { maxChildMemory: 'lots' }, 'RecyclePlugin maxChildMemory: expected a size in bytes or a string such as "512MB", got "lots"'],
    ['RecyclePlugin', { maxChildMemory: -1 }, 'RecyclePlugin maxChildMemory: expected a size in bytes or a string such as "512MB", got -1'],
    ['RecyclePlugin', { jitter: 1 }, 'RecyclePlugin jitter: only applies with maxConnectionsPerChild > 0 (jitter is 1, maxConnectionsPerChild is 0)'],
    ['RecyclePlugin', { maxConnectionsPerChild: 5, jitter: -1 }, 'RecyclePlugin jitter: expected a non-negative integer, got -1'],
    ['ShutdownCheckPlugin', null, 'ShutdownCheckPlugin: expected an options object, got null'],
    ['ShutdownCheckPlugin', [], 'ShutdownCheckPlugin: expected an options object, got []'],
    ['ShutdownCheckPlugin', { bogus: 1 }, 'ShutdownCheckPlugin bogus: unknown option (known: stopFile, stopFileWhen, maxUptime, idleShutdown, predicate, drainBacklog, shutdownToken, allowShutdownRequests, honourRequest)'],
    ['ShutdownCheckPlugin', { stopFile: '' }, 'ShutdownCheckPlugin stopFile: expected a file path, got ""'],
    ['ShutdownCheckPlugin', { stopFile: 5 }, 'ShutdownCheckPlugin stopFile: expected a file path, got 5'],
    ['ShutdownCheckPlugin', { stopFile: '/x', stopFileWhen: 'now' }, 'ShutdownCheckPlugin stopFileWhen: expected "appears" or "disappears", got "now"'],
    ['ShutdownCheckPlugin', { stopFileWhen: 'appears' }, 'ShutdownCheckPlugin stopFileWhen: expected a stopFile to go with it, got undefined'],
    ['ShutdownCheckPlugin', { predicate: 1 }, 'ShutdownCheckPlugin predicate: expected a function (stats, pool) => boolean, got 1'],
    ['ShutdownCheckPlugin', { honourRequest: 1 }, 'ShutdownCheckPlugin honourRequest: expected a function (request) => boolean, got 1'],
    ['ShutdownCheckPlugin', { allowShutdownRequests: 'yes' }, 'ShutdownCheckPlugin allowShutdownRequests: expected true or false, got "yes"'],
    ['ShutdownCheckPlugin', { shutdownToken: '' }, 'ShutdownCheckPlugin shutdownToken: expected a non-empty string or an array of them, got ""'],
    ['ShutdownCheckPlugin', { shutdownToken: [''] }, 'ShutdownCheckPlugin shutdownToken: expected a non-empty string or an array of them, got [""]'],
    ['ShutdownCheckPlugin', { shutdownToken: 5 }, 'ShutdownCheckPlugin shutdownToken: expected a non-empty string or an array of them, got 5'],
    ['ShutdownCheckPlugin', { maxUptime: -1 }, 'ShutdownCheckPlugin maxUptime: expected a non-negative integer, got -1'],
    ['ShutdownCheckPlugin', { idleShutdown: -1 }, 'ShutdownCheckPlugin idleShutdown: expected a non-negative integer, got -1'],
    ['ShutdownCheckPlugin', { drainBacklog: 1.5 }, 'ShutdownCheckPlugin drainBacklog: expected a non-negative integer, got 1.5'],
    ['SpareChildrenPlugin', null, 'SpareChildrenPlugin: expected an options object, got null'],
    ['SpareChildrenPlugin', [], 'SpareChildrenPlugin: expected an options object, got []'],
    ['SpareChildrenPlugin', { bogus: 1 }, 'SpareChildrenPlugin bogus: unknown option (known: start, min, max, minSpare, maxSpare, maxSpawnRate, backoffInitial, backoffMax, failedStartWindow)'],
    ['SpareChildrenPlugin', { max: 0 }, 'SpareChildrenPlugin max: expected a positive integer, got 0'],
    ['SpareChildrenPlugin', { min: 3, max: 2 }, 'SpareChildrenPlugin: min (3) must not exceed max (2)'],
    ['SpareChildrenPlugin', { start: 3, max: 2 }, 'SpareChildrenPlugin: start (3) must not exceed max (2)'],
    ['SpareChildrenPlugin', { minSpare: 3, maxSpare: 2 }, 'SpareChildrenPlugin: minSpare (3) must not exceed maxSpare (2)'],
    ['SpareChildrenPlugin', { backoffInitial: 500, backoffMax: 100 }, 'SpareChildrenPlugin: backoffInitial (500) must not exceed backoffMax (100)'],
    ['SpareChildrenPlugin', { backoffInitial: 0 }, 'SpareChildrenPlugin backoffInitial: expected a positive integer, got 0'],
    ['SpareChildrenPlugin', { maxSpawnRate: 0 }, 'SpareChildrenPlugin maxSpawnRate: expected a positive integer, got 0'],
    ['SpareChildrenPlugin', { failedStartWindow: -1 }, 'SpareChildrenPlugin failedStartWindow: expected a non-negative integer, got -1'],
    ['SpareChildrenPlugin', { start: -1 }, 'SpareChildrenPlugin start: expected a non-negative integer, got -1'],
    ['SpareChildrenPlugin', { minSpare: -1 }, 'SpareChildrenPlugin minSpare: expected a non-negative integer, got -1'],
    ['SpareChildrenPlugin', { maxSpare: -1 }, 'SpareChildrenPlugin maxSpare: expected a non-negative integer, got -1'],
    ['SpareChildrenPlugin', { min: -1 }, 'SpareChildrenPlugin min: expected a non-negative integer, got -1'],
    ['SpareChildrenPlugin', { backoffMax: 0 }, 'SpareChildrenPlugin backoffMax: expected a positive integer, got 0'],
    ['ShutdownCheckPlugin', { shutdownToken: ['a', ''] }, 'ShutdownCheckPlugin shutdownToken: expected a non-empty string or an array of them, got ["a",""]'],
    ...(['AbruptOverloadPlugin', 'LoggerPlugin', 'RecyclePlugin', 'ShutdownCheckPlugin', 'SpareChildrenPlugin'] as const).flatMap((name): [keyof typeof PLUGINS, unknown, string][] => [
      [name, 'x', `${name}: expected an options object, got "x"`],
      [name, 5, `${name}: expected an options object, got 5`],
    ]),
    ['GracefulOverloadPlugin', 5, 'GracefulOverloadPlugin: takes no options, got 5'],
  ];

  it.each(cases)('%s refuses %j', (name, options, expected) => {
    const Plugin = PLUGINS[name] as unknown as new (options: unknown) => unknown;
    let caught: unknown;
    try {
      new Plugin(options);
    } catch (error) {
      caught = error;
    }
    expect((caught as { code?: string } | undefined)?.code).toBe('PREFORK_ERR_OPTION_INVALID');
    expect((caught as Error).message).toBe(expected);
  });
});

describe('plugin options after defaults', () => {
  it('SpareChildrenPlugin fills in its defaults, lowered to a small max, and keeps the bounds it is given', () => {
    const defaults = { start: 4, min: 1, max: 32, minSpare: 2, maxSpare: 8, maxSpawnRate: 32, backoffInitial: 100, backoffMax: 30000, failedStartWindow: 1000 };
    expect(new SpareChildrenPlugin().options).toEqual(defaults);
    expect(new SpareChildrenPlugin({ max: 1 }).options).toEqual({ ...defaults, start: 1, min: 1, max: 1, minSpare: 1 });
    expect(new SpareChildrenPlugin({ max: 3, min: 0 }).options).toEqual({ ...defaults, start: 3, min: 0, max: 3, minSpare: 2 });
    const equal = { start: 2, min: 2, max: 2, minSpare: 3, maxSpare: 3, backoffInitial: 50, backoffMax: 50, maxSpawnRate: 1, failedStartWindow: 0 };
    expect(new SpareChildrenPlugin(equal).options).toEqual(equal);
  });

  it('RecyclePlugin fills in zeros (off), keeps what it is given, and reads memory sizes', () => {
    expect(new RecyclePlugin().options).toEqual({ maxConnectionsPerChild: 0, jitter: 0, maxChildAge: 0, maxChildMemory: 0, idleChildTimeout: 0 });
    expect(new RecyclePlugin({ maxConnectionsPerChild: 5, jitter: 2, maxChildAge: 60_000, maxChildMemory: 1024, idleChildTimeout: 1000 }).options).toEqual({
      maxConnectionsPerChild: 5,
      jitter: 2,
      maxChildAge: 60_000,
      maxChildMemory: 1024,
      idleChildTimeout: 1000,
    });
  });

  it('ShutdownCheckPlugin and LoggerPlugin accept every documented value', () => {
    expect(() => new ShutdownCheckPlugin({ stopFile: '/x', stopFileWhen: 'disappears', maxUptime: 0, idleShutdown: 0, drainBacklog: 0, predicate: () => false, honourRequest: () => true, allowShutdownRequests: false, shutdownToken: ['a', 'b'] })).not.toThrow();
    expect(() => new ShutdownCheckPlugin({ stopFile: '/x', stopFileWhen: 'appears', shutdownToken: 'a' })).not.toThrow();
    for (const format of ['json', 'pretty', 'auto'] as const) expect(() => new LoggerPlugin({ format, stream: { write() {} } })).not.toThrow();
    for (const level of ['error', 'warn', 'info', 'debug'] as const) expect(() => new LoggerPlugin({ level, logger: memoryLogger() })).not.toThrow();
  });

  it('AbruptOverloadPlugin answers an overload with the response it was given', () => {
    const decision = (options: ConstructorParameters<typeof AbruptOverloadPlugin>[0]) => {
      const pool = new Pool({ handler: fixture('control.mjs'), listen: '127.0.0.1:0', logger: memoryLogger(), plugins: [new AbruptOverloadPlugin(options)] });
      return pool.hooks.onOverload.call({ listener: 0, reason: 'no-child', stats: pool.stats() });
    };
    expect(decision(undefined)).toEqual({ strategy: 'abrupt', response: undefined });
    expect(decision({ response: 'busy\n' })).toEqual({ strategy: 'abrupt', response: Buffer.from('busy\n') });
    expect(decision({ response: Buffer.from([1, 2]) })).toEqual({ strategy: 'abrupt', response: Buffer.from([1, 2]) });
    expect(decision({ response: 'http-503', retryAfter: 0 })).toEqual({ strategy: 'abrupt', response: http503(0) });
    expect(decision({ response: 'http-503' })).toEqual({ strategy: 'abrupt', response: http503(1) });
    expect(http503(7).toString('latin1')).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n[\s\S]*Retry-After: 7\r\n/);
  });
});

describe('plugin durations Node timers cannot take', () => {
  it.each([
    ['SpareChildrenPlugin backoffMax', () => new SpareChildrenPlugin({ backoffMax: 2 ** 31 })],
    ['SpareChildrenPlugin failedStartWindow', () => new SpareChildrenPlugin({ failedStartWindow: 2 ** 31 })],
    ['ShutdownCheckPlugin maxUptime', () => new ShutdownCheckPlugin({ maxUptime: 2 ** 31 })],
    ['ShutdownCheckPlugin drainBacklog', () => new ShutdownCheckPlugin({ drainBacklog: 2 ** 31 })],
  ])('%s above 2^31 - 1 ms is refused', (key, make) => {
    expect(make).toThrow(`${key}: expected at most 2147483647 ms (the longest delay Node's timers take), got 2147483648`);
  });
});
