import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PreforkError, toError } from '../errors.js';
import type { PoolPlugin } from '../pool/hooks.js';
import { describe } from '../pool/optionChecks.js';
import { checkCodeFile } from './ownership.js';

/** Plugin classes a config names without a path, by class name (the package's built-in plugins). */
export type BuiltinPlugins = Readonly<Record<string, unknown>>;

const EXPECTED = 'a plugin class, a factory function, or an object with apply(pool)';

function isPlugin(value: unknown): value is PoolPlugin {
  return typeof value === 'object' && value !== null && typeof (value as PoolPlugin).apply === 'function';
}

/** A class is told from a factory by an `apply` method on its prototype. */
function isPluginClass(value: unknown): value is new (options?: unknown) => PoolPlugin {
  return typeof value === 'function' && typeof (value as { prototype?: { apply?: unknown } }).prototype?.apply === 'function';
}

/**
 * A built-in plugin named by its class (`"ShutdownCheckPlugin"`), so that JSON and YAML configs
 * can use them. npm package names are lower case, so no package is shadowed.
 */
function builtinPlugin(name: string, builtins: BuiltinPlugins): (new (options?: unknown) => PoolPlugin) | undefined {
  if (!/^[A-Z]\w*Plugin$/.test(name) || !Object.hasOwn(builtins, name)) return undefined;
  const candidate = builtins[name];
  return isPluginClass(candidate) ? candidate : undefined;
}

/** Resolves a plugin specifier: a path relative to `baseDir`, or a package name installed there. */
function resolveSpecifier(specifier: string, baseDir: string, key: string): string {
  if (specifier.startsWith('.') || isAbsolute(specifier)) {
    const path = resolve(baseDir, specifier);
    if (!existsSync(path)) throw new PreforkError('PREFORK_ERR_CONFIG_INVALID', `${key}: plugin module not found: ${path} (from ${JSON.stringify(specifier)})`);
    return path;
  }
  try {
    return createRequire(join(baseDir, 'noop.js')).resolve(specifier);
  } catch (error) {
    throw new PreforkError('PREFORK_ERR_CONFIG_INVALID', `${key}: cannot find the plugin package ${JSON.stringify(specifier)} from ${baseDir}`, { cause: error });
  }
}

/** Turns what a plugin module exports into a plugin instance, or explains why it is not one. */
function instantiate(exported: unknown, options: unknown, hasOptions: boolean, key: string): PoolPlugin {
  if (isPluginClass(exported)) return new exported(options);
  if (typeof exported === 'function') {
    const made = (exported as (options?: unknown) => unknown)(options);
    if (!isPlugin(made)) throw new PreforkError('PREFORK_ERR_PLUGIN_INVALID', `${key}: the factory function returned ${describe(made)}, not a plugin (an object with apply(pool))`);
    return made;
  }
  if (isPlugin(exported)) {
    if (hasOptions) throw new PreforkError('PREFORK_ERR_PLUGIN_INVALID', `${key}: the module exports a plugin object, which takes no options; export a class or a factory function to pass options`);
    return exported;
  }
  throw new PreforkError('PREFORK_ERR_PLUGIN_INVALID', `${key}: the module does not export a plugin (expected ${EXPECTED} as its default export, got ${describe(exported)})`);
}

/**
 * Loads the `plugins` list of a config file: each entry is a module path (relative to `baseDir`,
 * the config file's directory), a package name, the class name of a built-in plugin
 * named in `builtins` (`"ShutdownCheckPlugin"`), any of these with options (`[name, options]`), or a plugin instance. Errors name the entry
 * (`plugins[1]`): a module that is missing, fails to load, or does not export a plugin.
 */
export async function loadPlugins(entries: unknown, baseDir: string, builtins: BuiltinPlugins = {}): Promise<PoolPlugin[]> {
  if (entries === undefined) return [];
  if (!Array.isArray(entries)) throw new PreforkError('PREFORK_ERR_CONFIG_INVALID', `plugins: expected a list of plugins ("./plugin.js", ["./plugin.js", { options }] or a plugin instance), got ${describe(entries)}`);
  const plugins: PoolPlugin[] = [];
  for (const [index, entry] of entries.entries()) {
    const key = `plugins[${index}]`;
    if (isPlugin(entry)) {
      plugins.push(entry);
      continue;
    }
    let specifier: unknown = entry;
    let options: unknown;
    let hasOptions = false;
    if (Array.isArray(entry)) {
      if (entry.length < 1 || entry.length > 2) throw new PreforkError('PREFORK_ERR_CONFIG_INVALID', `${key}: expected ["module path", { options }], got ${describe(entry)}`);
      [specifier, options] = entry;
      hasOptions = entry.length === 2;
    }
    if (typeof specifier !== 'string' || specifier === '') {
      throw new PreforkError('PREFORK_ERR_CONFIG_INVALID', `${key}: expected a module path, ["module path", { options }] or a plugin instance, got ${describe(entry)}`);
    }
    const label = `${key} (${specifier})`;
    let exported: unknown = builtinPlugin(specifier, builtins);
    if (exported === undefined) {
      const path = resolveSpecifier(specifier, baseDir, key);
      checkCodeFile(path, 'the plugin module', key);
      let loaded: { default?: unknown };
      try {
        loaded = (await import(pathToFileURL(path).href)) as { default?: unknown };
      } catch (error) {
        throw new PreforkError('PREFORK_ERR_PLUGIN_INVALID', `${label}: the plugin module failed to load: ${toError(error).message}`, { cause: error });
      }
      // ES modules: the default export; CommonJS: module.exports arrives as the default.
      exported = 'default' in loaded ? loaded.default : loaded;
    }
    try {
      plugins.push(instantiate(exported, options, hasOptions, label));
    } catch (error) {
      if (error instanceof PreforkError && error.message.startsWith(label)) throw error;
      throw new PreforkError('PREFORK_ERR_PLUGIN_INVALID', `${label}: ${toError(error).message}`, { cause: error });
    }
  }
  return plugins;
}
