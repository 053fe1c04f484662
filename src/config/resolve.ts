import { statSync } from 'node:fs';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import type { Loader } from 'cosmiconfig';
import type { LogLevel } from '../child/types.js';
import { PreforkError } from '../errors.js';
import { LOG_LEVELS } from '../logger.js';
import { describe } from '../pool/optionChecks.js';
import { resolvePoolOptions, type ListenSpec, type PoolOptions, type ResolvedPoolOptions } from '../pool/options.js';
import { PROTOCOLS } from '../protocols/index.js';
import { TLS_FILE_KEYS } from '../pool/tls.js';
import { findGroup, findUser, findUserById, type AccountFiles } from './accounts.js';
import { displayPath, findConfig, SEARCH_PLACES } from './discover.js';
import { loadPlugins, type BuiltinPlugins } from './plugins.js';
import { didYouMean } from './suggest.js';
import type { LogConfig, PreforkConfig } from './types.js';

/** The top-level keys of a config file; anything else is refused as a typo. */
export const CONFIG_KEYS: readonly (keyof PreforkConfig)[] = Object.freeze([
  'handler', 'listen', 'protocol', 'http', 'scgi', 'children', 'timeouts', 'overload', 'recycle', 'plugins',
  'user', 'group', 'log', 'env', 'execArgv', 'childMemoryReducer', 'backlog', 'ordersPerWakeup', 'acceptChain', 'acceptChainChildren', 'acceptChainBatchMs', 'parentScheduling', 'deferAccept', 'notsentLowat', 'tickInterval', 'status',
] as const);

const LOG_KEYS = ['level', 'file', 'format'];
const LOG_FORMATS = ['json', 'pretty', 'auto'] as const;

/** Command-line flags that override the file (`--handler`, `--listen`, `--children`, `--protocol`). */
export interface ConfigOverrides {
  /** A handler path, relative to the working directory. */
  handler?: string;
  /** Listen addresses; they replace the file's list. */
  listen?: string[];
  /** Children to start with (`children.start`); `children.max` is raised to it if lower. */
  children?: number;
  protocol?: string;
}

/** The parent's log settings after defaults. */
export interface ResolvedLogConfig {
  level: LogLevel;
  /** Absolute path of the log file, or undefined for stderr. */
  file: string | undefined;
  format: 'json' | 'pretty' | 'auto';
}

/** A configuration after every check: what `new Pool()` and `pool.reload()` get, and the command's own settings. */
export interface ResolvedConfig {
  /** The config file (absolute), or undefined when everything came from flags. */
  file: string | undefined;
  /** Options for `new Pool()` / `pool.reload()`, paths absolute, the user's plugins instantiated (no logger yet). */
  pool: PoolOptions;
  /** The same, after `resolvePoolOptions()`: the defaults made explicit. */
  resolved: ResolvedPoolOptions;
  log: ResolvedLogConfig;
  /** The run-as user of the children, when configured. */
  user: { name: string | undefined; uid: number } | undefined;
  /** The run-as group of the children, when configured or implied by `user`. */
  group: { name: string | undefined; gid: number } | undefined;
}

/** Options of {@link resolveConfig} and {@link loadConfig}. */
export interface ConfigContext {
  /** Where the search starts and what flag paths are relative to. @default process.cwd() */
  cwd?: string;
  overrides?: ConfigOverrides;
  /** Account databases, for tests. */
  accounts?: AccountFiles;
  /**
   * The plugin classes a config may name without a path (`"ShutdownCheckPlugin"`). The command
   * passes the package's built-in plugins; config loading itself knows none. @default {}
   */
  builtins?: BuiltinPlugins;
}

function configError(message: string, cause?: unknown): PreforkError {
  return new PreforkError('PREFORK_ERR_CONFIG_INVALID', message, cause === undefined ? undefined : { cause });
}

/** The key path an error message starts with (`children.max` for `children.max: ...`). */
function leadingKeyPath(message: string): string {
  return /^([\w.[\]]+)/.exec(message)?.[1] ?? '';
}

/** The key paths each flag sets, to tell a flag's mistake from the file's. */
const FLAG_KEY_PATHS: Record<keyof ConfigOverrides, string[]> = {
  handler: ['handler'],
  listen: ['listen'],
  protocol: ['protocol'],
  children: ['children.start', 'children.max'],
};

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Config-file listen specs hold paths relative to the file; make Unix socket paths absolute against `base`. */
function anchorListen(spec: unknown, base: string): unknown {
  if (typeof spec === 'string' && spec.trim().startsWith('unix:')) {
    const path = spec.trim().slice(5);
    return path && !isAbsolute(path) ? `unix:${resolve(base, path)}` : spec;
  }
  if (!isObject(spec)) return spec;
  const anchored = typeof spec.path === 'string' && spec.path && !isAbsolute(spec.path) ? { ...spec, path: resolve(base, spec.path) } : spec;
  return isObject(spec.tls) ? { ...anchored, tls: anchorTls(spec.tls, base) } : anchored;
}

