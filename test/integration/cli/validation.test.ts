import net from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { project, requireBuild, runCli } from './cli-helpers.js';

beforeAll(requireBuild);

const HANDLER = 'export function connection(socket) { socket.end(); }\n';
const VALID = { handler: './app.mjs', listen: '127.0.0.1:0' };

/** A case: the config file's contents, and the message `prefork check` must print (after "prefork: "). */
interface Case {
  name: string;
  files: Record<string, string | object>;
  args?: string[];
  message: string | RegExp;
  status?: number;
}

const cases: Case[] = [
  {
    name: 'an unknown top-level key, with a hint',
    files: { 'prefork.config.json': { ...VALID, chidren: { max: 2 } } },
    message: /^prefork\.config\.json: chidren: unknown key; did you mean "children"\? \(known: handler, listen, /,
  },
  {
    name: 'a value of the wrong type, with its key path',
    files: { 'prefork.config.json': { ...VALID, children: { max: 'ten' } } },
    message: 'prefork.config.json: children.max: expected a positive integer, got "ten"',
  },
  {
    name: 'an unknown nested key',
    files: { '.preforkrc.json': { ...VALID, timeouts: { stopp: 5 } } },
    message: /^\.preforkrc\.json: timeouts\.stopp: unknown option \(known: accept, start, stop, drain, metrics, heartbeat, connection\)/,
  },
  {
    name: 'children.min above children.max',
    files: { 'prefork.config.json': { ...VALID, children: { min: 5, max: 2 } } },
    message: 'prefork.config.json: children.min (5) must not exceed children.max (2)',
  },
  {
    name: 'children.minSpare above children.maxSpare',
    files: { 'prefork.config.json': { ...VALID, children: { minSpare: 4, maxSpare: 1 } } },
    message: 'prefork.config.json: children.minSpare (4) must not exceed children.maxSpare (1)',
  },
  {
    name: 'a negative timeout',
    files: { 'prefork.config.json': { ...VALID, timeouts: { stop: -1 } } },
    message: 'prefork.config.json: timeouts.stop: expected a non-negative integer, got -1',
  },
  {
    name: 'a handler file that does not exist (resolved relative to the config file)',
    files: { 'conf/prefork.config.json': { ...VALID, handler: './missing.mjs' } },
    args: ['--config', 'conf/prefork.config.json'],
    message: /^conf\/prefork\.config\.json: handler: file not found: \/.*\/conf\/missing\.mjs \("\.\/missing\.mjs" relative to \/.*\/conf\)$/,
  },
  {
    name: 'no handler at all',
    files: { 'prefork.config.json': { listen: '127.0.0.1:0' } },
    message: 'prefork.config.json: handler: missing: the module that serves connections (or give --handler FILE)',
  },
  {
    name: 'no listen address',
    files: { 'prefork.config.json': { handler: './app.mjs' } },
    message: /^prefork\.config\.json: listen: missing: where to listen/,
  },
  {
    name: 'a listen address that cannot be parsed',
    files: { 'prefork.config.json': { ...VALID, listen: ['127.0.0.1:0', 'localhost'] } },
    message: /^prefork\.config\.json: listen\[1\]: expected "host:port", .* got "localhost"$/,
  },
  {
    name: 'an unknown protocol, with a hint',
    files: { 'prefork.config.json': { ...VALID, protocol: 'htp' } },
    message: 'prefork.config.json: protocol: expected one of "raw", "http", "scgi", got "htp"; did you mean "http"?',
  },
  {
    name: 'a plugin module that does not exist',
    files: { 'prefork.config.json': { ...VALID, plugins: ['./nope.mjs'] } },
    message: /^prefork\.config\.json: plugins\[0\]: plugin module not found: \/.*\/nope\.mjs \(from "\.\/nope\.mjs"\)$/,
  },
  {
    name: 'a plugin module that does not export a plugin',
    files: { 'prefork.config.json': { ...VALID, plugins: [['./p.mjs', { level: 1 }]] }, 'p.mjs': 'export default 42;\n' },
    message: 'prefork.config.json: plugins[0] (./p.mjs): the module does not export a plugin (expected a plugin class, a factory function, or an object with apply(pool) as its default export, got 42)',
  },
  {
    name: 'a plugin factory that returns no plugin',
    files: { 'prefork.config.json': { ...VALID, plugins: ['./p.cjs'] }, 'p.cjs': 'module.exports = () => ({ name: "not a plugin" });\n' },
    message: 'prefork.config.json: plugins[0] (./p.cjs): the factory function returned {"name":"not a plugin"}, not a plugin (an object with apply(pool))',
  },
  {
    name: 'an unknown user',
    files: { 'prefork.config.json': { ...VALID, user: 'no-such-user-prefork' } },
    message: 'prefork.config.json: user: unknown user "no-such-user-prefork" (not in /etc/passwd)',
  },
  {
    name: 'an unknown group',
    files: { 'prefork.config.json': { ...VALID, group: 'no-such-group-prefork' } },
    message: 'prefork.config.json: group: unknown group "no-such-group-prefork" (not in /etc/group)',
  },
  {
    name: 'a chain grant out of range',
    files: { 'prefork.config.json': { ...VALID, acceptChain: 300 } },
    message: 'prefork.config.json: acceptChain: expected an integer from 0 to 255, got 300',
  },
  {
    name: 'an unknown log level',
    files: { 'prefork.config.json': { ...VALID, log: { level: 'verbose' } } },
    message: 'prefork.config.json: log.level: expected one of "error", "warn", "info", "debug", got "verbose"',
  },
  {
    name: 'an unknown overload strategy',
    files: { 'prefork.config.json': { ...VALID, overload: 'sometimes' } },
    message: /^prefork\.config\.json: overload: expected "graceful", "abrupt" or \{ strategy: "abrupt", response, retryAfter \}, got "sometimes"$/,
  },
  {
    name: 'an overload option the abrupt strategy refuses',
    files: { 'prefork.config.json': { ...VALID, overload: { strategy: 'abrupt', retryAfter: 'soon' } } },
    message: 'prefork.config.json: overload.retryAfter: expected a non-negative integer (seconds), got "soon"',
  },
  {
    name: 'an unknown recycle option',
    files: { 'prefork.config.json': { ...VALID, recycle: { maxRequests: 5 } } },
    message: /^prefork\.config\.json: recycle\.maxRequests: unknown option \(known: maxConnectionsPerChild, /,
  },
  {
    name: 'an environment variable that is not a string',
    files: { '.preforkrc.yaml': 'handler: ./app.mjs\nlisten: "127.0.0.1:0"\nenv:\n  PORT: 8080\n' },
    message: '.preforkrc.yaml: env.PORT: expected a string, got 8080',
  },
  {
    name: 'a key of package.json\'s "prefork" section',
    files: { 'package.json': { name: 'x', prefork: { ...VALID, backlog: 0 } } },
    message: 'package.json ("prefork" key): backlog: expected an integer from 1 to 65535, got 0',
  },
  {
    name: 'a JS config that exports no object',
    files: { 'prefork.config.mjs': 'export default () => ({});\n' },
    message: 'prefork.config.mjs: expected an object of settings, got a function',
  },
  {
    name: 'a JSON syntax error',
    files: { '.preforkrc.json': '{ "handler": "./app.mjs", }' },
    message: /^\.preforkrc\.json: cannot load the configuration: JSON syntax error: /,
  },
  {
    name: 'a --config file that does not exist',
    files: {},
    args: ['--config', 'nowhere.json'],
    message: 'nowhere.json: no such config file',
  },
  {
    name: 'a --config package.json without a "prefork" key',
    files: {},
    args: ['--config', 'package.json'],
    message: 'package.json: has no "prefork" key',
  },
  {
    name: 'a --children value that is not a number',
    files: { 'prefork.config.json': VALID },
    args: ['--children', 'ten'],
    message: 'command line: --children: expected a non-negative integer, got "ten"',
  },
  {
    name: 'an unknown key in a listener object',
    files: { 'prefork.config.json': { ...VALID, listen: [{ host: '127.0.0.1', port: 9740, bogus: 1 }] } },
    message: 'prefork.config.json: listen[0].bogus: unknown option (known: host, port, tls)',
  },
  {
    name: 'a misspelt key in a Unix listener object, with a hint',
    files: { 'prefork.config.json': { ...VALID, listen: { path: './app.sock', mod: '660' } } },
    message: 'prefork.config.json: listen.mod: unknown option; did you mean "mode"? (known: path, mode, tls)',
  },
  {
    name: 'an unknown key in the status listener object',
    files: { 'prefork.config.json': { ...VALID, status: { listen: { host: '127.0.0.1', port: 9740, bogus: 1 } } } },
    message: 'prefork.config.json: status.listen.bogus: unknown option (known: host, port)',
  },
  {
    name: 'a notsentLowat that is not a byte count',
    files: { 'prefork.config.json': { ...VALID, notsentLowat: '64k' } },
    message: 'prefork.config.json: notsentLowat: expected an integer from 0 to 2147483647, got "64k"',
  },
  {
    name: 'a bad --listen, named as the command line\'s',
    files: { 'prefork.config.json': VALID },
    args: ['--listen', '127.0.0.1:99999'],
    message: 'command line: listen[0]: expected a port from 0 to 65535, got "127.0.0.1:99999"',
  },
  {
    name: 'no config file and no --handler',
    files: {},
    message: /^command line: handler: no config file was found \(searched \/.* and above, up to the project root, for package\.json, \.preforkrc, /,
  },
];

describe.concurrent('prefork check refuses each invalid configuration with one message and status 78', () => {
  for (const testCase of cases) {
    it(testCase.name, async () => {
      const dir = project({ 'app.mjs': HANDLER, ...testCase.files });
      const result = await runCli(['check', ...(testCase.args ?? [])], dir);
      const lines = result.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      const message = lines[0]!.replace(/^prefork: /, '');
      if (typeof testCase.message === 'string') expect(message).toBe(testCase.message);
      else expect(message).toMatch(testCase.message);
      expect(result.code).toBe(testCase.status ?? 78);
      expect(result.stdout).toBe('');
    });
  }
});

describe.concurrent('the command line', () => {
  it('refuses an unknown flag with a hint and status 64', async () => {
    const result = await runCli(['--listn', '127.0.0.1:0'], project());
    expect(result.stderr).toBe('prefork: unknown option --listn; did you mean --listen?\nRun "prefork --help" for the usage.\n');
    expect(result.code).toBe(64);
  });

  it('refuses an unknown command with a hint and status 64', async () => {
    const result = await runCli(['chek'], project());
    expect(result.stderr).toMatch(/^prefork: unknown command "chek"; did you mean "check"\?/);
    expect(result.code).toBe(64);
  });

  it('refuses a flag without its value', async () => {
    const result = await runCli(['--config'], project());
    expect(result.stderr).toMatch(/^prefork: --config needs a value \(FILE\)/);
    expect(result.code).toBe(64);
  });

  it('keeps --portable to build-addon, and build-addon to --portable alone (status 64)', async () => {
    const stray = await runCli(['start', '--portable'], project());
    expect(stray.stderr).toMatch(/^prefork: --portable goes with build-addon\n/);
    expect(stray.code).toBe(64);
    const extra = await runCli(['build-addon', '--listen', ':1'], project());
    expect(extra.stderr).toMatch(/^prefork: --listen does not go with build-addon\n/);
    expect(extra.code).toBe(64);
    expect((await runCli(['--help'], project())).stdout).toContain('prefork build-addon [--portable]');
  });

  it('prints the usage with --help and the version with --version', async () => {
    const help = await runCli(['--help'], project());
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: prefork \[start\] \[options\]/);
    for (const flag of ['--config', '--listen', '--handler', '--children', '--protocol', '--help', '--version']) expect(help.stdout).toContain(flag);
    const version = await runCli(['--version'], project());
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('exits 78 before binding anything when started with an invalid config', async () => {
    // Hold a port, then ask prefork to listen on it too: with an invalid config, prefork must
    // stop at the config, so the error is the config's and not "address in use".
    const holder = net.createServer();
    holder.listen(0, '127.0.0.1');
    await once(holder, 'listening');
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const dir = project({ 'app.mjs': HANDLER, 'prefork.config.json': { handler: './app.mjs', listen: `127.0.0.1:${port}`, children: { max: 'ten' } } });
      const result = await runCli([], dir);
      expect(result.stderr).toBe('prefork: prefork.config.json: children.max: expected a positive integer, got "ten"\n');
      expect(result.code).toBe(78);
    } finally {
      holder.close();
    }
  });

  it('loads a prefork.config.ts found upward from the working directory (typescript installed)', async () => {
    const dir = project({
      'app.mjs': HANDLER,
      'prefork.config.ts': `import type { PreforkConfig } from 'prefork';\nconst children: PreforkConfig['children'] = { max: 2 };\nexport default { handler: './app.mjs', listen: '127.0.0.1:0', children } satisfies PreforkConfig;\n`,
      'sub/dir/.keep': '',
    });
    const result = await runCli(['check'], join(dir, 'sub', 'dir'));
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ file: join(dir, 'prefork.config.ts'), handler: join(dir, 'app.mjs'), children: { max: 2, start: 2 } });
  });

  it('prints the resolved configuration, defaults included, and exits 0', async () => {
    const dir = project({ 'app.mjs': HANDLER, 'conf/prefork.config.json': { handler: '../app.mjs', listen: ['127.0.0.1:0', 'unix:./s.sock'], children: { max: 3 } } });
    const result = await runCli(['check', '-c', 'conf/prefork.config.json'], dir);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const printed = JSON.parse(result.stdout);
    expect(printed).toMatchObject({
      file: join(dir, 'conf/prefork.config.json'),
      handler: join(dir, 'app.mjs'),
      listen: ['127.0.0.1:0', `unix:${join(dir, 'conf/s.sock')}`],
      protocol: 'raw',
      children: { start: 3, min: 1, max: 3, minSpare: 2, maxSpare: 8, slots: 1 },
      timeouts: { accept: 5000, start: 30000, stop: 30000, drain: 5000, heartbeat: 30000, connection: 0 },
      overload: { strategy: 'graceful' },
      log: { level: 'info', file: null, format: 'auto' },
      backlog: 511,
      ordersPerWakeup: 1,
      acceptChain: 32,
      deferAccept: 0,
      notsentLowat: 65536,
      tickInterval: 1000,
    });
  });
});
