import { isAbsolute, resolve } from 'node:path';
import { availableParallelism } from 'node:os';
import { PreforkError } from '../errors.js';
import { adaptLogger, LOG_LEVELS, loggerLevel } from '../logger.js';
import type { Logger, LogLevel } from '../child/types.js';
import type { PoolPlugin } from './hooks.js';
import { checkKeys, describe, integer, invalid, milliseconds, object, sectionScope } from './optionChecks.js';
import { resolveOverloadOptions, resolveRecycleSection, resolveSpawningBounds, SPAWNING_DEFAULTS, type OverloadOptions, type RecycleOptions, type ResolvedRecycleOptions, type SpawningBounds } from './policyOptions.js';
import { checkProtocolOptions } from '../protocols/index.js';
import { didYouMean } from '../config/suggest.js';
import { resolveTls, type ResolvedTls, type TlsOptions } from './tls.js';

/**
 * Where to listen. Strings: `"host:port"`, `"[::1]:port"`, `":port"` (all IPv4 interfaces),
 * `"unix:/path"`, `"fd:N"`, `"systemd"` (every socket systemd passed in LISTEN_FDS). The object
 * forms may carry `tls` (protocols `http` and `raw`): the child serves TLS on that listener.
 */
export type ListenSpec =
  | string
  | (({ host?: string; port: number } | { path: string; mode?: number | string } | { fd: number } | { systemd: true }) & { tls?: TlsOptions });

/** A parsed listen address. */
export type ListenTarget =
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'unix'; path: string; mode: number | undefined }
  | { kind: 'fd'; fd: number }
  | { kind: 'systemd' };

/** How many children, and how many connections each. */
export interface ChildrenOptions extends SpawningBounds {
  /** Requests one child's handler runs at once; 1 is classic prefork. @default 1 */
  slots: number;
  /**
   * Connections one child may hold at once, requests in its handler and waiting connections
   * together (HTTP, where the system shares a page with each child: Linux). A waiting connection,
   * one whose request headers or body are still arriving, an idle keep-alive one, or one whose
   * finished answer is still being sent, is parked in the child's event loop and holds no slot,
   * so slow clients cannot take every slot. Other protocols, and HTTP elsewhere, hold a slot per
   * connection (this is then `slots`). At least `slots`.
   * @default 256, or `slots` if that is larger
   */
  connections: number;
}

/** Deadlines of the synchronous steps, in milliseconds. A child that misses one is killed. */
export interface TimeoutOptions {
  /** From an accept order to the child's answer. @default 5000 */
  accept: number;
  /** From fork to the child's first "idle" (module load and `init`). @default 30000 */
  start: number;
  /** From a stop order to the child's exit (its connections finish meanwhile). @default 30000 */
  stop: number;
  /**
   * At the start of a stop, new connections are kept out of the listeners and the ones already
   * queued are served for up to this long; what is still queued after it is reset when the
   * listener shuts down. 0 = no drain: the listener shuts down at once. `pool.stop(reason,
   * { drainMs })` overrides it for one stop. @default 5000
   */
  drain: number;
  /**
   * How long a scrape of `/metrics` (the status listener) waits for the children's own metrics. A
   * child that answers later (busy in CPU work) is counted in `prefork_child_metrics_late` and
   * shows its previous answer. @default 1000
   */
  metrics: number;
  /**
   * The heartbeat: a child whose event loop does not answer a ping within this many ms (a handler
   * stuck in a loop) is killed and replaced, as gunicorn's `timeout`. Also how long children may
   * finish their connections after the parent died. 0 = off. @default 30000
   */
  heartbeat: number;
  /**
   * Wall-clock limit of one connection (php-fpm's `request_terminate_timeout`): a child that holds
   * a connection longer is killed, the connection counted lost. With `slots > 1`, measured from the
   * oldest connection the child still holds as far as the parent can tell. 0 = off. @default 0
   */
  connection: number;
}