/** The file paths of a listener's `tls` (`cert`, `key`, `ca`, `dhparam`), relative to the config file. */
function anchorTls(tls: Record<string, unknown>, base: string): Record<string, unknown> {
  const anchor = (path: unknown) => (typeof path === 'string' && path && !isAbsolute(path) ? resolve(base, path) : path);
  const anchored: Record<string, unknown> = { ...tls };
  for (const key of TLS_FILE_KEYS) {
    if (tls[key] !== undefined) anchored[key] = Array.isArray(tls[key]) ? (tls[key] as unknown[]).map(anchor) : anchor(tls[key]);
  }
  return anchored;
}

function checkLog(value: unknown, base: string): ResolvedLogConfig {
  if (value === undefined) return { level: 'info', file: undefined, format: 'auto' };
  if (!isObject(value)) throw configError(`log: expected an object ({ level, file, format }), got ${describe(value)}`);
  for (const key of Object.keys(value)) {
    if (!LOG_KEYS.includes(key)) throw configError(`log.${key}: unknown key (known: ${LOG_KEYS.join(', ')})${didYouMean(key, LOG_KEYS)}`);
  }
  const log = value as LogConfig;
  const level = log.level ?? 'info';
  if (!LOG_LEVELS.includes(level)) throw configError(`log.level: expected one of ${LOG_LEVELS.map((l) => `"${l}"`).join(', ')}, got ${describe(log.level)}`);
  if (log.file !== undefined && (typeof log.file !== 'string' || log.file === '')) throw configError(`log.file: expected a file path, got ${describe(log.file)}`);
  const format = log.format ?? 'auto';
  if (!LOG_FORMATS.includes(format)) throw configError(`log.format: expected one of ${LOG_FORMATS.map((f) => `"${f}"`).join(', ')}, got ${describe(log.format)}`);
  return { level, file: log.file === undefined ? undefined : resolve(base, log.file), format };
}

function checkHandler(path: string, source: string): void {
  let isFile = false;
  try {
    isFile = statSync(path).isFile();
  } catch {
    throw configError(`handler: file not found: ${path}${source}`);
  }
  if (!isFile) throw configError(`handler: not a file: ${path}${source}`);
}

function resolveAccounts(config: PreforkConfig, files: AccountFiles | undefined): Pick<ResolvedConfig, 'user' | 'group'> {
  let user: ResolvedConfig['user'];
  let group: ResolvedConfig['group'];
  let primaryGid: number | undefined;
  if (config.user !== undefined) {
    if (typeof config.user === 'string' && config.user !== '') {
      const account = findUser(config.user, files);
      if (!account) throw configError(`user: unknown user ${JSON.stringify(config.user)} (not in ${files?.passwd ?? '/etc/passwd'})`);
      user = { name: account.name, uid: account.uid };
      primaryGid = account.gid;
    } else if (typeof config.user === 'number' && Number.isInteger(config.user) && config.user >= 0) {
      const account = findUserById(config.user, files);
      user = { name: account?.name, uid: config.user };
      primaryGid = account?.gid;
    } else {
      throw configError(`user: expected a user name or a numeric uid, got ${describe(config.user)}`);
    }
  }
  if (config.group !== undefined) {
    if (typeof config.group === 'string' && config.group !== '') {
      const account = findGroup(config.group, files);
      if (!account) throw configError(`group: unknown group ${JSON.stringify(config.group)} (not in ${files?.group ?? '/etc/group'})`);
      group = { name: account.name, gid: account.gid };
    } else if (typeof config.group === 'number' && Number.isInteger(config.group) && config.group >= 0) {
      group = { name: undefined, gid: config.group };
    } else {
      throw configError(`group: expected a group name or a numeric gid, got ${describe(config.group)}`);
    }
  } else if (user) {
    // Children must not keep root's group when only a user is named: use the user's own group.
    if (primaryGid === undefined) throw configError(`group: required with user ${user.uid}, which has no entry in ${files?.passwd ?? '/etc/passwd'} to take its primary group from`);
    group = { name: undefined, gid: primaryGid };
  }
  return { user, group };
}

