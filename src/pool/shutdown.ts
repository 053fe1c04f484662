import { toError } from '../errors.js';
import * as native from '../native/index.js';
import { endChains } from './chain.js';
import { stopChild } from './children.js';
import type { PoolContext } from './context.js';
import { closeListeners, moveListener, refuseNewConnections, watch } from './listeners.js';
import { endOverload } from './overload.js';

/**
 * Shutdown and drain. A stop: stop watching, end every overload and chain grant, await
 * `beforeShutdown`, optionally drain the backlog, refuse new connections, tell every child to
 * finish and exit (the watchdog kills those still there after `timeouts.stop`), close the
 * listeners, await `afterShutdown`, and resolve `pool.wait()`.
 */
export async function shutdown(ctx: PoolContext, reason: string, requestedByChild: boolean, drainMs = 0): Promise<void> {
  if (ctx.state === 'new' || ctx.state === 'stopped') {
    ctx.state = 'stopped';
    ctx.resolveOutcome({ reason, error: ctx.fatal });
    return;
  }
  const info = { reason, requestedByChild };
  ctx.state = 'stopping';
  endChains(ctx);
  ctx.startWaiter?.();
  for (const listener of ctx.listeners) {
    listener.watcher.stop();
    endOverload(ctx, listener);
  }
  try {
    await ctx.current.hooks.beforeShutdown.promise(info);
  } catch (error) {
    ctx.logger.error('beforeShutdown failed', { error: toError(error).message });
  }
  if (drainMs > 0 && ctx.children.length > 0) await drain(ctx, drainMs);
  refuseNewConnections(ctx);
  if (ctx.tickTimer) clearInterval(ctx.tickTimer);
  if (ctx.children.length > 0) {
    const gone = new Promise<void>((resolve) => (ctx.childrenGone = resolve));
    for (const child of [...ctx.children]) stopChild(ctx, child, reason);
    await gone;
  }
  if (ctx.watchdogTimer) clearInterval(ctx.watchdogTimer);
  closeListeners(ctx);
  ctx.state = 'stopped';
  try {
    await ctx.current.hooks.afterShutdown.promise(info);
  } catch (error) {
    ctx.logger.error('afterShutdown failed', { error: toError(error).message });
  }
  ctx.resolveOutcome({ reason, error: ctx.fatal });
}

/** Dispatches until no listener has a connection waiting (and no order is out), or `ms` passed. */
async function drain(ctx: PoolContext, ms: number): Promise<void> {
  ctx.draining = true;
  await new Promise<void>((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      ctx.drainCheck = undefined;
      resolve();
    };
    const timer = setTimeout(() => {
      ctx.logger.warn('stop: the backlog was not drained in time', { drainMs: ms });
      finish();
    }, ms);
    ctx.drainCheck = () => {
      if (ctx.children.length === 0 || ctx.listeners.every((l) => l.state !== 'ordering' && !native.readable(l.fd))) finish();
    };
    for (const listener of ctx.listeners) if (listener.state !== 'ordering') watch(ctx, listener);
    ctx.drainCheck();
  });
  ctx.draining = false;
  for (const listener of ctx.listeners) {
    listener.watcher.stop();
    if (listener.state !== 'ordering') moveListener(ctx, listener, 'closed');
  }
}