/** Options of `new Pool()`. Only `handler` and `listen` are required. */
export interface PoolOptions {
  /** The handler module (absolute, or relative to `cwd`). */
  handler: string;
  /** Where to listen: one address or several. */
  listen: ListenSpec | ListenSpec[];
  /** How connections reach the handler: `raw` (`connection(socket, ctx)`), `http` or `scgi` (`request(req, res, ctx)`). @default "raw" */
  protocol?: string;
  /** Options of the HTTP adapter (`protocol: "http"`). */
  http?: Record<string, unknown>;
  /** Options of the SCGI adapter (`protocol: "scgi"`). */
  scgi?: Record<string, unknown>;
  /**
   * Most accept orders sent per wake-up of a TCP listener, bounded by the kernel's accept-queue
   * length and the idle children. 1 (one order, one answer) measured fastest on 2 cores.
   * @default 1
   */
  ordersPerWakeup?: number;
  /**
   * The chain grant of an accept order: after finishing a connection, a child accepts the next
   * waiting one itself (non-blocking; "nothing" ends the chain) up to this many times before it
   * needs a new order, and reports "done" and "accepted" in one frame. Under load this takes the
   * parent out of most accepts. 0 = every accept is ordered by the parent. Grants are only given
   * to one-slot children while no `beforeDispatch` tap, reload or stop is active, no other
   * listener waits for a child and fewer than `acceptChainChildren` children use one; the
   * `chainBudget` hook (the recycling plugin, for one) can lower them per order.
   * @default 32
   */
  acceptChain?: number;
  /**
   * Most children using a chain grant at once (given or used in the last 250 ms: a child that
   * only holds a long connection does not count). A chaining child never sleeps while connections
   * wait, so each one keeps a CPU busy; more of them than the CPUs can run take turns, and every
   * turn starts with cold caches (measured on 2 CPUs: 16 chaining children served a third of what
   * 8 did). Since chain batches, two per CPU served more than one per CPU (a connection per
   * request, 8 children on 2 CPUs: 1.02-1.10x; 8 measured like 4). Children beyond the limit
   * take orders one by one as usual, so this limits how many children skip the parent, not how
   * many serve.
   * @default `2 * os.availableParallelism()`
   */
  acceptChainChildren?: number;
  /**
   * A chaining child takes up to 16 waiting connections at once, as many as its recent ones get
   * through within this many milliseconds (the median of the last 8: a request's time in its slot
   * where the child parks connections, HTTP on Linux; elsewhere a connection's time from its
   * handler's call to its end): one turn of its event loop then serves several, as a single
   * process's does, while its slot still runs one request (or raw connection) at a time. A slower
   * handler (CPU work, I/O awaited in its slot, a connection held open) takes one at a time,
   * leaving the rest to other children. 0 = always one at a time.
   * @default 1
   */
  acceptChainBatchMs?: number;
  /**
   * The scheduling policy of the parent's main thread while the pool runs (Linux; elsewhere
   * nothing changes). `'batch'`: SCHED_BATCH, so that the parent's wake-ups (a connection to
   * order, a child's report) do not preempt a busy child but wait for it to block; an idle CPU
   * still runs the parent at once, and it gets its fair share of CPU time as before. Children put
   * themselves back to SCHED_OTHER before any user code. Only a parent started as SCHED_OTHER is
   * switched, and it is switched back when the (last) pool stops. `'normal'`: the parent keeps
   * the policy it was started with. Read at start: a reload does not change it.
   * @default 'batch'
   */
  parentScheduling?: 'batch' | 'normal';
  /** Kernel accept-queue length of each listening socket. @default 511 */
  backlog?: number;
  /** Linux TCP_DEFER_ACCEPT, in seconds: offer a TCP connection only once it has sent data. 0 = off. @default 0 */
  deferAccept?: number;
  /**
   * TCP_NOTSENT_LOWAT of each TCP listener, in bytes, which its connections inherit (Linux; macOS
   * has the option, and is not checked for that): a write to a connection takes at most about this
   * many bytes that the client has not yet received into the kernel, and the rest of an answer
   * waits in the child (a shared buffer is not copied). Without it, the kernel takes up to its send buffer (4 MiB by default on Linux)
   * from every connection whose client reads slowly, and a thousand of them can fill the system's
   * TCP memory (`net.ipv4.tcp_mem`) for every program on the machine. 0 = the system's default
   * (`net.ipv4.tcp_notsent_lowat`, unlimited unless set).
   * @default 65536
   */
  notsentLowat?: number;
  children?: Partial<ChildrenOptions>;
  timeouts?: Partial<TimeoutOptions>;
  /** Milliseconds between two `onParentTick` calls (spawning policy, recycling, shutdown checks). @default 1000 */
  tickInterval?: number;
  /**
   * The status listener, served by the parent: `GET /status` (scoreboard), `/status?json`, `/ready`.
   * A loopback address (`127.0.0.1:9740`, `[::1]:9740`, `localhost:9740`) or a Unix socket
   * (`unix:/run/app-status.sock`, `{ path, mode }`). Off unless given.
   */
  status?: { listen: ListenSpec };
  /**
   * The overload policy when no child can take a connection: `graceful` (stop watching; clients
   * wait in the backlog) or `abrupt` (accept and close at once, optionally writing `response`;
   * `"http-503"` is a ready HTTP 503 with Retry-After). A plugin with role `overload` replaces it.
   * @default "graceful"
   */
  overload?: 'graceful' | 'abrupt' | { strategy: 'graceful' } | { strategy: 'abrupt'; response?: string | Buffer; retryAfter?: number };
  /** Child recycling (RecyclePlugin): `maxConnectionsPerChild`, `jitter`, `maxChildAge`, `maxChildMemory`, `idleChildTimeout`. @default off */
  recycle?: RecycleOptions;
  /** Plugins, applied in order before the default plugins, so their Bail answers win. */
  plugins?: PoolPlugin[];
  /** Leave out the default plugins (spawning policy, graceful overload) entirely. @default true */
  defaultPlugins?: boolean;
  /**
   * The parent's logger, which also gets what children log through `ctx.logger`: anything with
   * `error/warn/info/debug(message, fields)`, or a pino logger, recognised by its shape and called
   * as pino is (`(fields, message)`; see `fromPino` for a bunyan-style one).
   * @default a JSON-lines logger (pino's line shape) on stderr at `logLevel`
   */
  logger?: Logger;
  /**
   * Lines less severe than this are dropped before they reach the logger, in the parent and in the
   * children. With a `logger` of your own and no `logLevel`, that logger's level decides: pino's
   * (read when the pool is created and on each reload), or a `level` property naming one of the
   * four levels; a logger that names none (console) gets `info`.
   * @default "info", or the given logger's level
   */
  logLevel?: LogLevel;
  /** Extra environment variables of the children (on top of the parent's). */
  env?: Record<string, string>;
  /** Node options of the children (`--max-old-space-size=...`). @default [] */
  execArgv?: string[];
  /**
   * V8's memory reducer in the children. It runs a few garbage collections that shrink a heap
   * once its process has gone quiet (after about 8 s); a child's next requests then run slower
   * until the heap has grown back, in every child at once. Off by default: each child is started
   * with `--no-memory-reducer` (before `execArgv`, so `execArgv` can undo it), and an idle child
   * keeps the heap its load grew (how much more than a shrunk one, as measured: bench/README.md).
   * `true` leaves V8's default. A Node whose V8 lacks the flag is left as it is (logged once).
   * @default false
   */
  childMemoryReducer?: boolean;
  /** Working directory of the children. @default process.cwd() */
  cwd?: string;
  /** Numeric user id the children run as (the parent binds first). */
  uid?: number;
  /** Numeric group id the children run as. */
  gid?: number;
  /** Where children's stderr goes: `pipe` (forwarded by the parent, tail kept for crash reports) or `inherit`. @default "pipe" */
  childStderr?: 'pipe' | 'inherit';
}