/**
 * Checks a configuration file's contents and turns them into pool options. On top of
 * `resolvePoolOptions()` (types, ranges, nested unknown keys, `min > max`...), it refuses unknown
 * top-level keys, checks that the handler file exists, loads the plugins, and resolves `user` and
 * `group` to ids. The `overload` and `recycle` sections stay options: the pool builds their
 * plugins (so a reload builds them again from the new file). Paths in the file are relative to
 * it; paths in flags to the working directory. Every error is PREFORK_ERR_CONFIG_INVALID (or
 * PREFORK_ERR_PLUGIN_INVALID for a plugin) with the file and the key path in its message:
 * `prefork.config.json: children.max: expected a positive integer, got "ten"`.
 */
export async function resolveConfig(contents: unknown, filepath: string | undefined, context: ConfigContext = {}): Promise<ResolvedConfig> {
  const cwd = context.cwd ?? process.cwd();
  const overrides = context.overrides ?? {};
  const fileLabel = filepath === undefined ? undefined : basename(filepath) === 'package.json' ? `${displayPath(filepath)} ("prefork" key)` : displayPath(filepath);
  const flagPaths = (Object.keys(FLAG_KEY_PATHS) as (keyof ConfigOverrides)[]).filter((flag) => overrides[flag] !== undefined).flatMap((flag) => FLAG_KEY_PATHS[flag]);
  const label = (message: string) => {
    const path = leadingKeyPath(message);
    const fromFlag = flagPaths.some((flagPath) => path === flagPath || path.startsWith(`${flagPath}.`) || path.startsWith(`${flagPath}[`));
    return fromFlag ? 'command line' : fileLabel ?? 'command line';
  };
  try {
    return await resolveChecked(contents ?? {}, filepath, cwd, overrides, context);
  } catch (error) {
    if (!(error instanceof PreforkError)) throw error;
    const code = error.code === 'PREFORK_ERR_PLUGIN_INVALID' ? error.code : 'PREFORK_ERR_CONFIG_INVALID';
    // The cause is what was wrapped (resolvePoolOptions' error, a plugin's), not the unlabelled copy.
    throw new PreforkError(code, `${label(error.message)}: ${error.message}`, { cause: error.cause ?? error });
  }
}

