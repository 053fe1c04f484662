import { mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AbruptOverloadPlugin } from '../../../plugins/AbruptOverloadPlugin.js';
import { GracefulOverloadPlugin } from '../../../plugins/GracefulOverloadPlugin.js';
import { RecyclePlugin } from '../../../plugins/RecyclePlugin.js';
import { findGroup, findUser, findUserById } from '../../../src/config/accounts.js';
import { ParentLog } from '../../../src/config/log.js';
import { loadConfig, resolveConfig } from '../../../src/config/resolve.js';
import { closest, didYouMean } from '../../../src/config/suggest.js';
import * as prefork from '../../../index.js';
import { defaultPlugins, defineConfig } from '../../../index.js';
import { isPreforkError } from '../../../src/errors.js';
import type { PoolPlugin } from '../../../src/pool/hooks.js';
import { tempDir } from '../../helpers.js';

/** A directory with a handler and the given files; returns it. */
function dir(files: Record<string, string> = {}): string {
  const root = tempDir('prefork-resolve-');
  for (const [name, contents] of Object.entries({ 'package.json': '{"name":"app"}', 'app.mjs': 'export function connection() {}', ...files })) {
    mkdirSync(dirname(join(root, name)), { recursive: true });
    writeFileSync(join(root, name), contents);
  }
  return root;
}

async function failure(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  if (!error) throw new Error('expected a rejection');
  return error;
}

const ACCOUNTS = (root: string) => {
  writeFileSync(join(root, 'passwd'), 'root:x:0:0:root:/root:/bin/bash\n# comment\nweb:x:1500:1600:web:/srv:/usr/sbin/nologin\n');
  writeFileSync(join(root, 'group'), 'root:x:0:\nwww:x:1700:web\n');
  return { passwd: join(root, 'passwd'), group: join(root, 'group') };
};

