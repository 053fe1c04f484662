import { PreforkError } from '../src/errors.js';
import type { PoolPlugin } from '../src/pool/hooks.js';
import type { ResolvedPoolOptions } from '../src/pool/options.js';
import { describe } from '../src/pool/options.js';
import { AbruptOverloadPlugin, type AbruptOverloadOptions } from './AbruptOverloadPlugin.js';
import { GracefulOverloadPlugin } from './GracefulOverloadPlugin.js';
import { LoggerPlugin } from './LoggerPlugin.js';
import { RecyclePlugin, type RecycleOptions } from './RecyclePlugin.js';
import { SpareChildrenPlugin } from './SpareChildrenPlugin.js';

/**
 * The plugins a pool applies after the user's, in this order: the spawning policy
 * ({@link SpareChildrenPlugin}, from `children`), the overload policy (`overload`: graceful or
 * abrupt), {@link RecyclePlugin} when `recycle` is set, and {@link LoggerPlugin} (lifecycle lines
 * through the pool's logger). A user plugin with the same `role` replaces one, exactly as adding
 * it would.
 */
export function defaultPlugins(options: ResolvedPoolOptions): PoolPlugin[] {
  const { slots: _slots, ...children } = options.children;
  // Read as unknown: the pool options may carry these in their raw or resolved form.
  const { overload, recycle } = options as unknown as { overload?: unknown; recycle?: unknown };
  const plugins: PoolPlugin[] = [new SpareChildrenPlugin(children), overloadPlugin(overload)];
  if (recycle !== undefined && recycle !== null) plugins.push(new RecyclePlugin(recycle as RecycleOptions));
  plugins.push(new LoggerPlugin());
  return plugins;
}

/**
 * The overload plugin for the `overload` option: `"graceful"`, `"abrupt"`, `{ strategy, response,
 * retryAfter }`, or abrupt options alone (`{ response, retryAfter }`).
 */
export function overloadPlugin(overload: unknown): PoolPlugin {
  if (overload === undefined || overload === 'graceful') return new GracefulOverloadPlugin();
  if (overload === 'abrupt') return new AbruptOverloadPlugin();
  if (overload && typeof overload === 'object' && !Array.isArray(overload)) {
    const { strategy, ...rest } = overload as { strategy?: unknown } & AbruptOverloadOptions;
    if (strategy === 'graceful' && Object.keys(rest).length === 0) return new GracefulOverloadPlugin();
    if (strategy === 'abrupt' || strategy === undefined) return new AbruptOverloadPlugin(rest);
  }
  throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `overload: expected "graceful", "abrupt" or { strategy: "abrupt", response, retryAfter }, got ${describe(overload)}`);
}
