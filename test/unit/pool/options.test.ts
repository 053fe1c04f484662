import { describe, expect, it } from 'vitest';
import { isPreforkError } from '../../../src/errors.js';
import { parseListen, resolvePoolOptions, type PoolOptions } from '../../../src/pool/options.js';

const base = { handler: '/srv/app.js', listen: '127.0.0.1:8080' };

function message(options: Record<string, unknown>): string {
  try {
    resolvePoolOptions({ ...base, ...options } as PoolOptions);
  } catch (error) {
    expect(isPreforkError(error)).toBe(true);
    return (error as Error).message;
  }
  throw new Error('expected an error');
}

describe('pool options', () => {
  it('parses every listen form', () => {
    expect(parseListen('127.0.0.1:8080')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 8080 });
    expect(parseListen('[::1]:0')).toEqual({ kind: 'tcp', host: '::1', port: 0 });
    expect(parseListen(':9000')).toEqual({ kind: 'tcp', host: '0.0.0.0', port: 9000 });
    expect(parseListen('localhost:1')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 1 });
    expect(parseListen('unix:/run/app.sock')).toEqual({ kind: 'unix', path: '/run/app.sock', mode: undefined });
    expect(parseListen({ path: '/run/a.sock', mode: '660' })).toEqual({ kind: 'unix', path: '/run/a.sock', mode: 0o660 });
    expect(parseListen('fd:3')).toEqual({ kind: 'fd', fd: 3 });
    expect(parseListen({ fd: 4 })).toEqual({ kind: 'fd', fd: 4 });
    expect(parseListen('systemd')).toEqual({ kind: 'systemd' });
    expect(parseListen({ port: 80 })).toEqual({ kind: 'tcp', host: '0.0.0.0', port: 80 });
  });

  it('refuses bad listen addresses naming the key and value', () => {
    expect(message({ listen: 'nonsense' })).toMatch(/^listen: expected .*got "nonsense"/);
    expect(message({ listen: ['127.0.0.1:1', '1.2.3.4:70000'] })).toMatch(/^listen\[1\]: expected a port from 0 to 65535, got "1.2.3.4:70000"/);
    expect(message({ listen: { path: '/x', mode: 'rw' } })).toMatch(/^listen.mode: expected a file mode/);
    expect(message({ listen: [] })).toMatch(/^listen: expected at least one address/);
  });

  it('names the key path, the expectation and the value of a wrong type', () => {
    expect(message({ children: { max: 'ten' } })).toBe('children.max: expected a positive integer, got "ten"');
    expect(message({ timeouts: { accept: -1 } })).toBe('timeouts.accept: expected a positive integer, got -1');
    expect(message({ children: { slots: 0 } })).toMatch(/^children.slots: expected an integer from 1 to 65535, got 0/);
    expect(message({ backlog: 1.5 })).toMatch(/^backlog: expected an integer from 1 to 65535, got 1.5/);
    expect(message({ overload: 'panic' })).toMatch(/^overload: expected "graceful", "abrupt"/);
    expect(message({ env: { A: 1 } })).toBe('env.A: expected a string, got 1');
    expect(message({ protocol: 'gopher' })).toMatch(/^protocol: expected one of "raw", "http", "scgi", got "gopher"/);
    expect(message({ protocol: 'http', http: { keepAliveTimeout: -1 } })).toMatch(/^http.keepAliveTimeout: expected a non-negative integer/);
    expect(message({ protocol: 'scgi', scgi: { maxHeaderSize: 'big' } })).toMatch(/^scgi.maxHeaderSize: expected/);
  });

  it('refuses unknown keys and impossible combinations', () => {
    expect(message({ chidren: {} })).toMatch(/^chidren: unknown option/);
    expect(message({ children: { maximum: 3 } })).toMatch(/^children.maximum: unknown option/);
    expect(message({ children: { min: 5, max: 2 } })).toBe('children.min (5) must not exceed children.max (2)');
    expect(message({ children: { minSpare: 5, maxSpare: 2 } })).toBe('children.minSpare (5) must not exceed children.maxSpare (2)');
    expect(message({ children: { start: 9, max: 4 } })).toBe('children.start (9) must not exceed children.max (4)');
    expect(message({ plugins: [{}] })).toMatch(/^plugins\[0\]: expected a plugin/);
  });

  it('applies documented defaults', () => {
    const resolved = resolvePoolOptions(base);
    expect(resolved.children).toEqual({ start: 4, min: 1, max: 32, minSpare: 2, maxSpare: 8, slots: 1 });
    expect(resolved.timeouts).toEqual({ accept: 5000, start: 30000, stop: 30000 });
    expect(resolved).toMatchObject({ protocol: 'raw', backlog: 511, tickInterval: 1000, overload: { strategy: 'graceful' } });
  });
});
