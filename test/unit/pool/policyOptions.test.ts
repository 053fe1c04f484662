import { describe, expect, it } from 'vitest';
import { sectionScope } from '../../../src/pool/optionChecks.js';
import { http503, parseMemorySize, resolveOverloadOptions, resolveRecycleSection, resolveSpawningBounds, responseBytes } from '../../../src/pool/policyOptions.js';

const children = sectionScope('children');

describe('resolveSpawningBounds', () => {
  it('defaults each bound, tied to the others as documented', () => {
    expect(resolveSpawningBounds({}, children)).toEqual({ start: 4, min: 1, max: 32, minSpare: 2, maxSpare: 8 });
    expect(resolveSpawningBounds({ max: 1 }, children)).toEqual({ start: 1, min: 1, max: 1, minSpare: 1, maxSpare: 8 });
    expect(resolveSpawningBounds({ start: 40 }, children)).toMatchObject({ start: 40, max: 40 });
    expect(resolveSpawningBounds({ minSpare: 12 }, children)).toMatchObject({ minSpare: 12, maxSpare: 12 });
    // 0 is a value, not "unset".
    expect(resolveSpawningBounds({ start: 0, min: 0, minSpare: 0, maxSpare: 0 }, children)).toEqual({ start: 0, min: 0, max: 32, minSpare: 0, maxSpare: 0 });
  });
});

describe('resolveOverloadOptions', () => {
  it.each([
    [undefined, { strategy: 'graceful' }],
    [null, { strategy: 'graceful' }],
    ['graceful', { strategy: 'graceful' }],
    [{ strategy: 'graceful' }, { strategy: 'graceful' }],
    ['abrupt', { strategy: 'abrupt', retryAfter: 1 }],
    [{ strategy: 'abrupt' }, { strategy: 'abrupt', retryAfter: 1 }],
    [{ strategy: 'abrupt', response: 'busy', retryAfter: 0 }, { strategy: 'abrupt', response: 'busy', retryAfter: 0 }],
  ])('reads %j', (value, expected) => {
    expect(resolveOverloadOptions(value)).toEqual(expected);
  });

  const expected = 'overload: expected "graceful", "abrupt" or { strategy: "abrupt", response, retryAfter }, got';
  it.each([
    [['abrupt'], `${expected} ["abrupt"]`],
    [{ response: 'x' }, `${expected} {"response":"x"}`],
    [{ strategy: 'graceful', response: 'x' }, 'overload: expected no response or retryAfter with the graceful strategy, got {"strategy":"graceful","response":"x"}'],
    [{ strategy: 'abrupt', retryAfter: 1.5 }, 'overload.retryAfter: expected a non-negative integer (seconds), got 1.5'],
    [{ strategy: 'abrupt', retryAfter: '2' }, 'overload.retryAfter: expected a non-negative integer (seconds), got "2"'],
    [{ strategy: 'abrupt', response: 5 }, 'overload.response: expected a string, a Buffer or "http-503", got 5'],
  ])('refuses %j', (value, message) => {
    expect(() => resolveOverloadOptions(value)).toThrow(message);
  });

  it('turns the response into the bytes written: http-503 with its Retry-After, a string as UTF-8, a Buffer as is', () => {
    expect(responseBytes('http-503', 9)!.toString()).toBe(http503(9).toString());
    expect(http503(9).toString()).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\nRetry-After: 9\r\nContent-Type: text\/plain\r\nContent-Length: 62\r\nConnection: close\r\n\r\nService Unavailable: the server is overloaded, retry shortly\.\n$/);
    expect(responseBytes('né', 1)).toEqual(Buffer.from('né', 'utf8'));
    const bytes = Buffer.from([1, 2]);
    expect(responseBytes(bytes, 1)).toBe(bytes);
    expect(responseBytes(undefined, 1)).toBeUndefined();
  });
});

describe('recycling options', () => {
  it('an absent section is no recycling; a present one has every default explicit', () => {
    expect(resolveRecycleSection(undefined)).toBeUndefined();
    expect(resolveRecycleSection({})).toEqual({ maxConnectionsPerChild: 0, jitter: 0, maxChildAge: 0, maxChildMemory: 0, idleChildTimeout: 0 });
    expect(() => resolveRecycleSection({ maxChildMemry: 1 })).toThrow(/^recycle\.maxChildMemry: unknown option/);
  });

  it.each([
    [0, 0],
    [1024, 1024],
    ['512', 512],
    ['512b', 512],
    ['1k', 1024],
    ['2KiB', 2048],
    [' 1.5 MB ', 1.5 * 1024 ** 2],
    ['1G', 1024 ** 3],
    ['0.25gib', 0.25 * 1024 ** 3],
  ])('parseMemorySize reads %j as %d bytes', (value, bytes) => {
    expect(parseMemorySize('k', value)).toBe(bytes);
  });

  it.each([-1, 1.5, '1.5.5MB', '12 XB', 'MB', '1MB extra', 'x1MB', null, {}])('parseMemorySize refuses %j, naming the key', (value) => {
    expect(() => parseMemorySize('recycle.maxChildMemory', value)).toThrow(/^recycle\.maxChildMemory: expected a size in bytes or a string such as "512MB", got /);
  });
});