describe('resolveConfig', () => {
  it('resolves paths in the file relative to the file, and paths in flags relative to the working directory', async () => {
    const root = dir({ 'conf/plugin.mjs': 'export default { apply() {} };' });
    const file = join(root, 'conf', 'prefork.config.json');
    const config = await resolveConfig(
      { handler: '../app.mjs', listen: ['unix:./a.sock', { path: 'b.sock', mode: '660' }, '127.0.0.1:0'], log: { file: 'logs/parent.log' }, plugins: ['./plugin.mjs'] },
      file,
      { cwd: '/somewhere/else' },
    );
    expect(config.pool.handler).toBe(join(root, 'app.mjs'));
    expect(config.resolved.listen).toEqual([
      { kind: 'unix', path: join(root, 'conf', 'a.sock'), mode: undefined },
      { kind: 'unix', path: join(root, 'conf', 'b.sock'), mode: 0o660 },
      { kind: 'tcp', host: '127.0.0.1', port: 0 },
    ]);
    expect(config.log.file).toBe(join(root, 'conf', 'logs', 'parent.log'));
    expect(config.pool.cwd).toBe('/somewhere/else');

    const flagged = await resolveConfig({ handler: '../app.mjs', listen: ':8080' }, file, { cwd: root, overrides: { handler: 'app.mjs', listen: ['unix:c.sock', '[::1]:9000'] } });
    expect(flagged.pool.handler).toBe(join(root, 'app.mjs'));
    expect(flagged.resolved.listen).toEqual([
      { kind: 'unix', path: join(root, 'c.sock'), mode: undefined },
      { kind: 'tcp', host: '::1', port: 9000 },
    ]);
  });

  it('lets --children set children.start and raise children.max, and --protocol replace the protocol', async () => {
    const root = dir();
    const file = join(root, 'prefork.config.json');
    const base = { handler: './app.mjs', listen: ':0', protocol: 'raw' as const, children: { start: 1, max: 2, min: 1 } };
    const config = await resolveConfig(base, file, { cwd: root, overrides: { children: 6, protocol: 'http' } });
    expect(config.resolved.children).toMatchObject({ start: 6, max: 6, min: 1 });
    expect(config.resolved.protocol).toBe('http');
    const lower = await resolveConfig(base, file, { cwd: root, overrides: { children: 2 } });
    expect(lower.resolved.children).toMatchObject({ start: 2, max: 2 });
  });

  it('works from flags alone, without a file', async () => {
    const root = dir();
    const config = await resolveConfig(undefined, undefined, { cwd: root, overrides: { handler: './app.mjs', listen: ['127.0.0.1:8080'] } });
    expect(config.file).toBeUndefined();
    expect(config.pool).toMatchObject({ handler: join(root, 'app.mjs'), listen: ['127.0.0.1:8080'] });
    expect(config.resolved.children).toMatchObject({ start: 4, min: 1, max: 32 });
  });

  it('keeps the overload and recycle sections as options, from which the default plugins are built', async () => {
    const root = dir();
    const file = join(root, 'prefork.config.json');
    const config = await resolveConfig({ handler: './app.mjs', listen: ':0', overload: { strategy: 'abrupt', response: 'http-503', retryAfter: 3 }, recycle: { maxConnectionsPerChild: 100, jitter: 10 } }, file, { cwd: root });
    // The config builds no plugin: the pool builds them from these options, on start and on every reload.
    expect(config.pool.plugins).toEqual([]);
    expect(config.resolved.overload).toEqual({ strategy: 'abrupt', response: 'http-503', retryAfter: 3 });
    const built = defaultPlugins(config.resolved);
    expect(built.map((plugin) => plugin.constructor)).toEqual([prefork.SpareChildrenPlugin, AbruptOverloadPlugin, RecyclePlugin, prefork.LoggerPlugin]);
    expect((built[2] as RecyclePlugin).options).toMatchObject({ maxConnectionsPerChild: 100, jitter: 10 });
    const graceful = await resolveConfig({ handler: './app.mjs', listen: ':0', overload: 'graceful' }, file, { cwd: root });
    expect(defaultPlugins(graceful.resolved)[1]).toBeInstanceOf(GracefulOverloadPlugin);
    // Without the sections: graceful overload and no recycling.
    const bare = await resolveConfig({ handler: './app.mjs', listen: ':0' }, file, { cwd: root });
    expect(defaultPlugins(bare.resolved).map((plugin) => plugin.constructor)).toEqual([prefork.SpareChildrenPlugin, GracefulOverloadPlugin, prefork.LoggerPlugin]);
  });

  it('names the section when a built-in plugin refuses its options', async () => {
    const root = dir();
    const error = await failure(resolveConfig({ handler: './app.mjs', listen: ':0', recycle: { jitter: 5 } }, join(root, 'prefork.config.json'), { cwd: root }));
    expect(error.message).toMatch(/\/prefork\.config\.json: recycle\.jitter: only applies with maxConnectionsPerChild > 0 \(jitter is 5, maxConnectionsPerChild is 0\)$/);
  });

  it('refuses an overload section next to a plugin with the role "overload"', async () => {
    const root = dir({ 'overload.mjs': 'export default class { role = "overload"; apply() {} }' });
    const error = await failure(resolveConfig({ handler: './app.mjs', listen: ':0', overload: 'abrupt', plugins: ['./overload.mjs'] }, join(root, 'x.json'), { cwd: root }));
    expect(error.message).toMatch(/x\.json: overload: conflicts with plugins\[0\], which also has the role "overload"; keep one of them$/);
  });

  it('loads plugins given as a path, [path, options], a class, a factory, an object, or an instance', async () => {
    const root = dir({
      'plugins/klass.mjs': 'export default class Klass { constructor(options) { this.options = options; } apply() {} }',
      'plugins/factory.cjs': 'module.exports = (options) => ({ made: options, apply() {} });',
      'plugins/object.mjs': 'export function apply() {}\nexport const role = "custom";',
    });
    const instance: PoolPlugin = { apply() {} };
    const config = await resolveConfig(
      { handler: './app.mjs', listen: ':0', plugins: [['./plugins/klass.mjs', { a: 1 }], ['./plugins/factory.cjs', { b: 2 }], './plugins/object.mjs', instance] },
      join(root, 'prefork.config.mjs'),
      { cwd: '/' },
    );
    const plugins = config.pool.plugins as (PoolPlugin & { options?: unknown; made?: unknown })[];
    expect(plugins).toHaveLength(4);
    expect(plugins[0]!.constructor.name).toBe('Klass');
    expect(plugins[0]!.options).toEqual({ a: 1 });
    expect(plugins[1]!.made).toEqual({ b: 2 });
    expect(plugins[2]!.role).toBe('custom');
    expect(plugins[3]).toBe(instance);
  });

  it('constructs a built-in plugin named by its class, with options, for JSON and YAML configs', async () => {
    const root = dir();
    const file = join(root, 'c.json');
    const config = await resolveConfig({ handler: './app.mjs', listen: ':0', plugins: [['RecyclePlugin', { maxChildAge: 60000 }]] }, file, { cwd: root, builtins: prefork });
    expect(config.pool.plugins?.[0]).toBeInstanceOf(RecyclePlugin);
    expect((config.pool.plugins![0] as RecyclePlugin).options.maxChildAge).toBe(60000);
    // Config loading knows no plugin by itself: the caller names the built-in ones.
    const unknown = await failure(resolveConfig({ handler: './app.mjs', listen: ':0', plugins: [['RecyclePlugin', { maxChildAge: 60000 }]] }, file, { cwd: root }));
    expect(unknown.message).toMatch(/c\.json: plugins\[0\]: cannot find the plugin package "RecyclePlugin"/);
    const error = await failure(resolveConfig({ handler: './app.mjs', listen: ':0', plugins: [['RecyclePlugin', { maxAge: 1 }]] }, file, { cwd: root, builtins: prefork }));
    expect(error.code).toBe('PREFORK_ERR_PLUGIN_INVALID');
    expect(error.message).toMatch(/c\.json: plugins\[0\] \(RecyclePlugin\): RecyclePlugin maxAge: unknown option/);
  });

  it('refuses options for a module that exports a plugin object, and a malformed entry', async () => {
    const root = dir({ 'object.mjs': 'export default { apply() {} };' });
    const file = join(root, 'c.json');
    let error = await failure(resolveConfig({ handler: './app.mjs', listen: ':0', plugins: [['./object.mjs', {}]] }, file, { cwd: root }));
    expect(error.code).toBe('PREFORK_ERR_PLUGIN_INVALID');
    expect(error.message).toMatch(/c\.json: plugins\[0\] \(\.\/object\.mjs\): the module exports a plugin object, which takes no options/);
    error = await failure(resolveConfig({ handler: './app.mjs', listen: ':0', plugins: [42] }, file, { cwd: root }));
    expect(error.message).toMatch(/c\.json: plugins\[0\]: expected a module path, \["module path", \{ options \}\] or a plugin instance, got 42$/);
    error = await failure(resolveConfig({ handler: './app.mjs', listen: ':0', plugins: './object.mjs' }, file, { cwd: root }));
    expect(error.message).toMatch(/c\.json: plugins: expected a list of plugins/);
  });

  it('reports a plugin module that throws while loading', async () => {
    const root = dir({ 'bad.mjs': 'throw new Error("plugin exploded");' });
    const error = await failure(resolveConfig({ handler: './app.mjs', listen: ':0', plugins: ['./bad.mjs'] }, join(root, 'c.json'), { cwd: root }));
    expect(error.message).toMatch(/c\.json: plugins\[0\] \(\.\/bad\.mjs\): the plugin module failed to load: plugin exploded$/);
  });

  it('resolves user and group names to ids, the group defaulting to the user\'s primary group', async () => {
    const root = dir();
    const accounts = ACCOUNTS(root);
    const file = join(root, 'c.json');
    const base = { handler: './app.mjs', listen: ':0' };
    let config = await resolveConfig({ ...base, user: 'web' }, file, { cwd: root, accounts });
    expect(config.user).toEqual({ name: 'web', uid: 1500 });
    expect(config.group).toEqual({ name: undefined, gid: 1600 });
    expect(config.pool).toMatchObject({ uid: 1500, gid: 1600 });
    config = await resolveConfig({ ...base, user: 'web', group: 'www' }, file, { cwd: root, accounts });
    expect(config.pool).toMatchObject({ uid: 1500, gid: 1700 });
    config = await resolveConfig({ ...base, user: 1500 }, file, { cwd: root, accounts });
    expect(config.pool).toMatchObject({ uid: 1500, gid: 1600 });
    config = await resolveConfig({ ...base, user: 4242, group: 4343 }, file, { cwd: root, accounts });
    expect(config.pool).toMatchObject({ uid: 4242, gid: 4343 });

    let error = await failure(resolveConfig({ ...base, user: 4242 }, file, { cwd: root, accounts }));
    expect(error.message).toMatch(/c\.json: group: required with user 4242, which has no entry in .*passwd to take its primary group from$/);
    error = await failure(resolveConfig({ ...base, user: 'nobody-here' }, file, { cwd: root, accounts }));
    expect(error.message).toMatch(/c\.json: user: unknown user "nobody-here" \(not in .*passwd\)$/);
    error = await failure(resolveConfig({ ...base, user: -1 }, file, { cwd: root, accounts }));
    expect(error.message).toMatch(/c\.json: user: expected a user name or a numeric uid, got -1$/);
  });

  it('wraps resolvePoolOptions errors into PREFORK_ERR_CONFIG_INVALID with the file name', async () => {
    const root = dir();
    const error = await failure(resolveConfig({ handler: './app.mjs', listen: ':0', children: { max: 'ten' } }, join(root, 'prefork.config.json'), { cwd: root }));
    expect(isPreforkError(error, 'PREFORK_ERR_CONFIG_INVALID')).toBe(true);
    expect(error.message).toMatch(/prefork\.config\.json: children\.max: expected a positive integer, got "ten"$/);
    expect(isPreforkError((error as Error).cause, 'PREFORK_ERR_OPTION_INVALID')).toBe(true);
  });

  it('loadConfig finds the file, applies the flags, and checks the result', async () => {
    const root = dir({ '.preforkrc.yml': 'handler: ./app.mjs\nlisten: "127.0.0.1:0"\nchildren:\n  max: 3\n' });
    const config = await loadConfig({ cwd: root, overrides: { listen: ['127.0.0.1:1234'] } });
    expect(config.file).toBe(join(root, '.preforkrc.yml'));
    expect(config.resolved).toMatchObject({ handler: join(root, 'app.mjs'), listen: [{ kind: 'tcp', host: '127.0.0.1', port: 1234 }], children: { start: 3, max: 3 } });
  });
});

