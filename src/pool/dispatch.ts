/**
 * The walk of one connection through the parent, top to bottom in call order:
 *
 * | step | function | the article's rule |
 * | --- | --- | --- |
 * | 1. a listening socket is readable | {@link onReadable} | the parent notices the connection but does not accept it |
 * | 2. dispatch after this turn's reports | {@link runScheduled} | rule 1: status reports are handled before dispatch |
 * | 3. choose an idle child | {@link dispatch}, {@link choose} | rule 8: the oldest idle child, unless `beforeDispatch` chooses |
 * | 4. order it to accept | {@link order} | rule 2: the order is synchronous; no other order until it is answered |
 * | 5. no idle child | `noIdleChild` (overload.ts) | rule 5: wait for a pending child; rule 6: graceful or abrupt overload |
 * | 6. the child answers | {@link onAnswer} | rule 3: "nothing" (the accept found nothing) is a normal answer |
 * | 7. the child settles | {@link settle} | idle again, or busy until its DONE |
 * | 8. watch again | {@link orderAnswered} | rule 2: only once every order of the round is answered |
 * | 9. the connection is done | {@link onDone}, {@link onChained} | rule 4: children report after a connection, and at start only |
 *
 * A missing answer is the watchdog's (children.ts: the accept timeout kills the child); the chain
 * grant given with an order is chain.ts's, the overload decision overload.ts's.
 */
import { performance } from 'node:perf_hooks';
import { PAGE } from '../channel/page.js';
import * as native from '../native/index.js';
import { chainGrant } from './chain.js';
import type { Child } from './Child.js';
import { kill, moveChild, stopChild } from './children.js';
import type { PoolContext } from './context.js';
import { watch, moveListener, type Listener } from './listeners.js';
import { endOverload, noIdleChild } from './overload.js';

/** Step 1. Level-triggered readiness: stop the watcher now, dispatch after this loop turn. */
export function onReadable(ctx: PoolContext, listener: Listener): void {
  listener.watcher.stop();
  if (listener.state !== 'watching') return;
  moveListener(ctx, listener, 'scheduled');
  listener.readableAt = performance.now();
  // After this loop turn's other I/O callbacks, so that status reports that arrived together
  // with the connection (a child's DONE, READY) are handled first.
  if (!ctx.dispatchScheduled) {
    ctx.dispatchScheduled = true;
    setImmediate(runScheduled, ctx);
  }
}

/** Step 2. Dispatches every scheduled listener, starting after the one that got the last order. */
export function runScheduled(ctx: PoolContext): void {
  ctx.dispatchScheduled = false;
  const count = ctx.listeners.length;
  const first = ctx.firstListener;
  for (let i = 0; i < count; i++) {
    const listener = ctx.listeners[(first + i) % count]!;
    if (listener.state === 'scheduled') dispatch(ctx, listener);
  }
}

/** Step 3. One round of orders for one readable listener, or the no-idle-child path. */
export function dispatch(ctx: PoolContext, listener: Listener): void {
  if (ctx.state !== 'running' && !ctx.draining) return;
  let wanted = 1;
  // Ordering several children per wake-up (as many as the accept queue holds) was measured
  // slower on 2 cores: the round lasts until the last ordered child is scheduled. So it is
  // opt-in (`ordersPerWakeup`), and the TCP_INFO syscall is only paid when it is on.
  const cap = ctx.options.ordersPerWakeup;
  if (cap > 1 && listener.queueKnown) {
    const queued = native.acceptQueueLength(listener.fd);
    if (queued === 0) {
      ctx.counters.spuriousWakeups++;
      watch(ctx, listener);
      return;
    }
    if (queued > 1) wanted = Math.min(queued, cap);
  }
  listener.roundOrdered = listener.roundAccepted = listener.roundNothing = listener.roundTimedOut = 0;
  let vetoed = false;
  for (let n = 0; n < wanted; n++) {
    const child = choose(ctx, listener, wanted);
    if (child === false) {
      vetoed = listener.roundOrdered === 0;
      break;
    }
    if (!child) break;
    order(ctx, child, listener);
  }
  if (listener.roundOrdered > 0) {
    moveListener(ctx, listener, 'ordering');
    return;
  }
  noIdleChild(ctx, listener, vetoed);
}

