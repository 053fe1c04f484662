import { PreforkError } from '../errors.js';
import { checkKeys, integer, invalid, milliseconds, object, sectionScope, type OptionScope } from './optionChecks.js';

/**
 * The options of the policies the default plugins carry out (spawning bounds, overload, recycling),
 * read here once: `resolvePoolOptions` reads the pool's `children`, `overload` and `recycle`
 * sections with them, and the plugins' constructors read the same options with them when a plugin
 * is built by hand. The core imports no plugin; the plugins import these readers.
 */

/** The spawning bounds: how many children, and how many of them idle. */
export interface SpawningBounds {
  /** Children forked at start. @default 4 (at most `max`) */
  start: number;
  /** Never fewer children than this (crashed ones are replaced at once). @default 1 (at most `max`) */
  min: number;
  /** Never more children than this. @default 32, or `start` when that is larger */
  max: number;
  /** Spawn when fewer children than this are idle. @default 2 (at most `max`) */
  minSpare: number;
  /** Retire idle children while more than this are idle. @default 8, or `minSpare` when that is larger */
  maxSpare: number;
}

/** The defaults of {@link SpawningBounds} before the rules that tie them together. */
export const SPAWNING_DEFAULTS: Readonly<SpawningBounds> = Object.freeze({ start: 4, min: 1, max: 32, minSpare: 2, maxSpare: 8 });

/** Reads the spawning bounds from `raw`, whose keys were checked by the caller. */
export function resolveSpawningBounds(raw: Record<string, unknown>, scope: OptionScope): SpawningBounds {
  const start = integer(scope.key('start'), raw.start, -1, 0);
  const max = integer(scope.key('max'), raw.max, Math.max(SPAWNING_DEFAULTS.max, start), 1);
  const minSpare = integer(scope.key('minSpare'), raw.minSpare, Math.min(SPAWNING_DEFAULTS.minSpare, max), 0);
  const bounds: SpawningBounds = {
    start: start < 0 ? Math.min(SPAWNING_DEFAULTS.start, max) : start,
    min: integer(scope.key('min'), raw.min, Math.min(SPAWNING_DEFAULTS.min, max), 0),
    max,
    minSpare,
    maxSpare: integer(scope.key('maxSpare'), raw.maxSpare, Math.max(SPAWNING_DEFAULTS.maxSpare, minSpare), 0),
  };
  scope.ordered('min', bounds.min, 'max', bounds.max);
  scope.ordered('start', bounds.start, 'max', bounds.max);
  scope.ordered('minSpare', bounds.minSpare, 'maxSpare', bounds.maxSpare);
  return bounds;
}

/** The overload policy: `graceful`, or `abrupt` with the bytes written to each turned-away client. */
export type OverloadOptions = { strategy: 'graceful' } | { strategy: 'abrupt'; response?: string | Buffer; retryAfter: number };

const OVERLOAD_KEYS: ReadonlySet<string> = new Set(['strategy', 'response', 'retryAfter']);
const OVERLOAD_EXPECTED = '"graceful", "abrupt" or { strategy: "abrupt", response, retryAfter }';

/** Reads the `overload` option: `"graceful"`, `"abrupt"` or `{ strategy, response, retryAfter }`. */
export function resolveOverloadOptions(value: unknown): OverloadOptions {
  const raw = value ?? 'graceful';
  if (raw === 'graceful') return { strategy: 'graceful' };
  if (raw === 'abrupt') return { strategy: 'abrupt', retryAfter: 1 };
  if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
    const section = raw as Record<string, unknown>;
    if (section.strategy === 'graceful' || section.strategy === 'abrupt') {
      checkKeys('overload.', section, OVERLOAD_KEYS);
      if (section.strategy === 'graceful') {
        if (Object.keys(section).length > 1) throw invalid('overload', 'no response or retryAfter with the graceful strategy', raw);
        return { strategy: 'graceful' };
      }
      return { strategy: 'abrupt', ...abruptResponse(section, (name) => `overload.${name}`) };
    }
  }
  throw invalid('overload', OVERLOAD_EXPECTED, raw);
}

/** Checks the `response` and `retryAfter` of an abrupt overload; `key` names them in errors. */
export function abruptResponse(options: Record<string, unknown>, key: (name: string) => string): { response?: string | Buffer; retryAfter: number } {
  const retryAfter = options.retryAfter ?? 1;
  if (typeof retryAfter !== 'number' || !Number.isInteger(retryAfter) || retryAfter < 0) throw invalid(key('retryAfter'), 'a non-negative integer (seconds)', retryAfter);
  const response = options.response;
  if (response !== undefined && typeof response !== 'string' && !Buffer.isBuffer(response)) throw invalid(key('response'), 'a string, a Buffer or "http-503"', response);
  return response === undefined ? { retryAfter } : { response, retryAfter };
}

