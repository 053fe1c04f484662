import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as builtins from '../../../plugins/index.js';
import { ShutdownCheckPlugin } from '../../../plugins/ShutdownCheckPlugin.js';
import { loadPlugins } from '../../../src/config/plugins.js';
import { tempDir } from '../../helpers.js';

/** A directory with plugin modules, one per entry. */
function modules(files: Record<string, string>): string {
  const root = tempDir('prefork-plugins-');
  writeFileSync(join(root, 'package.json'), '{"name":"app","type":"module"}');
  for (const [name, contents] of Object.entries(files)) writeFileSync(join(root, name), contents);
  return root;
}

async function refusal(entries: unknown, root: string): Promise<{ code?: string; message: string }> {
  const error = await loadPlugins(entries, root, builtins).then(
    () => undefined,
    (e: unknown) => e as Error & { code?: string },
  );
  if (!error) throw new Error('expected loadPlugins to refuse');
  return { code: error.code, message: error.message };
}

describe('loadPlugins', () => {
  const root = modules({
    'object.mjs': 'export default { apply() {} };',
    'class.mjs': 'export default class P { constructor(o) { this.o = o; } apply() {} }',
    'factory.mjs': 'export default (o) => ({ o, apply() {} });',
    'bad-factory.mjs': 'export default () => 42;',
    'nothing.mjs': 'export default 7;',
    'throws.mjs': 'throw new Error("broken at load");',
    'ctor-throws.mjs': 'export default class P { constructor() { throw new Error("bad options"); } apply() {} }',
    'cjs.cjs': 'module.exports = { apply() {} };',
    'named.mjs': 'export const x = 1;',
  });

  it('loads each entry form, passing options to classes and factories', async () => {
    const instance = { apply() {} };
    const [object, klass, factory, cjs, given, builtin] = await loadPlugins(['./object.mjs', ['./class.mjs', { a: 1 }], [join(root, 'factory.mjs'), { b: 2 }], './cjs.cjs', instance, ['ShutdownCheckPlugin', { maxUptime: 5 }]], root, builtins);
    expect(typeof object!.apply).toBe('function');
    expect((klass as unknown as { o: unknown }).o).toEqual({ a: 1 });
    expect((factory as unknown as { o: unknown }).o).toEqual({ b: 2 });
    expect(typeof cjs!.apply).toBe('function');
    expect(given).toBe(instance);
    expect(builtin).toBeInstanceOf(ShutdownCheckPlugin);
    expect(await loadPlugins(undefined, root)).toEqual([]);
    expect(await loadPlugins([['./class.mjs']], root)).toHaveLength(1);
    // A one-element list carries no options, so a plugin object is fine there.
    expect(await loadPlugins([['./object.mjs']], root)).toHaveLength(1);
  });

  it('finds a plugin package installed next to the config file', async () => {
    const withPackage = modules({});
    mkdirSync(join(withPackage, 'node_modules', 'prefork-plugin-demo'), { recursive: true });
    writeFileSync(join(withPackage, 'node_modules', 'prefork-plugin-demo', 'package.json'), '{"name":"prefork-plugin-demo","main":"index.js"}');
    writeFileSync(join(withPackage, 'node_modules', 'prefork-plugin-demo', 'index.js'), 'module.exports = { demo: true, apply() {} };');
    const [plugin] = await loadPlugins(['prefork-plugin-demo'], withPackage);
    expect((plugin as unknown as { demo: boolean }).demo).toBe(true);
  });

  it('keeps the underlying error as the cause', async () => {
    const causeOf = async (entries: unknown) => ((await loadPlugins(entries, root).catch((e: unknown) => e)) as { cause?: unknown }).cause;
    expect(((await causeOf(['./throws.mjs'])) as Error).message).toBe('broken at load');
    expect(((await causeOf(['./ctor-throws.mjs'])) as Error).message).toBe('bad options');
    expect(((await causeOf(['prefork-plugin-nonexistent'])) as { code?: string }).code).toBe('MODULE_NOT_FOUND');
  });

  const cases: [string, unknown, string, string][] = [
    ['plugins that are not a list', { a: 1 }, 'PREFORK_ERR_CONFIG_INVALID', 'plugins: expected a list of plugins ("./plugin.js", ["./plugin.js", { options }] or a plugin instance), got {"a":1}'],
    ['an empty entry list', [[]], 'PREFORK_ERR_CONFIG_INVALID', 'plugins[0]: expected ["module path", { options }], got []'],
    ['an entry list of three', [['./object.mjs', {}, 1]], 'PREFORK_ERR_CONFIG_INVALID', 'plugins[0]: expected ["module path", { options }], got ["./object.mjs",{},1]'],
    ['an empty specifier', [''], 'PREFORK_ERR_CONFIG_INVALID', 'plugins[0]: expected a module path, ["module path", { options }] or a plugin instance, got ""'],
    ['a number', [5], 'PREFORK_ERR_CONFIG_INVALID', 'plugins[0]: expected a module path, ["module path", { options }] or a plugin instance, got 5'],
    ['null', [null], 'PREFORK_ERR_CONFIG_INVALID', 'plugins[0]: expected a module path, ["module path", { options }] or a plugin instance, got null'],
    ['a bare function', [function plugin() {}], 'PREFORK_ERR_CONFIG_INVALID', 'plugins[0]: expected a module path, ["module path", { options }] or a plugin instance, got a function'],
    ['a missing relative module', ['./object.mjs', './missing.mjs'], 'PREFORK_ERR_CONFIG_INVALID', `plugins[1]: plugin module not found: ${join(root, 'missing.mjs')} (from "./missing.mjs")`],
    ['a missing absolute module', ['/nonexistent/p.mjs'], 'PREFORK_ERR_CONFIG_INVALID', 'plugins[0]: plugin module not found: /nonexistent/p.mjs (from "/nonexistent/p.mjs")'],
    ['a package that is not installed', ['prefork-plugin-nonexistent'], 'PREFORK_ERR_CONFIG_INVALID', `plugins[0]: cannot find the plugin package "prefork-plugin-nonexistent" from ${root}`],
    ['a class name that is not a built-in', ['NoSuchPlugin'], 'PREFORK_ERR_CONFIG_INVALID', `plugins[0]: cannot find the plugin package "NoSuchPlugin" from ${root}`],
    ['a module that throws', ['./throws.mjs'], 'PREFORK_ERR_PLUGIN_INVALID', 'plugins[0] (./throws.mjs): the plugin module failed to load: broken at load'],
    ['a factory that returns no plugin', ['./bad-factory.mjs'], 'PREFORK_ERR_PLUGIN_INVALID', 'plugins[0] (./bad-factory.mjs): the factory function returned 42, not a plugin (an object with apply(pool))'],
    ['a module that exports no plugin', ['./nothing.mjs'], 'PREFORK_ERR_PLUGIN_INVALID', 'plugins[0] (./nothing.mjs): the module does not export a plugin (expected a plugin class, a factory function, or an object with apply(pool) as its default export, got 7)'],
    ['a module without a default export', ['./named.mjs'], 'PREFORK_ERR_PLUGIN_INVALID', 'plugins[0] (./named.mjs): the module does not export a plugin (expected a plugin class, a factory function, or an object with apply(pool) as its default export, got {"x":1})'],
    ['options for a plugin object', [['./object.mjs', { a: 1 }]], 'PREFORK_ERR_PLUGIN_INVALID', 'plugins[0] (./object.mjs): the module exports a plugin object, which takes no options; export a class or a factory function to pass options'],
    ['a constructor that throws', ['./ctor-throws.mjs'], 'PREFORK_ERR_PLUGIN_INVALID', 'plugins[0] (./ctor-throws.mjs): bad options'],
    ['a built-in plugin refusing its options', [['ShutdownCheckPlugin', { maxUptime: -1 }]], 'PREFORK_ERR_PLUGIN_INVALID', 'plugins[0] (ShutdownCheckPlugin): ShutdownCheckPlugin maxUptime: expected a non-negative integer, got -1'],
  ];

  it.each(cases)('refuses %s', async (_name, entries, code, message) => {
    expect(await refusal(entries, root)).toEqual({ code, message });
  });
});
