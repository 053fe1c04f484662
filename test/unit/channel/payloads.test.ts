import { describe, expect, it } from 'vitest';
import { clip, MAX_LABEL_LENGTH, MAX_LOG_FIELDS, MAX_STACK_LENGTH, MAX_TEXT_LENGTH, parseErrorReport, parseExitingReason, parseLogLine, parseShutdownRequest, shapeErrorReport, shapeLogLine } from '../../../src/channel/payloads.js';

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

describe('the other payloads a child sends', () => {
  it.each([
    ['a shutdown request', parseShutdownRequest, undefined, { reason: undefined, token: undefined }],
    ['a shutdown request', parseShutdownRequest, { reason: 'done', token: 't' }, { reason: 'done', token: 't' }],
    ['a retirement', parseExitingReason, { reason: 'old' }, { reason: 'old' }],
    ['an error report', parseErrorReport, { message: 'm', where: 'request' }, { message: 'm', where: 'request' }],
    ['an error report', parseErrorReport, { message: 'm', stack: 's', code: 'E', where: 'init' }, { message: 'm', stack: 's', code: 'E', where: 'init' }],
  ] as const)('accepts %s such as %j', (_name, parse, payload, expected) => {
    expect((parse as (payload: unknown) => unknown)(payload)).toEqual(expected);
  });

  it.each([
    [parseShutdownRequest, { reason: 1 }, 'a shutdown reason must be a string'],
    [parseShutdownRequest, { token: 'x'.repeat(MAX_LABEL_LENGTH + 1) }, `a shutdown token is longer than ${MAX_LABEL_LENGTH} characters`],
    [parseShutdownRequest, { reason: 'r', extra: 1 }, 'a shutdown request payload has an unknown key "extra"'],
    [parseShutdownRequest, 'stop', 'a shutdown request payload must be an object'],
    [parseExitingReason, { reason: 'x'.repeat(MAX_TEXT_LENGTH + 1) }, `a retirement reason is longer than ${MAX_TEXT_LENGTH} characters`],
    [parseErrorReport, undefined, 'an error report payload must be an object'],
    [parseErrorReport, { message: 'm' }, 'where an error happened must be a string'],
    [parseErrorReport, { message: 'm', where: 'w', stack: 5 }, 'an error stack must be a string'],
    [parseLogLine, { level: 'info', message: 'x'.repeat(MAX_TEXT_LENGTH + 1) }, `a log message is longer than ${MAX_TEXT_LENGTH} characters`],
    [parseLogLine, { level: 'info', message: 'm', fields: Object.fromEntries(Array.from({ length: MAX_LOG_FIELDS + 1 }, (_, i) => [i, i])) }, `a log line has more than ${MAX_LOG_FIELDS} fields`],
  ] as const)('%o refuses %j', (parse, payload, problem) => {
    expect((parse as (payload: unknown) => unknown)(payload)).toBe(problem);
  });

  it('what the child runtime shapes always passes the parent’s checks, whatever the handler logged or threw', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const lines = [
      shapeLogLine('info', 'x'.repeat(MAX_TEXT_LENGTH * 2), Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, i]))),
      shapeLogLine('warn', { toString: () => 'object message' }, { cyclic, big: 1n }),
      shapeLogLine('debug', 'm', 'not an object'),
    ];
    for (const line of lines) expect(parseLogLine(JSON.parse(JSON.stringify(line)))).toEqual(line);
    expect(lines[0]!.message).toHaveLength(MAX_TEXT_LENGTH);
    expect(Object.keys(lines[0]!.fields!)).toHaveLength(MAX_LOG_FIELDS);
    expect(lines[1]).toEqual({ level: 'warn', message: 'object message', fields: { cyclic: { self: '[Circular]' }, big: '1n' } });
    expect(lines[2]!.fields).toEqual({ value: 'not an object' });
    const report = shapeErrorReport({ message: 'm'.repeat(MAX_TEXT_LENGTH + 5), stack: 's'.repeat(MAX_STACK_LENGTH + 5), code: 42 }, 'request');
    expect(parseErrorReport(JSON.parse(JSON.stringify(report)))).toEqual(report);
    expect(report.code).toBe('42');
  });
});

