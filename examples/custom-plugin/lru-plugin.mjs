// A routing plugin: each connection goes to the idle child that was given one least recently,
// instead of prefork's default (the oldest idle child, which keeps one child hot and lets the
// others sleep). Spreading connections evenly spreads what they leave behind, too: warmed caches,
// memory growth, and so the moment each child is recycled.

const PLUGIN_NAME = 'LeastRecentlyUsedPlugin';

/**
 * Taps `beforeDispatch`, a Bail hook on the hot path: it must answer synchronously and cheaply.
 * Returning one of `request.idle` orders that child; `undefined` leaves the choice to prefork.
 */
export default class LeastRecentlyUsedPlugin {
  /** child id -> the dispatch number of its last connection (never used: absent, i.e. first in line). */
  #lastUsed = new Map();
  #dispatches = 0;

  /** Takes no options. */
  constructor(options = {}) {
    if (options === null || typeof options !== 'object' || Object.keys(options).length > 0) {
      throw new TypeError(`${PLUGIN_NAME}: takes no options, got ${JSON.stringify(options)}`);
    }
  }

  /** @param {import('prefork').Pool} pool */
  apply(pool) {
    pool.hooks.beforeDispatch.tap(PLUGIN_NAME, (request) => {
      let choice;
      let oldest = Infinity;
      for (const child of request.idle) {
        const used = this.#lastUsed.get(child.id) ?? 0;
        if (used < oldest) {
          oldest = used;
          choice = child;
        }
      }
      if (choice === undefined) return undefined;
      this.#lastUsed.set(choice.id, ++this.#dispatches);
      return choice;
    });
    pool.hooks.onChildExit.tap(PLUGIN_NAME, (child) => {
      this.#lastUsed.delete(child.id);
    });
  }
}
