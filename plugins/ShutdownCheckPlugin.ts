import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { toError } from '../src/errors.js';
import type { PoolPlugin, ShutdownRequest } from '../src/pool/hooks.js';
import type { Pool } from '../src/pool/Pool.js';
import type { PoolStats } from '../src/pool/stats.js';
import { invalid as invalidOption, milliseconds, pluginOptions } from '../src/pool/optionChecks.js';

const PLUGIN_NAME = 'ShutdownCheckPlugin';
const OPTION_KEYS: ReadonlySet<string> = new Set(['stopFile', 'stopFileWhen', 'maxUptime', 'idleShutdown', 'predicate', 'drainBacklog', 'shutdownToken', 'allowShutdownRequests', 'honourRequest']);

/**
 * A user check run on every tick: return `true` (or a string, used as the reason) to stop the
 * server. A promise is awaited; a check still pending is not started again.
 */
export type ShutdownPredicate = (stats: PoolStats, pool: Pool) => boolean | string | undefined | Promise<boolean | string | undefined>;

/** Options of {@link ShutdownCheckPlugin}. Every check is off unless set. */
export interface ShutdownCheckOptions {
  /** A file whose appearance (or disappearance, see `stopFileWhen`) stops the server. Relative to the pool's `cwd`. */
  stopFile?: string;
  /**
   * `appears`: stop when `stopFile` exists and did not at the previous check (a file left over from
   * an earlier run does not stop a new one); `disappears`: stop when it existed and is now gone.
   * @default "appears"
   */
  stopFileWhen?: 'appears' | 'disappears';
  /** Stop after the pool has run this many milliseconds. 0 = never. @default 0 */
  maxUptime?: number;
  /** Stop after this many milliseconds without any connection (none accepted, none held). 0 = never. @default 0 */
  idleShutdown?: number;
  /** A check of your own, run on every tick. @default undefined */
  predicate?: ShutdownPredicate;
  /**
   * How long a stop by one of these checks serves the connections already queued in the backlog
   * (shutting a listening socket down resets them): `true` for up to `timeouts.stop` ms, a number
   * for up to that many ms, `false` not at all.
   * @default the pool's `timeouts.drain`, as every stop
   */
  drainBacklog?: boolean | number;
  /**
   * Honour a child's `requestShutdown` only when it carries this token (or one of these tokens);
   * other requests are vetoed and logged. @default undefined (no token needed)
   */
  shutdownToken?: string | string[];
  /** `false` vetoes every shutdown request from children. @default true */
  allowShutdownRequests?: boolean;
  /** A check of your own on each shutdown request: return `false` to veto it. @default undefined */
  honourRequest?: (request: ShutdownRequest) => boolean;
}

/**
 * Stops the server on conditions checked on every `onParentTick`: a stop file appears or
 * disappears, the pool has run `maxUptime`, nothing has connected for `idleShutdown` (a whole-server
 * idle timeout, for socket-activated services), or a predicate says so. The stop is the graceful
 * one of `pool.stop(reason)`: children finish their connections first, and the connections still
 * queued in the backlog are served before the listeners close (`drainBacklog`).
 *
 * It also decides on children's shutdown requests (`onShutdownRequest`): only those with a
 * configured token, none at all, or those a user check accepts.
 */
export class ShutdownCheckPlugin implements PoolPlugin {
  readonly #options: ShutdownCheckOptions & { stopFileWhen: 'appears' | 'disappears'; maxUptime: number; idleShutdown: number; allowShutdownRequests: boolean; drainBacklog: boolean | number | undefined };
  readonly #tokens: ReadonlySet<string> | undefined;
  #stopFilePath: string | undefined;
  #stopFileSeen = false;
  #lastActivity = 0;
  #lastAccepted = -1;
  #predicatePending = false;
  #stopping = false;

