/**
 * prefork: a preforking network server for Node.js. The parent notices each connection and orders
 * an idle child to accept it; children serve connections in isolation and are recycled.
 *
 * This is the package's entry and the one place where the core (`src/`) meets the built-in
 * plugins (`plugins/`): the `Pool` exported here is the core's pool with the default plugins
 * applied from its options (`plugins/defaults.ts`), as webpack's `WebpackOptionsApply` does.
 * The core itself imports no plugin.
 */
import { defaultPlugins } from './plugins/defaults.js';
import { Pool as PoolCore } from './src/pool/Pool.js';
import type { PoolOptions } from './src/pool/options.js';

/**
 * The pool manager with the default plugins: a spawning policy from `children`, the overload
 * policy from `overload`, recycling from `recycle`, and lifecycle logging. A user plugin with the
 * same `role` replaces a default; `defaultPlugins: false` leaves them all out. On a reload with
 * new options the defaults are built afresh from those.
 */
export class Pool extends PoolCore {
  constructor(options: PoolOptions) {
    super(options, defaultPlugins);
  }
}

export { PoolCore };
export { EXIT_HANDLER_INIT_FAILED, type DefaultPlugins, type PoolOutcome, type StopOptions } from './src/pool/Pool.js';
export { createPoolHooks } from './src/pool/hooks.js';
export type * from './src/pool/hooks.js';
export type { ChildInfo, ChildState, ChildExitInfo, ChildTimeoutKind, SpawnRequest } from './src/pool/Child.js';
export type { PoolStats } from './src/pool/stats.js';
export {
  resolvePoolOptions,
  parseListen,
  CHILDREN_DEFAULTS,
  TIMEOUT_DEFAULTS,
  type PoolOptions,
  type ResolvedPoolOptions,
  type ListenSpec,
  type ListenTarget,
  type ChildrenOptions,
  type TimeoutOptions,
} from './src/pool/options.js';
export type { OverloadOptions, SpawningBounds } from './src/pool/policyOptions.js';
export type * from './src/child/types.js';
export {
  createLogger,
  silentLogger,
  fromPino,
  isPinoLogger,
  LOG_LEVEL_VALUES,
  type LoggerOptions,
  type StreamLogger,
  type PinoLikeLogger,
  type AdaptedLogger,
} from './src/logger.js';
export { PreforkError, ERROR_CODES, isPreforkError, type PreforkErrorCode } from './src/errors.js';
export type { ListenerInfo } from './src/native/index.js';
export * from './plugins/index.js';
export { defineConfig, type PreforkConfig, type PluginEntry, type LogConfig } from './src/config/types.js';
