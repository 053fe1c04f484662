/**
 * Builds the addon from source on this machine: `prefork build-addon` (users on a platform with no
 * prebuild) and `npm install` in a checkout of prefork. The build lands in
 * `src/native/build/Release/`, which the loader prefers over the prebuilds.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PreforkError } from '../errors.js';
import { nativeDirectory, TOOLCHAIN } from './load.js';

/** Options of {@link buildAddon}. */
export interface BuildAddonOptions {
  /** Compile the POSIX fallbacks that macOS and the BSDs use, also on Linux (for testing them). @default false */
  portable?: boolean;
}

/**
 * node-gyp: the copy npm names when it runs us (`npx`, `npm run`), else the one npm bundles next
 * to this Node (the layout of Node's own tarballs and of distribution packages).
 */
function findNodeGyp(): string | undefined {
  const named = process.env.npm_config_node_gyp;
  if (named && existsSync(named)) return named;
  const bundled = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  return existsSync(bundled) ? bundled : undefined;
}

/**
 * The headers of the running Node when it ships them (`<prefix>/include/node`), so that nothing is
 * downloaded; otherwise node-gyp fetches the headers of this Node's version itself.
 */
function localNodeDirectory(): string | undefined {
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

/** Builds the addon; returns the path of the built `prefork.node`. Throws `PREFORK_ERR_NATIVE_BUILD`. */
export function buildAddon(options: BuildAddonOptions = {}): string {
  const directory = nativeDirectory();
  const nodeGyp = findNodeGyp();
  if (nodeGyp === undefined) {
    throw new PreforkError('PREFORK_ERR_NATIVE_BUILD', 'cannot build the native addon: node-gyp was not found. Run this command through npm (`npx prefork build-addon`), which brings its own node-gyp.');
  }
  const args = [nodeGyp, 'rebuild', `--directory=${directory}`];
  const nodeDirectory = process.env.npm_config_nodedir ? undefined : localNodeDirectory();
  if (nodeDirectory) args.push(`--nodedir=${nodeDirectory}`);
  if (options.portable) args.push('--portable=1');
  const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
  if (result.error || result.status !== 0) {
    const why = result.error ? result.error.message : `node-gyp exited with ${result.status ?? result.signal}`;
    throw new PreforkError(
      'PREFORK_ERR_NATIVE_BUILD',
      `cannot build the native addon in ${directory}: ${why}. It needs ${TOOLCHAIN}.`,
      { cause: result.error },
    );
  }
  return join(directory, 'build', 'Release', 'prefork.node');
}
