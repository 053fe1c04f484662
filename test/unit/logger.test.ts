import { hostname } from 'node:os';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { jsonSafe } from '../../src/jsonSafe.js';
import { createLogger, fromPino, isPinoLogger, LOG_LEVEL_VALUES } from '../../src/logger.js';

function capture(format: 'json' | 'pretty', level: 'error' | 'warn' | 'info' | 'debug' = 'info'): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const logger = createLogger({ format, level, base: { service: 'api' }, stream: { write: (line: string) => void lines.push(line) } });
  return { lines, logger };
}

describe('createLogger', () => {
  it('JSON: a line has pino\'s shape and key order: level, time, pid, hostname, msg, then the fields', () => {
    const { lines, logger } = capture('json');
    const before = Date.now();
    logger.info('listening', { port: 8080, 1: 'integer-like key', nested: { a: 1 } });
    const after = Date.now();
    expect(lines).toHaveLength(1);
    // On the text: a parsed object would list the integer-like key "1" first whatever the line says.
    expect(lines[0]!.replace(/"time":\d+,/, '"time":T,')).toBe(
      `{"level":30,"time":T,"pid":${process.pid},"hostname":${JSON.stringify(hostname())},"msg":"listening","1":"integer-like key","service":"api","port":8080,"nested":{"a":1}}\n`,
    );
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(line).toEqual({ level: 30, time: expect.any(Number), pid: process.pid, hostname: hostname(), msg: 'listening', 1: 'integer-like key', service: 'api', port: 8080, nested: { a: 1 } });
    expect(line.time).toBeGreaterThanOrEqual(before);
    expect(line.time).toBeLessThanOrEqual(after);
  });

  it('JSON: each level is written as pino\'s number (debug 20, info 30, warn 40, error 50)', () => {
    const { lines, logger } = capture('json', 'debug');
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    expect(lines.map((text) => JSON.parse(text) as { level: number; msg: string }).map(({ level, msg }) => [level, msg])).toEqual([
      [20, 'd'],
      [30, 'i'],
      [40, 'w'],
      [50, 'e'],
    ]);
    expect(LOG_LEVEL_VALUES).toEqual({ debug: 20, info: 30, warn: 40, error: 50 });
  });

  it('JSON: a line with no fields ends after msg; lines below the level are dropped', () => {
    const lines: string[] = [];
    const logger = createLogger({ format: 'json', level: 'warn', stream: { write: (line: string) => void lines.push(line) } });
    logger.info('dropped');
    logger.warn('kept');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\{"level":40,"time":\d+,"pid":\d+,"hostname":"[^"]*","msg":"kept"\}\n$/);
  });

  it('JSON: fields named level, time, pid, hostname or msg never replace the line’s own', () => {
    const { lines, logger } = capture('json');
    logger.info('real', { time: 'never', level: 'error', msg: 'forged', pid: 4242, hostname: 'elsewhere', other: 1 });
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(line).toEqual({
      level: 30,
      time: expect.any(Number),
      pid: process.pid,
      hostname: hostname(),
      msg: 'real',
      service: 'api',
      'field.time': 'never',
      'field.level': 'error',
      'field.msg': 'forged',
      'field.pid': 4242,
      'field.hostname': 'elsewhere',
      other: 1,
    });
    // One key each: no second "pid" that a JSON parser would let win.
    expect(lines[0]!.match(/"pid":/g)).toHaveLength(1);
  });

  it('pretty: one line per call, whatever newlines the message and the values hold', () => {
    const { lines, logger } = capture('pretty');
    logger.warn('first\nERROR forged line', { note: 'a\nb', plain: 'word', level: 'error', pid: 4242 });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.split('\n')).toEqual([expect.any(String), '']);
    expect(lines[0]).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z WARN  first\\\\nERROR forged line pid=${process.pid} service=api note="a\\\\nb" plain=word field\\.level=error field\\.pid=4242\\n$`));
  });

  it('writes fields JSON cannot (a cycle, a BigInt, a throwing getter) instead of throwing', () => {
    const { lines, logger } = capture('json');
    const cyclic: Record<string, unknown> = { name: 'c' };
    cyclic.self = cyclic;
    const unreadable = Object.defineProperty({}, 'x', { enumerable: true, get: () => { throw new Error('no'); } });
    expect(() => logger.error('odd', { cyclic, big: 2n ** 70n, unreadable })).not.toThrow();
    expect(JSON.parse(lines[0]!)).toMatchObject({ cyclic: { name: 'c', self: '[Circular]' }, big: '1180591620717411303424n', unreadable: { x: '[Unreadable]' } });
  });
});

describe('fromPino', () => {
  function pinoLines(level: string): { lines: string[]; logger: pino.Logger } {
    const lines: string[] = [];
    return { lines, logger: pino({ level }, { write: (line: string) => void lines.push(line) }) };
  }

  it('calls a real pino logger as pino is called, (fields, message), fields named like its own keys as field.<name>', () => {
    const { lines, logger } = pinoLines('debug');
    expect(isPinoLogger(logger)).toBe(true);
    const adapted = fromPino(logger);
    adapted.debug('child exited', { child: 1, pid: 4242, msg: 'forged' });
    adapted.error('plain');
    expect(lines.map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual([
      { level: 20, time: expect.any(Number), pid: process.pid, hostname: hostname(), msg: 'child exited', child: 1, 'field.pid': 4242, 'field.msg': 'forged' },
      { level: 50, time: expect.any(Number), pid: process.pid, hostname: hostname(), msg: 'plain' },
    ]);
    expect(lines[0]!.match(/"pid":/g)).toHaveLength(1);
  });

  it('tells the level the pino logger writes at now, as one of prefork\'s', () => {
    const { logger } = pinoLines('warn');
    const adapted = fromPino(logger);
    expect(adapted.level).toBe('warn');
    logger.level = 'trace';
    expect(adapted.level).toBe('debug');
    logger.level = 'silent';
    expect(adapted.level).toBe('error');
    // bunyan's shape: level() returns its number, the same numbers as pino's.
    const bunyanLike = { level: () => 30, error() {}, warn() {}, info() {}, debug() {} };
    expect(fromPino(bunyanLike).level).toBe('info');
    expect(fromPino({ error() {}, warn() {}, info() {}, debug() {} }).level).toBeUndefined();
  });

  it('adapts once, knows console is no pino logger, and refuses an object without the four methods', () => {
    const adapted = fromPino(pinoLines('info').logger);
    expect(fromPino(adapted as never)).toBe(adapted);
    expect(isPinoLogger(adapted)).toBe(false);
    expect(isPinoLogger(console)).toBe(false);
    expect(isPinoLogger(null)).toBe(false);
    expect(() => fromPino({ info() {} } as never)).toThrow(expect.objectContaining({ code: 'PREFORK_ERR_OPTION_INVALID', message: 'fromPino: expected a logger with error/warn/info/debug methods, missing error, warn, debug' }));
  });
});

describe('jsonSafe', () => {
  it('keeps a shared object that is not a cycle, and names what is too deep', () => {
    const shared = { n: 1 };
    expect(jsonSafe({ a: shared, b: shared })).toEqual({ a: { n: 1 }, b: { n: 1 } });
    let deep: Record<string, unknown> = { end: true };
    for (let i = 0; i < 10; i++) deep = { deep };
    expect(JSON.stringify(jsonSafe(deep))).toContain('"[Object]"');
    expect(jsonSafe([new Error('boom'), undefined, () => 1])).toEqual([{ name: 'Error', message: 'boom' }, null, null]);
  });
});
