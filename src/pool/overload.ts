import { toError } from '../errors.js';
import * as native from '../native/index.js';
import { endChains } from './chain.js';
import { spawnChild, startingCount } from './children.js';
import type { PoolContext } from './context.js';
import { dispatch, oldestIdle, requestWakes } from './dispatch.js';
import type { OverloadDecision } from './hooks.js';
import { moveListener, watch, type Listener } from './listeners.js';
import { snapshot } from './stats.js';

const GRACEFUL: OverloadDecision = Object.freeze({ strategy: 'graceful' });

/** Most connections an abrupt overload turns away per wake-up, so one wake-up cannot run long. */
const ABRUPT_BATCH = 256;

/**
 * A connection waits and no child took an order (none idle, or `beforeDispatch` refused): wait for
 * a pending child (rule 5), let the spawning policy start one, or declare an overload (rule 6)
 * and act on the overload policy's decision.
 */
export function noIdleChild(ctx: PoolContext, listener: Listener, vetoed: boolean): void {
  const hooks = ctx.current.hooks;
  // Children serving another listener under a grant come back after their current connection.
  if (ctx.listeners.length > 1) endChains(ctx, listener);
  if (!vetoed) {
    // Children whose slots alone are full tell when one frees; one that freed meanwhile serves now.
    if (requestWakes(ctx)) {
      dispatch(ctx, listener);
      return;
    }
    // A pending child will report idle (or be killed at its start deadline): wait for it.
    if (startingCount(ctx, ctx.spawnGeneration) > 0) {
      moveListener(ctx, listener, 'waiting');
      return;
    }
    // The spawning policy decides; the core forks.
    if (hooks.onChildNeeded.call({ listener: listener.index, stats: snapshot(ctx) }) === true && spawnChild(ctx)) {
      moveListener(ctx, listener, 'waiting');
      return;
    }
  }
  const decision = hooks.onOverload.call({ listener: listener.index, reason: vetoed ? 'vetoed' : 'no-child', stats: snapshot(ctx) }) ?? GRACEFUL;
  if (listener.overloadedAt === 0) {
    listener.overloadedAt = Date.now();
    listener.overloadStrategy = decision.strategy;
    listener.rejected = 0;
    ctx.counters.overloadEvents++;
  }
  if (decision.strategy === 'graceful') {
    moveListener(ctx, listener, 'overloaded');
    return;
  }
  let closed = 0;
  try {
    closed = native.acceptAndClose(listener.fd, ABRUPT_BATCH, decision.response ?? null);
  } catch (error) {
    // The parent itself is out of descriptors (or memory): accepting again at the next wake-up
    // would fail the same way, in a loop. Wait gracefully for an idle child instead, and say so
    // once until an abrupt accept works again.
    if (!listener.acceptFailing) ctx.logger.error('abrupt overload: the parent cannot accept; connections wait for a child instead', { listener: listener.index, error: toError(error).message });
    listener.acceptFailing = true;
    moveListener(ctx, listener, 'overloaded');
    return;
  }
  listener.acceptFailing = false;
  listener.rejected += closed;
  ctx.counters.rejected += closed;
  watch(ctx, listener);
}

/** A child is idle again: the listener's overload is over. */
export function endOverload(ctx: PoolContext, listener: Listener): void {
  if (listener.overloadedAt === 0) return;
  const durationMs = Date.now() - listener.overloadedAt;
  listener.overloadedAt = 0;
  ctx.counters.overloadMs += durationMs;
  ctx.current.hooks.onOverloadEnd.call({ listener: listener.index, strategy: listener.overloadStrategy, durationMs, rejected: listener.rejected });
}

/**
 * A connection refused by a `beforeDispatch` veto waits (graceful overload) even though children
 * are idle; no child will *become* idle to wake it, so the tick retries it.
 */
export function retryVetoed(ctx: PoolContext): void {
  for (const listener of ctx.listeners) {
    if (listener.state === 'overloaded' && oldestIdle(ctx)) watch(ctx, listener);
  }
}
