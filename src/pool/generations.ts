import { endChains } from './chain.js';
import { spawnChild, stopChild } from './children.js';
import type { PluginSet, PoolContext } from './context.js';
import type { ResolvedPoolOptions } from './options.js';

/**
 * Generations: a reload starts a new generation of children with the new options and plugins,
 * while the old children keep serving. The first child of the new generation that reports ready
 * commits it (old idle children are retired, busy ones at their DONE); if none gets there, the
 * reload is abandoned and the previous options and plugins are restored.
 */

/**
 * The first step of a reload, before anything is swapped: a reload still under way is abandoned,
 * chain grants end (so that the old children come back to be replaced), and the plugins in force
 * hear `beforeReload` (those the reload replaces flush what they hold). Returns the new generation.
 */
export function prepareReload(ctx: PoolContext): number {
  if (ctx.reload) abandonReload(ctx, 'superseded by a newer reload');
  endChains(ctx);
  const generation = Math.max(ctx.generation, ctx.spawnGeneration) + 1;
  ctx.current.hooks.beforeReload.call({ generation });
  return generation;
}

/**
 * Starts `generation` under `options` and `plugins` (already applied to fresh hooks, or the ones
 * in force), remembering `previous` to restore should the generation never get ready.
 */
export function beginReload(ctx: PoolContext, generation: number, options: ResolvedPoolOptions, plugins: PluginSet, previous: { options: ResolvedPoolOptions; plugins: PluginSet }): void {
  ctx.reload = { generation, previousOptions: previous.options, previousPlugins: previous.plugins };
  ctx.options = options;
  ctx.current = plugins;
  ctx.spawnGeneration = generation;
  const { start, min, max } = options.children;
  const count = Math.max(1, Math.min(start || min || 1, max));
  for (let i = 0; i < count; i++) spawnChild(ctx);
  ctx.current.hooks.afterReload.call({ generation });
}

/** A child of the new generation is ready: it serves from now on; old idle and starting children go. */
export function commitReload(ctx: PoolContext): void {
  const reload = ctx.reload!;
  ctx.reload = undefined;
  ctx.generation = reload.generation;
  for (const child of [...ctx.children]) {
    if (child.generation < ctx.generation && (child.state === 'idle' || child.state === 'starting')) stopChild(ctx, child, 'replaced by a reload');
  }
  ctx.logger.info('reload complete', { generation: ctx.generation });
}

/** The new generation cannot start: stop its children and restore the previous options and plugins. */
export function abandonReload(ctx: PoolContext, reason: string): void {
  const reload = ctx.reload;
  if (!reload) return;
  ctx.reload = undefined;
  ctx.options = reload.previousOptions;
  ctx.current = reload.previousPlugins;
  ctx.spawnGeneration = ctx.generation;
  for (const child of [...ctx.children]) if (child.generation === reload.generation) stopChild(ctx, child, 'reload abandoned');
  ctx.logger.error('reload failed; the previous generation keeps serving', { generation: reload.generation, reason });
}