/** Options after defaults were applied and every value was checked. */
export interface ResolvedPoolOptions {
  handler: string;
  listen: ListenTarget[];
  /** TLS per listener (same order as `listen`), read from the files, and the session ticket key. */
  tls: ResolvedTls;
  protocol: string;
  protocolOptions: Record<string, unknown>;
  backlog: number;
  ordersPerWakeup: number;
  acceptChain: number;
  acceptChainChildren: number;
  acceptChainBatchMs: number;
  parentScheduling: 'batch' | 'normal';
  deferAccept: number;
  notsentLowat: number;
  children: ChildrenOptions;
  timeouts: TimeoutOptions;
  tickInterval: number;
  /** The status listener's address, or undefined (off). */
  status: ListenTarget | undefined;
  overload: OverloadOptions;
  /** Undefined when the `recycle` option is absent (no recycling plugin is applied). */
  recycle: ResolvedRecycleOptions | undefined;
  plugins: PoolPlugin[];
  defaultPlugins: boolean;
  logger: Logger | undefined;
  logLevel: LogLevel;
  env: Record<string, string>;
  execArgv: string[];
  childMemoryReducer: boolean;
  cwd: string;
  uid: number | undefined;
  gid: number | undefined;
  childStderr: 'pipe' | 'inherit';
}

