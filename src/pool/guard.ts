import type { Tap } from 'tapable';
import type { Logger } from '../child/types.js';
import { PreforkError, toError } from '../errors.js';
import type { PoolHooks } from './hooks.js';

type GuardedTap = Tap & { type: string; fn: (...args: unknown[]) => unknown };

/**
 * Wraps every tap of `hooks` as it is registered, so that a plugin that throws is reported with
 * the hook's and the plugin's names and the pool carries on (a Bail hook then falls through to
 * the next tap). The taps of `chainBudget` are also held to what that hook promises: each may
 * only lower the grant (a cap such as recycling's holds whatever the taps after it return), a
 * value that is not an integer ends the grant, `undefined` leaves it.
 */
export function guardTaps(hooks: PoolHooks, logger: Logger): void {
  for (const [hookName, hook] of Object.entries(hooks)) {
    hook.intercept({
      register: (tap: GuardedTap) => {
        const report = (error: unknown) => {
          const wrapped = new PreforkError('PREFORK_ERR_PLUGIN', `plugin "${tap.name}" failed in hook ${hookName}: ${toError(error).message}`, { cause: error });
          logger.error(wrapped.message, { code: wrapped.code, hook: hookName, plugin: tap.name, stack: toError(error).stack });
        };
        if (hookName === 'chainBudget') tap.fn = onlyLowers(tap.fn);
        const fn = tap.fn;
        if (tap.type === 'sync') {
          tap.fn = (...args: unknown[]) => {
            try {
              return fn(...args);
            } catch (error) {
              report(error);
              return undefined;
            }
          };
        } else if (tap.type === 'promise') {
          tap.fn = async (...args: unknown[]) => {
            try {
              return await fn(...args);
            } catch (error) {
              report(error);
              return undefined;
            }
          };
        } else if (tap.type === 'async') {
          tap.fn = (...args: unknown[]) => {
            const callback = args.pop() as (error?: unknown, result?: unknown) => void;
            try {
              fn(...args, (error: unknown, result: unknown) => {
                if (error) report(error);
                callback(null, result);
              });
            } catch (error) {
              report(error);
              callback(null);
            }
          };
        }
        return tap;
      },
    } as never);
  }
}

/** A `chainBudget` tap that can only lower the count it is given. */
function onlyLowers(fn: (...args: unknown[]) => unknown): (...args: unknown[]) => unknown {
  return (count, child) => {
    const budget = fn(count, child);
    if (budget === undefined) return count;
    if (typeof budget === 'number' && Number.isInteger(budget)) return Math.max(0, Math.min(count as number, budget));
    return 0;
  };
}
