import { availableParallelism } from 'node:os';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { isPreforkError } from '../../../src/errors.js';
import { createLogger, levelGate } from '../../../src/logger.js';
import { parseListen, resolvePoolOptions, type PoolOptions } from '../../../src/pool/options.js';
import { Pool } from '../../../index.js';

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

  it('new Pool refuses a listener object with an unknown key, as PREFORK_ERR_OPTION_INVALID naming it', () => {
    const options = { handler: '/srv/app.js', listen: [{ host: '127.0.0.1', port: 9740, bogus: 1 }] } as unknown as PoolOptions;
    let caught: unknown;
    try {
      new Pool(options);
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({ code: 'PREFORK_ERR_OPTION_INVALID', message: 'listen[0].bogus: unknown option (known: host, port, tls)' });
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
    expect(resolved.children).toEqual({ start: 4, min: 1, max: 32, minSpare: 2, maxSpare: 8, slots: 1, connections: 256 });
    expect(resolved.timeouts).toEqual({ accept: 5000, start: 30000, stop: 30000, drain: 5000, metrics: 1000, heartbeat: 30000, connection: 0 });
    expect(resolved).toMatchObject({ protocol: 'raw', backlog: 511, tickInterval: 1000, overload: { strategy: 'graceful' } });
  });
});