/**
 * The child for the next accept order: `beforeDispatch`'s choice when a plugin makes one (an
 * idle child), `false` when it refuses, else the oldest idle child. Without taps no request is built.
 */
function choose(ctx: PoolContext, listener: Listener, wanted: number): Child | false | undefined {
  const hooks = ctx.current.hooks;
  if (hooks.beforeDispatch.taps.length === 0) return oldestIdle(ctx);
  const request = listener.request;
  request.wanted = wanted;
  request.idle.length = 0;
  refreshSlots(ctx);
  for (const child of ctx.children) if (child.state === 'idle' && canTake(child)) request.idle.push(child);
  if (request.idle.length === 0) return undefined;
  const choice = hooks.beforeDispatch.call(request);
  if (choice === false) return false;
  return (choice && ctx.children.find((child) => child === choice && child.state === 'idle' && canTake(child))) || firstIdle(ctx);
}

/** The idle child that started first, preferring the serving generation. */
export function oldestIdle(ctx: PoolContext): Child | undefined {
  refreshSlots(ctx);
  return firstIdle(ctx);
}

/** {@link oldestIdle} once the parked children's slots are read. */
function firstIdle(ctx: PoolContext): Child | undefined {
  let fallback: Child | undefined;
  for (const child of ctx.children) {
    if (child.state !== 'idle' || !canTake(child)) continue;
    if (child.generation === ctx.generation) return child;
    fallback ??= child;
  }
  return fallback;
}

/**
 * Whether the child can take a connection now: it holds fewer than its connection limit and,
 * where it has a page, its handler runs fewer requests than its slots (its parked connections
 * hold none). A page's word is the child's say only: a child that lies gets more or fewer
 * connections of its own, nothing else.
 */
export function canTake(child: Child): boolean {
  if (child.active >= child.connectionLimit) return false;
  return child.page === undefined || Atomics.load(child.page, PAGE.BUSY) < child.slots;
}

/**
 * A child with a page frees slots without a frame (a request ends, its connection stays parked):
 * busy children that can take a connection again are settled idle before a choice is made.
 * Children under a chain grant stay busy: they come back through their chain's DONE.
 */
export function refreshSlots(ctx: PoolContext): void {
  for (const child of ctx.children) {
    if (child.state === 'busy' && child.page !== undefined && child.chainLeft === 0 && canTake(child)) settle(ctx, child);
  }
}

/**
 * No child can take a connection: ask the children whose slots alone are full (they have room to
 * park) to send FREE when one frees, through their page's WAKE word. Returns whether one freed a
 * slot meanwhile (it was settled idle): the caller dispatches again instead of waiting.
 */
export function requestWakes(ctx: PoolContext): boolean {
  let freed = false;
  for (const child of ctx.children) {
    const page = child.page;
    if (page === undefined || child.state !== 'busy' || child.chainLeft > 0 || child.active >= child.connectionLimit) continue;
    askWake(child);
    // A slot that freed before the word was set sent no FREE: look again after setting it.
    if (canTake(child)) {
      settle(ctx, child);
      freed = true;
    }
  }
  return freed;
}

/** Sets a parking child's WAKE word (once until its FREE comes), when it has room to park. */
function askWake(child: Child): void {
  if (child.page === undefined || child.wakeRequested || child.active >= child.connectionLimit) return;
  child.wakeRequested = true;
  Atomics.store(child.page, PAGE.WAKE, 1);
}

/**
 * UNCHAINED: a parking child's grant ended with its connection kept alive; the parent decides its
 * accepts again. One that crosses the parent's own END_CHAIN (or comes from a child without a
 * page) changes nothing.
 */
export function onUnchained(ctx: PoolContext, child: Child): void {
  if (child.page === undefined || child.chainLeft === 0) return;
  child.chainLeft = 0;
  if (child.state === 'busy') settle(ctx, child);
}

