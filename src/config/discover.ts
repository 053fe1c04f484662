import { realpath } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, isAbsolute, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cosmiconfig, defaultLoaders, type Loader } from 'cosmiconfig';
import { PreforkError, toError } from '../errors.js';
import { checkCodeFile } from './ownership.js';

/** The file names searched in each directory, in this order (the first found wins). */
export const SEARCH_PLACES: readonly string[] = Object.freeze([
  'package.json',
  '.preforkrc',
  '.preforkrc.json',
  '.preforkrc.yaml',
  '.preforkrc.yml',
  '.preforkrc.js',
  '.preforkrc.cjs',
  '.preforkrc.mjs',
  'prefork.config.json',
  'prefork.config.js',
  'prefork.config.cjs',
  'prefork.config.mjs',
  'prefork.config.ts',
]);

/** A configuration read from a file: its contents (not yet checked) and where it came from. */
export interface FoundConfig {
  /** Whatever the file holds or exports; checked by `resolveConfig`. */
  config: unknown;
  /** Absolute path of the file. */
  filepath: string;
}

const require = createRequire(import.meta.url);
let importCount = 0;

/**
 * Imports a JS config afresh each time, so that a reload (SIGHUP) sees the edited file: ES modules
 * are cached by URL, so each import gets a new query; CommonJS ones are cached by file name,
 * which the import of a `.cjs` file goes through as well.
 */
const loadJsFresh: Loader = async (filepath) => {
  const real = await realpath(filepath);
  delete require.cache[real];
  const url = pathToFileURL(real);
  url.search = `?load=${++importCount}`;
  const loaded = (await import(url.href)) as { default?: unknown };
  return loaded.default;
};

/**
 * cosmiconfig's TypeScript loader needs the `typescript` package at run time (Node 20 cannot strip
 * types itself). Without it the import fails deep inside cosmiconfig; say what to do instead.
 */
export function typescriptLoader(loadTs: Loader = defaultLoaders['.ts']): Loader {
  return async (filepath, content) => {
    try {
      return await loadTs(filepath, content);
    } catch (error) {
      const err = error as NodeJS.ErrnoException;
      if ((err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'MODULE_NOT_FOUND') && /['"]typescript['"]/.test(err.message)) {
        throw new PreforkError(
          'PREFORK_ERR_CONFIG_LOAD',
          `${displayPath(filepath)}: a TypeScript config needs the "typescript" package, which is not installed: ` +
            `run "npm install --save-dev typescript", or write the config as prefork.config.mjs`,
          { cause: error },
        );
      }
      throw error;
    }
  };
}

/** A path as a message shows it: relative to the working directory when inside it, else absolute. */
export function displayPath(filepath: string): string {
  const rel = relative(process.cwd(), filepath);
  return rel && rel.split(sep)[0] !== '..' && !isAbsolute(rel) ? rel : filepath;
}

/** A loader of code that first checks who could have written it (see `checkCodeFile`). */
function checkedCode(load: Loader): Loader {
  return (filepath, content) => {
    checkCodeFile(filepath, 'the config file', displayPath(filepath));
    return load(filepath, content);
  };
}

function explorer(typescript?: Loader) {
  return cosmiconfig('prefork', {
    searchPlaces: [...SEARCH_PLACES],
    // Upward from the working directory, stopping at the project root (the first directory with a
    // package.json), as a server's config belongs to its project, not to the user's home.
    searchStrategy: 'project',
    cache: false,
    loaders: {
      '.js': checkedCode(loadJsFresh),
      '.cjs': checkedCode(loadJsFresh),
      '.mjs': checkedCode(loadJsFresh),
      '.ts': checkedCode(typescriptLoader(typescript)),
    },
  });
}

function loadError(filepath: string, error: unknown): PreforkError {
  if (error instanceof PreforkError) return error;
  const err = toError(error);
  // cosmiconfig words parse errors as "JSON Error in /abs/path:" followed by code frames around
  // the reason; keep the reason alone (the frames are a terminal's, and the file is named once).
  const parse = /^(JSON|YAML|TypeScript) Error in [^\n]*?:\s*\n([\s\S]*)$/.exec(err.message);
  const message = parse
    ? `${parse[1]} syntax error: ${
        parse[2]!
          .split('\n')
          .map((line) => line.trim())
          .find((line) => line && !/^(>|\d+ \||\||-+\^)/.test(line))
          ?.replace(/ while parsing .*$/, '') ?? 'cannot parse'
      }`
    : err.message.replace(/\n+/g, ' ');
  return new PreforkError('PREFORK_ERR_CONFIG_LOAD', `${displayPath(filepath)}: cannot load the configuration: ${message}`, { cause: error });
}

/** Options of {@link findConfig}. */
export interface FindConfigOptions {
  /** An explicit config file (`--config`); no search then. */
  file?: string;
  /** Where the search starts. @default process.cwd() */
  cwd?: string;
  /** Replaces cosmiconfig's TypeScript loader (tests simulate a missing `typescript` with it). */
  loadTs?: Loader;
}

/**
 * Finds and reads the configuration: the file given, or the first of {@link SEARCH_PLACES} found
 * in the working directory or above it, up to the project root. Resolves with undefined when the
 * search finds nothing. Throws PREFORK_ERR_CONFIG_LOAD naming the file when one cannot be read
 * or parsed.
 */
export async function findConfig(options: FindConfigOptions = {}): Promise<FoundConfig | undefined> {
  const cwd = options.cwd ?? process.cwd();
  const search = explorer(options.loadTs);
  if (options.file !== undefined) {
    const filepath = resolve(cwd, options.file);
    let result;
    try {
      result = await search.load(filepath);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new PreforkError('PREFORK_ERR_CONFIG_LOAD', `${displayPath(filepath)}: no such config file`, { cause: error });
      throw loadError(filepath, error);
    }
    if (result === null || result === undefined) {
      if (basename(filepath) === 'package.json') throw new PreforkError('PREFORK_ERR_CONFIG_LOAD', `${displayPath(filepath)}: has no "prefork" key`);
      return { config: {}, filepath };
    }
    return { config: result.isEmpty ? {} : result.config, filepath: result.filepath };
  }
  let result;
  try {
    result = await search.search(cwd);
  } catch (error) {
    throw loadError((error as { filepath?: string }).filepath ?? cwd, error);
  }
  if (!result) return undefined;
  return { config: result.isEmpty ? {} : result.config, filepath: result.filepath };
}
