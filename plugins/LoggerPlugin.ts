import { PreforkError } from '../src/errors.js';
import { adaptLogger, createLogger, LOG_LEVEL_RANK as RANK, LOG_LEVELS as LEVELS, loggerLevel } from '../src/logger.js';
import type { Logger, LogLevel } from '../src/child/types.js';
import type { OverloadReporter, PoolPlugin } from '../src/pool/hooks.js';
import { addressText } from '../src/pool/listeners.js';
import { invalid, pluginOptions } from '../src/pool/optionChecks.js';
import type { Pool } from '../src/pool/Pool.js';
import { OverloadEpisodes } from './overloadEpisodes.js';

const PLUGIN_NAME = 'LoggerPlugin';
const OPTION_KEYS: ReadonlySet<string> = new Set(['logger', 'level', 'format', 'stream']);
/**
 * Stage of the taps on Bail hooks (`onShutdownRequest`, `onOverload`, `onChildNeeded`): below the
 * default 0, so the line is written even when another plugin answers (and so ends the call).
 */
const OBSERVER_STAGE = -10;
/** How much of a crashed child's stderr goes into its exit line. */
const STDERR_TAIL_CHARS = 512;

/** Options of {@link LoggerPlugin}. */
export interface LoggerPluginOptions {
  /**
   * Where the lines go: any object with `error/warn/info/debug(message, fields)` (`console`, the
   * logger of `createLogger`), or a pino logger, called as pino is (see `fromPino`).
   * @default the pool's logger (`pool.logger`), unless `format` or `stream` asks for a new one
   */
  logger?: Logger;
  /**
   * Lines less severe than this are not written. `debug` adds one line per connection (the hot path).
   * @default the level of `logger` when it tells one (pino's), else the pool's `logLevel`
   */
  level?: LogLevel;
  /** With no `logger`: `json` lines, `pretty` text, or `auto` (pretty when the stream is a TTY). @default "auto" */
  format?: 'json' | 'pretty' | 'auto';
  /** With no `logger`: where a new logger writes. @default process.stderr */
  stream?: { write(line: string): unknown; isTTY?: boolean };
}

/**
 * Logs the pool's lifecycle, one line per event, each with an `event` field for machines:
 *
 * | event | level | when |
 * | --- | --- | --- |
 * | `pool.start`, `pool.started` | info | listeners bound; initial children ready |
 * | `child.spawn`, `child.ready` | info | a child forked; it reported idle the first time |
 * | `child.exit` | info / warn / error | exit code and signal; warn when unexpected, error when connections were lost |
 * | `child.timeout` | warn | a child missed its start/accept/stop deadline and is killed |
 * | `child.error` | error | a handler threw or rejected (stack at `debug`) |
 * | `overload.start`, `overload.end` | warn / info | only when the overload plugin does not report them itself; one pair per episode |
 * | `shutdown.request` | info | a child asked to stop the server |
 * | `pool.stopping`, `pool.stopped` | info | a stop begins (with its reason); everything is closed |
 * | `reload.start`, `reload.spawned` | info | a reload begins; its new children are forked |
 * | `connection.dispatch`, `connection.done` | debug | per connection: never at `info` |
 *
 * JSON lines in pino's shape by default and readable text on a TTY come from the logger (see `createLogger`).
 * Replace it with a plugin of role `logging`, or pass your own logger.
 */
export class LoggerPlugin implements PoolPlugin {
  readonly role = 'logging';
  readonly #options: LoggerPluginOptions;
  #logger!: Logger;
  #level!: LogLevel;