/** FREE: a child the parent asked (WAKE) has a free slot again. Unasked, it is a forged frame. */
export function onFree(ctx: PoolContext, child: Child): void {
  if (!child.wakeRequested) {
    ctx.counters.invalidFrames++;
    ctx.logger.error('child reported a free slot nobody asked about; killing it', { child: child.id, pid: child.pid, state: child.state });
    kill(ctx, child);
    return;
  }
  child.wakeRequested = false;
  if (child.state === 'busy' && child.chainLeft === 0) settle(ctx, child);
}

/** Step 4. Orders `child` to accept one connection of `listener`, with its chain grant. */
function order(ctx: PoolContext, child: Child, listener: Listener): void {
  moveChild(ctx, child, 'accepting');
  child.orderListener = listener.index;
  child.deadline = Date.now() + ctx.options.timeouts.accept;
  listener.outstanding++;
  listener.roundOrdered++;
  ctx.counters.ordered++;
  const chain = chainGrant(ctx, child, listener);
  child.chainLeft = chain;
  child.chainListener = listener.index;
  child.chainEnding = false;
  if (chain > 0) child.chainActiveAt = performance.now();
  // The next dispatch starts with the listener after this one: with few children, a busy
  // listener cannot keep the others waiting.
  const count = ctx.listeners.length;
  if (count > 1) ctx.firstListener = listener.index + 1 < count ? listener.index + 1 : 0;
  const hooks = ctx.current.hooks;
  if (hooks.onDispatch.taps.length > 0) hooks.onDispatch.call(child, { listener: listener.index, chain });
  child.orderAccept(listener.index, chain);
}

/** Step 6. A child answered its accept order: ACCEPTED (`accepted`) or NOTHING. */
export function onAnswer(ctx: PoolContext, child: Child, accepted: boolean): void {
  if (child.state === 'stopping') {
    // The order was counted as answered when the child was told to stop; the connection it
    // accepted meanwhile is still one it serves.
    if (accepted) countAccepted(ctx, child);
    return;
  }
  if (child.state !== 'accepting') {
    ctx.counters.invalidFrames++;
    ctx.logger.error('child answered an accept order it never got; killing it', { child: child.id, pid: child.pid });
    kill(ctx, child);
    return;
  }
  const listener = ctx.listeners[child.orderListener]!;
  child.orderListener = -1;
  child.deadline = 0;
  if (accepted) {
    countAccepted(ctx, child);
    listener.roundAccepted++;
    if (ctx.exhaustedChildren > 0) {
      ctx.logger.info('children accept again', { retired: ctx.exhaustedChildren });
      ctx.exhaustedChildren = 0;
    }
    ctx.latency.record((performance.now() - listener.readableAt) * 1000);
  } else {
    child.chainLeft = 0;
    ctx.counters.acceptNothing++;
    listener.roundNothing++;
  }
  settle(ctx, child);
  orderAnswered(ctx, listener);
}

function countAccepted(ctx: PoolContext, child: Child): void {
  child.orders++;
  child.active++;
  child.accepted++;
  ctx.counters.accepted++;
  if (ctx.options.timeouts.connection > 0) child.connectionsSince.push(Date.now());
}

/** Step 7. Puts a child that has just answered, finished or started into the state its slots say. */
export function settle(ctx: PoolContext, child: Child): void {
  if (child.state === 'stopping' || child.state === 'exited') return;
  if (child.generation < ctx.generation) {
    stopChild(ctx, child, 'replaced by a reload');
    return;
  }
  // A child under a chain grant stays busy until the grant ends (its DONE or UNCHAINED).
  if (child.chainLeft > 0 || !canTake(child)) {
    moveChild(ctx, child, 'busy');
    // A connection waits for a child: this one must say when its slot frees, or the wait lasts
    // until a tick (it became busy after the others were asked).
    if (child.chainLeft === 0 && ctx.listeners.some((listener) => listener.state === 'overloaded' || listener.state === 'waiting')) askWake(child);
    if (child.chainLeft > 0 || !canTake(child)) return;
  }
  const wasIdle = child.state === 'idle';
  if (!moveChild(ctx, child, 'idle') || wasIdle) return;
  child.idleSince = Date.now();
  ctx.current.hooks.onChildIdle.call(child);
  // Listeners that wait for a child (or are in a graceful overload) go back to watching.
  for (const listener of ctx.listeners) {
    if (listener.overloadedAt > 0) endOverload(ctx, listener);
    if (listener.state === 'waiting' || listener.state === 'overloaded') watch(ctx, listener);
  }
}