/** The defaults of {@link ChildrenOptions}. */
export const CHILDREN_DEFAULTS: Readonly<ChildrenOptions> = Object.freeze({ ...SPAWNING_DEFAULTS, slots: 1, connections: 256 });

/** The defaults of {@link TimeoutOptions}. */
export const TIMEOUT_DEFAULTS: Readonly<TimeoutOptions> = Object.freeze({
  accept: 5000,
  start: 30000,
  stop: 30000,
  drain: 5000,
  metrics: 1000,
  heartbeat: 30000,
  connection: 0,
});

const FILE_MODE = /^0?[0-7]{3,4}$/;

/** Hosts a status listener may bind: the loopback addresses (it tells every child's pid and state). */
function isLoopback(host: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === '::1';
}

/** Checks the `status` option: `{ listen }` with a loopback TCP address or a Unix socket. */
function resolveStatus(status: unknown): ListenTarget | undefined {
  if (status === undefined) return undefined;
  const raw = object('status', status);
  checkKeys('status.', raw, STATUS_KEYS);
  if (raw.listen === undefined) throw invalid('status.listen', 'an address (a loopback one or a Unix socket)', undefined);
  const target = parseListen(raw.listen as ListenSpec, 'status.listen');
  if (raw.listen !== null && typeof raw.listen === 'object' && 'tls' in raw.listen) throw new PreforkError('PREFORK_ERR_OPTION_INVALID', 'status.listen.tls: the status listener serves plain HTTP on loopback or a Unix socket only');
  if (target.kind === 'unix' || (target.kind === 'tcp' && isLoopback(target.host))) return target;
  throw invalid('status.listen', 'a loopback address (127.0.0.0/8, ::1, localhost) or a Unix socket: the scoreboard is for the machine\'s own operators', raw.listen);
}

const STATUS_KEYS: ReadonlySet<string> = new Set(['listen']);

/**
 * The keys of a listener object, by the kind of address it gives, and the per-listener `tls`
 * section (read by tls.ts; `status.listen` refuses it before this). A key of another kind is
 * refused too (`{ path, port }` is not a socket that listens twice).
 */
const LISTENER_KEYS: Readonly<Record<ListenTarget['kind'], readonly string[]>> = Object.freeze({
  tcp: ['host', 'port', 'tls'],
  unix: ['path', 'mode', 'tls'],
  fd: ['fd', 'tls'],
  systemd: ['systemd', 'tls'],
});

