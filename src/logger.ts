import type { Logger, LogLevel } from './child/types.js';
import { jsonSafe } from './jsonSafe.js';

export type { Logger, LogLevel } from './child/types.js';

/** The log levels, most severe first. */
export const LOG_LEVELS: readonly LogLevel[] = Object.freeze(['error', 'warn', 'info', 'debug']);

/** Each level's severity rank, 0 the most severe: a line is written when its rank is at most the threshold's. */
export const LOG_LEVEL_RANK: Readonly<Record<LogLevel, number>> = Object.freeze({ error: 0, warn: 1, info: 2, debug: 3 });

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Lines less severe than this are dropped. @default "info" */
  level?: LogLevel;
  /** `json`: one JSON object a line; `pretty`: readable text; `auto`: pretty on a TTY, JSON elsewhere. @default "auto" */
  format?: 'json' | 'pretty' | 'auto';
  /** Where lines go. @default process.stderr */
  stream?: { write(line: string): unknown; isTTY?: boolean };
  /** Fields added to every line (e.g. `{ pid }`). */
  base?: Record<string, unknown>;
}

/** A logger whose output stream can be swapped (log reopening on SIGUSR1). */
export interface StreamLogger extends Logger {
  /** Replaces the output stream. */
  setStream(stream: { write(line: string): unknown; isTTY?: boolean }): void;
  /** The level in force. */
  readonly level: LogLevel;
}

/** Creates prefork's default logger: JSON lines by default, readable text on a terminal. */
export function createLogger(options: LoggerOptions = {}): StreamLogger {
  const level = options.level ?? 'info';
  const threshold = LOG_LEVEL_RANK[level];
  let stream = options.stream ?? process.stderr;
  const base = options.base ?? {};
  const pretty = () => options.format === 'pretty' || (options.format !== 'json' && stream.isTTY === true);

  function write(lineLevel: LogLevel, message: string, fields?: Record<string, unknown>): void {
    if (LOG_LEVEL_RANK[lineLevel] > threshold) return;
    const time = new Date().toISOString();
    const extra = ownFields(base, fields);
    if (pretty()) {
      const rest = Object.entries(extra)
        .map(([key, value]) => `${escapeText(key)}=${typeof value === 'string' && PLAIN_VALUE.test(value) ? value : JSON.stringify(value)}`)
        .join(' ');
      stream.write(`${time} ${lineLevel.toUpperCase().padEnd(5)} ${escapeText(String(message))}${rest ? ` ${rest}` : ''}\n`);
    } else {
      stream.write(`${JSON.stringify({ time, level: lineLevel, msg: String(message), ...extra })}\n`);
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

/** The keys every line starts with; a field of that name is written as `field.<name>`, never over them. */
const RESERVED = new Set(['time', 'level', 'msg']);

/** A pretty-printed value that needs no quotes: no space, quote, `=`, control or line-separator character. */
const PLAIN_VALUE = /^[^\s"=\p{Cc}\u2028\u2029]+$/u;

/** The fields of one line, JSON-safe, none of them replacing `time`, `level` or `msg`. */
function ownFields(base: Record<string, unknown>, fields: Record<string, unknown> | undefined): Record<string, unknown> {
  const merged = jsonSafe(fields === undefined ? base : { ...base, ...fields }) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(merged)) out[RESERVED.has(key) ? `field.${key}` : key] = value;
  return out;
}

/** Text for a pretty line: control characters (a newline would start a forged line) escaped as in JSON. */
function escapeText(text: string): string {
  return text.replace(/[\p{Cc}\u2028\u2029]/gu, (char) => JSON.stringify(char).slice(1, -1));
}

/** A logger that drops everything. */
export const silentLogger: Logger = Object.freeze({
  error() {},
  warn() {},
  info() {},
  debug() {},
});