describe('accounts', () => {
  it('reads users and groups from passwd and group files', () => {
    const files = ACCOUNTS(tempDir());
    expect(findUser('web', files)).toEqual({ name: 'web', uid: 1500, gid: 1600 });
    expect(findUserById(0, files)).toEqual({ name: 'root', uid: 0, gid: 0 });
    expect(findGroup('www', files)).toEqual({ name: 'www', gid: 1700 });
    expect(findUser('nobody-here', files)).toBeUndefined();
    expect(findUser('web', { passwd: '/nonexistent/passwd' })).toBeUndefined();
  });
});

describe('ParentLog', () => {
  it('reopens its file by name after the old one was moved away (logrotate)', () => {
    const root = tempDir();
    const file = join(root, 'parent.log');
    const log = new ParentLog({ level: 'info', file, format: 'json' });
    log.info('before rotation');
    renameSync(file, `${file}.1`);
    log.info('still to the moved file');
    expect(log.reopen()).toBe(true);
    log.info('after rotation');
    log.debug('below the level');
    log.close();
    const lines = (path: string) => readFileSync(path, 'utf8').trim().split('\n').map((line) => JSON.parse(line).msg);
    expect(lines(`${file}.1`)).toEqual(['before rotation', 'still to the moved file']);
    expect(lines(file)).toEqual(['after rotation']);
  });

  it('applies a new level and file on configure, and refuses a file it cannot open', () => {
    const root = tempDir();
    const log = new ParentLog({ level: 'warn', file: join(root, 'a.log'), format: 'json' });
    log.info('dropped');
    log.configure({ level: 'debug', file: join(root, 'b.log'), format: 'json' });
    log.debug('kept');
    log.close();
    expect(readFileSync(join(root, 'a.log'), 'utf8')).toBe('');
    expect(JSON.parse(readFileSync(join(root, 'b.log'), 'utf8')).msg).toBe('kept');
    expect(() => new ParentLog({ level: 'info', file: join(root, 'missing', 'dir.log'), format: 'json' })).toThrow(/^log\.file: cannot open .*dir\.log for appending: ENOENT/);
  });
});

