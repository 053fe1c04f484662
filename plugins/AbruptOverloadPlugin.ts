import { PreforkError } from '../src/errors.js';
import type { OverloadDecision, PoolPlugin } from '../src/pool/hooks.js';
import type { Pool } from '../src/pool/Pool.js';
import { describe } from '../src/pool/options.js';

const PLUGIN_NAME = 'AbruptOverloadPlugin';

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
 */
export class AbruptOverloadPlugin implements PoolPlugin {
  readonly role = 'overload';
  readonly #decision: OverloadDecision;

  constructor(options: AbruptOverloadOptions = {}) {
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
    pool.hooks.onOverload.tap(PLUGIN_NAME, (info) => {
      if (!info.stats.overload.active) {
        pool.logger.warn('overload: no idle child; turning connections away', { strategy: 'abrupt', listener: info.listener, reason: info.reason });
      }
      return this.#decision;
    });
    pool.hooks.onOverloadEnd.tap(PLUGIN_NAME, (info) => {
      if (info.strategy !== 'abrupt') return;
      pool.logger.info('overload ended', { strategy: 'abrupt', listener: info.listener, durationMs: info.durationMs, rejected: info.rejected });
    });
  }
}
