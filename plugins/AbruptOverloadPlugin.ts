import type { OverloadDecision, OverloadReporter } from '../src/pool/hooks.js';
import { pluginOptions } from '../src/pool/optionChecks.js';
import type { Pool } from '../src/pool/Pool.js';
import { abruptResponse, responseBytes } from '../src/pool/policyOptions.js';
import { OverloadEpisodes, overloadStartFields } from './overloadEpisodes.js';

export { http503 } from '../src/pool/policyOptions.js';

const PLUGIN_NAME = 'AbruptOverloadPlugin';
const OPTION_KEYS: ReadonlySet<string> = new Set(['response', 'retryAfter']);

/** Options of {@link AbruptOverloadPlugin} (the `overload` option with `strategy: "abrupt"`). */
export interface AbruptOverloadOptions {
  /**
   * Bytes written to each turned-away client before the close, e.g. an HTTP 503. A string is sent
   * as UTF-8. `"http-503"` is a shorthand for a complete `503 Service Unavailable` with `Retry-After`.
   * @default undefined (close without a word)
   */
  response?: string | Buffer | 'http-503';
  /** Seconds for the `Retry-After` header of the `"http-503"` shorthand. @default 1 */
  retryAfter?: number;
}

/**
 * Abrupt overload: when no child can take a connection, the parent accepts it and closes it at
 * once (after writing `response`, if given). Clients learn of the overload immediately instead
 * of waiting in the backlog; rejections are counted in `stats().connections.rejected`.
 * Connections the children hold are not touched.
 *
 * Logs one line when an overload starts and one when it is over (duration, connections turned
 * away); see {@link OverloadEpisodes}.
 */
export class AbruptOverloadPlugin implements OverloadReporter {
  readonly role = 'overload';
  /** This plugin logs overload start and end itself, so `LoggerPlugin` does not. */
  readonly reportsOverload = true as const;
  readonly #decision: OverloadDecision;

  constructor(options: AbruptOverloadOptions = {}) {
    const { response, retryAfter } = abruptResponse(pluginOptions(PLUGIN_NAME, options, OPTION_KEYS), (key) => `${PLUGIN_NAME} ${key}`);
    this.#decision = Object.freeze({ strategy: 'abrupt', response: responseBytes(response, retryAfter) });
  }

  apply(pool: Pool): void {
    const episodes = new OverloadEpisodes(pool, PLUGIN_NAME, (episode) => {
      pool.logger.info('overload ended', { event: 'overload.end', strategy: 'abrupt', ...episode, rejectedTotal: pool.stats().connections.rejected });
    });
    pool.hooks.onOverload.tap(PLUGIN_NAME, (info) => {
      if (episodes.started(info)) pool.logger.warn('overload: no idle child; turning connections away', overloadStartFields(info, 'abrupt'));
      return this.#decision;
    });
  }
}
