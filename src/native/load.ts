/**
 * Finds and loads the native addon.
 *
 * A user's install holds prebuilt binaries (made by prebuildify) under
 * `src/native/prebuilds/<platform>-<arch>/`, and node-gyp-build picks the one that fits this
 * process: platform, arch, libc and N-API. A build from source (`npx prefork build-addon`, or
 * `npm install` in a checkout of prefork) lands in `src/native/build/Release/` and wins over the
 * prebuilds, so that a user who built the addon gets the one they built.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PreforkError } from '../errors.js';

/** The one command that builds the addon on the user's machine. */
export const BUILD_COMMAND = 'npx prefork build-addon';

/** What a build from source needs, and how to get it on the common systems. */
export const TOOLCHAIN = 'python3, make and a C compiler (on Debian/Ubuntu: `apt-get install python3 make gcc`; on Alpine: `apk add python3 make gcc musl-dev`; on macOS: `xcode-select --install`)';

const BUILD_ADVICE = `Build it from source with \`${BUILD_COMMAND}\`, which needs ${TOOLCHAIN}.`;

/** node-gyp-build's lookup, typed for what we use of it. */
interface NodeGypBuild {
  path(directory: string): string;
}

const requireHere = createRequire(import.meta.url);

/**
 * The directory holding `binding.gyp`, the build and the prebuilds: `src/native/` of the package.
 * The same code runs from `src/native/` itself (tests) and bundled into `dist/`, so walk up from
 * here to the first directory that is it or holds it.
 */
export function nativeDirectory(start = dirname(fileURLToPath(import.meta.url))): string {
  for (let directory = start; ; directory = dirname(directory)) {
    if (existsSync(join(directory, 'binding.gyp'))) return directory;
    const nested = join(directory, 'src', 'native');
    if (existsSync(join(nested, 'binding.gyp'))) return nested;
    if (dirname(directory) === directory) {
      throw new PreforkError('PREFORK_ERR_NATIVE_LOAD', `cannot load the native addon: no src/native/binding.gyp in ${start} or any directory above it, so this is not an intact prefork package. Reinstall prefork.`);
    }
  }
}

/** `glibc` or `musl` on Linux (what a prebuild must be built against); undefined elsewhere. */
function libcFamily(): 'glibc' | 'musl' | undefined {
  if (process.platform !== 'linux') return undefined;
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return header?.glibcVersionRuntime ? 'glibc' : 'musl';
}

/** The prebuilds a package holds, as `linux-x64/node.napi.glibc.node` lines. */
function listPrebuilds(directory: string): string[] {
  const root = join(directory, 'prebuilds');
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .sort()
    .flatMap((tuple) => readdirSync(join(root, tuple)).filter((file) => file.endsWith('.node')).map((file) => `${tuple}/${file}`));
}

/** What this process needs, in the words of a prebuild's name: `linux-x64 (glibc), Node 20.20.2, N-API 9`. */
function wanted(): string {
  const libc = libcFamily();
  return `${process.platform}-${process.arch}${libc ? ` (${libc})` : ''}, Node ${process.versions.node}, N-API ${process.versions.napi}`;
}

/**
 * The addon file this process loads: a build from source when there is one, else the prebuild
 * that fits. Throws `PREFORK_ERR_NATIVE_LOAD` saying what was looked for, what exists, and the
 * build command.
 */
export function findAddon(): string {
  const directory = nativeDirectory();
  try {
    return (requireHere('node-gyp-build') as NodeGypBuild).path(directory);
  } catch (error) {
    const found = listPrebuilds(directory);
    throw new PreforkError(
      'PREFORK_ERR_NATIVE_LOAD',
      `cannot load the native addon: prefork has no prebuilt addon for ${wanted()} ` +
        `(prebuilds in ${join(directory, 'prebuilds')}: ${found.length > 0 ? found.join(', ') : 'none'}; ` +
        `no build in ${join(directory, 'build', 'Release')}). ${BUILD_ADVICE}`,
      { cause: error },
    );
  }
}

/** Loads the addon found by {@link findAddon}. Throws `PREFORK_ERR_NATIVE_LOAD`. */
export function loadAddon<Binding>(): Binding {
  const path = findAddon();
  try {
    return requireHere(path) as Binding;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new PreforkError('PREFORK_ERR_NATIVE_LOAD', `cannot load the native addon ${path} for ${wanted()}: ${reason}. ${BUILD_ADVICE}`, { cause: error });
  }
}
