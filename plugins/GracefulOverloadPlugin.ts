import { PreforkError } from '../src/errors.js';
import type { OverloadDecision, OverloadReporter } from '../src/pool/hooks.js';
import { describe } from '../src/pool/optionChecks.js';
import type { Pool } from '../src/pool/Pool.js';
import { OverloadEpisodes, overloadStartFields } from './overloadEpisodes.js';

const PLUGIN_NAME = 'GracefulOverloadPlugin';
const GRACEFUL: OverloadDecision = Object.freeze({ strategy: 'graceful' });

/**
 * Graceful overload (the default): when no child can take a connection, the parent stops watching
 * the listening socket until a child is idle. Clients wait in the kernel backlog and the parent
 * does not spin: nothing runs in the parent for the waiting clients until a child reports idle.
 *
 * Logs one line when an overload starts (children, accept-queue length) and one when it is over
 * (duration, overloads merged, connections served meanwhile); see {@link OverloadEpisodes}.
 */
export class GracefulOverloadPlugin implements OverloadReporter {
  readonly role = 'overload';
  /** This plugin logs overload start and end itself, so `LoggerPlugin` does not. */
  readonly reportsOverload = true as const;

  /** Takes no options; an argument other than `undefined` or `{}` is a mistake and is refused. */
  constructor(options: Record<string, never> = {}) {
    if (!options || typeof options !== 'object' || Object.keys(options).length > 0) {
      throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${PLUGIN_NAME}: takes no options, got ${describe(options)}`);
    }
  }

  apply(pool: Pool): void {
    const episodes = new OverloadEpisodes(pool, PLUGIN_NAME, (episode) => {
      pool.logger.info('overload ended', { event: 'overload.end', strategy: 'graceful', ...episode });
    });
    pool.hooks.onOverload.tap(PLUGIN_NAME, (info) => {
      if (episodes.started(info)) pool.logger.warn('overload: no idle child; connections wait in the backlog', overloadStartFields(info, 'graceful'));
      return GRACEFUL;
    });
  }
}
