import { describe, expect, it } from 'vitest';
import { jsonSafe } from '../../src/jsonSafe.js';
import { createLogger } from '../../src/logger.js';

function capture(format: 'json' | 'pretty'): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const logger = createLogger({ format, base: { pid: 7 }, stream: { write: (line: string) => void lines.push(line) } });
  return { lines, logger };
}

describe('createLogger', () => {
  it('JSON: fields named time, level or msg never replace the line’s own', () => {
    const { lines, logger } = capture('json');
    logger.info('real', { time: 'never', level: 'error', msg: 'forged', other: 1 });
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 'info', msg: 'real', pid: 7, other: 1, 'field.time': 'never', 'field.level': 'error', 'field.msg': 'forged' });
    expect(line.time).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('pretty: one line per call, whatever newlines the message and the values hold', () => {
    const { lines, logger } = capture('pretty');
    logger.warn('first\nERROR forged line', { note: 'a\nb', plain: 'word', level: 'error' });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.split('\n')).toEqual([expect.any(String), '']);
    expect(lines[0]).toMatch(/ WARN {2}first\\nERROR forged line pid=7 note="a\\nb" plain=word field\.level=error\n$/);
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