describe('the bounds, exactly', () => {
  it('clip keeps a text of exactly the limit and cuts one longer, marking the cut', () => {
    expect(clip('abc', 3)).toBe('abc');
    expect(clip('abcd', 3)).toBe('ab…');
    expect(clip(42, 5)).toBe('42');
  });

  it('optional strings may be absent or empty; a label of exactly 256 characters passes, 257 does not', () => {
    expect(parseShutdownRequest({})).toEqual({ reason: undefined, token: undefined });
    expect(parseShutdownRequest({ reason: '', token: '' })).toEqual({ reason: '', token: '' });
    expect(parseShutdownRequest({ token: 't'.repeat(MAX_LABEL_LENGTH) })).toEqual({ reason: undefined, token: 't'.repeat(MAX_LABEL_LENGTH) });
    expect(parseExitingReason(undefined)).toEqual({ reason: undefined });
    expect(parseExitingReason({ reason: 1 })).toBe('a retirement reason must be a string');
    expect(parseExitingReason([])).toBe('a retirement payload must be an object');
    expect(parseErrorReport({ message: 'm', where: 'w', code: 5 })).toBe('an error code must be a string');
    expect(parseErrorReport({ message: 'm', where: 'w'.repeat(MAX_LABEL_LENGTH + 1) })).toBe(`where an error happened is longer than ${MAX_LABEL_LENGTH} characters`);
    expect(parseErrorReport({ message: 'm', where: 'w', stack: 's'.repeat(MAX_STACK_LENGTH) })).toMatchObject({ stack: 's'.repeat(MAX_STACK_LENGTH) });
    expect(parseErrorReport({ message: 'm', where: 'w', stack: 's'.repeat(MAX_STACK_LENGTH + 1) })).toBe(`an error stack is longer than ${MAX_STACK_LENGTH} characters`);
    expect(parseErrorReport({ message: 'm', where: 'w' })).toStrictEqual({ message: 'm', where: 'w' });
  });

  it('names an unknown key cut to a label’s length', () => {
    const key = 'k'.repeat(MAX_LABEL_LENGTH + 50);
    expect(parseExitingReason({ [key]: 1 })).toBe(`a retirement payload has an unknown key ${JSON.stringify(key.slice(0, MAX_LABEL_LENGTH))}`);
  });

  it('shapes a log line without fields as one, and keeps exactly 64 fields whole', () => {
    expect(shapeLogLine('info', 'm', undefined)).toStrictEqual({ level: 'info', message: 'm' });
    expect(shapeLogLine('info', 'm', null)).toStrictEqual({ level: 'info', message: 'm' });
    const sixtyFour = Object.fromEntries(Array.from({ length: MAX_LOG_FIELDS }, (_, i) => [`k${i}`, i]));
    expect(shapeLogLine('info', 'm', sixtyFour).fields).toEqual(sixtyFour);
    expect(shapeLogLine('info', 'x'.repeat(MAX_TEXT_LENGTH), undefined).message).toBe('x'.repeat(MAX_TEXT_LENGTH));
  });

  it('shapes an error report from whatever was thrown: no message, a non-string stack or code', () => {
    expect(shapeErrorReport({}, 'request')).toStrictEqual({ message: 'unknown error', where: 'request' });
    expect(shapeErrorReport({ message: 'm', stack: 5, code: { x: 1 } }, 'init')).toStrictEqual({ message: 'm', where: 'init' });
    expect(shapeErrorReport({ message: 'm', stack: 's', code: 'E_X' }, 'w'.repeat(MAX_LABEL_LENGTH + 9))).toStrictEqual({ message: 'm', stack: 's', code: 'E_X', where: `${'w'.repeat(MAX_LABEL_LENGTH - 1)}…` });
  });
});
