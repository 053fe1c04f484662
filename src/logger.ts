import type { Logger, LogLevel } from './child/types.js';
import { hostname } from 'node:os';
import { PreforkError } from './errors.js';
import { jsonSafe } from './jsonSafe.js';

export type { Logger, LogLevel } from './child/types.js';

/** The log levels, most severe first. */
export const LOG_LEVELS: readonly LogLevel[] = Object.freeze(['error', 'warn', 'info', 'debug']);

/** Each level's severity rank, 0 the most severe: a line is written when its rank is at most the threshold's. */
export const LOG_LEVEL_RANK: Readonly<Record<LogLevel, number>> = Object.freeze({ error: 0, warn: 1, info: 2, debug: 3 });

/**
 * Each level's number in a JSON line: pino's (`levels.values`), so pino-pretty and log shippers that
 * read pino's lines read ours.
 */
export const LOG_LEVEL_VALUES: Readonly<Record<LogLevel, number>> = Object.freeze({ error: 50, warn: 40, info: 30, debug: 20 });

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Lines less severe than this are dropped. @default "info" */
  level?: LogLevel;
  /** `json`: one JSON object a line (pino's shape); `pretty`: readable text; `auto`: pretty on a TTY, JSON elsewhere. @default "auto" */
  format?: 'json' | 'pretty' | 'auto';
  /** Where lines go. @default process.stderr */
  stream?: { write(line: string): unknown; isTTY?: boolean };
  /** Fields added to every line (e.g. `{ service: 'api' }`); like any field, one named after a line's own key is written as `field.<name>`. */
  base?: Record<string, unknown>;
}

/** A logger whose output stream can be swapped (log reopening on SIGUSR1). */
export interface StreamLogger extends Logger {
  /** Replaces the output stream. */
  setStream(stream: { write(line: string): unknown; isTTY?: boolean }): void;
  /** The level in force. */
  readonly level: LogLevel;
}

/**
 * Creates prefork's default logger: JSON lines by default, readable text on a terminal. A JSON line
 * has pino's shape and key order, `{"level":30,"time":1764606000000,"pid":123,"hostname":"h","msg":"...",
 * ...fields}`: the level as pino's number ({@link LOG_LEVEL_VALUES}), the time in epoch milliseconds,
 * the pid and host name of the process that writes the line. A pretty line is
 * `<ISO time> LEVEL message pid=<pid> key=value...`.
 */
export function createLogger(options: LoggerOptions = {}): StreamLogger {
  const level = options.level ?? 'info';
  const threshold = LOG_LEVEL_RANK[level];
  let stream = options.stream ?? process.stderr;
  const base = options.base ?? {};
  const pretty = () => options.format === 'pretty' || (options.format !== 'json' && stream.isTTY === true);
  // Both fixed for the process's life (a fork is a new process with its own logger).
  const pid = process.pid;
  const head = `,"pid":${pid},"hostname":${JSON.stringify(hostname())},"msg":`;

  function write(lineLevel: LogLevel, message: string, fields?: Record<string, unknown>): void {
    if (LOG_LEVEL_RANK[lineLevel] > threshold) return;
    const extra = ownFields(base, fields);
    if (pretty()) {
      const rest = Object.entries(extra)
        .map(([key, value]) => ` ${escapeText(key)}=${typeof value === 'string' && PLAIN_VALUE.test(value) ? value : JSON.stringify(value)}`)
        .join('');
      stream.write(`${new Date().toISOString()} ${lineLevel.toUpperCase().padEnd(5)} ${escapeText(String(message))} pid=${pid}${rest}\n`);
    } else {
      // Written by hand, not as one object: JSON.stringify puts integer-like keys ("1") first, and
      // the line's own keys must lead in pino's order whatever the fields are called.
      const rest = JSON.stringify(extra);
      stream.write(`{"level":${LOG_LEVEL_VALUES[lineLevel]},"time":${Date.now()}${head}${JSON.stringify(String(message))}${rest === '{}' ? '' : `,${rest.slice(1, -1)}`}}\n`);
    }
  }

  return {
    get level() {
      return level;
    },
    error: (message, fields) => write('error', message, fields),
    warn: (message, fields) => write('warn', message, fields),
    info: (message, fields) => write('info', message, fields),
    debug: (message, fields) => write('debug', message, fields),
    setStream(next) {
      stream = next;
    },
  };
}

/**
 * The keys every line starts with (pino's); a field of that name is written as `field.<name>`,
 * never over them. So the `pid` of a line is always the writing process's, and a line about a
 * child (`{ child: 1, pid: 4242 }`) carries that child's as `field.pid`.
 */
const RESERVED: ReadonlySet<string> = new Set(['level', 'time', 'pid', 'hostname', 'msg']);

/** A pretty-printed value that needs no quotes: no space, quote, `=`, control or line-separator character. */
const PLAIN_VALUE = /^[^\s"=\p{Cc}\u2028\u2029]+$/u;

/** The fields of one line, JSON-safe, none of them named like a line's own keys ({@link RESERVED}). */
function ownFields(base: Record<string, unknown>, fields: Record<string, unknown> | undefined): Record<string, unknown> {
  const merged = jsonSafe(fields === undefined ? base : { ...base, ...fields }) as Record<string, unknown>;
  return outsideReserved(merged);
}

/** `fields` with each key named like a line's own one written as `field.<name>`. */
function outsideReserved(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) out[RESERVED.has(key) ? `field.${key}` : key] = value;
  return out;
}