/** Refuses a key of a listener object that its kind (or, with none, every kind) does not have, as unknown keys are refused at every level. */
function checkListenerKeys(key: string, spec: object, kind: ListenTarget['kind'] | undefined): void {
  const all = kind === undefined ? [...new Set(Object.values(LISTENER_KEYS).flat())] : LISTENER_KEYS[kind];
  const known = key.startsWith('status.') ? all.filter((name) => name !== 'tls') : all;
  for (const name of Object.keys(spec)) {
    if (!known.includes(name)) {
      throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${key}.${name}: unknown option${didYouMean(name, known)} (known: ${known.join(', ')})`);
    }
  }
}

/** Parses one listen address. Throws PREFORK_ERR_OPTION_INVALID naming `key` on anything else. */
export function parseListen(spec: ListenSpec, key = 'listen'): ListenTarget {
  if (typeof spec === 'string') {
    const text = spec.trim();
    if (text === 'systemd') return { kind: 'systemd' };
    if (text.startsWith('unix:')) {
      const path = text.slice(5);
      if (!path) throw invalid(key, 'a socket path after "unix:"', spec);
      return { kind: 'unix', path: resolve(path), mode: undefined };
    }
    if (text.startsWith('fd:')) {
      // Checked as text first: Number('x') is NaN, which an error message would show as null.
      if (!/^\d+$/.test(text.slice(3))) throw invalid(key, '"fd:N" with N a non-negative integer', spec);
      return { kind: 'fd', fd: integer(key, Number(text.slice(3)), 0, 0) };
    }
    const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
    if (!match) throw invalid(key, '"host:port", "[ipv6]:port", ":port", "unix:/path", "fd:N" or "systemd"', spec);
    const port = Number(match[3]);
    if (port > 65535) throw invalid(key, 'a port from 0 to 65535', spec);
    const host = match[1] ?? (match[2] || '0.0.0.0');
    return { kind: 'tcp', host: host === 'localhost' ? '127.0.0.1' : host, port };
  }
  if (spec && typeof spec === 'object') {
    if ('systemd' in spec && spec.systemd === true) {
      checkListenerKeys(key, spec, 'systemd');
      return { kind: 'systemd' };
    }
    if ('fd' in spec) {
      checkListenerKeys(key, spec, 'fd');
      return { kind: 'fd', fd: integer(`${key}.fd`, spec.fd, 0, 0) };
    }
    if ('path' in spec) {
      checkListenerKeys(key, spec, 'unix');
      if (typeof spec.path !== 'string' || !spec.path) throw invalid(`${key}.path`, 'a socket path', spec.path);
      let mode: number | undefined;
      if (spec.mode !== undefined) {
        if (typeof spec.mode === 'string' && FILE_MODE.test(spec.mode)) mode = parseInt(spec.mode, 8);
        else if (typeof spec.mode === 'number' && Number.isInteger(spec.mode) && spec.mode >= 0 && spec.mode <= 0o7777) mode = spec.mode;
        else throw invalid(`${key}.mode`, 'a file mode such as "660" or 0o660', spec.mode);
      }
      return { kind: 'unix', path: resolve(spec.path), mode };
    }
    if ('port' in spec) {
      checkListenerKeys(key, spec, 'tcp');
      const port = integer(`${key}.port`, spec.port, 0, 0, 65535);
      const host = spec.host ?? '0.0.0.0';
      if (typeof host !== 'string') throw invalid(`${key}.host`, 'an IP address', host);
      return { kind: 'tcp', host: host === 'localhost' ? '127.0.0.1' : host, port };
    }
    // No kind's key is there: a misspelt one (`prot`) is named rather than the whole object.
    checkListenerKeys(key, spec, undefined);
  }
  throw invalid(key, 'a listen address ("127.0.0.1:8080", "unix:/run/app.sock", { port }, { path }, { fd })', spec);
}

const POOL_KEYS: ReadonlySet<string> = new Set([
  'handler', 'listen', 'protocol', 'http', 'scgi', 'backlog', 'ordersPerWakeup', 'acceptChain', 'acceptChainChildren', 'acceptChainBatchMs', 'parentScheduling', 'deferAccept', 'notsentLowat', 'children', 'timeouts', 'tickInterval', 'status',
  'overload', 'recycle', 'plugins', 'defaultPlugins', 'logger', 'logLevel', 'env', 'execArgv', 'childMemoryReducer', 'cwd', 'uid', 'gid', 'childStderr',
]);
const CHILDREN_KEYS: ReadonlySet<string> = new Set(Object.keys(CHILDREN_DEFAULTS));
const TIMEOUT_KEYS: ReadonlySet<string> = new Set(Object.keys(TIMEOUT_DEFAULTS));

/**
 * Applies defaults to pool options and checks every value, so that a mistake is reported before
 * anything binds or forks. Errors name the key path: `children.max: expected a positive integer, got "ten"`.
 */
export function resolvePoolOptions(options: PoolOptions): ResolvedPoolOptions {
  const raw = object('options', options);
  checkKeys('', raw, POOL_KEYS);
  if (typeof options.handler !== 'string' || options.handler === '') throw invalid('handler', 'a module path', options.handler);
  const cwd = options.cwd ?? process.cwd();
  if (typeof cwd !== 'string') throw invalid('cwd', 'a directory path', cwd);
  const handler = isAbsolute(options.handler) ? options.handler : resolve(cwd, options.handler);

  const listenSpecs = Array.isArray(options.listen) ? options.listen : options.listen === undefined ? [] : [options.listen];
  if (listenSpecs.length === 0) throw invalid('listen', 'at least one address', options.listen);
  const listenKeys = listenSpecs.map((_, index) => (Array.isArray(options.listen) ? `listen[${index}]` : 'listen'));
  const listen = listenSpecs.map((spec, index) => parseListen(spec, listenKeys[index]));

  const protocol = options.protocol ?? 'raw';
  if (typeof protocol !== 'string') throw invalid('protocol', 'a protocol name', protocol);
  const protocolOptions = object(protocol, (options as unknown as Record<string, unknown>)[protocol]);
  checkProtocolOptions(protocol, protocolOptions);
  const tls = resolveTls(listenSpecs, listenKeys, protocol, cwd);

  const childrenRaw = object('children', options.children);
  checkKeys('children.', childrenRaw, CHILDREN_KEYS);
  const slots = integer('children.slots', childrenRaw.slots, CHILDREN_DEFAULTS.slots, 1, 65535);
  const children: ChildrenOptions = {
    ...resolveSpawningBounds(childrenRaw, sectionScope('children')),
    slots,
    connections: integer('children.connections', childrenRaw.connections, Math.max(CHILDREN_DEFAULTS.connections, slots), slots, 65535),
  };

  const timeoutsRaw = object('timeouts', options.timeouts);
  checkKeys('timeouts.', timeoutsRaw, TIMEOUT_KEYS);
  const timeouts: TimeoutOptions = {
    accept: milliseconds('timeouts.accept', timeoutsRaw.accept, TIMEOUT_DEFAULTS.accept, 1),
    start: milliseconds('timeouts.start', timeoutsRaw.start, TIMEOUT_DEFAULTS.start, 1),
    stop: milliseconds('timeouts.stop', timeoutsRaw.stop, TIMEOUT_DEFAULTS.stop, 0),
    drain: milliseconds('timeouts.drain', timeoutsRaw.drain, TIMEOUT_DEFAULTS.drain, 0),
    metrics: milliseconds('timeouts.metrics', timeoutsRaw.metrics, TIMEOUT_DEFAULTS.metrics, 1),
    heartbeat: milliseconds('timeouts.heartbeat', timeoutsRaw.heartbeat, TIMEOUT_DEFAULTS.heartbeat, 0),
    connection: milliseconds('timeouts.connection', timeoutsRaw.connection, TIMEOUT_DEFAULTS.connection, 0),
  };

  const plugins = options.plugins ?? [];
  if (!Array.isArray(plugins)) throw invalid('plugins', 'an array of plugins', plugins);
  plugins.forEach((plugin, index) => {
    if (!plugin || typeof (plugin as PoolPlugin).apply !== 'function') throw new PreforkError('PREFORK_ERR_PLUGIN_INVALID', `plugins[${index}]: expected a plugin (an object with apply(pool)), got ${describe(plugin)}`);
  });

  if (options.logger !== undefined) {
    for (const method of LOG_LEVELS) {
      if (typeof (options.logger as unknown as Record<string, unknown> | null)?.[method] !== 'function') throw invalid('logger', `an object with ${LOG_LEVELS.join('/')} methods`, options.logger);
    }
  }
  const logger = options.logger === undefined ? undefined : adaptLogger(options.logger);
  const logLevel = options.logLevel ?? (logger === undefined ? undefined : loggerLevel(logger)) ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) throw invalid('logLevel', `one of ${LOG_LEVELS.join(', ')}`, logLevel);
  const env = object('env', options.env) as Record<string, string>;
  for (const [name, value] of Object.entries(env)) {
    if (typeof value !== 'string') throw invalid(`env.${name}`, 'a string', value);
  }
  const execArgv = options.execArgv ?? [];
  if (!Array.isArray(execArgv) || execArgv.some((arg) => typeof arg !== 'string')) throw invalid('execArgv', 'an array of strings', execArgv);
  if (options.childMemoryReducer !== undefined && typeof options.childMemoryReducer !== 'boolean') throw invalid('childMemoryReducer', 'true or false', options.childMemoryReducer);
  const childStderr = options.childStderr ?? 'pipe';
  if (childStderr !== 'pipe' && childStderr !== 'inherit') throw invalid('childStderr', '"pipe" or "inherit"', childStderr);
  const parentScheduling = options.parentScheduling ?? 'batch';
  if (parentScheduling !== 'batch' && parentScheduling !== 'normal') throw invalid('parentScheduling', '"batch" or "normal"', parentScheduling);
  if (options.defaultPlugins !== undefined && typeof options.defaultPlugins !== 'boolean') throw invalid('defaultPlugins', 'true or false', options.defaultPlugins);

  const overload = resolveOverloadOptions(options.overload);
  const recycle = resolveRecycleSection(options.recycle);

  return {
    handler,
    listen,
    tls,
    overload,
    recycle,
    protocol,
    protocolOptions,
    backlog: integer('backlog', options.backlog, 511, 1, 65535),
    ordersPerWakeup: integer('ordersPerWakeup', options.ordersPerWakeup, 1, 1, 1024),
    acceptChain: integer('acceptChain', options.acceptChain, 32, 0, 255),
    acceptChainChildren: integer('acceptChainChildren', options.acceptChainChildren, 2 * availableParallelism(), 1, 65535),
    acceptChainBatchMs: integer('acceptChainBatchMs', options.acceptChainBatchMs, 1, 0, 1000),
    parentScheduling,
    deferAccept: integer('deferAccept', options.deferAccept, 0, 0, 3600),
    notsentLowat: integer('notsentLowat', options.notsentLowat, 65536, 0, 2 ** 31 - 1),
    children,
    timeouts,
    tickInterval: milliseconds('tickInterval', options.tickInterval, 1000, 10),
    status: resolveStatus(options.status),
    plugins,
    defaultPlugins: options.defaultPlugins ?? true,
    logger,
    logLevel,
    env,
    execArgv,
    childMemoryReducer: options.childMemoryReducer ?? false,
    cwd,
    uid: options.uid === undefined ? undefined : integer('uid', options.uid, 0, 0),
    gid: options.gid === undefined ? undefined : integer('gid', options.gid, 0, 0),
    childStderr,
  };
}