  constructor(options: LoggerPluginOptions = {}) {
    pluginOptions(PLUGIN_NAME, options, OPTION_KEYS);
    if (options.level !== undefined && !LEVELS.includes(options.level)) throw invalid(`${PLUGIN_NAME} level`, `one of ${LEVELS.join(', ')}`, options.level);
    if (options.logger !== undefined) {
      const missing = LEVELS.filter((level) => typeof (options.logger as unknown as Record<string, unknown>)?.[level] !== 'function');
      if (missing.length > 0) throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${PLUGIN_NAME} logger: expected an object with ${LEVELS.join('/')} methods, missing ${missing.join(', ')}`);
      if (options.format !== undefined || options.stream !== undefined) {
        throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${PLUGIN_NAME}: format and stream configure a new logger; they cannot be combined with logger`);
      }
    }
    if (options.format !== undefined && !['json', 'pretty', 'auto'].includes(options.format)) throw invalid(`${PLUGIN_NAME} format`, '"json", "pretty" or "auto"', options.format);
    if (options.stream !== undefined && typeof options.stream?.write !== 'function') throw invalid(`${PLUGIN_NAME} stream`, 'a writable stream (an object with write())', options.stream);
    this.#options = options.logger === undefined ? options : { ...options, logger: adaptLogger(options.logger) };
  }

  /** The logger lines go to (known once applied). */
  get logger(): Logger {
    return this.#logger;
  }

  apply(pool: Pool): void {
    const options = this.#options;
    this.#level = options.level ?? (options.logger === undefined ? undefined : loggerLevel(options.logger)) ?? pool.options.logLevel;
    this.#logger =
      options.logger ??
      (options.format !== undefined || options.stream !== undefined
        ? createLogger({ level: this.#level, format: options.format, stream: options.stream })
        : pool.logger);
    const hooks = pool.hooks;

    // Before the spawning policy's onStart tap, so the line comes before the first children's.
    hooks.onStart.tap({ name: PLUGIN_NAME, stage: OBSERVER_STAGE }, () => {
      this.#log('info', 'pool starting', { event: 'pool.start', listen: pool.addresses().map(addressText), handler: pool.options.handler, protocol: pool.options.protocol });
    });
    hooks.afterStart.tap(PLUGIN_NAME, () => {
      this.#log('info', 'pool started', { event: 'pool.started', children: pool.stats().children.total, generation: pool.generation });
    });
    hooks.onChildStart.tap(PLUGIN_NAME, (child) => {
      this.#log('info', 'child spawned', { event: 'child.spawn', child: child.id, pid: child.pid, generation: child.generation });
    });
    hooks.onChildReady.tap(PLUGIN_NAME, (child) => {
      this.#log('info', 'child ready', { event: 'child.ready', child: child.id, pid: child.pid, startMs: child.readyAt - child.startedAt });
    });
    hooks.onChildExit.tap(PLUGIN_NAME, (child, exit) => {
      const level: LogLevel = exit.lost > 0 ? 'error' : exit.expected ? 'info' : 'warn';
      const fields: Record<string, unknown> = {
        event: 'child.exit',
        child: child.id,
        pid: child.pid,
        code: exit.code,
        signal: exit.signal,
        state: exit.state,
        expected: exit.expected,
        reason: child.stopReason,
        served: child.served,
        lost: exit.lost,
        lifetimeMs: exit.lifetimeMs,
      };
      if (!exit.expected) fields.stderr = child.stderrTail().slice(-STDERR_TAIL_CHARS);
      this.#log(level, exit.expected ? 'child exited' : 'child exited unexpectedly', fields);
    });
    hooks.onChildTimeout.tap(PLUGIN_NAME, (child, kind) => {
      this.#log('warn', `child missed its ${kind} deadline; killing it`, { event: 'child.timeout', child: child.id, pid: child.pid, kind, timeoutMs: pool.options.timeouts[kind] });
    });
    hooks.onChildError.tap(PLUGIN_NAME, (child, error) => {
      const fields: Record<string, unknown> = { event: 'child.error', child: child.id, pid: child.pid, where: error.where, error: error.message, code: error.code };
      if (this.#enabled('debug')) fields.stack = error.stack;
      this.#log('error', `handler error in ${error.where}`, fields);
    });

    hooks.onShutdownRequest.tap({ name: PLUGIN_NAME, stage: OBSERVER_STAGE }, (request) => {
      // The token is a secret: say whether there was one, never what it is.
      this.#log('info', 'child asked to stop the server', { event: 'shutdown.request', child: request.child.id, pid: request.child.pid, reason: request.reason, token: request.token !== undefined });
      return undefined;
    });
    hooks.beforeShutdown.tap(PLUGIN_NAME, (info) => {
      this.#log('info', 'pool stopping', { event: 'pool.stopping', reason: info.reason, requestedByChild: info.requestedByChild, children: pool.stats().children.total });
    });
    hooks.afterShutdown.tap(PLUGIN_NAME, (info) => {
      const stats = pool.stats();
      this.#log('info', 'pool stopped', { event: 'pool.stopped', reason: info.reason, uptimeMs: stats.uptimeMs, served: stats.connections.served, lost: stats.connections.lost, rejected: stats.connections.rejected });
    });
    hooks.beforeReload.tap(PLUGIN_NAME, (info) => {
      this.#log('info', 'reload starting', { event: 'reload.start', generation: info.generation, from: pool.generation });
    });
    hooks.afterReload.tap(PLUGIN_NAME, (info) => {
      const spawned = pool.children().filter((child) => child.generation === info.generation).length;
      this.#log('info', 'reload: new generation spawned; old children retire once idle', { event: 'reload.spawned', generation: info.generation, children: spawned });
    });

    this.#tapOverload(pool);

    // Per-connection lines only at debug: at info the hot-path hooks get no tap from this plugin.
    if (this.#enabled('debug')) {
      hooks.afterDispatch.tap(PLUGIN_NAME, (result) => {
        this.#log('debug', 'dispatched', { event: 'connection.dispatch', ...result });
      });
      hooks.onConnectionDone.tap(PLUGIN_NAME, (child, info) => {
        this.#log('debug', 'connection done', { event: 'connection.done', child: child.id, served: info.served });
      });
    }
  }

  /** Overload lines, unless the overload plugin in force reports them itself (the built-in ones do). */
  #tapOverload(pool: Pool): void {
    const policy = pool.plugin<PoolPlugin & Partial<OverloadReporter>>('overload');
    if (policy?.reportsOverload === true) return;
    const episodes = new OverloadEpisodes(pool, PLUGIN_NAME, (episode) => {
      this.#log('info', 'overload ended', { event: 'overload.end', ...episode });
    });
    pool.hooks.onOverload.tap({ name: PLUGIN_NAME, stage: OBSERVER_STAGE }, (info) => {
      if (episodes.started(info)) {
        this.#log('warn', 'overload: no idle child', { event: 'overload.start', listener: info.listener, reason: info.reason, children: info.stats.children.total, queued: info.stats.acceptQueue?.length ?? null });
      }
      return undefined;
    });
  }

  #enabled(level: LogLevel): boolean {
    return RANK[level] <= RANK[this.#level];
  }

  #log(level: LogLevel, message: string, fields: Record<string, unknown>): void {
    if (!this.#enabled(level)) return;
    this.#logger[level](message, fields);
  }
}