  constructor(options: ShutdownCheckOptions = {}) {
    pluginOptions(PLUGIN_NAME, options, OPTION_KEYS);
    const invalid = (key: string, expected: string, got: unknown) => invalidOption(`${PLUGIN_NAME} ${key}`, expected, got);
    if (options.stopFile !== undefined && (typeof options.stopFile !== 'string' || options.stopFile === '')) throw invalid('stopFile', 'a file path', options.stopFile);
    const stopFileWhen = options.stopFileWhen ?? 'appears';
    if (stopFileWhen !== 'appears' && stopFileWhen !== 'disappears') throw invalid('stopFileWhen', '"appears" or "disappears"', options.stopFileWhen);
    if (options.stopFileWhen !== undefined && options.stopFile === undefined) throw invalid('stopFileWhen', 'a stopFile to go with it', undefined);
    if (options.predicate !== undefined && typeof options.predicate !== 'function') throw invalid('predicate', 'a function (stats, pool) => boolean', options.predicate);
    if (options.honourRequest !== undefined && typeof options.honourRequest !== 'function') throw invalid('honourRequest', 'a function (request) => boolean', options.honourRequest);
    if (options.allowShutdownRequests !== undefined && typeof options.allowShutdownRequests !== 'boolean') throw invalid('allowShutdownRequests', 'true or false', options.allowShutdownRequests);
    const drainBacklog = options.drainBacklog;
    if (drainBacklog !== undefined && typeof drainBacklog !== 'boolean') milliseconds(`${PLUGIN_NAME} drainBacklog`, drainBacklog, 0, 0);
    const tokens = options.shutdownToken === undefined ? undefined : Array.isArray(options.shutdownToken) ? options.shutdownToken : [options.shutdownToken];
    if (tokens && (tokens.length === 0 || tokens.some((token) => typeof token !== 'string' || token === ''))) throw invalid('shutdownToken', 'a non-empty string or an array of them', options.shutdownToken);
    this.#tokens = tokens ? new Set(tokens) : undefined;
    this.#options = {
      ...options,
      stopFileWhen,
      maxUptime: milliseconds(`${PLUGIN_NAME} maxUptime`, options.maxUptime, 0, 0),
      idleShutdown: milliseconds(`${PLUGIN_NAME} idleShutdown`, options.idleShutdown, 0, 0),
      allowShutdownRequests: options.allowShutdownRequests ?? true,
      drainBacklog,
    };
  }

  apply(pool: Pool): void {
    const options = this.#options;
    if (options.stopFile !== undefined) {
      this.#stopFilePath = isAbsolute(options.stopFile) ? options.stopFile : resolve(pool.options.cwd, options.stopFile);
    }
    pool.hooks.onStart.tap(PLUGIN_NAME, () => {
      this.#lastActivity = Date.now();
      if (this.#stopFilePath === undefined) return;
      this.#stopFileSeen = existsSync(this.#stopFilePath);
      if (options.stopFileWhen === 'appears' && this.#stopFileSeen) {
        pool.logger.warn('the stop file exists already; the server stops when it is removed and created again', { event: 'shutdown.check', stopFile: this.#stopFilePath });
      } else if (options.stopFileWhen === 'disappears' && !this.#stopFileSeen) {
        pool.logger.warn('the stop file does not exist yet; the server stops once it was created and is removed again', { event: 'shutdown.check', stopFile: this.#stopFilePath });
      }
    });
    if (this.#stopFilePath !== undefined || options.maxUptime > 0 || options.idleShutdown > 0 || options.predicate) {
      pool.hooks.onParentTick.tap(PLUGIN_NAME, (stats) => this.#check(pool, stats));
    }
    if (this.#tokens || !options.allowShutdownRequests || options.honourRequest) {
      pool.hooks.onShutdownRequest.tap(PLUGIN_NAME, (request) => this.#decide(pool, request));
    }
  }

  /** The tick's checks, cheapest first; the first that holds stops the pool. */
  #check(pool: Pool, stats: PoolStats): void {
    if (this.#stopping || stats.state !== 'running') return;
    const options = this.#options;
    const now = Date.now();
    if (this.#stopFilePath !== undefined) {
      const exists = existsSync(this.#stopFilePath);
      const was = this.#stopFileSeen;
      this.#stopFileSeen = exists;
      if (options.stopFileWhen === 'appears' && exists && !was) return this.#stop(pool, `stop file ${this.#stopFilePath} appeared`);
      if (options.stopFileWhen === 'disappears' && !exists && was) return this.#stop(pool, `stop file ${this.#stopFilePath} disappeared`);
    }
    if (options.maxUptime > 0 && stats.uptimeMs >= options.maxUptime) return this.#stop(pool, `maximum uptime of ${options.maxUptime} ms reached`);
    if (options.idleShutdown > 0) {
      // Activity is read from the tick's stats, so the per-connection hot path carries no tap.
      if (stats.connections.accepted !== this.#lastAccepted || stats.connections.active > 0 || stats.children.accepting > 0) {
        this.#lastAccepted = stats.connections.accepted;
        this.#lastActivity = now;
      } else if (now - this.#lastActivity >= options.idleShutdown) {
        return this.#stop(pool, `no connection for ${now - this.#lastActivity} ms (idleShutdown ${options.idleShutdown} ms)`);
      }
    }
    if (options.predicate && !this.#predicatePending) this.#runPredicate(pool, stats);
  }

  #runPredicate(pool: Pool, stats: PoolStats): void {
    const verdict = this.#options.predicate!(stats, pool);
    const settle = (answer: boolean | string | undefined) => {
      if (answer === true || (typeof answer === 'string' && answer !== '')) {
        this.#stop(pool, typeof answer === 'string' ? answer : 'the shutdown predicate returned true');
      }
    };
    if (verdict && typeof (verdict as Promise<unknown>).then === 'function') {
      this.#predicatePending = true;
      (verdict as Promise<boolean | string | undefined>).then(
        (answer) => {
          this.#predicatePending = false;
          if (pool.state === 'running') settle(answer);
        },
        (error: unknown) => {
          this.#predicatePending = false;
          pool.logger.error(`plugin "${PLUGIN_NAME}" failed in its predicate: ${toError(error).message}`, { code: 'PREFORK_ERR_PLUGIN', plugin: PLUGIN_NAME, stack: toError(error).stack });
        },
      );
      return;
    }
    settle(verdict as boolean | string | undefined);
  }

  #decide(pool: Pool, request: ShutdownRequest): false | undefined {
    const options = this.#options;
    let refusal: string | undefined;
    if (!options.allowShutdownRequests) refusal = 'shutdown requests from children are not allowed';
    else if (this.#tokens && (request.token === undefined || !this.#tokens.has(request.token))) refusal = request.token === undefined ? 'the request carries no token' : 'the request carries an unknown token';
    else if (options.honourRequest && options.honourRequest(request) === false) refusal = 'honourRequest returned false';
    if (refusal === undefined) return undefined;
    pool.logger.warn('shutdown request refused', { event: 'shutdown.refused', child: request.child.id, pid: request.child.pid, reason: request.reason, why: refusal });
    return false;
  }

  #stop(pool: Pool, reason: string): void {
    this.#stopping = true;
    const { drainBacklog } = this.#options;
    const drainMs = drainBacklog === true ? pool.options.timeouts.stop : drainBacklog === false ? 0 : drainBacklog;
    void pool.stop(reason, drainMs === undefined ? {} : { drainMs });
  }
}
