import { PreforkError } from '../errors.js';
import type { ProtocolFactory } from '../child/types.js';
import { createHttpProtocol, readHttpOptions } from './http.js';
import { createRawProtocol } from './raw.js';
import { createScgiProtocol, readScgiOptions } from './scgi.js';

/** The protocol names the `protocol` option accepts. */
export const PROTOCOLS = ['raw', 'http', 'scgi'] as const;

/** A protocol name. */
export type ProtocolName = (typeof PROTOCOLS)[number];

const factories: Record<string, ProtocolFactory<any>> = {
  raw: createRawProtocol,
  http: createHttpProtocol,
  scgi: createScgiProtocol,
};

/** The adapter factory for a protocol name; throws PREFORK_ERR_OPTION_INVALID for an unknown one. */
export function protocolFactory(name: string): ProtocolFactory<any> {
  const factory = factories[name];
  if (!factory) {
    throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `protocol: expected one of ${Object.keys(factories).map((n) => `"${n}"`).join(', ')}, got ${JSON.stringify(name)}`);
  }
  return factory;
}

const optionReaders: Record<string, ((options: unknown) => unknown) | undefined> = {
  http: readHttpOptions,
  scgi: readScgiOptions,
};

/**
 * Checks a protocol name and its option section in the parent, before anything binds or forks,
 * with the same rules the child's adapter applies. Throws PREFORK_ERR_OPTION_INVALID.
 */
export function checkProtocolOptions(name: string, options: unknown): void {
  protocolFactory(name);
  optionReaders[name]?.(options);
}

/** A protocol's option section with every default filled in (what `prefork check` prints). */
export function resolvedProtocolOptions(name: string, options: unknown): unknown {
  const reader = optionReaders[name];
  return reader ? reader(options) : options;
}
