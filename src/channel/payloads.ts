import type { LogLevel } from '../child/types.js';
import { jsonSafe } from '../jsonSafe.js';
import { describe } from '../pool/optionChecks.js';

/**
 * Checks of the payloads a child sends. A child runs user code and may write anything on its
 * control channel, so a payload is trusted only after it matches its schema here; nothing in it
 * may select a method, a file or a code path in the parent. Every schema is what the child
 * runtime itself sends (`src/child/runtime.ts` keeps within the same bounds), so a payload that
 * does not match was forged: the parent kills the child that sent it.
 */

/** Longest log message, error message or reason a child may send, in UTF-16 code units. */
export const MAX_TEXT_LENGTH = 16 * 1024;
/** Longest stack trace a child may send. */
export const MAX_STACK_LENGTH = 64 * 1024;
/** Longest short label (an error code, where an error happened, a shutdown token). */
export const MAX_LABEL_LENGTH = 256;
/** Most fields one log line may carry. */
export const MAX_LOG_FIELDS = 64;

/** The log levels a child may use, as own keys of a null-prototype table (no `constructor`, no `configure`). */
const LOG_LEVELS: Readonly<Record<LogLevel, true>> = Object.freeze(Object.assign(Object.create(null) as Record<LogLevel, true>, { error: true, warn: true, info: true, debug: true }));

/** A LOG payload that passed {@link parseLogLine}. */
export interface ValidLogLine {
  level: LogLevel;
  message: string;
  fields?: Record<string, unknown>;
}

/** A SHUTDOWN_REQUEST payload that passed {@link parseShutdownRequest}. */
export interface ValidShutdownRequest {
  reason: string | undefined;
  token: string | undefined;
}

/** An ERROR or INIT_FAILED payload that passed {@link parseErrorReport}. */
export interface ValidErrorReport {
  message: string;
  stack?: string;
  code?: string;
  where: string;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

/** A payload object with only `allowed` keys, or a sentence saying what is wrong (`what` with its article). */
function record(payload: unknown, what: string, allowed: readonly string[]): Record<string, unknown> | string {
  if (!isPlainObject(payload)) return `${what} payload must be an object`;
  for (const key of Object.keys(payload)) if (!allowed.includes(key)) return `${what} payload has an unknown key ${JSON.stringify(key.slice(0, MAX_LABEL_LENGTH))}`;
  return payload;
}

/** Undefined when `value` is a string of at most `max` units (or absent, when `optional`), else the problem. */
function text(value: unknown, name: string, max: number, optional: boolean): string | undefined {
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'string') return `${name} must be a string`;
  if (value.length > max) return `${name} is longer than ${max} characters`;
  return undefined;
}

/**
 * Returns the LOG payload when it is `{ level, message, fields? }` with one of the four levels, a
 * bounded string message and a plain-object `fields` of at most {@link MAX_LOG_FIELDS} keys;
 * otherwise a sentence saying what is wrong.
 */
export function parseLogLine(payload: unknown): ValidLogLine | string {
  const data = record(payload, 'a log', ['level', 'message', 'fields']);
  if (typeof data === 'string') return data;
  const { level, message, fields } = data;
  if (typeof level !== 'string' || LOG_LEVELS[level as LogLevel] !== true) return `log level ${describe(level)} is not one of error, warn, info, debug`;
  const problem = text(message, 'a log message', MAX_TEXT_LENGTH, false);
  if (problem) return problem;
  if (fields === undefined) return { level: level as LogLevel, message: message as string };
  if (!isPlainObject(fields)) return 'log fields must be a plain object';
  if (Object.keys(fields).length > MAX_LOG_FIELDS) return `a log line has more than ${MAX_LOG_FIELDS} fields`;
  return { level: level as LogLevel, message: message as string, fields };
}

/** `{ reason?, token? }`, both bounded strings. */
export function parseShutdownRequest(payload: unknown): ValidShutdownRequest | string {
  const data = record(payload ?? {}, 'a shutdown request', ['reason', 'token']);
  if (typeof data === 'string') return data;
  const problem = text(data.reason, 'a shutdown reason', MAX_TEXT_LENGTH, true) ?? text(data.token, 'a shutdown token', MAX_LABEL_LENGTH, true);
  return problem ?? { reason: data.reason as string | undefined, token: data.token as string | undefined };
}

/** `{ reason? }` of an EXITING report, a bounded string. */
export function parseExitingReason(payload: unknown): { reason: string | undefined } | string {
  const data = record(payload ?? {}, 'a retirement', ['reason']);
  if (typeof data === 'string') return data;
  return text(data.reason, 'a retirement reason', MAX_TEXT_LENGTH, true) ?? { reason: data.reason as string | undefined };
}

/** `{ message, stack?, code?, where }` of an ERROR or INIT_FAILED report, all bounded strings. */
export function parseErrorReport(payload: unknown): ValidErrorReport | string {
  const data = record(payload, 'an error report', ['message', 'stack', 'code', 'where']);
  if (typeof data === 'string') return data;
  const problem =
    text(data.message, 'an error message', MAX_TEXT_LENGTH, false) ??
    text(data.stack, 'an error stack', MAX_STACK_LENGTH, true) ??
    text(data.code, 'an error code', MAX_LABEL_LENGTH, true) ??
    text(data.where, 'where an error happened', MAX_LABEL_LENGTH, false);
  if (problem) return problem;
  const report: ValidErrorReport = { message: data.message as string, where: data.where as string };
  if (data.stack !== undefined) report.stack = data.stack as string;
  if (data.code !== undefined) report.code = data.code as string;
  return report;
}

// ---- what the child runtime sends: the same bounds, met by shortening ------------------------

/** `value` as a string of at most `max` units, an ellipsis marking a cut. */
export function clip(value: unknown, max: number): string {
  const text = typeof value === 'string' ? value : String(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * A LOG payload within the schema, whatever `ctx.logger` was given: the message a string, the
 * fields JSON-safe (cycles, BigInts: see `jsonSafe`) and at most {@link MAX_LOG_FIELDS} of them.
 */
export function shapeLogLine(level: LogLevel, message: unknown, fields: unknown): ValidLogLine {
  const line: ValidLogLine = { level, message: clip(message, MAX_TEXT_LENGTH) };
  if (fields === undefined || fields === null) return line;
  const safe = jsonSafe(fields);
  if (!isPlainObject(safe)) {
    line.fields = { value: safe };
    return line;
  }
  const keys = Object.keys(safe);
  line.fields = keys.length <= MAX_LOG_FIELDS ? safe : Object.fromEntries(keys.slice(0, MAX_LOG_FIELDS).map((key) => [key, safe[key]]));
  return line;
}

/** An ERROR / INIT_FAILED payload within the schema. */
export function shapeErrorReport(error: { message?: unknown; stack?: unknown; code?: unknown }, where: string): ValidErrorReport {
  const report: ValidErrorReport = { message: clip(error.message ?? 'unknown error', MAX_TEXT_LENGTH), where: clip(where, MAX_LABEL_LENGTH) };
  if (typeof error.stack === 'string') report.stack = clip(error.stack, MAX_STACK_LENGTH);
  if (typeof error.code === 'string' || typeof error.code === 'number') report.code = clip(String(error.code), MAX_LABEL_LENGTH);
  return report;
}
