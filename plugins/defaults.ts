import type { PoolPlugin } from '../src/pool/hooks.js';
import type { ResolvedPoolOptions } from '../src/pool/options.js';
import { GracefulOverloadPlugin } from './GracefulOverloadPlugin.js';
import { SpareChildrenPlugin } from './SpareChildrenPlugin.js';

/**
 * The plugins a pool applies after the user's: the spawning policy and the graceful overload
 * strategy. A user plugin with the same `role` replaces one, exactly as adding it would.
 */
export function defaultPlugins(options: ResolvedPoolOptions): PoolPlugin[] {
  const { slots: _slots, ...children } = options.children;
  return [new SpareChildrenPlugin(children), new GracefulOverloadPlugin()];
}