describe('ParentLog: descriptors and formats', () => {
  /** The files this process has open under `dir`. */
  const openIn = (dir: string) => readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir);
    } catch {
      return false;
    }
  }).length;

  it('holds exactly one descriptor: reopen, configure to another file or to stderr, and close each release the old one', () => {
    const root = tempDir();
    const log = new ParentLog({ level: 'info', file: join(root, 'a.log'), format: 'auto' });
    expect(openIn(root)).toBe(1);
    expect(log.settings).toEqual({ level: 'info', file: join(root, 'a.log'), format: 'auto' });
    expect(log.reopen()).toBe(true);
    expect(openIn(root)).toBe(1);
    // The same file: the descriptor is kept, not reopened.
    log.configure({ level: 'debug', file: join(root, 'a.log'), format: 'json' });
    expect(openIn(root)).toBe(1);
    log.configure({ level: 'debug', file: join(root, 'b.log'), format: 'json' });
    expect(openIn(root)).toBe(1);
    log.warn('to b');
    log.error('to b as well');
    log.configure({ level: 'info', file: undefined, format: 'json' });
    expect(openIn(root)).toBe(0);
    expect(log.reopen()).toBe(true);
    log.close();
    const again = new ParentLog({ level: 'info', file: join(root, 'c.log'), format: 'auto' });
    again.close();
    expect(openIn(root)).toBe(0);
    // "auto" writes JSON to a file: a file is not a terminal.
    expect(readFileSync(join(root, 'b.log'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { level: number; msg: string; pid: number })).toEqual([
      expect.objectContaining({ level: 40, msg: 'to b', pid: process.pid }),
      expect.objectContaining({ level: 50, msg: 'to b as well', pid: process.pid }),
    ]);
  });

  it('without a file writes to stderr; "auto" writes JSON lines to a file, which is no terminal', () => {
    const written: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string) => {
      written.push(chunk);
      return true;
    }) as typeof process.stderr.write;
    try {
      const log = new ParentLog({ level: 'info', file: undefined, format: 'json' });
      log.info('to stderr');
      log.close();
    } finally {
      process.stderr.write = write;
    }
    expect(written.map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual(['to stderr']);
    const root = tempDir();
    const log = new ParentLog({ level: 'info', file: join(root, 'auto.log'), format: 'auto' });
    log.info('as json');
    log.close();
    expect((JSON.parse(readFileSync(join(root, 'auto.log'), 'utf8')) as { msg: string }).msg).toBe('as json');
    let error: (Error & { code?: string; cause?: unknown }) | undefined;
    try {
      new ParentLog({ level: 'info', file: join(root, 'no', 'x.log'), format: 'json' });
    } catch (caught) {
      error = caught as Error;
    }
    expect(error?.code).toBe('PREFORK_ERR_CONFIG_INVALID');
    expect((error?.cause as { code?: string }).code).toBe('ENOENT');
  });

  it('keeps writing to the old file when reopening fails, and says so in it', () => {
    const root = tempDir();
    const dir = join(root, 'logs');
    mkdirSync(dir);
    const log = new ParentLog({ level: 'info', file: join(dir, 'p.log'), format: 'json' });
    renameSync(dir, join(root, 'moved'));
    expect(log.reopen()).toBe(false);
    log.info('still here');
    log.close();
    const lines = readFileSync(join(root, 'moved', 'p.log'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { msg: string; file?: string });
    expect(lines.map((line) => line.msg)).toEqual(['could not reopen the log file; still writing to the old one', 'still here']);
    expect(lines[0]!.file).toBe(join(dir, 'p.log'));
  });

  it('moves from stderr to a file and back, and keeps writing after configure names the same file', () => {
    const root = tempDir();
    const log = new ParentLog({ level: 'info', file: undefined, format: 'json' });
    log.configure({ level: 'info', file: join(root, 'a.log'), format: 'json' });
    log.configure({ level: 'info', file: join(root, 'a.log'), format: 'json' });
    log.info('after the same file again');
    log.close();
    expect(JSON.parse(readFileSync(join(root, 'a.log'), 'utf8')).msg).toBe('after the same file again');
  });

  it('names the file and keeps the old settings when configure cannot open the new one', () => {
    const root = tempDir();
    const log = new ParentLog({ level: 'info', file: join(root, 'a.log'), format: 'json' });
    expect(() => log.configure({ level: 'debug', file: join(root, 'no', 'such.log'), format: 'json' })).toThrow(`log.file: cannot open ${join(root, 'no', 'such.log')} for appending: ENOENT`);
    expect(log.settings.file).toBe(join(root, 'a.log'));
    log.info('kept');
    log.close();
    expect(JSON.parse(readFileSync(join(root, 'a.log'), 'utf8')).msg).toBe('kept');
  });
});

