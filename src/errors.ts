/**
 * Every error prefork raises on purpose carries a stable `code` from this table, so that callers and
 * tests can branch on the code and never on the wording of a message.
 */
export const ERROR_CODES = {
  /** A configuration value is missing, of the wrong type, or contradicts another one. */
  PREFORK_ERR_CONFIG_INVALID: 'invalid configuration',
  /** A configuration file could not be found, read or parsed. */
  PREFORK_ERR_CONFIG_LOAD: 'configuration file could not be loaded',
  /** An option passed to a plugin constructor or to `new Pool()` is not acceptable. */
  PREFORK_ERR_OPTION_INVALID: 'invalid option',
  /** The native addon could not be loaded (no prebuild for this platform, a broken build). */
  PREFORK_ERR_NATIVE_LOAD: 'native addon could not be loaded',
  /** Building the native addon from source (`prefork build-addon`) failed: no node-gyp, no compiler. */
  PREFORK_ERR_NATIVE_BUILD: 'native addon could not be built',
  /** A listening socket could not be opened or adopted. */
  PREFORK_ERR_LISTEN: 'could not listen',
  /** A socket operation of the native addon failed with an unexpected errno. */
  PREFORK_ERR_SOCKET: 'socket operation failed',
  /** The handler module failed to load or its `init` threw, so children cannot start. */
  PREFORK_ERR_HANDLER_INIT: 'handler failed to initialise',
  /** The handler module does not export what its protocol needs. */
  PREFORK_ERR_HANDLER_INVALID: 'handler module is not usable',
  /** A plugin's tap threw; the message names the hook and the plugin. */
  PREFORK_ERR_PLUGIN: 'a plugin failed',
  /** A plugin module does not export a plugin (an object or class with `apply`). */
  PREFORK_ERR_PLUGIN_INVALID: 'not a plugin',
  /** A frame on the control channel could not be decoded. */
  PREFORK_ERR_CHANNEL: 'control channel protocol error',
  /** The pool was asked to do something its current state does not allow (start twice, ...). */
  PREFORK_ERR_POOL_STATE: 'pool is not in a state that allows this',
  /** Dropping privileges to the configured user or group failed. */
  PREFORK_ERR_PRIVILEGES: 'could not drop privileges',
  /** A protocol adapter received input it cannot parse (malformed SCGI, ...). */
  PREFORK_ERR_PROTOCOL: 'protocol error',
} as const;

/** One of the stable error codes of {@link ERROR_CODES}. */
export type PreforkErrorCode = keyof typeof ERROR_CODES;

/** The error class of prefork: a message that names the offending key, value or file, and a stable code. */
export class PreforkError extends Error {
  /** The stable code, e.g. `PREFORK_ERR_CONFIG_INVALID`. */
  readonly code: PreforkErrorCode;

  constructor(code: PreforkErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PreforkError';
    this.code = code;
  }
}

/** True when `error` is a {@link PreforkError}, optionally with the given code. */
export function isPreforkError(error: unknown, code?: PreforkErrorCode): error is PreforkError {
  return error instanceof PreforkError && (code === undefined || error.code === code);
}

/** Turns anything thrown into an Error, so that reporting code can rely on `.message` and `.stack`. */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === 'string' ? value : JSON.stringify(value));
}
