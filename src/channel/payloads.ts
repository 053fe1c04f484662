import type { LogLevel } from '../child/types.js';

/**
 * Checks of the payloads a child sends. A child runs user code and may write anything on its
 * control channel, so a payload is trusted only after it matches its schema here; nothing in it
 * may select a method, a file or a code path in the parent.
 */

/** The log levels a child may use, as own keys of a null-prototype table (no `constructor`, no `configure`). */
const LOG_LEVELS: Readonly<Record<LogLevel, true>> = Object.freeze(Object.assign(Object.create(null) as Record<LogLevel, true>, { error: true, warn: true, info: true, debug: true }));

/** A LOG payload that passed {@link parseLogLine}. */
export interface ValidLogLine {
  level: LogLevel;
  message: string;
  fields?: Record<string, unknown>;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

/**
 * Returns the LOG payload when it is `{ level, message, fields? }` with one of the four levels, a
 * string message and a plain-object `fields`; otherwise a sentence saying what is wrong.
 */
export function parseLogLine(payload: unknown): ValidLogLine | string {
  if (!isPlainObject(payload)) return 'a log payload must be an object';
  const { level, message, fields } = payload;
  if (typeof level !== 'string' || LOG_LEVELS[level as LogLevel] !== true) return `log level ${JSON.stringify(level)} is not one of error, warn, info, debug`;
  if (typeof message !== 'string') return 'a log message must be a string';
  if (fields !== undefined && !isPlainObject(fields)) return 'log fields must be a plain object';
  return fields === undefined ? { level: level as LogLevel, message } : { level: level as LogLevel, message, fields };
}