describe('helpers', () => {
  it('defineConfig returns its argument, typed', () => {
    const config = { handler: './app.js', listen: '127.0.0.1:8080' };
    expect(defineConfig(config)).toBe(config);
  });

  it('suggests the closest known word for a plausible typo only', () => {
    expect(closest('chidren', ['children', 'handler'])).toBe('children');
    expect(closest('LISTEN', ['listen'])).toBe('listen');
    expect(closest('zzz', ['children', 'handler'])).toBeUndefined();
    // Ties go to the first candidate; long words tolerate a third of their letters.
    expect(closest('ab', ['ac', 'ad'])).toBe('ac');
    expect(closest('abcdefxyz', ['abcdefghi'])).toBe('abcdefghi');
    expect(closest('abcdwxyz', ['abcdefgh'])).toBeUndefined();
    expect(didYouMean('htp', ['http'])).toBe('; did you mean "http"?');
    expect(didYouMean('zzz', ['http'])).toBe('');
    expect(didYouMean('htp', ['http'], (word) => `<${word}>`)).toBe('; did you mean <http>?');
  });
});

describe('resolveConfig: every refusal, word for word, labelled with where it came from', () => {
  const root = dir({ 'sub/keep': '', 'ov.mjs': 'export default { role: "overload", apply() {} };', 'rc.mjs': 'export default { role: "recycle", apply() {} };' });
  const accounts = ACCOUNTS(root);
  const file = join(root, 'prefork.config.json');
  // Outside the working directory, so the label is the absolute path.
  const at = `${file}: `;
  const ok = { handler: './app.mjs', listen: '127.0.0.1:0' };
  const searched = 'package.json, .preforkrc, .preforkrc.json, .preforkrc.yaml, .preforkrc.yml, .preforkrc.js, .preforkrc.cjs, .preforkrc.mjs, prefork.config.json, prefork.config.js, prefork.config.cjs, prefork.config.mjs, prefork.config.ts';
  const cases: [string, unknown, string | undefined, Record<string, unknown>, string][] = [
    ['contents that are not an object', 'x', file, {}, `${at}expected an object of settings, got "x"`],
    ['contents that are an array', [], file, {}, `${at}expected an object of settings, got []`],
    ['an unknown key, with a hint', { ...ok, chidren: {} }, file, {}, `${at}chidren: unknown key; did you mean "children"? (known: handler, listen, protocol, http, scgi, children, timeouts, overload, recycle, plugins, user, group, log, env, execArgv, childMemoryReducer, backlog, ordersPerWakeup, acceptChain, acceptChainChildren, acceptChainBatchMs, parentScheduling, deferAccept, notsentLowat, tickInterval, status)`],
    ['a handler that is not a string', { ...ok, handler: 5 }, file, {}, `${at}handler: expected a module path, got 5`],
    ['no handler', { listen: ':1' }, file, {}, `${at}handler: missing: the module that serves connections (or give --handler FILE)`],
    ['no handler and no file', { listen: ':1' }, undefined, {}, `command line: handler: no config file was found (searched ${root} and above, up to the project root, for ${searched}) and no --handler FILE was given`],
    ['a handler file that does not exist', { ...ok, handler: './nope.mjs' }, file, {}, `${at}handler: file not found: ${join(root, 'nope.mjs')} ("./nope.mjs" relative to ${root})`],
    ['an absolute handler that does not exist', { ...ok, handler: '/nope.mjs' }, file, {}, `${at}handler: file not found: /nope.mjs`],
    ['a handler that is a directory', { ...ok, handler: './sub' }, file, {}, `${at}handler: not a file: ${join(root, 'sub')} ("./sub" relative to ${root})`],
    ['a --handler that does not exist', ok, file, { overrides: { handler: 'nope.mjs' } }, `command line: handler: file not found: ${join(root, 'nope.mjs')} (from --handler "nope.mjs")`],
    ['no listen', { handler: './app.mjs' }, file, {}, `${at}listen: missing: where to listen, e.g. "127.0.0.1:8080" (or give --listen ADDR)`],
    ['no listen and no file', {}, undefined, { overrides: { handler: 'app.mjs' } }, 'command line: listen: no address: give --listen ADDR (e.g. 127.0.0.1:8080)'],
    ['an unknown protocol, with a hint', { ...ok, protocol: 'htp' }, file, {}, `${at}protocol: expected one of "raw", "http", "scgi", got "htp"; did you mean "http"?`],
    ['a protocol that is not a string', { ...ok, protocol: 5 }, file, {}, `${at}protocol: expected one of "raw", "http", "scgi", got 5`],
    ['an unknown --protocol', ok, file, { overrides: { protocol: 'scgii' } }, 'command line: protocol: expected one of "raw", "http", "scgi", got "scgii"; did you mean "scgi"?'],
    ['log that is not an object', { ...ok, log: 'x' }, file, {}, `${at}log: expected an object ({ level, file, format }), got "x"`],
    ['an unknown log key', { ...ok, log: { levl: 'info' } }, file, {}, `${at}log.levl: unknown key (known: level, file, format); did you mean "level"?`],
    ['an unknown log level', { ...ok, log: { level: 'verbose' } }, file, {}, `${at}log.level: expected one of "error", "warn", "info", "debug", got "verbose"`],
    ['an empty log file', { ...ok, log: { file: '' } }, file, {}, `${at}log.file: expected a file path, got ""`],
    ['a log file that is not a string', { ...ok, log: { file: 5 } }, file, {}, `${at}log.file: expected a file path, got 5`],
    ['an unknown log format', { ...ok, log: { format: 'xml' } }, file, {}, `${at}log.format: expected one of "json", "pretty", "auto", got "xml"`],
    ['an unknown user', { ...ok, user: 'nobody2' }, file, {}, `${at}user: unknown user "nobody2" (not in ${accounts.passwd})`],
    ['an empty user', { ...ok, user: '' }, file, {}, `${at}user: expected a user name or a numeric uid, got ""`],
    ['a negative uid', { ...ok, user: -1 }, file, {}, `${at}user: expected a user name or a numeric uid, got -1`],
    ['a fractional uid', { ...ok, user: 1.5 }, file, {}, `${at}user: expected a user name or a numeric uid, got 1.5`],
    ['a uid with no passwd entry and no group', { ...ok, user: 4242 }, file, {}, `${at}group: required with user 4242, which has no entry in ${accounts.passwd} to take its primary group from`],
    ['an unknown group', { ...ok, group: 'wheel2' }, file, {}, `${at}group: unknown group "wheel2" (not in ${accounts.group})`],
    ['an empty group', { ...ok, group: '' }, file, {}, `${at}group: expected a group name or a numeric gid, got ""`],
    ['a negative gid', { ...ok, group: -1 }, file, {}, `${at}group: expected a group name or a numeric gid, got -1`],
    ['a fractional gid', { ...ok, group: 1.5 }, file, {}, `${at}group: expected a group name or a numeric gid, got 1.5`],
    ['overload next to a plugin with that role', { ...ok, overload: 'abrupt', plugins: ['./ov.mjs'] }, file, {}, `${at}overload: conflicts with plugins[0], which also has the role "overload"; keep one of them`],
    ['recycle next to a plugin with that role', { ...ok, recycle: { maxConnectionsPerChild: 1 }, plugins: ['./rc.mjs'] }, file, {}, `${at}recycle: conflicts with plugins[0], which also has the role "recycle"; keep one of them`],
    ['a recycle option the plugin refuses', { ...ok, recycle: { maxConnectionsPerChild: -1 } }, file, {}, `${at}recycle.maxConnectionsPerChild: expected a non-negative integer, got -1`],
    ['an overload option the plugin refuses', { ...ok, overload: { strategy: 'abrupt', retryAfter: -1 } }, file, {}, `${at}overload.retryAfter: expected a non-negative integer (seconds), got -1`],
    ['a pool option out of range', { ...ok, children: { max: 0 } }, file, {}, `${at}children.max: expected a positive integer, got 0`],
    ['a bad --listen', ok, file, { overrides: { listen: ['bogus'] } }, 'command line: listen[0]: expected "host:port", "[ipv6]:port", ":port", "unix:/path", "fd:N" or "systemd", got "bogus"'],
    ['a file children.min above its max, with --children', { ...ok, children: { max: 2, min: 3 } }, file, { overrides: { children: 1 } }, `${at}children.min (3) must not exceed children.max (2)`],
    ['a --children above the file\'s max, which it raises', { ...ok, children: { max: 2, minSpare: 9, maxSpare: 1 } }, file, { overrides: { children: 5 } }, `${at}children.minSpare (9) must not exceed children.maxSpare (1)`],
    ['a mistake in package.json', { ...ok, backlog: 0 }, join(root, 'package.json'), {}, `${join(root, 'package.json')} ("prefork" key): backlog: expected an integer from 1 to 65535, got 0`],
    ['a mistake without a file', { backlog: 0 }, undefined, { overrides: { handler: 'app.mjs', listen: [':0'] } }, 'command line: backlog: expected an integer from 1 to 65535, got 0'],
    ['contents that are a number', 5, file, {}, `${at}expected an object of settings, got 5`],
    ['unix: without a path in the file', { ...ok, listen: 'unix:' }, file, {}, `${at}listen: expected a socket path after "unix:", got "unix:"`],
    ['an empty socket path in the file', { ...ok, listen: { path: '' } }, file, {}, `${at}listen.path: expected a socket path, got ""`],
    ['a socket path that is not a string in the file', { ...ok, listen: { path: 5 } }, file, {}, `${at}listen.path: expected a socket path, got 5`],
    ['an empty handler in the file', { ...ok, handler: '' }, file, {}, `${at}handler: expected a module path, got ""`],
    ['a bad --children, labelled as the command line', ok, file, { overrides: { children: -1 } }, 'command line: children.start: expected a non-negative integer, got -1'],
    ['an unknown user, looked up in /etc/passwd by default', { ...ok, user: 'nobody2' }, file, { accounts: undefined }, `${at}user: unknown user "nobody2" (not in /etc/passwd)`],
    ['an unknown group, looked up in /etc/group by default', { ...ok, group: 'nogroup2' }, file, { accounts: undefined }, `${at}group: unknown group "nogroup2" (not in /etc/group)`],
    ['a uid without an /etc/passwd entry and no group', { ...ok, user: 4242 }, file, { accounts: undefined }, `${at}group: required with user 4242, which has no entry in /etc/passwd to take its primary group from`],
  ];

  it.each(cases)('refuses %s', async (_name, contents, filepath, context, expected) => {
    const error = await failure(resolveConfig(contents, filepath, { cwd: root, accounts, ...context }));
    expect(error.code).toBe('PREFORK_ERR_CONFIG_INVALID');
    expect(error.message).toBe(expected);
  });

  it('accepts uid and gid 0, an empty --listen (the file\'s list stays), and an overload next to a plugin of another role', async () => {
    const zero = await resolveConfig({ ...ok, user: 0, group: 0 }, file, { cwd: root, accounts });
    expect({ user: zero.user, group: zero.group }).toEqual({ user: { name: 'root', uid: 0 }, group: { name: undefined, gid: 0 } });
    const listen = await resolveConfig({ ...ok, listen: ['127.0.0.1:1'] }, file, { cwd: root, accounts, overrides: { listen: [] } });
    expect(listen.pool.listen).toEqual(['127.0.0.1:1']);
    const other = await resolveConfig({ ...ok, overload: 'abrupt', plugins: ['./rc.mjs'] }, file, { cwd: root, accounts });
    expect(other.pool.plugins!.map((plugin) => plugin.constructor.name)).toEqual(['Object']);
    expect(other.resolved.overload).toEqual({ strategy: 'abrupt', retryAfter: 1 });
  });

  it('loadConfig with no config file found resolves from the flags alone', async () => {
    const bare = dir();
    const config = await loadConfig({ cwd: bare, overrides: { handler: 'app.mjs', listen: ['127.0.0.1:0'] } });
    expect(config.file).toBeUndefined();
    expect(config.pool.handler).toBe(join(bare, 'app.mjs'));
  });

  it('fills in the log defaults and resolves the log file against the config file', async () => {
    expect((await resolveConfig(ok, file, { cwd: '/', accounts })).log).toEqual({ level: 'info', file: undefined, format: 'auto' });
    expect((await resolveConfig({ ...ok, log: { level: 'debug', file: 'logs/p.log', format: 'pretty' } }, file, { cwd: '/', accounts })).log).toEqual({ level: 'debug', file: join(root, 'logs', 'p.log'), format: 'pretty' });
    expect((await resolveConfig({ ...ok, log: {} }, file, { cwd: '/', accounts })).log).toEqual({ level: 'info', file: undefined, format: 'auto' });
  });

  it('--children keeps a larger file max, raises a smaller one, and sets start alone when the file has none', async () => {
    const children = async (fileChildren: unknown, count: number) => (await resolveConfig({ ...ok, ...(fileChildren === undefined ? {} : { children: fileChildren }) }, file, { cwd: root, accounts, overrides: { children: count } })).pool.children;
    expect(await children({ max: 10, min: 1 }, 4)).toEqual({ max: 10, min: 1, start: 4 });
    expect(await children({ max: 2 }, 4)).toEqual({ max: 4, start: 4 });
    expect(await children(undefined, 3)).toEqual({ start: 3 });
    expect(await children({ max: 4 }, 4)).toEqual({ max: 4, start: 4 });
  });

  it('passes every pool key of the file through, and anchors relative socket paths at the file', async () => {
    const passed = {
      protocol: 'http',
      http: { keepAliveTimeout: 1000 },
      timeouts: { accept: 100 },
      env: { A: 'b' },
      execArgv: ['--no-warnings'],
      childMemoryReducer: true,
      backlog: 7,
      ordersPerWakeup: 2,
      acceptChain: 3,
      acceptChainChildren: 4,
      acceptChainBatchMs: 0,
      parentScheduling: 'normal',
      deferAccept: 5,
      notsentLowat: 16384,
      tickInterval: 50,
    };
    const config = await resolveConfig(
      {
        ...ok,
        listen: ['unix:rel.sock', 'unix:/abs.sock', { path: 'obj.sock' }, { path: '/abs2.sock' }, ' unix:sp.sock'],
        ...passed,
        user: 'web',
      },
      file,
      { cwd: '/elsewhere', accounts },
    );
    expect(config.pool).toMatchObject({
      listen: [`unix:${join(root, 'rel.sock')}`, 'unix:/abs.sock', { path: join(root, 'obj.sock') }, { path: '/abs2.sock' }, `unix:${join(root, 'sp.sock')}`],
      ...passed,
      logLevel: 'info',
      cwd: '/elsewhere',
      uid: 1500,
      gid: 1600,
    });
    const scgi = await resolveConfig({ ...ok, protocol: 'scgi', scgi: { maxHeaderSize: 100 } }, file, { cwd: root, accounts });
    expect(scgi.pool).toMatchObject({ protocol: 'scgi', scgi: { maxHeaderSize: 100 } });
    expect(Object.keys(scgi.pool).sort()).toEqual(['cwd', 'handler', 'listen', 'logLevel', 'plugins', 'protocol', 'scgi']);
    expect(scgi.user).toBeUndefined();
    expect(scgi.group).toBeUndefined();
  });
});