describe('pool options: every default and every refusal, word for word', () => {
  const minimal = { handler: 'app.mjs', listen: ':8080', cwd: '/srv' };

  it('fills in every default', () => {
    expect(resolvePoolOptions(minimal as PoolOptions)).toEqual({
      handler: '/srv/app.mjs',
      listen: [{ kind: 'tcp', host: '0.0.0.0', port: 8080 }],
      // No TLS listener; the ticket key is made anyway (48 random bytes).
      tls: { listeners: [undefined], certificates: [], ticketKeys: expect.any(Buffer) },
      overload: { strategy: 'graceful' },
      recycle: undefined,
      protocol: 'raw',
      protocolOptions: {},
      backlog: 511,
      ordersPerWakeup: 1,
      acceptChain: 32,
      acceptChainChildren: 2 * availableParallelism(),
      acceptChainBatchMs: 1,
      parentScheduling: 'batch',
      deferAccept: 0,
      notsentLowat: 65536,
      children: { start: 4, min: 1, max: 32, minSpare: 2, maxSpare: 8, slots: 1, connections: 256 },
      timeouts: { accept: 5000, start: 30000, stop: 30000, drain: 5000, metrics: 1000, heartbeat: 30000, connection: 0 },
      tickInterval: 1000,
      plugins: [],
      defaultPlugins: true,
      logger: undefined,
      logLevel: 'info',
      env: {},
      execArgv: [],
      childMemoryReducer: false,
      cwd: '/srv',
      uid: undefined,
      gid: undefined,
      childStderr: 'pipe',
    });
  });

  it('derives the children defaults from the bounds given', () => {
    const children = (given: Record<string, number>) => resolvePoolOptions({ ...minimal, children: given } as PoolOptions).children;
    // A start above the default max raises max; a minSpare above the default maxSpare raises maxSpare.
    expect(children({ start: 40 })).toEqual({ start: 40, min: 1, max: 40, minSpare: 2, maxSpare: 8, slots: 1, connections: 256 });
    expect(children({ minSpare: 10 })).toEqual({ start: 4, min: 1, max: 32, minSpare: 10, maxSpare: 10, slots: 1, connections: 256 });
    // A small max lowers the defaults of start, min and minSpare to it.
    expect(children({ max: 1 })).toEqual({ start: 1, min: 1, max: 1, minSpare: 1, maxSpare: 8, slots: 1, connections: 256 });
    // A child may always hold as many connections as it has slots.
    expect(children({ slots: 300 }).connections).toBe(300);
    expect(children({ slots: 8, connections: 8 }).connections).toBe(8);
    expect(children({ max: 2, min: 0 })).toEqual({ start: 2, min: 0, max: 2, minSpare: 2, maxSpare: 8, slots: 1, connections: 256 });
    // The bounds themselves are accepted.
    expect(children({ min: 2, max: 2, start: 2, minSpare: 3, maxSpare: 3, slots: 65535 })).toMatchObject({ min: 2, max: 2, start: 2, slots: 65535 });
  });

  it('accepts each documented value at its bounds', () => {
    const resolved = resolvePoolOptions({
      ...minimal,
      listen: [':0', ':65535', 'fd:0', { port: 65535, host: 'localhost' }, { path: '/s', mode: 0o7777 }, { path: '/t', mode: 0 }, { path: '/u', mode: '0640' }, { systemd: true }, ' systemd '],
      backlog: 65535,
      ordersPerWakeup: 1024,
      acceptChain: 0,
      acceptChainChildren: 1,
      acceptChainBatchMs: 1000,
      parentScheduling: 'normal',
      deferAccept: 3600,
      notsentLowat: 0,
      tickInterval: 10,
      timeouts: { accept: 1, start: 1, stop: 0, drain: 0, metrics: 1000, heartbeat: 0, connection: 1 },
      overload: { strategy: 'abrupt', response: 'busy', retryAfter: 3 },
      logLevel: 'debug',
      env: { A: '1' },
      execArgv: ['--no-warnings'],
      childStderr: 'inherit',
      defaultPlugins: false,
      uid: 0,
      gid: 0,
      recycle: { maxConnectionsPerChild: 5 },
    } as PoolOptions);
    expect(resolved.listen).toEqual([
      { kind: 'tcp', host: '0.0.0.0', port: 0 },
      { kind: 'tcp', host: '0.0.0.0', port: 65535 },
      { kind: 'fd', fd: 0 },
      { kind: 'tcp', host: '127.0.0.1', port: 65535 },
      { kind: 'unix', path: '/s', mode: 0o7777 },
      { kind: 'unix', path: '/t', mode: 0 },
      { kind: 'unix', path: '/u', mode: 0o640 },
      { kind: 'systemd' },
      { kind: 'systemd' },
    ]);
    expect(resolved).toMatchObject({ backlog: 65535, ordersPerWakeup: 1024, acceptChain: 0, acceptChainChildren: 1, acceptChainBatchMs: 1000, parentScheduling: 'normal', deferAccept: 3600, notsentLowat: 0, tickInterval: 10, logLevel: 'debug', childStderr: 'inherit', defaultPlugins: false, uid: 0, gid: 0 });
    expect(resolved.timeouts).toEqual({ accept: 1, start: 1, stop: 0, drain: 0, metrics: 1000, heartbeat: 0, connection: 1 });
    expect(resolved.overload).toEqual({ strategy: 'abrupt', response: 'busy', retryAfter: 3 });
    // Read once, here: the recycling plugin gets these, every default made explicit.
    expect(resolved.recycle).toEqual({ maxConnectionsPerChild: 5, jitter: 0, maxChildAge: 0, maxChildMemory: 0, idleChildTimeout: 0 });
    expect(resolved.env).toEqual({ A: '1' });
    expect(resolved.execArgv).toEqual(['--no-warnings']);
    expect(resolvePoolOptions({ ...minimal, handler: '/abs/app.mjs', overload: 'abrupt' } as PoolOptions)).toMatchObject({ handler: '/abs/app.mjs', overload: { strategy: 'abrupt' } });
    expect(resolvePoolOptions({ ...minimal, overload: { strategy: 'graceful' } } as PoolOptions).overload).toEqual({ strategy: 'graceful' });
    expect(resolvePoolOptions({ ...minimal, listen: [{ path: '/m', mode: 0o640 }, 'fd:12'] } as PoolOptions).listen).toEqual([
      { kind: 'unix', path: '/m', mode: 0o640 },
      { kind: 'fd', fd: 12 },
    ]);
    expect(() => parseListen('nonsense')).toThrow(/^listen: expected "host:port"/);
  });

  const circular: Record<string, unknown> = {};
  circular.self = circular;
  const refusals: [string, unknown, string][] = [
    ['not an object', 'x', 'options: expected an object, got "x"'],
    ['an array', [], 'options: expected an object, got []'],
    ['an unknown key', { ...minimal, bogus: 1 }, 'bogus: unknown option (known: handler, listen, protocol, http, scgi, backlog, ordersPerWakeup, acceptChain, acceptChainChildren, acceptChainBatchMs, parentScheduling, deferAccept, notsentLowat, children, timeouts, tickInterval, status, overload, recycle, plugins, defaultPlugins, logger, logLevel, env, execArgv, childMemoryReducer, cwd, uid, gid, childStderr)'],
    ['no handler', { listen: ':1' }, 'handler: expected a module path, got undefined'],
    ['an empty handler', { handler: '', listen: ':1' }, 'handler: expected a module path, got ""'],
    ['a cwd that is not a string', { ...minimal, cwd: 5 }, 'cwd: expected a directory path, got 5'],
    ['no listen', { handler: 'a' }, 'listen: expected at least one address, got undefined'],
    ['an empty listen list', { ...minimal, listen: [] }, 'listen: expected at least one address, got []'],
    ['a bad entry in a listen list', { ...minimal, listen: [':1', 'nonsense'] }, 'listen[1]: expected "host:port", "[ipv6]:port", ":port", "unix:/path", "fd:N" or "systemd", got "nonsense"'],
    ['unix: without a path', { ...minimal, listen: 'unix:' }, 'listen: expected a socket path after "unix:", got "unix:"'],
    ['a port above 65535', { ...minimal, listen: ':70000' }, 'listen: expected a port from 0 to 65535, got ":70000"'],
    ['an empty socket path', { ...minimal, listen: { path: '' } }, 'listen.path: expected a socket path, got ""'],
    ['a socket path that is not a string', { ...minimal, listen: { path: 5 } }, 'listen.path: expected a socket path, got 5'],
    ['a mode that is not octal', { ...minimal, listen: { path: '/s', mode: '999' } }, 'listen.mode: expected a file mode such as "660" or 0o660, got "999"'],
    ['a mode with trailing text', { ...minimal, listen: { path: '/s', mode: '660x' } }, 'listen.mode: expected a file mode such as "660" or 0o660, got "660x"'],
    ['a mode with leading text', { ...minimal, listen: { path: '/s', mode: 'x660' } }, 'listen.mode: expected a file mode such as "660" or 0o660, got "x660"'],
    ['a mode above 0o7777', { ...minimal, listen: { path: '/s', mode: 0o10000 } }, 'listen.mode: expected a file mode such as "660" or 0o660, got 4096'],
    ['a negative mode', { ...minimal, listen: { path: '/s', mode: -1 } }, 'listen.mode: expected a file mode such as "660" or 0o660, got -1'],
    ['a fractional mode', { ...minimal, listen: { path: '/s', mode: 1.5 } }, 'listen.mode: expected a file mode such as "660" or 0o660, got 1.5'],
    ['a mode of another type', { ...minimal, listen: { path: '/s', mode: true } }, 'listen.mode: expected a file mode such as "660" or 0o660, got true'],
    ['an object port above 65535', { ...minimal, listen: { port: 65536 } }, 'listen.port: expected an integer from 0 to 65535, got 65536'],
    ['a host that is not a string', { ...minimal, listen: { port: 1, host: 5 } }, 'listen.host: expected an IP address, got 5'],
    ['an unknown key in a TCP listener object', { ...minimal, listen: [{ host: '127.0.0.1', port: 9740, bogus: 1 }] }, 'listen[0].bogus: unknown option (known: host, port, tls)'],
    ['a misspelt key in a TCP listener object, with a hint', { ...minimal, listen: { port: 1, hst: '::1' } }, 'listen.hst: unknown option; did you mean "host"? (known: host, port, tls)'],
    ['a misspelt kind key in a listener object, with a hint', { ...minimal, listen: { host: '::1', pot: 1 } }, 'listen.pot: unknown option; did you mean "port"? (known: host, port, tls, path, mode, fd, systemd)'],
    ['a key of another kind in a Unix listener object', { ...minimal, listen: { path: '/s', port: 1 } }, 'listen.port: unknown option (known: path, mode, tls)'],
    ['an unknown key in an fd listener object', { ...minimal, listen: { fd: 3, mode: '660' } }, 'listen.mode: unknown option (known: fd, tls)'],
    ['an unknown key in a systemd listener object', { ...minimal, listen: [':1', { systemd: true, names: ['web'] }] }, 'listen[1].names: unknown option (known: systemd, tls)'],
    ['an unknown key in the status listener object', { ...minimal, status: { listen: { host: '127.0.0.1', port: 9740, bogus: 1 } } }, 'status.listen.bogus: unknown option (known: host, port)'],
    ['a negative fd', { ...minimal, listen: { fd: -1 } }, 'listen.fd: expected a non-negative integer, got -1'],
    ['fd: without a number', { ...minimal, listen: 'fd:x' }, 'listen: expected "fd:N" with N a non-negative integer, got "fd:x"'],
    ['systemd: false', { ...minimal, listen: { systemd: false } }, 'listen: expected a listen address ("127.0.0.1:8080", "unix:/run/app.sock", { port }, { path }, { fd }), got {"systemd":false}'],
    ['a null listen', { ...minimal, listen: null }, 'listen: expected a listen address ("127.0.0.1:8080", "unix:/run/app.sock", { port }, { path }, { fd }), got null'],
    ['an empty listen object', { ...minimal, listen: {} }, 'listen: expected a listen address ("127.0.0.1:8080", "unix:/run/app.sock", { port }, { path }, { fd }), got {}'],
    ['an undefined entry in a listen list', { ...minimal, listen: [undefined] }, 'listen[0]: expected a listen address ("127.0.0.1:8080", "unix:/run/app.sock", { port }, { path }, { fd }), got undefined'],
    ['a protocol that is not a string', { ...minimal, protocol: 5 }, 'protocol: expected a protocol name, got 5'],
    ['children as an array', { ...minimal, children: [] }, 'children: expected an object, got []'],
    ['children null', { ...minimal, children: null }, 'children: expected an object, got null'],
    ['children as a string', { ...minimal, children: 'four' }, 'children: expected an object, got "four"'],
    ['an unknown children key', { ...minimal, children: { maxx: 1 } }, 'children.maxx: unknown option (known: start, min, max, minSpare, maxSpare, slots, connections)'],
    ['children.max 0', { ...minimal, children: { max: 0 } }, 'children.max: expected a positive integer, got 0'],
    ['a status listener on every interface', { ...minimal, status: { listen: ':9740' } }, `status.listen: expected a loopback address (127.0.0.0/8, ::1, localhost) or a Unix socket: the scoreboard is for the machine's own operators, got ":9740"`],
    ['a status section without listen', { ...minimal, status: {} }, 'status.listen: expected an address (a loopback one or a Unix socket), got undefined'],
    ['an unknown status key', { ...minimal, status: { listen: '127.0.0.1:1', port: 1 } }, 'status.port: unknown option (known: listen)'],
    ['children.connections below children.slots', { ...minimal, children: { slots: 8, connections: 4 } }, 'children.connections: expected an integer from 8 to 65535, got 4'],
    ['children.min above children.max', { ...minimal, children: { min: 3, max: 2 } }, 'children.min (3) must not exceed children.max (2)'],
    ['children.start above children.max', { ...minimal, children: { start: 3, max: 2 } }, 'children.start (3) must not exceed children.max (2)'],
    ['children.minSpare above children.maxSpare', { ...minimal, children: { minSpare: 3, maxSpare: 2 } }, 'children.minSpare (3) must not exceed children.maxSpare (2)'],
    ['children.slots 0', { ...minimal, children: { slots: 0 } }, 'children.slots: expected an integer from 1 to 65535, got 0'],
    ['children.slots above 65535', { ...minimal, children: { slots: 65536 } }, 'children.slots: expected an integer from 1 to 65535, got 65536'],
    ['an unknown timeouts key', { ...minimal, timeouts: { acept: 1 } }, 'timeouts.acept: unknown option (known: accept, start, stop, drain, metrics, heartbeat, connection)'],
    ['timeouts.accept 0', { ...minimal, timeouts: { accept: 0 } }, 'timeouts.accept: expected a positive integer, got 0'],
    ['timeouts.start 0', { ...minimal, timeouts: { start: 0 } }, 'timeouts.start: expected a positive integer, got 0'],
    ['timeouts.stop -1', { ...minimal, timeouts: { stop: -1 } }, 'timeouts.stop: expected a non-negative integer, got -1'],
    ['plugins that are not an array', { ...minimal, plugins: {} }, 'plugins: expected an array of plugins, got {}'],
    ['a plugin without apply', { ...minimal, plugins: [{}] }, 'plugins[0]: expected a plugin (an object with apply(pool)), got {}'],
    ['a null plugin', { ...minimal, plugins: [null] }, 'plugins[0]: expected a plugin (an object with apply(pool)), got null'],
    ['an unknown logLevel', { ...minimal, logLevel: 'verbose' }, 'logLevel: expected one of error, warn, info, debug, got "verbose"'],
    ['a logger without every level', { ...minimal, logger: { error() {}, warn() {}, info() {} } }, 'logger: expected an object with error/warn/info/debug methods, got {}'],
    ['an env value that is not a string', { ...minimal, env: { A: 1 } }, 'env.A: expected a string, got 1'],
    ['env as an array', { ...minimal, env: ['a'] }, 'env: expected an object, got ["a"]'],
    ['execArgv with a number', { ...minimal, execArgv: [1] }, 'execArgv: expected an array of strings, got [1]'],
    ['execArgv as a string', { ...minimal, execArgv: '--x' }, 'execArgv: expected an array of strings, got "--x"'],
    ['another childStderr', { ...minimal, childStderr: 'ignore' }, 'childStderr: expected "pipe" or "inherit", got "ignore"'],
    ['another parentScheduling', { ...minimal, parentScheduling: 'fifo' }, 'parentScheduling: expected "batch" or "normal", got "fifo"'],
    ['a childMemoryReducer that is not a boolean', { ...minimal, childMemoryReducer: 'off' }, 'childMemoryReducer: expected true or false, got "off"'],
    ['defaultPlugins that is not a boolean', { ...minimal, defaultPlugins: 'yes' }, 'defaultPlugins: expected true or false, got "yes"'],
    ['an unknown overload strategy', { ...minimal, overload: 'drop' }, 'overload: expected "graceful", "abrupt" or { strategy: "abrupt", response, retryAfter }, got "drop"'],
    ['an overload object with an unknown strategy', { ...minimal, overload: { strategy: 'x' } }, 'overload: expected "graceful", "abrupt" or { strategy: "abrupt", response, retryAfter }, got {"strategy":"x"}'],
    ['an overload object with an unknown key', { ...minimal, overload: { strategy: 'abrupt', respnse: 'x' } }, 'overload.respnse: unknown option (known: strategy, response, retryAfter)'],
    ['recycle as an array', { ...minimal, recycle: [] }, 'recycle: expected an object, got []'],
    ['backlog 0', { ...minimal, backlog: 0 }, 'backlog: expected an integer from 1 to 65535, got 0'],
    ['backlog above 65535', { ...minimal, backlog: 65536 }, 'backlog: expected an integer from 1 to 65535, got 65536'],
    ['ordersPerWakeup 0', { ...minimal, ordersPerWakeup: 0 }, 'ordersPerWakeup: expected an integer from 1 to 1024, got 0'],
    ['ordersPerWakeup above 1024', { ...minimal, ordersPerWakeup: 1025 }, 'ordersPerWakeup: expected an integer from 1 to 1024, got 1025'],
    ['acceptChain above 255', { ...minimal, acceptChain: 256 }, 'acceptChain: expected an integer from 0 to 255, got 256'],
    ['acceptChain -1', { ...minimal, acceptChain: -1 }, 'acceptChain: expected an integer from 0 to 255, got -1'],
    ['acceptChainChildren 0', { ...minimal, acceptChainChildren: 0 }, 'acceptChainChildren: expected an integer from 1 to 65535, got 0'],
    ['deferAccept above 3600', { ...minimal, deferAccept: 3601 }, 'deferAccept: expected an integer from 0 to 3600, got 3601'],
    ['a negative notsentLowat', { ...minimal, notsentLowat: -1 }, 'notsentLowat: expected an integer from 0 to 2147483647, got -1'],
    ['a fractional notsentLowat', { ...minimal, notsentLowat: 1.5 }, 'notsentLowat: expected an integer from 0 to 2147483647, got 1.5'],
    ['tickInterval 9', { ...minimal, tickInterval: 9 }, 'tickInterval: expected an integer >= 10, got 9'],
    ['uid -1', { ...minimal, uid: -1 }, 'uid: expected a non-negative integer, got -1'],
    ['gid as a string', { ...minimal, gid: '0' }, 'gid: expected a non-negative integer, got "0"'],
    ['a long value, shortened', { ...minimal, backlog: { a: 'x'.repeat(100) } }, `backlog: expected an integer from 1 to 65535, got {"a":"${'x'.repeat(51)}...`],
    ['a value of exactly 60 characters, not shortened', { ...minimal, backlog: { a: 'x'.repeat(52) } }, `backlog: expected an integer from 1 to 65535, got {"a":"${'x'.repeat(52)}"}`],
    ['a function', { ...minimal, backlog: () => 1 }, 'backlog: expected an integer from 1 to 65535, got a function'],
    ['a value JSON cannot render', { ...minimal, backlog: circular }, 'backlog: expected an integer from 1 to 65535, got [object Object]'],
    ['a fractional integer option', { ...minimal, backlog: 1.5 }, 'backlog: expected an integer from 1 to 65535, got 1.5'],
    ['fd: with trailing text', { ...minimal, listen: 'fd:3x' }, 'listen: expected "fd:N" with N a non-negative integer, got "fd:3x"'],
    ['fd: with leading text', { ...minimal, listen: 'fd:x3' }, 'listen: expected "fd:N" with N a non-negative integer, got "fd:x3"'],
    ['an address with trailing text', { ...minimal, listen: '127.0.0.1:80x' }, 'listen: expected "host:port", "[ipv6]:port", ":port", "unix:/path", "fd:N" or "systemd", got "127.0.0.1:80x"'],
    ['an address with two colons', { ...minimal, listen: 'a:b:80' }, 'listen: expected "host:port", "[ipv6]:port", ":port", "unix:/path", "fd:N" or "systemd", got "a:b:80"'],
    ['a listen number', { ...minimal, listen: 5 }, 'listen: expected a listen address ("127.0.0.1:8080", "unix:/run/app.sock", { port }, { path }, { fd }), got 5'],
    ['children.start -1', { ...minimal, children: { start: -1 } }, 'children.start: expected a non-negative integer, got -1'],
    ['children.min -1', { ...minimal, children: { min: -1 } }, 'children.min: expected a non-negative integer, got -1'],
    ['children.minSpare -1', { ...minimal, children: { minSpare: -1 } }, 'children.minSpare: expected a non-negative integer, got -1'],
    ['children.maxSpare -1', { ...minimal, children: { maxSpare: -1 } }, 'children.maxSpare: expected a non-negative integer, got -1'],
    ['timeouts as a number', { ...minimal, timeouts: 5 }, 'timeouts: expected an object, got 5'],
    ['overload as a number', { ...minimal, overload: 5 }, 'overload: expected "graceful", "abrupt" or { strategy: "abrupt", response, retryAfter }, got 5'],
  ];

  it.each(refusals)('refuses %s', (_name, options, expected) => {
    let caught: unknown;
    try {
      resolvePoolOptions(options as PoolOptions);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(Error);
    expect((caught as { code?: string }).code).toBe(expected.startsWith('plugins[') ? 'PREFORK_ERR_PLUGIN_INVALID' : 'PREFORK_ERR_OPTION_INVALID');
    expect((caught as Error).message).toBe(expected);
  });
});

describe('pool options: the logger and its level', () => {
  const quiet = { write() {} };

  it("adapts a pino logger, and takes its level unless logLevel is given; a logger that tells no level gets info", () => {
    const logger = pino({ level: 'warn' }, quiet);
    const resolved = resolvePoolOptions({ ...base, logger });
    expect(resolved.logger).not.toBe(logger);
    expect(resolved.logger).toMatchObject({ target: logger, level: 'warn' });
    expect(resolvePoolOptions({ ...base, logger, logLevel: 'debug' }).logLevel).toBe('debug');
    expect(resolvePoolOptions({ ...base, logger: createLogger({ level: 'error', stream: quiet }) }).logLevel).toBe('error');
    const consoleLike = { error() {}, warn() {}, info() {}, debug() {} };
    expect(resolvePoolOptions({ ...base, logger: consoleLike })).toMatchObject({ logger: consoleLike, logLevel: 'info' });
  });

  it('levelGate drops the lines below the level in force at each call', () => {
    const calls: string[] = [];
    const record = (level: string) => (message: string) => void calls.push(`${level} ${message}`);
    let level: 'warn' | 'debug' = 'warn';
    const gated = levelGate({ error: record('error'), warn: record('warn'), info: record('info'), debug: record('debug') }, () => level);
    gated.info('dropped');
    gated.warn('kept');
    level = 'debug';
    gated.debug('kept too');
    expect(calls).toEqual(['warn kept', 'debug kept too']);
  });
});

describe('durations Node timers cannot take', () => {
  const over = 2 ** 31;
  const limit = `at most ${2 ** 31 - 1} ms (the longest delay Node's timers take), got ${over}`;
  it.each([
    ['timeouts.accept', { timeouts: { accept: over } }],
    ['timeouts.start', { timeouts: { start: over } }],
    ['timeouts.stop', { timeouts: { stop: over } }],
    ['tickInterval', { tickInterval: over }],
    ['recycle.maxChildAge', { recycle: { maxChildAge: over } }],
    ['recycle.idleChildTimeout', { recycle: { idleChildTimeout: over } }],
    ['http.keepAliveTimeout', { protocol: 'http', http: { keepAliveTimeout: over } }],
    ['scgi.bodyTimeout', { protocol: 'scgi', scgi: { bodyTimeout: over } }],
  ])('%s above 2^31 - 1 ms is refused, naming the key', (key, extra) => {
    expect(() => resolvePoolOptions({ handler: '/app.mjs', listen: ':0', ...extra } as PoolOptions)).toThrow(`${key}: expected ${limit}`);
  });

  it('2^31 - 1 ms itself is accepted', () => {
    expect(resolvePoolOptions({ handler: '/app.mjs', listen: ':0', timeouts: { stop: 2 ** 31 - 1 } }).timeouts.stop).toBe(2 ** 31 - 1);
  });
});
