// A reporting plugin: every `every` ticks of the parent (tickInterval, 1 s by default) it logs one
// line with the pool's counters and how many connections each child has served.

const PLUGIN_NAME = 'StatsPlugin';

/**
 * Taps `onParentTick`, which hands every tap the same stats snapshot; the line goes through the
 * pool's logger, so it is a JSON line like the others (or readable text on a terminal).
 */
export default class StatsPlugin {
  /** Ticks between two lines. */
  every;

  /** @param {{ every?: number }} [options] `every`: ticks between two lines (default 5). */
  constructor(options = {}) {
    const { every = 5, ...unknown } = options ?? {};
    if (Object.keys(unknown).length > 0) throw new TypeError(`${PLUGIN_NAME}: unknown option ${Object.keys(unknown)[0]} (known: every)`);
    if (!Number.isInteger(every) || every < 1) throw new RangeError(`${PLUGIN_NAME} every: expected a positive integer (ticks), got ${JSON.stringify(every)}`);
    this.every = every;
  }

  /** @param {import('prefork').Pool} pool */
  apply(pool) {
    let ticks = 0;
    pool.hooks.onParentTick.tap(PLUGIN_NAME, (stats) => {
      if (++ticks % this.every !== 0) return;
      pool.logger.info('stats', {
        event: 'stats',
        uptimeMs: stats.uptimeMs,
        children: stats.children,
        connections: stats.connections,
        servedByChild: Object.fromEntries(pool.children().map((child) => [child.id, child.served])),
        dispatchLatencyUs: stats.dispatchLatencyUs,
        overloads: stats.overload.events,
      });
    });
  }
}
