import { PreforkError } from '../errors.js';

/**
 * The checks every option reader shares: the pool's `resolvePoolOptions` and the constructors of
 * the built-in plugins. Each takes the option's full key path (`children.max`, or
 * `RecyclePlugin jitter` when a plugin is built by hand) and names it in the error.
 */

/** Renders a value for an error message: strings quoted, objects as short JSON. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return 'a function';
  try {
    const text = JSON.stringify(value);
    return text.length > 60 ? `${text.slice(0, 57)}...` : text;
  } catch {
    return String(value);
  }
}

/** A PREFORK_ERR_OPTION_INVALID error: `key: expected <expected>, got <value>`. */
export function invalid(key: string, expected: string, got: unknown): PreforkError {
  return new PreforkError('PREFORK_ERR_OPTION_INVALID', `${key}: expected ${expected}, got ${describe(got)}`);
}

/** Checks an integer option; `key` is its full path, used in the error. */
export function integer(key: string, value: unknown, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? (min === 0 ? 'a non-negative integer' : min === 1 ? 'a positive integer' : `an integer >= ${min}`) : `an integer from ${min} to ${max}`;
    throw invalid(key, range, value);
  }
  return value;
}

/** The longest delay Node's timers take (2^31 - 1 ms, about 24.8 days); a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Checks a duration in milliseconds: an integer from `min` to {@link MAX_TIMER_MS}. */
export function milliseconds(key: string, value: unknown, fallback: number, min: number): number {
  const ms = integer(key, value, fallback, min);
  if (ms > MAX_TIMER_MS) throw invalid(key, TIMER_LIMIT, value);
  return ms;
}

/** What an error says of a delay above {@link MAX_TIMER_MS}. */
export const TIMER_LIMIT = `at most ${MAX_TIMER_MS} ms (the longest delay Node's timers take)`;

/** An options object (undefined reads as `{}`); anything else is refused, naming `key`. */
export function object(key: string, value: unknown): Record<string, unknown> {
  if (value === undefined) return {};
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw invalid(key, 'an object', value);
  return value as Record<string, unknown>;
}

/** Refuses a key of `value` that is not in `known`; `prefix` is prepended to the key in the error (`children.`). */
export function checkKeys(prefix: string, value: object, known: ReadonlySet<string>): void {
  for (const key of Object.keys(value)) {
    if (!known.has(key)) {
      throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${prefix}${key}: unknown option (known: ${[...known].join(', ')})`);
    }
  }
}

/**
 * The start of every plugin constructor: `options` must be an object whose keys are all in
 * `known`. Errors read `PluginName: expected an options object` and `PluginName key: unknown option`.
 */
export function pluginOptions(pluginName: string, options: unknown, known: ReadonlySet<string>): Record<string, unknown> {
  if (!options || typeof options !== 'object' || Array.isArray(options)) {
    throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${pluginName}: expected an options object, got ${describe(options)}`);
  }
  checkKeys(`${pluginName} `, options, known);
  return options as Record<string, unknown>;
}

/**
 * Where an option group is read: a section of the pool options (`children.max`) or the options
 * of a plugin built by hand (`SpareChildrenPlugin max`). The same checks then name the key the
 * way its reader spelled it.
 */
export interface OptionScope {
  /** The full key path of `name`. */
  key(name: string): string;
  /** Throws when the value of `low` exceeds that of `high`. */
  ordered(low: string, lowValue: number, high: string, highValue: number): void;
}

/** The scope of a section of the pool options: `children.max`, `children.min (5) must not exceed children.max (2)`. */
export function sectionScope(section: string): OptionScope {
  const key = (name: string) => `${section}.${name}`;
  return {
    key,
    ordered(low, lowValue, high, highValue) {
      if (lowValue > highValue) throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${key(low)} (${lowValue}) must not exceed ${key(high)} (${highValue})`);
    },
  };
}

/** The scope of a plugin's own options: `RecyclePlugin jitter`, `SpareChildrenPlugin: min (5) must not exceed max (2)`. */
export function pluginScope(pluginName: string): OptionScope {
  return {
    key: (name) => `${pluginName} ${name}`,
    ordered(low, lowValue, high, highValue) {
      if (lowValue > highValue) throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${pluginName}: ${low} (${lowValue}) must not exceed ${high} (${highValue})`);
    },
  };
}
