/**
 * prefork: a preforking network server for Node.js. The parent notices each connection and orders
 * an idle child to accept it; children serve connections in isolation and are recycled.
 */
export { Pool, type PoolOutcome, type StopOptions, EXIT_HANDLER_INIT_FAILED } from './pool/Pool.js';
export { createPoolHooks } from './pool/hooks.js';
export type * from './pool/hooks.js';
export type { ChildInfo, ChildState, ChildExitInfo, ChildTimeoutKind, SpawnRequest } from './pool/Child.js';
export type { PoolStats } from './pool/stats.js';
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
} from './pool/options.js';
export type * from './child/types.js';
export { createLogger, silentLogger, type LoggerOptions, type StreamLogger } from './logger.js';
export { PreforkError, ERROR_CODES, isPreforkError, type PreforkErrorCode } from './errors.js';
export type { ListenerInfo } from './native/index.js';
export * from '../plugins/index.js';
export { defineConfig, type PreforkConfig, type PluginEntry, type LogConfig } from './config/types.js';
