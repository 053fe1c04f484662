import { PreforkError } from '../errors.js';
import type { LogLevel } from './types.js';

/** What the parent tells a new child, through the PREFORK_CHILD environment variable. */
export interface ChildBootstrap {
  id: number;
  generation: number;
  /** Absolute path of the handler module. */
  handler: string;
  protocol: string;
  protocolOptions: Record<string, unknown>;
  /** How many listening sockets the child inherited (fds 4, 5, ...). */
  listeners: number;
  /** Requests the handler may run at once. */
  slots: number;
  /** Connections it may hold at once (`children.connections` where it parks them, else `slots`). */
  connections: number;
  /** `acceptChainBatchMs`: how long its handler may take for the connections of a chain batch. */
  chainBatchMs: number;
  /** It inherited the SCHED_BATCH the parent switched to (`parentScheduling`): put every thread back to SCHED_OTHER. */
  restoreScheduling: boolean;
  /**
   * Some listeners serve TLS: a pipe follows the listeners (fd 4 + listeners) with their PEM data
   * and the session ticket key (a `TlsBootstrap` in JSON), read to its end at start.
   */
  tls: boolean;
  /** A page shared with the parent follows the listeners and the TLS pipe (its ORDERS word; with `parks`, the rest). */
  page: boolean;
  /** Park waiting connections (HTTP): the request slots, published on the page. Only with `page`. */
  parks: boolean;
  logLevel: LogLevel;
  /** The parent serves `/metrics`: the child sends a last METRICS report before it exits. */
  metrics: boolean;
  /** The parent's pid, for the lifeline that notices its death. */
  parentPid: number;
  /** How long after the parent's death the lifeline kills this child if it is still there. */
  orphanGraceMs: number;
  /** The user and group to become before loading the handler (with the user's supplementary groups). */
  runAs?: { uid: number; gid: number };
}

/** Reads and removes PREFORK_CHILD, so that the handler's own subprocesses do not see it. */
export function readBootstrap(env: NodeJS.ProcessEnv = process.env): ChildBootstrap {
  const text = env.PREFORK_CHILD;
  delete env.PREFORK_CHILD;
  if (!text) {
    throw new PreforkError('PREFORK_ERR_POOL_STATE', 'this is the prefork child runtime: the pool starts it, it is not run by hand (PREFORK_CHILD is not set)');
  }
  return JSON.parse(text) as ChildBootstrap;
}
