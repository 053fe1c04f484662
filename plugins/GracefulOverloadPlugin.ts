import type { OverloadDecision, PoolPlugin } from '../src/pool/hooks.js';
import type { Pool } from '../src/pool/Pool.js';

const PLUGIN_NAME = 'GracefulOverloadPlugin';
const GRACEFUL: OverloadDecision = Object.freeze({ strategy: 'graceful' });

/**
 * Graceful overload (the default): when no child can take a connection, the parent stops watching
 * the listening socket until a child is idle. Clients wait in the kernel backlog and the parent
 * does not spin. Logs when an overload starts and ends.
 */
export class GracefulOverloadPlugin implements PoolPlugin {
  readonly role = 'overload';

  apply(pool: Pool): void {
    pool.hooks.onOverload.tap(PLUGIN_NAME, (info) => {
      if (!info.stats.overload.active) {
        pool.logger.warn('overload: no idle child; connections wait in the backlog', {
          strategy: 'graceful',
          listener: info.listener,
          reason: info.reason,
          children: info.stats.children.total,
          acceptQueue: info.stats.acceptQueue?.length,
        });
      }
      return GRACEFUL;
    });
    pool.hooks.onOverloadEnd.tap(PLUGIN_NAME, (info) => {
      if (info.strategy !== 'graceful') return;
      pool.logger.info('overload ended', { strategy: 'graceful', listener: info.listener, durationMs: info.durationMs });
    });
  }
}
