import { endChains } from './chain.js';
import { spawnChild, stopChild } from './children.js';
import type { PluginSet, PoolContext } from './context.js';
import type { ResolvedPoolOptions } from './options.js';

/**
 * Generations: a reload starts a new generation of children with the new options and plugins,
 * while the old children keep serving. Once as many children of the new generation as it started
 * with (`children.start`) have reported ready, it commits (old idle children are retired, busy ones
 * at their DONE), so the pool never serves with fewer children than before. If they cannot all be
 * forked, or one fails before it is ready, the reload is abandoned: its children are stopped and the
 * previous options and plugins are restored.
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
  const { start, min, max } = options.children;
  const needed = Math.max(1, Math.min(start || min || 1, max));
  ctx.reload = { generation, needed, previousOptions: previous.options, previousPlugins: previous.plugins };
  ctx.options = options;
  ctx.current = plugins;
  ctx.spawnGeneration = generation;
  let spawned = 0;
  for (let i = 0; i < needed; i++) if (spawnChild(ctx)) spawned++;
  // All or nothing: a generation that cannot be forked in full does not replace the old one.
  if (spawned < needed) {
    abandonReload(ctx, `only ${spawned} of the ${needed} children of the new generation could be forked (a fork failed or beforeSpawn vetoed)`);
    return;
  }
  ctx.current.hooks.afterReload.call({ generation });
}

/** A child of the new generation reported ready: the reload commits once `needed` of them have. */
export function childReadyInReload(ctx: PoolContext, generation: number): void {
  const reload = ctx.reload;
  if (!reload || generation !== reload.generation) return;
  let ready = 0;
  for (const child of ctx.children) if (child.generation === generation && child.readyAt > 0 && child.state !== 'stopping') ready++;
  if (ready >= reload.needed) commitReload(ctx);
}

/** The new generation has its children ready: it serves from now on; old idle and starting children go. */
function commitReload(ctx: PoolContext): void {
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
