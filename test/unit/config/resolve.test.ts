import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AbruptOverloadPlugin } from '../../../plugins/AbruptOverloadPlugin.js';
import { GracefulOverloadPlugin } from '../../../plugins/GracefulOverloadPlugin.js';
import { RecyclePlugin } from '../../../plugins/RecyclePlugin.js';
import { findGroup, findUser, findUserById } from '../../../src/config/accounts.js';
import { ParentLog } from '../../../src/config/log.js';
import { loadConfig, resolveConfig } from '../../../src/config/resolve.js';
import { closest } from '../../../src/config/suggest.js';
import { defineConfig } from '../../../src/index.js';
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

  it('builds the overload and recycle plugins from their sections', async () => {
    const root = dir();
    const file = join(root, 'prefork.config.json');
    const config = await resolveConfig({ handler: './app.mjs', listen: ':0', overload: { strategy: 'abrupt', response: 'http-503', retryAfter: 3 }, recycle: { maxConnectionsPerChild: 100, jitter: 10 } }, file, { cwd: root });
    expect(config.pool.plugins?.map((plugin) => plugin.constructor)).toEqual([AbruptOverloadPlugin, RecyclePlugin]);
    expect((config.pool.plugins![1] as RecyclePlugin).options).toMatchObject({ maxConnectionsPerChild: 100, jitter: 10 });
    const graceful = await resolveConfig({ handler: './app.mjs', listen: ':0', overload: 'graceful' }, file, { cwd: root });
    expect(graceful.pool.plugins?.[0]).toBeInstanceOf(GracefulOverloadPlugin);
    // Without the sections, the pool's default plugins apply.
    expect((await resolveConfig({ handler: './app.mjs', listen: ':0' }, file, { cwd: root })).pool.plugins).toEqual([]);
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
    const config = await resolveConfig({ handler: './app.mjs', listen: ':0', plugins: [['RecyclePlugin', { maxChildAge: 60000 }]] }, file, { cwd: root });
    expect(config.pool.plugins?.[0]).toBeInstanceOf(RecyclePlugin);
    expect((config.pool.plugins![0] as RecyclePlugin).options.maxChildAge).toBe(60000);
    const error = await failure(resolveConfig({ handler: './app.mjs', listen: ':0', plugins: [['RecyclePlugin', { maxAge: 1 }]] }, file, { cwd: root }));
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

describe('helpers', () => {
  it('defineConfig returns its argument, typed', () => {
    const config = { handler: './app.js', listen: '127.0.0.1:8080' };
    expect(defineConfig(config)).toBe(config);
  });

  it('suggests the closest known word for a plausible typo only', () => {
    expect(closest('chidren', ['children', 'handler'])).toBe('children');
    expect(closest('LISTEN', ['listen'])).toBe('listen');
    expect(closest('zzz', ['children', 'handler'])).toBeUndefined();
  });
});
