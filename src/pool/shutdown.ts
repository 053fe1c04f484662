import { toError } from '../errors.js';
import * as native from '../native/index.js';
import { endChains } from './chain.js';
import { stopChild } from './children.js';
import type { PoolContext } from './context.js';
import { closeListeners, holdNewConnections, moveListener, refuseNewConnections, watch } from './listeners.js';
import { endOverload } from './overload.js';

/**
 * After new connections are held out of a TCP listener, how long the drain waits before it may
 * call the backlog empty: a handshake whose SYN came before the hold completes when its final ACK
 * arrives, one round trip later, and must be served rather than reset. Loopback and LAN round
 * trips are far below this; every new connect meanwhile waits for its SYN retry (1 s on Linux).
 */
export const DRAIN_SETTLE_MS = 20;

/**
 * Shutdown and drain. A stop: stop watching, end every overload and chain grant, keep new
 * connections out of the listeners at once (with a drain; without one, refuse them at once),
 * await `beforeShutdown`, drain the backlog for up to `drainMs` (`timeouts.drain` by default),
 * refuse new connections, tell every child to finish and exit (the watchdog kills those still
 * there after `timeouts.stop`), close the listeners, await `afterShutdown`, and resolve
 * `pool.wait()`. A connection that reached the backlog is served, not reset, unless the drain
 * runs out of time.
 */
export async function shutdown(ctx: PoolContext, reason: string, requestedByChild: boolean, drainMs = ctx.options.timeouts.drain): Promise<void> {
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
  const draining = drainMs > 0 && ctx.listeners.some((listener) => !listener.inherited);
  let held = false;
  if (draining) held = holdNewConnections(ctx);
  else refuseNewConnections(ctx);
  try {
    await ctx.current.hooks.beforeShutdown.promise(info);
  } catch (error) {
    ctx.logger.error('beforeShutdown failed', { error: toError(error).message });
  }
  if (draining && ctx.children.length > 0) await drain(ctx, drainMs, held ? DRAIN_SETTLE_MS : 0);
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

/**
 * Dispatches until no listener of this pool's own has a connection waiting (and no order is out),
 * at least `settleMs` after the start, or until `ms` passed. Inherited listeners are not drained:
 * what waits there is left to their owner's next instance.
 */
async function drain(ctx: PoolContext, ms: number, settleMs: number): Promise<void> {
  ctx.draining = true;
  const own = ctx.listeners.filter((listener) => !listener.inherited);
  await new Promise<void>((resolve) => {
    const settled = Date.now() + settleMs;
    const finish = () => {
      clearTimeout(timer);
      clearTimeout(settleTimer);
      ctx.drainCheck = undefined;
      resolve();
    };
    const timer = setTimeout(() => {
      ctx.logger.warn('stop: the backlog was not drained in time; what is still queued is reset', { drainMs: ms });
      finish();
    }, ms);
    ctx.drainCheck = () => {
      if (ctx.children.length === 0) finish();
      else if (Date.now() >= settled && own.every((l) => l.state !== 'ordering' && !native.readable(l.fd))) finish();
    };
    const settleTimer = setTimeout(() => ctx.drainCheck?.(), settleMs);
    for (const listener of own) if (listener.state !== 'ordering') watch(ctx, listener);
    ctx.drainCheck();
  });
  ctx.draining = false;
  for (const listener of own) {
    listener.watcher.stop();
    if (listener.state !== 'ordering') moveListener(ctx, listener, 'closed');
  }
}
