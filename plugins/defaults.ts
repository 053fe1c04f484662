import type { PoolPlugin } from '../src/pool/hooks.js';
import type { PoolOptions, ResolvedPoolOptions } from '../src/pool/options.js';
import { resolveOverloadOptions, type OverloadOptions } from '../src/pool/policyOptions.js';
import { AbruptOverloadPlugin } from './AbruptOverloadPlugin.js';
import { GracefulOverloadPlugin } from './GracefulOverloadPlugin.js';
import { LoggerPlugin } from './LoggerPlugin.js';
import { RecyclePlugin } from './RecyclePlugin.js';
import { SpareChildrenPlugin } from './SpareChildrenPlugin.js';

/**
 * The default plugins of a pool, built from its resolved options (the pool applies them after the
 * user's, and again from the new options on a reload): the spawning policy
 * ({@link SpareChildrenPlugin}, from `children`), the overload policy (`overload`: graceful or
 * abrupt), {@link RecyclePlugin} when `recycle` is set, and {@link LoggerPlugin} (lifecycle lines
 * through the pool's logger). A user plugin with the same `role` replaces one, exactly as adding
 * it would. This is the one place that turns options into plugins; the core imports no plugin.
 */
export function defaultPlugins(options: ResolvedPoolOptions): PoolPlugin[] {
  const { slots: _slots, connections: _connections, ...bounds } = options.children;
  const plugins: PoolPlugin[] = [new SpareChildrenPlugin(bounds), overloadPolicy(options.overload)];
  if (options.recycle) plugins.push(new RecyclePlugin(options.recycle));
  plugins.push(new LoggerPlugin());
  return plugins;
}

/** The overload plugin for an `overload` option: `"graceful"`, `"abrupt"` or `{ strategy, response, retryAfter }`. */
export function overloadPlugin(overload: PoolOptions['overload']): PoolPlugin {
  return overloadPolicy(resolveOverloadOptions(overload));
}

/** The overload plugin for an `overload` option that `resolvePoolOptions` already read. */
function overloadPolicy(overload: OverloadOptions): PoolPlugin {
  if (overload.strategy === 'graceful') return new GracefulOverloadPlugin();
  return new AbruptOverloadPlugin({ response: overload.response, retryAfter: overload.retryAfter });
}
