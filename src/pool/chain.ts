import { performance } from 'node:perf_hooks';
import type { Child } from './Child.js';
import type { PoolContext } from './context.js';
import type { Listener } from './listeners.js';

/**
 * A child counts as chaining (for `acceptChainChildren`) for this long after its grant or its last
 * CHAINED report. A child that turns connections over reports at least every 100 ms; one that
 * holds a long connection uses no CPU and stops counting, so it does not keep grants from others.
 */
const CHAIN_ACTIVE_MS = 250;

/**
 * The chain grant of an accept order: how many connections the child may accept by itself once it
 * has finished this one. Every rule that gives none is here:
 *
 * - `acceptChain` is 0;
 * - the child has more than one slot (it is idle again while it serves; the parent orders it);
 * - the pool is not running, or a reload is under way (its children must come back to be replaced);
 * - a plugin chooses children per connection (a `beforeDispatch` tap: it must see every one);
 * - another listener has a connection waiting for a child (the chaining children must come back);
 * - `acceptChainChildren` other children already chain.
 *
 * Then the `chainBudget` taps may lower it (each tap only lowers: see the hook's wrapper in guard.ts).
 */
export function chainGrant(ctx: PoolContext, child: Child, listener: Listener): number {
  const grant = ctx.options.acceptChain;
  const hooks = ctx.current.hooks;
  if (grant === 0 || child.slots !== 1 || ctx.state !== 'running' || ctx.reload || hooks.beforeDispatch.taps.length > 0) return 0;
  if (ctx.listeners.length > 1) {
    for (const other of ctx.listeners) {
      if (other !== listener && (other.state === 'scheduled' || other.state === 'waiting' || other.state === 'overloaded')) return 0;
    }
  }
  // Chaining children keep a CPU each: beyond a few per CPU they only take turns. Those that
  // only hold a long connection under their grant do not count.
  const recent = performance.now() - CHAIN_ACTIVE_MS;
  let chaining = 0;
  for (const other of ctx.children) {
    if (other !== child && other.chainLeft > 0 && !other.chainEnding && other.chainActiveAt > recent && (other.state === 'busy' || other.state === 'accepting')) chaining++;
  }
  if (chaining >= ctx.options.acceptChainChildren) return 0;
  return hooks.chainBudget.taps.length === 0 ? grant : hooks.chainBudget.call(grant, child);
}

/**
 * Ends the chain grants still running: all of them when a stop or reload begins, those on other
 * listeners than `except` when a connection there finds no idle child. From then on the parent
 * decides each of those children's accepts again. A CHAINED frame already on its way is still valid.
 */
export function endChains(ctx: PoolContext, except?: Listener): void {
  for (const child of ctx.children) {
    if (child.chainLeft <= 0 || child.chainEnding || child.state === 'stopping' || child.state === 'exited') continue;
    if (except && child.chainListener === except.index) continue;
    child.chainEnding = true;
    child.orderEndChain();
  }
}