async function resolveChecked(contents: unknown, filepath: string | undefined, cwd: string, overrides: ConfigOverrides, context: ConfigContext): Promise<ResolvedConfig> {
  if (!isObject(contents)) throw configError(`expected an object of settings, got ${describe(contents)}`);
  for (const key of Object.keys(contents)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) throw configError(`${key}: unknown key${didYouMean(key, CONFIG_KEYS)} (known: ${CONFIG_KEYS.join(', ')})`);
  }
  const config = contents as PreforkConfig;
  const base = filepath === undefined ? cwd : dirname(filepath);

  let handler: string | undefined;
  let handlerSource = '';
  if (overrides.handler !== undefined) {
    handler = resolve(cwd, overrides.handler);
    handlerSource = ` (from --handler ${JSON.stringify(overrides.handler)})`;
  } else if (typeof config.handler === 'string' && config.handler !== '') {
    handler = resolve(base, config.handler);
    handlerSource = config.handler === handler ? '' : ` (${JSON.stringify(config.handler)} relative to ${base})`;
  } else if (config.handler !== undefined) {
    throw configError(`handler: expected a module path, got ${describe(config.handler)}`);
  }
  if (handler === undefined) {
    if (filepath === undefined) {
      throw configError(`handler: no config file was found (searched ${cwd} and above, up to the project root, for ${SEARCH_PLACES.join(', ')}) and no --handler FILE was given`);
    }
    throw configError('handler: missing: the module that serves connections (or give --handler FILE)');
  }

  let listen: ListenSpec | ListenSpec[] | undefined;
  if (overrides.listen !== undefined && overrides.listen.length > 0) listen = overrides.listen.map((spec) => anchorListen(spec, cwd) as ListenSpec);
  else if (Array.isArray(config.listen)) listen = config.listen.map((spec) => anchorListen(spec, base) as ListenSpec);
  else if (config.listen !== undefined) listen = anchorListen(config.listen, base) as ListenSpec;
  if (listen === undefined) {
    throw configError(filepath === undefined ? 'listen: no address: give --listen ADDR (e.g. 127.0.0.1:8080)' : 'listen: missing: where to listen, e.g. "127.0.0.1:8080" (or give --listen ADDR)');
  }

  let children = config.children;
  if (overrides.children !== undefined) {
    const fileChildren = isObject(children) ? children : {};
    const max = typeof fileChildren.max === 'number' && fileChildren.max < overrides.children ? overrides.children : fileChildren.max;
    children = { ...fileChildren, start: overrides.children, ...(max === undefined ? {} : { max }) };
  }

  const protocol = overrides.protocol ?? config.protocol;
  if (protocol !== undefined && !(PROTOCOLS as readonly unknown[]).includes(protocol)) {
    throw configError(`protocol: expected one of ${PROTOCOLS.map((p) => `"${p}"`).join(', ')}, got ${describe(protocol)}${typeof protocol === 'string' ? didYouMean(protocol, PROTOCOLS) : ''}`);
  }
  const log = checkLog(config.log, base);
  const { user, group } = resolveAccounts(config, context.accounts);

  const pool: PoolOptions = {
    handler,
    listen,
    ...(protocol === undefined ? {} : { protocol }),
    ...(config.http === undefined ? {} : { http: config.http as Record<string, unknown> }),
    ...(config.scgi === undefined ? {} : { scgi: config.scgi as Record<string, unknown> }),
    ...(children === undefined ? {} : { children }),
    ...(config.timeouts === undefined ? {} : { timeouts: config.timeouts }),
    ...(config.overload === undefined ? {} : { overload: config.overload }),
    ...(config.recycle === undefined ? {} : { recycle: config.recycle }),
    ...(config.env === undefined ? {} : { env: config.env }),
    ...(config.execArgv === undefined ? {} : { execArgv: config.execArgv }),
    ...(config.childMemoryReducer === undefined ? {} : { childMemoryReducer: config.childMemoryReducer }),
    ...(config.backlog === undefined ? {} : { backlog: config.backlog }),
    ...(config.ordersPerWakeup === undefined ? {} : { ordersPerWakeup: config.ordersPerWakeup }),
    ...(config.acceptChain === undefined ? {} : { acceptChain: config.acceptChain }),
    ...(config.acceptChainChildren === undefined ? {} : { acceptChainChildren: config.acceptChainChildren }),
    ...(config.acceptChainBatchMs === undefined ? {} : { acceptChainBatchMs: config.acceptChainBatchMs }),
    ...(config.parentScheduling === undefined ? {} : { parentScheduling: config.parentScheduling }),
    ...(config.deferAccept === undefined ? {} : { deferAccept: config.deferAccept }),
    ...(config.notsentLowat === undefined ? {} : { notsentLowat: config.notsentLowat }),
    ...(config.tickInterval === undefined ? {} : { tickInterval: config.tickInterval }),
    ...(config.status === undefined ? {} : { status: isObject(config.status) && config.status.listen !== undefined ? { ...config.status, listen: anchorListen(config.status.listen, base) as ListenSpec } : config.status }),
    logLevel: log.level,
    cwd,
    ...(user === undefined ? {} : { uid: user.uid }),
    ...(group === undefined ? {} : { gid: group.gid }),
  };
  let resolved: ResolvedPoolOptions;
  try {
    resolved = resolvePoolOptions(pool);
  } catch (error) {
    if (error instanceof PreforkError) throw configError(error.message, error);
    throw error;
  }
  checkHandler(handler, handlerSource);

  const plugins = await loadPlugins(config.plugins, base, context.builtins ?? {});
  // The sections whose default plugin a user plugin of the same role would replace: both at once
  // is a mistake, not a silent win for the plugin.
  for (const section of ['overload', 'recycle'] as const) {
    const owner = plugins.findIndex((plugin) => plugin.role === section);
    if (config[section] !== undefined && owner >= 0) throw configError(`${section}: conflicts with plugins[${owner}], which also has the role "${section}"; keep one of them`);
  }
  pool.plugins = plugins;
  resolved.plugins = plugins;
  return { file: filepath, pool, resolved, log, user, group };
}

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions extends ConfigContext {
  /** An explicit config file (`--config`); otherwise one is searched for. */
  file?: string;
  /** Replaces cosmiconfig's TypeScript loader (for tests). */
  loadTs?: Loader;
}

/**
 * Finds, reads and checks the configuration: `--config FILE` or the file found upward from the
 * working directory, overridden by the flags. Without any file the flags alone must name a
 * handler and an address. Throws PREFORK_ERR_CONFIG_LOAD or PREFORK_ERR_CONFIG_INVALID.
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<ResolvedConfig> {
  const found = await findConfig({ file: options.file, cwd: options.cwd, loadTs: options.loadTs });
  return resolveConfig(found?.config, found?.filepath, options);
}
