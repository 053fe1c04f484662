export { GracefulOverloadPlugin } from './GracefulOverloadPlugin.js';
export { AbruptOverloadPlugin, http503, type AbruptOverloadOptions } from './AbruptOverloadPlugin.js';
export { SpareChildrenPlugin, type SpareChildrenOptions } from './SpareChildrenPlugin.js';
export { defaultPlugins } from './defaults.js';
