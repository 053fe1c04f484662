import { toError } from '../errors.js';
import * as native from '../native/index.js';
import { endChains } from './chain.js';
import { stopChild } from './children.js';
import type { PoolContext } from './context.js';
import { closeListeners, holdNewConnections, moveListener, refuseNewConnections, watch } from './listeners.js';
import { endOverload } from './overload.js';
import { leaveBatchScheduling } from './scheduling.js';

/**
 * After new connections are held out of a TCP listener, a handshake whose SYN came before the
 * hold completes when its final ACK arrives, one round trip later, and must be served rather than
 * reset; every new connect meanwhile waits for its SYN retry (1 s on Linux), so the wait must be
 * short. Where the system counts the handshakes under way (Linux sock_diag), the drain waits until
 * there are none, checking every HANDSHAKE_CHECK_MS, for at most HANDSHAKE_WAIT_MAX_MS (a client
 * that vanished mid-handshake, or a silent one under `deferAccept`, must not hold every stop);
 * elsewhere it waits HANDSHAKE_WAIT_BLIND_MS, far above loopback and LAN round trips.
 */
const HANDSHAKE_CHECK_MS = 2;
const HANDSHAKE_WAIT_MAX_MS = 200;
const HANDSHAKE_WAIT_BLIND_MS = 20;

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
  let held: number[] = [];
  const heldAt = Date.now();
  if (draining) held = holdNewConnections(ctx);
  else refuseNewConnections(ctx);
  try {
    await ctx.current.hooks.beforeShutdown.promise(info);
  } catch (error) {
    ctx.logger.error('beforeShutdown failed', { error: toError(error).message });
  }
  if (draining && ctx.children.length > 0) await drain(ctx, drainMs, held);
  refuseNewConnections(ctx);
  if (draining) ctx.logger.info('stop: the backlog is drained; the listeners refuse new connections', { heldMs: Date.now() - heldAt });
  if (ctx.tickTimer) clearInterval(ctx.tickTimer);
  if (ctx.children.length > 0) {
    const gone = new Promise<void>((resolve) => (ctx.childrenGone = resolve));
    for (const child of [...ctx.children]) stopChild(ctx, child, reason);
    await gone;
  }
  if (ctx.watchdogTimer) clearInterval(ctx.watchdogTimer);
  closeListeners(ctx);
  // Last: it answers 503 on /ready through the whole stop.
  await ctx.status?.close();
  ctx.status = undefined;
  ctx.state = 'stopped';
  if (ctx.batchScheduling) {
    ctx.batchScheduling = false;
    leaveBatchScheduling(ctx.logger);
  }
  try {
    await ctx.current.hooks.afterShutdown.promise(info);
  } catch (error) {
    ctx.logger.error('afterShutdown failed', { error: toError(error).message });
  }
  ctx.resolveOutcome({ reason, error: ctx.fatal });
}

/**
 * Whether no handshake is still under way on the listening fds `held`: true once none is, or once
 * `waitedMs` reached the limit (the blind one where the system does not count them).
 */
function handshakesSettled(ctx: PoolContext, held: readonly number[], waitedMs: number): boolean {
  if (waitedMs >= HANDSHAKE_WAIT_MAX_MS) return true;
  for (const fd of held) {
    let pending: number;
    try {
      pending = native.pendingHandshakes(fd);
    } catch (error) {
      ctx.logger.debug('stop: could not count the handshakes under way', { error: toError(error).message });
      pending = -1;
    }
    if (pending < 0 ? waitedMs < HANDSHAKE_WAIT_BLIND_MS : pending > 0) return false;
  }
  return true;
}

/**
 * Dispatches until no listener of this pool's own has a connection waiting (and no order is out)
 * and no handshake is under way on the `held` listening fds, or until `ms` passed. Inherited
 * listeners are not drained: what waits there is left to their owner's next instance.
 */
async function drain(ctx: PoolContext, ms: number, held: readonly number[]): Promise<void> {
  ctx.draining = true;
  const own = ctx.listeners.filter((listener) => !listener.inherited);
  await new Promise<void>((resolve) => {
    const startedAt = Date.now();
    let settled = held.length === 0;
    const finish = () => {
      clearTimeout(timer);
      clearInterval(handshakeTimer);
      ctx.drainCheck = undefined;
      resolve();
    };
    const timer = setTimeout(() => {
      ctx.logger.warn('stop: the backlog was not drained in time; what is still queued is reset', { drainMs: ms });
      finish();
    }, ms);
    ctx.drainCheck = () => {
      if (ctx.children.length === 0) return finish();
      if (!settled) {
        settled = handshakesSettled(ctx, held, Date.now() - startedAt);
        if (!settled) return;
        clearInterval(handshakeTimer);
      }
      if (own.every((l) => l.state !== 'ordering' && !native.readable(l.fd))) finish();
    };
    const handshakeTimer = settled ? undefined : setInterval(() => ctx.drainCheck?.(), HANDSHAKE_CHECK_MS);
    for (const listener of own) if (listener.state !== 'ordering') watch(ctx, listener);
    ctx.drainCheck();
  });
  ctx.draining = false;
  for (const listener of own) {
    listener.watcher.stop();
    if (listener.state !== 'ordering') moveListener(ctx, listener, 'closed');
  }
}