/** Text for a pretty line: control characters (a newline would start a forged line) escaped as in JSON. */
function escapeText(text: string): string {
  return text.replace(/[\p{Cc}\u2028\u2029]/gu, (char) => JSON.stringify(char).slice(1, -1));
}

/**
 * A logger whose methods take `(fields, message)`, as pino's and bunyan's do, where prefork's take
 * `(message, fields)`. {@link fromPino} adapts one.
 */
export interface PinoLikeLogger {
  error(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  debug(fields: object, message?: string): void;
  /** pino's: whether a line of that level would be written now. */
  isLevelEnabled?(level: string): boolean;
  /** pino's level name, or bunyan's `level()` returning its number. */
  level?: unknown;
}

/** A logger of {@link PinoLikeLogger}'s call shape, seen through prefork's {@link Logger}. */
export interface AdaptedLogger extends Logger {
  /** The logger that writes the lines. */
  readonly target: PinoLikeLogger;
  /** The most verbose of prefork's levels the target writes now; undefined when it does not say. */
  readonly level: LogLevel | undefined;
}

const ADAPTED = new WeakSet<object>();

/**
 * Adapts a logger whose methods take `(fields, message)` (pino, bunyan) to prefork's `(message,
 * fields)`. Fields named like a line's own keys (`level`, `time`, `pid`, `hostname`, `msg`) are
 * passed as `field.<name>`, as prefork's own logger writes them: pino would otherwise write a
 * second `pid` key after its own. The target's own level decides which lines it writes.
 * `new Pool({ logger })` and `LoggerPlugin` adapt a pino logger by themselves (see {@link isPinoLogger}).
 */
export function fromPino(logger: PinoLikeLogger): AdaptedLogger {
  if (ADAPTED.has(logger)) return logger as unknown as AdaptedLogger;
  const missing = LOG_LEVELS.filter((level) => typeof (logger as unknown as Record<string, unknown> | null)?.[level] !== 'function');
  if (missing.length > 0) {
    throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `fromPino: expected a logger with ${LOG_LEVELS.join('/')} methods, missing ${missing.join(', ')}`);
  }
  const call = (level: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    const object = fields === undefined || fields === null ? {} : typeof fields === 'object' ? outsideReserved(fields) : { value: fields };
    logger[level](object, String(message));
  };
  const adapted: AdaptedLogger = {
    target: logger,
    get level() {
      return levelOfTarget(logger);
    },
    error: call('error'),
    warn: call('warn'),
    info: call('info'),
    debug: call('debug'),
  };
  ADAPTED.add(adapted);
  return adapted;
}

/**
 * Whether `value` is a pino logger, by its shape: pino's `child()`, `bindings()` and
 * `levels.values`. Such a logger is adapted with {@link fromPino} wherever prefork takes a logger.
 */
export function isPinoLogger(value: unknown): value is PinoLikeLogger {
  const candidate = value as { child?: unknown; bindings?: unknown; levels?: { values?: unknown } } | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.child === 'function' &&
    typeof candidate.bindings === 'function' &&
    typeof candidate.levels?.values === 'object' &&
    candidate.levels.values !== null
  );
}

/** `logger` as prefork calls it: a pino logger adapted ({@link fromPino}), any other as it is. */
export function adaptLogger(logger: Logger): Logger {
  return isPinoLogger(logger) ? fromPino(logger) : logger;
}

/**
 * The level a logger says it writes at, as one of prefork's: `level` when it is one of the four
 * names (createLogger's, an adapted pino logger's, winston's); undefined when it says none (console).
 */
export function loggerLevel(logger: Logger): LogLevel | undefined {
  const level = (logger as { level?: unknown }).level;
  return typeof level === 'string' && LOG_LEVELS.includes(level as LogLevel) ? (level as LogLevel) : undefined;
}

/**
 * The most verbose of prefork's levels a pino-like logger writes now: pino's `isLevelEnabled`, else
 * a level name, else bunyan's numeric `level()` (the same numbers as pino's). Above `error` (pino's
 * `fatal`, `silent`) it is `error`: the target drops those lines itself.
 */
function levelOfTarget(logger: PinoLikeLogger): LogLevel | undefined {
  if (typeof logger.isLevelEnabled === 'function') {
    for (const level of [...LOG_LEVELS].reverse()) if (logger.isLevelEnabled(level)) return level;
    return 'error';
  }
  if (typeof logger.level === 'string') {
    if (LOG_LEVELS.includes(logger.level as LogLevel)) return logger.level as LogLevel;
    if (logger.level === 'trace') return 'debug';
    return logger.level === 'fatal' || logger.level === 'silent' ? 'error' : undefined;
  }
  const value = typeof logger.level === 'function' ? (logger.level as () => unknown).call(logger) : logger.level;
  if (typeof value !== 'number') return undefined;
  for (const level of [...LOG_LEVELS].reverse()) if (LOG_LEVEL_VALUES[level] >= value) return level;
  return 'error';
}

/**
 * `logger` with the lines less severe than `level()` dropped before it sees them: the pool puts
 * this in front of a logger of the user's, so that `logLevel` (read at each call: a reload may
 * change it) means the same whichever logger writes.
 */
export function levelGate(logger: Logger, level: () => LogLevel): Logger {
  const gate = (lineLevel: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (LOG_LEVEL_RANK[lineLevel] <= LOG_LEVEL_RANK[level()]) logger[lineLevel](message, fields);
  };
  return { error: gate('error'), warn: gate('warn'), info: gate('info'), debug: gate('debug') };
}

/** A logger that drops everything. */
export const silentLogger: Logger = Object.freeze({
  error() {},
  warn() {},
  info() {},
  debug() {},
});
