import type { OverloadInfo } from '../src/pool/hooks.js';
import type { Pool } from '../src/pool/Pool.js';

/** The fields of an `overload.start` line: the children by state and the accept-queue length when known. */
export function overloadStartFields(info: OverloadInfo, strategy: 'graceful' | 'abrupt'): Record<string, unknown> {
  const { children } = info.stats;
  return {
    event: 'overload.start',
    strategy,
    listener: info.listener,
    reason: info.reason,
    children: children.total,
    busy: children.busy + children.accepting,
    starting: children.starting,
    queued: info.stats.acceptQueue?.length ?? null,
  };
}

/** One overload as the log reports it: from its first start to the end after which none followed for a tick. */
export interface OverloadEpisode {
  listener: number;
  /** Milliseconds from the first overload start to the last overload end of the episode. */
  durationMs: number;
  /** Overloads the core reported within the episode (a saturated pool ends one each time a child frees up). */
  overloads: number;
  /** Connections the parent turned away during the episode (abrupt). */
  rejected: number;
  /** Connections children accepted during the episode (the waiting clients that got served). */
  accepted: number;
}

interface Episode {
  startedAt: number;
  endedAt: number;
  active: boolean;
  overloads: number;
  rejected: number;
  acceptedAtStart: number;
}

/**
 * Turns the core's overload events into log-sized episodes. In a saturated pool every finished
 * connection ends an overload (a child is idle) and the next waiting connection starts another,
 * so logging each would write two lines per connection. An episode starts with the first overload
 * and ends once a whole `tickInterval` passed without a new one (or when the pool stops).
 */
export class OverloadEpisodes {
  readonly #episodes = new Map<number, Episode>();
  readonly #onEnd: (episode: OverloadEpisode) => void;

  /** Taps `onOverloadEnd`, `onParentTick` and `beforeShutdown` of `pool` as `name`; `onEnd` writes the end line. */
  constructor(pool: Pool, name: string, onEnd: (episode: OverloadEpisode) => void) {
    this.#onEnd = onEnd;
    pool.hooks.onOverloadEnd.tap(name, (info) => {
      const episode = this.#episodes.get(info.listener);
      if (!episode || !episode.active) return;
      episode.active = false;
      episode.endedAt = Date.now();
      episode.rejected += info.rejected;
    });
    pool.hooks.onParentTick.tap(name, (stats) => this.#finish(stats.connections.accepted, pool.options.tickInterval));
    // The pool ends every overload when it stops, before this hook: report them now.
    pool.hooks.beforeShutdown.tap(name, () => this.#finish(pool.stats().connections.accepted, 0));
    // A reload may replace this plugin: an episode still open ends here, as far as it is concerned.
    pool.hooks.beforeReload.tap(name, () => {
      const now = Date.now();
      for (const episode of this.#episodes.values()) {
        if (!episode.active) continue;
        episode.active = false;
        episode.endedAt = now;
      }
      this.#finish(pool.stats().connections.accepted, 0);
    });
  }

  /** Records an overload start; true when it begins a new episode (log the start line then). */
  started(info: OverloadInfo): boolean {
    const episode = this.#episodes.get(info.listener);
    if (episode) {
      if (!episode.active) {
        episode.active = true;
        episode.overloads++;
      }
      return false;
    }
    this.#episodes.set(info.listener, {
      startedAt: Date.now(),
      endedAt: 0,
      active: true,
      overloads: 1,
      rejected: 0,
      acceptedAtStart: info.stats.connections.accepted,
    });
    return true;
  }

  #finish(accepted: number, quietMs: number): void {
    if (this.#episodes.size === 0) return;
    const now = Date.now();
    for (const [listener, episode] of this.#episodes) {
      if (episode.active || now - episode.endedAt < quietMs) continue;
      this.#episodes.delete(listener);
      this.#onEnd({
        listener,
        durationMs: episode.endedAt - episode.startedAt,
        overloads: episode.overloads,
        rejected: episode.rejected,
        accepted: accepted - episode.acceptedAtStart,
      });
    }
  }
}
