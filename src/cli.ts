#!/usr/bin/env node
/**
 * The `prefork` command: reads the configuration, starts the pool, and turns signals into pool
 * actions (stop, reload, one child more or fewer, reopen the log), as Apache and gunicorn do.
 */
import { createRequire } from 'node:module';
import { ParentLog } from './config/log.js';
import { loadConfig, resolveConfig, type ConfigOverrides, type ResolvedConfig } from './config/resolve.js';
import { didYouMean } from './config/suggest.js';
import { isPreforkError, PreforkError, toError } from './errors.js';
import { loadNative } from './native/index.js';
import type { PoolPlugin, SpawningPolicy } from './pool/hooks.js';
import { addressText } from './pool/listeners.js';
import { describeConfig, pluginText } from './config/report.js';
import { pluginsFor, type PoolOutcome } from './pool/Pool.js';
import type { ListenTarget } from './pool/options.js';
import { EXPIRY_WARNING_DAYS } from './pool/tls.js';
import { fetchStatus, statusTarget } from './statusClient.js';
import { TOP_INTERVAL, watchStatus } from './topTerminal.js';
// The command uses the package as any user does: the pool with its default plugins, and the
// built-in plugins a config may name.
import * as prefork from '../index.js';

const { Pool, defaultPlugins } = prefork;
type Pool = prefork.Pool;

/** Exit statuses, after BSD sysexits.h so that supervisors can tell a typo from a crash. */
const EXIT = {
  OK: 0,
  /** The server failed at run time: an address in use, a handler that cannot start. */
  FAILURE: 1,
  /** EX_USAGE: an unknown flag or command, a flag without its value. */
  USAGE: 64,
  /** EX_NOPERM: `user`/`group` set but not started as root. */
  NOPERM: 77,
  /** EX_CONFIG: the configuration is missing, unreadable or invalid. Nothing was bound. */
  CONFIG: 78,
} as const;

const HELP = `Usage: prefork [start] [options]     run the server in the foreground
       prefork check [options]     check the configuration and print it resolved
       prefork status [--json] [--config FILE | --url ADDR]
                                   print a running server's scoreboard, read from its
                                   status listener (the config's status.listen)
       prefork top [--config FILE | --url ADDR] [--interval MS]
                                   the same scoreboard redrawn every interval (also:
                                   prefork status --watch); a child whose state letter
                                   changed, or a new child, has its letter in reverse
                                   video for one redraw; q or Ctrl-C quits
       prefork build-addon [--portable]
                                   build the native addon from source (for a platform
                                   with no prebuilt addon; needs python3, make, a C compiler)

Options:
  -c, --config FILE     config file (default: the first prefork config found from the
                        working directory upward to the project root)
  -l, --listen ADDR     where to listen, e.g. 127.0.0.1:8080, [::1]:8080, :8080, unix:/run/app.sock;
                        repeat for several; replaces the file's list
      --handler FILE    the handler module (relative to the working directory)
  -n, --children N      children to start with (children.start; children.max is raised to N)
      --protocol P      raw, http or scgi
      --url ADDR        (status, top) the status listener: 127.0.0.1:9740 or unix:/path
      --json            (status) print the scoreboard as JSON
      --watch           (status) the same as prefork top
      --interval MS     (top, status --watch) ms between two redraws, 100 to 3600000
                        (default 1000); on a stdout that is no terminal, one plain
                        scoreboard per interval
  -h, --help            show this help
  -v, --version         show the version

Signals: TERM, INT stop gracefully; HUP reloads the configuration and replaces the children;
TTIN / TTOU: one child more / fewer; USR1 reopens the log file.
Exit status: 0 stopped, 1 failed, 64 bad usage, 77 not root for user/group, 78 bad configuration.`;

/** The flags: long name, short alias, and whether it takes a value. */
const FLAGS = {
  config: { short: 'c', value: 'FILE' },
  listen: { short: 'l', value: 'ADDR' },
  handler: { short: undefined, value: 'FILE' },
  children: { short: 'n', value: 'N' },
  protocol: { short: undefined, value: 'P' },
  portable: { short: undefined, value: undefined },
  url: { short: undefined, value: 'ADDR' },
  json: { short: undefined, value: undefined },
  watch: { short: undefined, value: undefined },
  interval: { short: undefined, value: 'MS' },
  help: { short: 'h', value: undefined },
  version: { short: 'v', value: undefined },
} as const;
type FlagName = keyof typeof FLAGS;

