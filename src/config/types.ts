import type { LogLevel } from '../child/types.js';
import type { PoolPlugin } from '../pool/hooks.js';
import type { ChildrenOptions, ListenSpec, PoolOptions, TimeoutOptions } from '../pool/options.js';
import type { HttpOptions } from '../protocols/http.js';
import type { ScgiOptions } from '../protocols/scgi.js';

/**
 * One entry of the `plugins` list: a module path (relative to the config file), a package name,
 * the class name of a built-in plugin (`"ShutdownCheckPlugin"`), any of these with options
 * (`["./plugin.js", { ... }]`), or (in JS and TS configs) a plugin instance. The module's
 * default export (or `module.exports`) is a plugin class (`new Plugin(options)`), a factory
 * function (`plugin(options)`), or a plugin object (anything with `apply(pool)`).
 */
export type PluginEntry = string | [path: string, options?: unknown] | PoolPlugin;

/** The `log` section: the parent's log, which also carries what children log through `ctx.logger`. */
export interface LogConfig {
  /** Lines less severe than this are dropped, in the parent and in the children. @default "info" */
  level?: LogLevel;
  /**
   * A file the parent appends its log to, relative to the config file; reopened on SIGUSR1 (for
   * logrotate). Children's own stderr output is forwarded to the parent's stderr, not to this file.
   * @default the parent's stderr
   */
  file?: string;
  /** `json` lines, `pretty` text, or `auto`: pretty on a terminal, JSON elsewhere. @default "auto" */
  format?: 'json' | 'pretty' | 'auto';
}

/**
 * The configuration file of the `prefork` command (`prefork.config.js`, `.preforkrc.json`, the
 * `prefork` key of package.json, ...). Paths are relative to the file that holds them.
 */
export interface PreforkConfig {
  /** The handler module, relative to the config file. Required here or as `--handler`. */
  handler?: string;
  /**
   * Where to listen, one address or a list: `"127.0.0.1:8080"`, `"[::1]:8080"`, `":8080"` (every
   * IPv4 interface), `"unix:/run/app.sock"` or `{ path, mode }`, `{ fd: 3 }`, `"systemd"`.
   * Required here or as `--listen`.
   */
  listen?: ListenSpec | ListenSpec[];
  /** How connections reach the handler: `raw` (`connection(socket, ctx)`), `http` or `scgi` (`request(req, res, ctx)`). @default "raw" */
  protocol?: 'raw' | 'http' | 'scgi';
  /** Options of the HTTP adapter, used with `protocol: "http"`. */
  http?: HttpOptions;
  /** Options of the SCGI adapter, used with `protocol: "scgi"`. */
  scgi?: ScgiOptions;
  /** How many children, and how many connections each (see the README for the defaults). */
  children?: Partial<ChildrenOptions>;
  /** Deadlines in milliseconds: `accept`, `start`, `stop` (the grace period of a graceful stop). */
  timeouts?: Partial<TimeoutOptions>;
  /** What happens when no child can take a connection. @default "graceful" */
  overload?: PoolOptions['overload'];
  /** Child recycling: `maxConnectionsPerChild`, `jitter`, `maxChildAge`, `maxChildMemory`, `idleChildTimeout`. @default off */
  recycle?: Record<string, unknown>;
  /** Plugins, applied in order before the built-in ones, so their answers win. */
  plugins?: PluginEntry[];
  /** The user the children run as (a name from /etc/passwd, or a uid); needs root. The parent binds first. */
  user?: string | number;
  /** The group the children run as (a name from /etc/group, or a gid). @default the user's primary group */
  group?: string | number;
  /** The parent's log. */
  log?: LogConfig;
  /** Extra environment variables of the children, on top of the parent's. */
  env?: Record<string, string>;
  /** Node options of the children (`["--max-old-space-size=256"]`). @default [] */
  execArgv?: string[];
  /** V8's memory reducer in the children (see PoolOptions): off, so that a child's heap is not shrunk after a quiet spell. @default false */
  childMemoryReducer?: boolean;
  /** Kernel accept-queue length of each listening socket. @default 511 */
  backlog?: number;
  /** Most accept orders per wake-up of a TCP listener (see PoolOptions). @default 1 */
  ordersPerWakeup?: number;
  /** Follow-on accepts a child may make by itself per accept order (see PoolOptions). 0 = every accept ordered. @default 32 */
  acceptChain?: number;
  /** Most children holding a chain grant at once (see PoolOptions). @default twice the number of CPUs */
  acceptChainChildren?: number;
  /** How long a chaining child's handler may take for the waiting connections it takes at once (see PoolOptions). 0 = one at a time. @default 1 */
  acceptChainBatchMs?: number;
  /** The parent's scheduling policy while it runs (Linux, see PoolOptions): SCHED_BATCH, or as started. @default "batch" */
  parentScheduling?: 'batch' | 'normal';
  /** Linux TCP_DEFER_ACCEPT in seconds: wake only once a TCP client has sent data. 0 = off. @default 0 */
  deferAccept?: number;
  /** TCP_NOTSENT_LOWAT of each TCP listener in bytes: the most unsent data the kernel takes per connection. 0 = the system's default. @default 65536 */
  notsentLowat?: number;
  /** Milliseconds between two maintenance ticks of the parent (spawning policy, recycling). @default 1000 */
  tickInterval?: number;
  /**
   * The status listener the parent serves (`GET /status`, `/status?json`, `/ready`): a loopback
   * address or a Unix socket (relative to this file). `prefork status` finds it here. Off unless given.
   */
  status?: { listen: ListenSpec };
}

/**
 * Types a configuration in a JS or TS config file; returns it unchanged.
 *
 * ```ts
 * // prefork.config.ts
 * import { defineConfig } from 'prefork';
 * export default defineConfig({ handler: './app.js', listen: '127.0.0.1:8080', protocol: 'http' });
 * ```
 */
export function defineConfig(config: PreforkConfig): PreforkConfig {
  return config;
}