/** Step 8. One order of the listener's round is answered; the last one re-arms the watcher. */
function orderAnswered(ctx: PoolContext, listener: Listener): void {
  listener.outstanding--;
  if (listener.outstanding > 0) return;
  const hooks = ctx.current.hooks;
  if (hooks.afterDispatch.taps.length > 0) {
    hooks.afterDispatch.call({
      listener: listener.index,
      ordered: listener.roundOrdered,
      accepted: listener.roundAccepted,
      nothing: listener.roundNothing,
      timedOut: listener.roundTimedOut,
    });
  }
  watch(ctx, listener);
  ctx.drainCheck?.();
}

/** Counts an order as answered without an answer (the child is stopping, killed or gone). */
export function resolveOrder(ctx: PoolContext, child: Child, timedOut: boolean): void {
  if (child.orderListener < 0) return;
  const listener = ctx.listeners[child.orderListener]!;
  child.orderListener = -1;
  if (timedOut) listener.roundTimedOut++;
  orderAnswered(ctx, listener);
}

/**
 * Step 9. DONE for the connection of accept order `order` (its low 16 bits): the child finished
 * it, and its chain grant, if any, has ended; not so when the connection came with an earlier
 * order than the last (parked meanwhile). A DONE that arrives while an order is still unanswered
 * is always of an earlier one: the child sent it before it read that order (a grant ended by
 * UNCHAINED, whose last connection closes while the next order is on its way), and it must not
 * end the grant that order gave.
 */
export function onDone(ctx: PoolContext, child: Child, order: number): void {
  const earlier = order !== (child.orders & 0xffff) || child.state === 'accepting';
  if (child.active < 1) {
    // Like an answer to an order it never got: the child's count and the parent's disagree.
    ctx.counters.invalidFrames++;
    ctx.logger.error('child reported a connection done that it never accepted; killing it', { child: child.id, pid: child.pid, state: child.state });
    kill(ctx, child);
    return;
  }
  if (!earlier) child.chainLeft = 0;
  child.active--;
  child.served++;
  child.connectionsSince.shift();
  ctx.counters.served++;
  const hooks = ctx.current.hooks;
  if (hooks.onConnectionDone.taps.length > 0) hooks.onConnectionDone.call(child, { served: child.served });
  if (child.chainLeft > 0) return;
  if (child.state === 'busy' || (child.state === 'idle' && child.generation < ctx.generation)) settle(ctx, child);
}

/**
 * Step 9 under a chain grant. CHAINED `count`: the child finished connections and after each took
 * the next by itself. Reports are batched, so `onConnectionDone` fires once per connection here.
 */
export function onChained(ctx: PoolContext, child: Child, count: number): void {
  if (count < 1 || count > child.chainLeft || (child.state !== 'busy' && child.state !== 'stopping')) {
    ctx.counters.invalidFrames++;
    ctx.logger.error('child accepted a connection without a chain grant; killing it', { child: child.id, pid: child.pid, state: child.state, reported: count, granted: child.chainLeft });
    kill(ctx, child);
    return;
  }
  child.chainLeft -= count;
  child.chainActiveAt = performance.now();
  const hooks = ctx.current.hooks;
  const notify = hooks.onConnectionDone.taps.length > 0;
  const counters = ctx.counters;
  const since = ctx.options.timeouts.connection > 0 ? Date.now() : 0;
  for (let i = 0; i < count; i++) {
    // One connection ended, the next began (as of this report: batches lag up to 100 ms).
    child.connectionsSince.shift();
    if (since > 0) child.connectionsSince.push(since);
    // Counted one by one, so that a tap sees the stats as of its own connection.
    child.served++;
    child.accepted++;
    counters.served++;
    counters.accepted++;
    counters.chained++;
    if (notify) hooks.onConnectionDone.call(child, { served: child.served });
  }
  // Still busy: no settle. A child of a replaced generation got END_CHAIN when the reload began
  // and is stopped at its DONE, like any busy child of that generation.
}