const COMMANDS = ['start', 'check', 'status', 'top', 'build-addon'] as const;
type Command = (typeof COMMANDS)[number];

/** A command line that cannot be understood: exit 64 with a hint. */
class UsageError extends Error {}

/** What the command line asks for. */
interface Invocation {
  command: Command | 'help' | 'version';
  config: string | undefined;
  overrides: ConfigOverrides;
  /** `build-addon --portable`. */
  portable?: boolean;
  /** `status` and `top`: `--url ADDR`; `status --json`. */
  url?: string;
  json?: boolean;
  /** `top` (and `status --watch`): ms between two redraws. */
  intervalMs?: number;
}

/** The flags of `status` and `top` alone, and the commands each goes with (for the refusal's wording). */
const STATUS_FLAGS = { url: 'status and top', json: 'status', watch: 'status', interval: 'top and status --watch' } as const;

/** `--interval MS`: a whole number of ms within TOP_INTERVAL. */
function intervalOf(values: readonly string[] | undefined): number {
  if (values === undefined) return TOP_INTERVAL.default;
  if (values.length > 1) throw new UsageError('--interval given more than once');
  const text = values[0]!;
  const ms = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(ms >= TOP_INTERVAL.min && ms <= TOP_INTERVAL.max)) {
    throw new UsageError(`--interval: expected milliseconds from ${TOP_INTERVAL.min} to ${TOP_INTERVAL.max}, got ${JSON.stringify(text)}`);
  }
  return ms;
}

