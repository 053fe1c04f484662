import { PreforkError } from '../src/errors.js';
import type { OverloadDecision, PoolPlugin } from '../src/pool/hooks.js';
import type { Pool } from '../src/pool/Pool.js';
import { describe } from '../src/pool/options.js';
import { OverloadEpisodes } from './overloadEpisodes.js';

const PLUGIN_NAME = 'AbruptOverloadPlugin';
const OPTION_KEYS = new Set(['response', 'retryAfter']);

/** Options of {@link AbruptOverloadPlugin}. */
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

/** The response of the `"http-503"` shorthand. */
export function http503(retryAfter: number): Buffer {
  const body = 'Service Unavailable: the server is overloaded, retry shortly.\n';
  return Buffer.from(
    `HTTP/1.1 503 Service Unavailable\r\nRetry-After: ${retryAfter}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
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
export class AbruptOverloadPlugin implements PoolPlugin {
  readonly role = 'overload';
  /** This plugin logs overload start and end itself, so `LoggerPlugin` does not. */
  readonly reportsOverload = true;
  readonly #decision: OverloadDecision;

  constructor(options: AbruptOverloadOptions = {}) {
    if (!options || typeof options !== 'object' || Array.isArray(options)) {
      throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${PLUGIN_NAME}: expected an options object, got ${describe(options)}`);
    }
    for (const key of Object.keys(options)) {
      if (!OPTION_KEYS.has(key)) throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${PLUGIN_NAME} ${key}: unknown option (known: ${[...OPTION_KEYS].join(', ')})`);
    }
    const retryAfter = options.retryAfter ?? 1;
    if (!Number.isInteger(retryAfter) || retryAfter < 0) {
      throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${PLUGIN_NAME} retryAfter: expected a non-negative integer (seconds), got ${describe(retryAfter)}`);
    }
    let response: Buffer | undefined;
    if (options.response === 'http-503') response = http503(retryAfter);
    else if (typeof options.response === 'string') response = Buffer.from(options.response, 'utf8');
    else if (Buffer.isBuffer(options.response)) response = options.response;
    else if (options.response !== undefined) {
      throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${PLUGIN_NAME} response: expected a string, a Buffer or "http-503", got ${describe(options.response)}`);
    }
    this.#decision = Object.freeze({ strategy: 'abrupt', response });
  }

  apply(pool: Pool): void {
    const episodes = new OverloadEpisodes(pool, PLUGIN_NAME, (episode) => {
      pool.logger.info('overload ended', { event: 'overload.end', strategy: 'abrupt', ...episode, rejectedTotal: pool.stats().connections.rejected });
    });
    pool.hooks.onOverload.tap(PLUGIN_NAME, (info) => {
      if (episodes.started(info)) {
        const { children } = info.stats;
        pool.logger.warn('overload: no idle child; turning connections away', {
          event: 'overload.start',
          strategy: 'abrupt',
          listener: info.listener,
          reason: info.reason,
          children: children.total,
          busy: children.busy + children.accepting,
          starting: children.starting,
        });
      }
      return this.#decision;
    });
  }
}