/** The response of the `"http-503"` shorthand: a complete `503 Service Unavailable` with `Retry-After`. */
export function http503(retryAfter: number): Buffer {
  const body = 'Service Unavailable: the server is overloaded, retry shortly.\n';
  return Buffer.from(
    `HTTP/1.1 503 Service Unavailable\r\nRetry-After: ${retryAfter}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** The bytes an abrupt overload writes: `"http-503"` expanded, a string as UTF-8, or nothing. */
export function responseBytes(response: string | Buffer | undefined, retryAfter: number): Buffer | undefined {
  if (response === 'http-503') return http503(retryAfter);
  if (typeof response === 'string') return Buffer.from(response, 'utf8');
  return response;
}

/** Child recycling (the `recycle` section). Every limit is off (0) by default. */
export interface RecycleOptions {
  /** Connections a child serves before it is replaced (Apache's `MaxConnectionsPerChild`). 0 = unlimited. @default 0 */
  maxConnectionsPerChild?: number;
  /**
   * Up to this many extra connections, drawn at random for each child, on top of
   * `maxConnectionsPerChild`, so that children started together do not all recycle together.
   * @default 0
   */
  jitter?: number;
  /** Milliseconds from a child's fork after which it is replaced. 0 = never. @default 0 */
  maxChildAge?: number;
  /**
   * Resident memory (RSS) above which a child is replaced, checked on every tick: bytes, or a
   * string with a binary unit (`"512MB"`, `"1.5G"`, `"800KiB"`; K/M/G mean 1024-based). 0 = unlimited.
   * @default 0
   */
  maxChildMemory?: number | string;
  /**
   * Milliseconds a child may stay idle before it exits, counted only once it has served at least
   * one connection, and never taking the pool below the spawning policy's `min`. 0 = never.
   * @default 0
   */
  idleChildTimeout?: number;
}

/** {@link RecycleOptions} after defaults, with `maxChildMemory` in bytes. */
export interface ResolvedRecycleOptions {
  maxConnectionsPerChild: number;
  jitter: number;
  maxChildAge: number;
  maxChildMemory: number;
  idleChildTimeout: number;
}

/** The keys of {@link RecycleOptions}. */
export const RECYCLE_KEYS: ReadonlySet<string> = new Set(['maxConnectionsPerChild', 'jitter', 'maxChildAge', 'maxChildMemory', 'idleChildTimeout']);

/** Reads recycling options whose keys were checked by the caller. */
export function resolveRecycleOptions(raw: Record<string, unknown>, scope: OptionScope): ResolvedRecycleOptions {
  const options: ResolvedRecycleOptions = {
    maxConnectionsPerChild: integer(scope.key('maxConnectionsPerChild'), raw.maxConnectionsPerChild, 0, 0),
    jitter: integer(scope.key('jitter'), raw.jitter, 0, 0),
    maxChildAge: milliseconds(scope.key('maxChildAge'), raw.maxChildAge, 0, 0),
    maxChildMemory: raw.maxChildMemory === undefined ? 0 : parseMemorySize(scope.key('maxChildMemory'), raw.maxChildMemory),
    idleChildTimeout: milliseconds(scope.key('idleChildTimeout'), raw.idleChildTimeout, 0, 0),
  };
  if (options.jitter > 0 && options.maxConnectionsPerChild === 0) {
    throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${scope.key('jitter')}: only applies with maxConnectionsPerChild > 0 (jitter is ${options.jitter}, maxConnectionsPerChild is 0)`);
  }
  return options;
}

/** Reads the pool's `recycle` section: undefined when absent. */
export function resolveRecycleSection(value: unknown): ResolvedRecycleOptions | undefined {
  if (value === undefined) return undefined;
  const raw = object('recycle', value);
  checkKeys('recycle.', raw, RECYCLE_KEYS);
  return resolveRecycleOptions(raw, sectionScope('recycle'));
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

/**
 * Parses a memory size: a non-negative integer of bytes, or a string such as `"512MB"`.
 * Throws PREFORK_ERR_OPTION_INVALID naming `key`.
 */
export function parseMemorySize(key: string, value: unknown): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
  if (typeof value === 'string') {
    const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
    const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined;
    if (match && unit !== undefined) return Math.round(Number(match[1]) * unit);
  }
  throw invalid(key, 'a size in bytes or a string such as "512MB"', value);
}