function parseArguments(argv: readonly string[]): Invocation {
  const values: Partial<Record<FlagName, string[]>> = {};
  const positionals: string[] = [];
  const byShort = new Map<string, FlagName>();
  for (const [name, flag] of Object.entries(FLAGS)) if (flag.short) byShort.set(flag.short, name as FlagName);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    const [spelled, inline] = arg.startsWith('--') ? splitOnce(arg.slice(2)) : [arg.slice(1, 2), arg.length > 2 ? arg.slice(2) : undefined];
    const name = arg.startsWith('--') ? (spelled in FLAGS ? (spelled as FlagName) : undefined) : byShort.get(spelled);
    if (name === undefined) {
      const shown = arg.startsWith('--') ? `--${spelled}` : `-${spelled}`;
      throw new UsageError(`unknown option ${shown}${didYouMean(spelled, Object.keys(FLAGS), (hint) => `--${hint}`)}`);
    }
    const flag = FLAGS[name];
    let value: string | undefined;
    if (flag.value !== undefined) {
      value = inline ?? argv[++i];
      if (value === undefined || (inline === undefined && value.startsWith('-') && value !== '-')) throw new UsageError(`--${name} needs a value (${flag.value})`);
    } else if (inline !== undefined) {
      throw new UsageError(`--${name} takes no value`);
    }
    (values[name] ??= []).push(value ?? '');
  }

  if (values.help) return { command: 'help', config: undefined, overrides: {} };
  if (values.version) return { command: 'version', config: undefined, overrides: {} };
  const [first, ...rest] = positionals;
  let command: Command = 'start';
  if (first !== undefined) {
    if (first === 'help') return { command: 'help', config: undefined, overrides: {} };
    if (!(COMMANDS as readonly string[]).includes(first)) throw new UsageError(`unknown command ${JSON.stringify(first)}${didYouMean(first, COMMANDS)}`);
    command = first as Command;
  }
  if (rest.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(rest[0])}`);
  if (values.portable && command !== 'build-addon') throw new UsageError('--portable goes with build-addon');
  for (const [name, commands] of Object.entries(STATUS_FLAGS)) {
    if (values[name as FlagName] && command !== 'status' && command !== 'top') throw new UsageError(`--${name} goes with ${commands}`);
  }
  if (command === 'status' || command === 'top') {
    const allowed: readonly string[] = command === 'status' ? ['config', 'url', 'json', 'watch', 'interval'] : ['config', 'url', 'interval'];
    const other = Object.keys(values).find((name) => !allowed.includes(name));
    if (other) throw new UsageError(`--${other} does not go with ${command}`);
    if (values.url && values.config) throw new UsageError('give --url or --config, not both');
    const watch = command === 'top' || values.watch !== undefined;
    if (watch && values.json) throw new UsageError('--json does not go with --watch (the JSON is one read: prefork status --json)');
    if (!watch && values.interval) throw new UsageError('--interval goes with top and status --watch');
    const asked = { config: values.config?.[0], overrides: {}, url: values.url?.[0] };
    return watch ? { command: 'top', ...asked, intervalMs: intervalOf(values.interval) } : { command, ...asked, json: values.json !== undefined };
  }
  if (command === 'build-addon') {
    const other = Object.keys(values).find((name) => name !== 'portable');
    if (other) throw new UsageError(`--${other} does not go with build-addon`);
    return { command, config: undefined, overrides: {}, portable: values.portable !== undefined };
  }
  for (const name of ['config', 'handler', 'children', 'protocol'] as const) {
    if ((values[name]?.length ?? 0) > 1) throw new UsageError(`--${name} given more than once`);
  }

  const overrides: ConfigOverrides = {};
  if (values.listen) overrides.listen = values.listen;
  if (values.handler) overrides.handler = values.handler[0];
  if (values.protocol) overrides.protocol = values.protocol[0];
  if (values.children) {
    const text = values.children[0]!;
    if (!/^\d+$/.test(text)) throw new PreforkError('PREFORK_ERR_CONFIG_INVALID', `command line: --children: expected a non-negative integer, got ${JSON.stringify(text)}`);
    overrides.children = Number(text);
  }
  return { command, config: values.config?.[0], overrides };
}

function splitOnce(text: string): [string, string | undefined] {
  const at = text.indexOf('=');
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
}

function version(): string {
  // dist/cli.js -> the package's own package.json.
  return (createRequire(import.meta.url)('../package.json') as { version: string }).version;
}

/**
 * Children can only be given another uid/gid by root (libuv also drops supplementary groups,
 * which needs root even for one's own ids). Not root and asking for one's own ids: nothing to do.
 */
function checkPrivileges(config: ResolvedConfig): void {
  const uid = process.getuid?.();
  if (uid === undefined || uid === 0) return;
  const gid = process.getgid?.();
  if (config.user && config.user.uid !== uid) {
    throw new PreforkError('PREFORK_ERR_PRIVILEGES', `user: only root can run the children as ${config.user.name ?? `uid ${config.user.uid}`}; prefork runs as uid ${uid}`);
  }
  if (config.group && config.group.gid !== gid) {
    throw new PreforkError('PREFORK_ERR_PRIVILEGES', `group: only root can run the children in group ${config.group.name ?? `gid ${config.group.gid}`}; prefork runs as gid ${gid}`);
  }
  delete config.pool.uid;
  delete config.pool.gid;
}

/** The signals the parent acts on; everything else keeps Node's default. */
const HANDLED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGTTIN', 'SIGTTOU', 'SIGUSR1'] as const;
type HandledSignal = (typeof HANDLED_SIGNALS)[number];
/** More signals than this waiting is a storm; later ones are dropped (as gunicorn does). */
const SIGNAL_QUEUE_LIMIT = 5;

/**
 * The running server: the pool, its log, and the one loop that acts on signals. Signal handlers
 * only queue what arrived; `run()` drains the queue in order, one action at a time, so that a
 * reload is never interleaved with a stop or another reload.
 */
class Server {
  readonly #pool: Pool;
  readonly #log: ParentLog;
  readonly #invocation: Invocation;
  readonly #file: string | undefined;
  readonly #queue: HandledSignal[] = [];
  #wake: (() => void) | undefined;
  #stopRequested = false;

  constructor(pool: Pool, log: ParentLog, invocation: Invocation, file: string | undefined) {
    this.#pool = pool;
    this.#log = log;
    this.#invocation = invocation;
    this.#file = file;
  }

  /** Installs the signal handlers; from now on signals are queued, and acted on by `run()`. */
  trapSignals(): void {
    for (const signal of HANDLED_SIGNALS) process.on(signal, () => this.#record(signal));
  }

  /**
   * Acts on queued signals until the pool has stopped, from before `start()` on: a TERM during
   * start-up (children still loading) stops at once instead of waiting for them.
   */
  async run(): Promise<PoolOutcome> {
    let outcome: PoolOutcome | undefined;
    void this.#pool.wait().then((result) => {
      outcome = result;
      this.#wake?.();
    });
    while (outcome === undefined) {
      const signal = this.#queue.shift();
      if (signal === undefined) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = undefined;
        continue;
      }
      await this.#handle(signal);
    }
    return outcome;
  }

  /** True once a TERM or INT arrived. */
  get stopRequested(): boolean {
    return this.#stopRequested;
  }

  /**
   * Queues a signal. A storm of others is cut at SIGNAL_QUEUE_LIMIT, but a stop is never dropped:
   * it goes first, ahead of the reloads and resizes still waiting (they no longer matter).
   */
  #record(signal: HandledSignal): void {
    if (signal === 'SIGTERM' || signal === 'SIGINT') {
      if (!this.#queue.some((queued) => queued === 'SIGTERM' || queued === 'SIGINT')) this.#queue.unshift(signal);
    } else if (this.#queue.length < SIGNAL_QUEUE_LIMIT) {
      this.#queue.push(signal);
    }
    this.#wake?.();
  }

  async #handle(signal: HandledSignal): Promise<void> {
    switch (signal) {
      case 'SIGTERM':
      case 'SIGINT':
        this.#stop(signal);
        return;
      case 'SIGHUP':
        await this.#reload();
        return;
      case 'SIGTTIN':
        this.#resize(+1);
        return;
      case 'SIGTTOU':
        this.#resize(-1);
        return;
      case 'SIGUSR1':
        if (this.#log.reopen()) this.#log.info('log file reopened', { signal, file: this.#log.settings.file ?? null });
        return;
    }
  }

  #stop(signal: HandledSignal): void {
    if (this.#stopRequested) {
      this.#log.info('already stopping; busy children are finishing their connections', { signal });
      return;
    }
    this.#stopRequested = true;
    this.#log.info('stopping gracefully', { signal, children: this.#pool.stats().children.total });
    void this.#pool.stop(`${signal} received`);
  }

  /** SIGHUP: re-read and check the configuration; a bad one is logged and the running children stay. */
  async #reload(): Promise<void> {
    if (this.#pool.state !== 'running') {
      this.#log.warn('reload ignored: the server is not running', { state: this.#pool.state });
      return;
    }
    this.#log.info('reloading the configuration', { file: this.#file ?? null });
    let next: ResolvedConfig;
    try {
      // The file found at start is read again (no new search); without one, the flags alone.
      const context = { overrides: this.#invocation.overrides, builtins: prefork };
      next = this.#file === undefined ? await resolveConfig(undefined, undefined, context) : await loadConfig({ ...context, file: this.#file });
      checkPrivileges(next);
      this.#log.configure(next.log);
    } catch (error) {
      this.#log.error('reload failed: the configuration is not valid; the current children keep serving', { error: toError(error).message, code: (error as PreforkError).code });
      return;
    }
    // Stopping may have begun while the file was read.
    if (this.#pool.state !== 'running') return;
    try {
      this.#pool.reload({ ...next.pool, logger: this.#log });
    } catch (error) {
      this.#log.error('reload failed; the current children keep serving', { error: toError(error).message });
    }
  }

  /** SIGTTIN / SIGTTOU: one child more or fewer, through the spawning policy (which keeps within min/max). */
  #resize(delta: 1 | -1): void {
    if (this.#pool.state !== 'running') return;
    const spawning = this.#pool.plugin<PoolPlugin & Partial<SpawningPolicy>>('spawning');
    if (typeof spawning?.adjust !== 'function') {
      this.#log.warn('the spawning plugin in use cannot change the number of children at run time', { plugin: spawning ? pluginText(spawning) : null });
      return;
    }
    // During a reload the spawning plugin in force is the new generation's: only its children count
    // (the old ones, there until it commits, would otherwise be added to its min).
    const live = this.#pool.children().filter((child) => child.state !== 'stopping' && child.generation === this.#pool.spawnGeneration).length;
    const max = spawning.maximum ?? this.#pool.options.children.max;
    if (delta > 0 && live >= max) {
      this.#log.warn('no child added (SIGTTIN): children.max reached', { children: live, max });
      return;
    }
    // adjust() moves children.min; a pool above its min grows only when min passes the live count.
    const min = spawning.minimum;
    const step = delta > 0 && min !== undefined ? Math.max(1, live + 1 - min) : delta;
    const newMin = spawning.adjust(step);
    this.#log.info(delta > 0 ? 'one child more (SIGTTIN)' : 'one child fewer (SIGTTOU)', { children: Math.max(0, live + delta), min: newMin });
  }
}

async function start(invocation: Invocation): Promise<number> {
  const config = await loadConfig({ file: invocation.config, overrides: invocation.overrides, builtins: prefork });
  checkPrivileges(config);
  const log = new ParentLog(config.log);
  let pool: Pool;
  try {
    pool = new Pool({ ...config.pool, logger: log });
  } catch (error) {
    log.close();
    // A plugin constructor that refuses its options is a configuration error too.
    if (isPreforkError(error) && /INVALID$/.test(error.code)) {
      throw new PreforkError('PREFORK_ERR_CONFIG_INVALID', `${config.file ?? 'command line'}: ${error.message}`, { cause: error });
    }
    throw error;
  }
  const server = new Server(pool, log, invocation, config.file);
  server.trapSignals();
  const running = server.run();
  try {
    await pool.start();
  } catch (error) {
    await running;
    log.close();
    if (server.stopRequested) return EXIT.OK;
    throw error;
  }
  const stats = pool.stats();
  process.stdout.write(
    `prefork ${version()}: listening on ${pool.addresses().map(addressText).join(', ')} (${pool.options.protocol}), ` +
      `${stats.children.total} children, pid ${process.pid}\n`,
  );
  const outcome = await running;
  log.close();
  if (outcome.error) throw outcome.error;
  return EXIT.OK;
}

/** Where `status` and `top` ask: `--url`, or the config's `status.listen`. */
async function statusListenerOf(invocation: Invocation): Promise<ListenTarget> {
  if (invocation.url !== undefined) return statusTarget(invocation.url);
  const config = await loadConfig({ file: invocation.config, overrides: invocation.overrides, builtins: prefork });
  const target = config.resolved.status;
  if (!target) throw new PreforkError('PREFORK_ERR_CONFIG_INVALID', `${config.file ?? 'the configuration'}: no status.listen: add "status": { "listen": "127.0.0.1:9740" } (or give --url ADDR)`);
  return target;
}

async function main(argv: readonly string[]): Promise<number> {
  let invocation: Invocation;
  try {
    invocation = parseArguments(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`prefork: ${error.message}\nRun "prefork --help" for the usage.\n`);
      return EXIT.USAGE;
    }
    throw error;
  }
  switch (invocation.command) {
    case 'help':
      process.stdout.write(`${HELP}\n`);
      return EXIT.OK;
    case 'version':
      process.stdout.write(`${version()}\n`);
      return EXIT.OK;
    case 'check': {
      const config = await loadConfig({ file: invocation.config, overrides: invocation.overrides, builtins: prefork });
      process.stdout.write(`${JSON.stringify(describeConfig(config, pluginsFor(config.resolved, defaultPlugins)), null, 2)}\n`);
      for (const certificate of config.resolved.tls.certificates) {
        if (certificate.expiresInDays < EXPIRY_WARNING_DAYS) process.stderr.write(`prefork: warning: ${certificate.listener}.cert: the certificate in ${certificate.file} expires on ${certificate.validTo} (in ${certificate.expiresInDays} days)\n`);
      }
      return EXIT.OK;
    }
    case 'status':
      process.stdout.write(await fetchStatus(await statusListenerOf(invocation), invocation.json ? '/status?json' : '/status'));
      return EXIT.OK;
    case 'top':
      await watchStatus({ target: await statusListenerOf(invocation), intervalMs: invocation.intervalMs ?? TOP_INTERVAL.default });
      return EXIT.OK;
    case 'build-addon': {
      const { buildAddon } = await import('./native/build.js');
      const path = buildAddon({ portable: invocation.portable });
      loadNative();
      process.stdout.write(`prefork: built and loaded ${path}\n`);
      return EXIT.OK;
    }
    case 'start':
      return start(invocation);
  }
}

function exitStatusOf(error: unknown): number {
  if (!isPreforkError(error)) return EXIT.FAILURE;
  if (error.code === 'PREFORK_ERR_CONFIG_INVALID' || error.code === 'PREFORK_ERR_CONFIG_LOAD' || error.code === 'PREFORK_ERR_PLUGIN_INVALID') return EXIT.CONFIG;
  if (error.code === 'PREFORK_ERR_PRIVILEGES') return EXIT.NOPERM;
  return EXIT.FAILURE;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  const err = toError(error);
  process.stderr.write(`prefork: ${err.message}\n`);
  if (!isPreforkError(error)) process.stderr.write(`${err.stack}\n`);
  process.exitCode = exitStatusOf(error);
}
// Nothing of the server is left to wait for; do not let a handle someone forgot keep us alive.
process.exit();
