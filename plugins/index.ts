export { GracefulOverloadPlugin } from './GracefulOverloadPlugin.js';
export { AbruptOverloadPlugin, http503, type AbruptOverloadOptions } from './AbruptOverloadPlugin.js';
export { SpareChildrenPlugin, type SpareChildrenOptions } from './SpareChildrenPlugin.js';
export { RecyclePlugin, parseMemorySize, residentMemory, type RecycleOptions, type ResolvedRecycleOptions } from './RecyclePlugin.js';
export { LoggerPlugin, type LoggerPluginOptions } from './LoggerPlugin.js';
export { ShutdownCheckPlugin, type ShutdownCheckOptions, type ShutdownPredicate } from './ShutdownCheckPlugin.js';
export { defaultPlugins, overloadPlugin } from './defaults.js';
