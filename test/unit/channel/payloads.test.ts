import { describe, expect, it } from 'vitest';
import { parseLogLine } from '../../../src/channel/payloads.js';

describe('parseLogLine', () => {
  it('accepts the four levels with a string message and plain-object fields', () => {
    for (const level of ['error', 'warn', 'info', 'debug']) {
      expect(parseLogLine({ level, message: 'm', fields: { a: 1 } })).toEqual({ level, message: 'm', fields: { a: 1 } });
    }
    expect(parseLogLine({ level: 'info', message: 'm' })).toStrictEqual({ level: 'info', message: 'm' });
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { a: 1 });
    expect(parseLogLine({ level: 'warn', message: 'm', fields: bare })).toStrictEqual({ level: 'warn', message: 'm', fields: bare });
  });

  it.each([
    ['configure', /"configure" is not one of/],
    ['setStream', /"setStream" is not one of/],
    ['constructor', /"constructor" is not one of/],
    ['__proto__', /"__proto__" is not one of/],
    ['toString', /"toString" is not one of/],
    [7, /7 is not one of/],
  ])('refuses the level %j, which would pick a method that is not a level', (level, problem) => {
    expect(parseLogLine({ level, message: 'm' })).toMatch(problem);
  });

  it('refuses a payload that is not an object, a message that is not a string, and fields that are not a plain object', () => {
    expect(parseLogLine(null)).toBe('a log payload must be an object');
    expect(parseLogLine(undefined)).toBe('a log payload must be an object');
    expect(parseLogLine(5)).toBe('a log payload must be an object');
    expect(parseLogLine('info')).toBe('a log payload must be an object');
    expect(parseLogLine({ level: 'info', message: 'm', fields: new Date(0) })).toBe('log fields must be a plain object');
    expect(parseLogLine({ level: 'info', message: 'm', fields: null })).toBe('log fields must be a plain object');
    expect(parseLogLine(['info', 'm'])).toBe('a log payload must be an object');
    expect(parseLogLine({ level: 'info', message: 42 })).toBe('a log message must be a string');
    expect(parseLogLine({ level: 'info', message: 'm', fields: [1] })).toBe('log fields must be a plain object');
    expect(parseLogLine({ level: 'info', message: 'm', fields: 'x' })).toBe('log fields must be a plain object');
  });
});
