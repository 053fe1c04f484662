import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Channel } from '../channel/Channel.js';
import type { ChildBootstrap } from '../child/bootstrap.js';
import { PreforkError, toError } from '../errors.js';
import * as native from '../native/index.js';
import { Child, type ChildState, type ChildTimeoutKind, type SpawnRequest } from './Child.js';
import type { PoolContext } from './context.js';
import { resolveOrder } from './dispatch.js';
import { abandonReload } from './generations.js';
import { watch } from './listeners.js';
import { routeFrame } from './routing.js';
import { childrenRestoreScheduling } from './scheduling.js';
import { tlsBootstrap, type ResolvedTls } from './tls.js';
import { childExecArgv } from './v8Flags.js';

/** How long after a child's exit its stdio may stay open before it is reaped anyway. */
const REAP_AFTER_EXIT_MS = 100;

/**
 * Spawning and reaping: fork a child, tell it to stop, kill it, reap it, and the watchdog that
 * kills a child at a missed deadline (start, accept, stop, the heartbeat, the connection limit).
 * Every change of a child's state goes through {@link moveChild}.
 */

/** Moves a child to `next` if its table allows it; an illegal move is a bug: logged, and the child killed. */
export function moveChild(ctx: PoolContext, child: Child, next: ChildState): boolean {
  if (child.canMoveTo(next)) {
    child.state = next;
    return true;
  }
  ctx.logger.error('bug: illegal child state change; killing the child', { child: child.id, pid: child.pid, from: child.state, to: next });
  kill(ctx, child);
  return false;
}

/**
 * Forks one child of the spawn generation, unless the pool is not running, `children.max`
 * children of that generation already live, or a `beforeSpawn` tap vetoes. Returns it, or undefined.
 */
export function spawnChild(ctx: PoolContext): Child | undefined {
  if (ctx.state !== 'starting' && ctx.state !== 'running') return undefined;
  if (ctx.fatal || Date.now() < ctx.spawnRetryAt) return undefined;
  const generation = ctx.spawnGeneration;
  let live = 0;
  for (const child of ctx.children) if (child.generation === generation && child.state !== 'stopping') live++;
  if (live >= ctx.options.children.max) return undefined;
  const id = ctx.nextChildId + 1;
  const parking = parks(ctx);
  // Every child gets a page where the system shares them: its ORDERS word spares a chaining child
  // a read of its channel before each accept of its own; only a parking child uses the rest.
  const paged = native.nativeFeatures().pages;
  const tls = tlsData(ctx.options.tls);
  const request: SpawnRequest = { id, generation, env: childEnv(ctx, id, generation, paged, parking, tls !== undefined), execArgv: childExecArgv(ctx.options, ctx.logger) };
  const hooks = ctx.current.hooks;
  if (hooks.beforeSpawn.call(request) === false) return undefined;
  ctx.nextChildId = id;
  let forked: Forked;
  try {
    forked = fork(ctx, request, paged, tls);
  } catch (error) {
    // EMFILE, ENOMEM, a bad env value: logged, and spawning backs off instead of crashing the
    // parent or retrying on every turn.
    spawnFailed(ctx, id, error);
    return undefined;
  }
  const { proc, channelFd } = forked;
  if (ctx.spawnFailures > 0) {
    ctx.logger.info('forking works again', { child: id, failures: ctx.spawnFailures });
    ctx.spawnFailures = 0;
    ctx.spawnRetryAt = 0;
  }
  const child = new Child(id, generation, ctx.options.children.slots, proc, Date.now());
  child.ordersPage = forked.page;
  if (forked.page && parking) {
    child.page = forked.page;
    child.connectionLimit = ctx.options.children.connections;
  }
  child.channel = new Channel(channelFd, {
    onFrame: (type, argument, payload, count) => routeFrame(ctx, child, type, argument, payload, count),
    // EOF comes when the child exits; its 'exit' event (below) does the reaping.
    onClose: () => {},
    // Bytes that decode to no frame: as untrusted as an invalid payload.
    onError: (error) => {
      ctx.counters.invalidFrames++;
      ctx.logger.error('killing child after a control channel error', { child: child.id, pid: child.pid, error: error.message });
      kill(ctx, child);
    },
  });
  child.deadline = child.startedAt + ctx.options.timeouts.start;
  ctx.children.push(child);
  proc.stderr?.on('data', (chunk: Buffer) => {
    child.recordStderr(chunk);
    process.stderr.write(chunk);
  });
  proc.on('error', (error) => {
    ctx.logger.error('could not fork a child', { child: id, error: error.message });
    if (proc.pid === undefined) reap(ctx, child, null, null);
  });
  // Reaped at its exit: once its stdio closes too (so the stderr tail is complete), or shortly
  // after the exit when it does not (a grandchild still holds the child's stderr).
  proc.once('exit', (code, signal) => {
    const late = setTimeout(() => reap(ctx, child, code, signal), REAP_AFTER_EXIT_MS);
    proc.once('close', () => {
      clearTimeout(late);
      reap(ctx, child, code, signal);
    });
  });
  hooks.onChildStart.call(child);
  return child;
}

/**
 * Whether new children park their waiting connections: HTTP (whose adapter tells a request from a
 * connection that only waits), with room to park (`children.connections` above `slots`), where
 * the system shares pages (Linux).
 */
function parks(ctx: PoolContext): boolean {
  const { protocol, children } = ctx.options;
  return protocol === 'http' && children.connections > children.slots && native.nativeFeatures().pages;
}

interface Forked {
  proc: ChildProcess;
  channelFd: number;
  page: Int32Array | undefined;
}

/** The TLS data of an options object, serialised once for all the children of its generation. */
const tlsDataCache = new WeakMap<ResolvedTls, Buffer | null>();

function tlsData(tls: ResolvedTls): Buffer | undefined {
  let data = tlsDataCache.get(tls);
  if (data === undefined) {
    data = tlsBootstrap(tls) ?? null;
    tlsDataCache.set(tls, data);
  }
  return data ?? undefined;
}

/**
 * Forks the child process. The control channel is a socketpair whose child end becomes the
 * child's fd 3; the listening sockets follow from fd 4, then, with TLS listeners, a pipe that
 * carries the certificates and keys (PEM data: the child may run as a user that cannot read the
 * files, and a private key does not belong in an environment that `ps e` and /proc show), then
 * the page where the system shares pages (`paged`). Throws when a step fails.
 */
function fork(ctx: PoolContext, request: SpawnRequest, paged: boolean, tls: Buffer | undefined): Forked {
  const [parentEnd, childEnd] = native.socketpair();
  const stdio: ('ignore' | 'inherit' | 'pipe' | number)[] = ['ignore', 'inherit', ctx.options.childStderr, childEnd];
  for (const listener of ctx.listeners) stdio.push(listener.fd);
  const tlsIndex = tls === undefined ? -1 : stdio.push('pipe') - 1;
  let shared: { fd: number; page: ArrayBuffer } | null = null;
  try {
    if (paged) {
      shared = native.createPage();
      if (shared) stdio.push(shared.fd);
    }
    const { execArgv, env } = request;
    // No uid/gid here: the child drops to them itself, keeping the user's supplementary groups.
    const proc = spawn(process.execPath, [...execArgv, ctx.childEntry], { stdio, env: env as NodeJS.ProcessEnv, cwd: ctx.options.cwd });
    if (tls !== undefined) {
      const pipe = proc.stdio[tlsIndex] as Duplex | null;
      // The child reads it to its end at start; one that died first makes this an EPIPE, of no
      // interest (its exit is reported). Read on, so that the pipe's close is seen and 'close' of
      // the process comes.
      pipe?.on('error', () => {});
      pipe?.end(tls);
      pipe?.resume();
    }
    return { proc, channelFd: parentEnd, page: shared ? new Int32Array(shared.page) : undefined };
  } catch (error) {
    native.close(parentEnd);
    throw error;
  } finally {
    native.close(childEnd);
    if (shared) native.close(shared.fd);
  }
}

/** First wait after a fork that failed; it doubles with each failure in a row, up to the cap. */
const SPAWN_BACKOFF_FIRST_MS = 100;
const SPAWN_BACKOFF_MAX_MS = 30_000;

/** A fork failed before a child existed: log the first of a series, and hold spawning back. */
function spawnFailed(ctx: PoolContext, id: number, error: unknown): void {
  const delay = Math.min(SPAWN_BACKOFF_FIRST_MS * 2 ** Math.min(ctx.spawnFailures, 20), SPAWN_BACKOFF_MAX_MS);
  ctx.spawnFailures++;
  ctx.spawnRetryAt = Date.now() + delay;
  if (ctx.spawnFailures === 1) ctx.logger.error('could not fork a child; retrying with back-off', { child: id, error: toError(error).message, backoffMs: delay });
}

/** Tells a child to finish its connections and exit within `timeouts.stop`. */
export function stopChild(ctx: PoolContext, child: Child, reason: string): void {
  if (child.state === 'stopping' || child.state === 'exited') return;
  // A stopping child takes no orders; an order still out is counted as answered now, and the
  // child's late ACCEPTED/NOTHING for it is ignored (the child serves what it accepted).
  const wasAccepting = child.state === 'accepting';
  moveChild(ctx, child, 'stopping');
  child.stopReason = reason;
  child.expectedExit = true;
  child.deadline = Date.now() + ctx.options.timeouts.stop;
  if (wasAccepting) resolveOrder(ctx, child, false);
  child.orderStop();
}

/** SIGKILL now; 'close' reaps it. An order still out is counted as timed out. */
export function kill(ctx: PoolContext, child: Child): void {
  if (child.state === 'exited') return;
  child.expectedExit = true;
  if (child.state === 'accepting') resolveOrder(ctx, child, true);
  child.state = 'stopping';
  child.deadline = 0;
  try {
    child.process.kill('SIGKILL');
  } catch {
    // Already gone; 'close' reaps it.
  }
}

/**
 * Kills every child that missed a deadline, after telling `onChildTimeout` which: its start,
 * accept or stop deadline, the heartbeat (no PONG for `timeouts.heartbeat`: its event loop is
 * stuck), or `timeouts.connection` for its oldest connection. Sends the heartbeat's PINGs too.
 */
export function watchdog(ctx: PoolContext): void {
  const now = Date.now();
  const { heartbeat, connection } = ctx.options.timeouts;
  for (const child of ctx.children) {
    const kind = missedDeadline(child, now, heartbeat, connection);
    if (kind === undefined) {
      if (heartbeat > 0 && child.heardAt > 0 && now - child.pingedAt >= heartbeat / 3) {
        child.pingedAt = now;
        child.orderPing();
      }
      continue;
    }
    if (kind === 'accept') ctx.counters.acceptTimeouts++;
    ctx.current.hooks.onChildTimeout.call(child, kind);
    kill(ctx, child);
  }
}

function missedDeadline(child: Child, now: number, heartbeat: number, connection: number): ChildTimeoutKind | undefined {
  if (child.deadline !== 0 && now >= child.deadline) return child.state === 'starting' ? 'start' : child.state === 'accepting' ? 'accept' : 'stop';
  if (child.state === 'starting' || child.state === 'stopping' || child.state === 'exited') return undefined;
  if (heartbeat > 0 && child.heardAt > 0 && now - child.heardAt >= heartbeat) return 'heartbeat';
  const oldest = child.connectionsSince[0];
  if (connection > 0 && oldest !== undefined && now - oldest >= connection) return 'connection';
  return undefined;
}

/** A child process is gone: count what it lost, tell `onChildExit`, and unblock whoever waited on it. */
function reap(ctx: PoolContext, child: Child, code: number | null, signal: NodeJS.Signals | null): void {
  const index = ctx.children.indexOf(child);
  if (index < 0) return;
  // The child is gone, but its last frames (a DONE, an error report) may still be unread.
  child.channel.drain();
  ctx.children.splice(index, 1);
  const state = child.state;
  if (state === 'accepting') resolveOrder(ctx, child, false);
  moveChild(ctx, child, 'exited');
  child.deadline = 0;
  const lost = child.active;
  const counters = ctx.counters;
  counters.lost += lost;
  counters.exits++;
  const failedStart = child.readyAt === 0;
  if (failedStart) counters.failedStarts++;
  if (!child.expectedExit) counters.crashes++;
  ctx.exitReasons[failedStart ? 'failed_start' : !child.expectedExit ? 'crashed' : signal === 'SIGKILL' ? 'killed' : 'stopped']++;
  ctx.metrics?.onExit(child);
  child.channel.close();
  ctx.current.hooks.onChildExit.call(child, { code, signal, state, lost, failedStart, expected: child.expectedExit, lifetimeMs: Date.now() - child.startedAt });
  if (ctx.reload && child.generation === ctx.reload.generation && child.readyAt === 0) {
    abandonReload(ctx, `a child of the new generation exited before it was ready (code ${code}, signal ${signal})`);
  }
  checkStarted(ctx);
  if (ctx.state === 'running' && startingCount(ctx, ctx.spawnGeneration) === 0) {
    // A listener waiting for a pending child that will now never come: dispatch again, which
    // asks for a new child or declares an overload.
    for (const listener of ctx.listeners) if (listener.state === 'waiting') watch(ctx, listener);
  }
  if (ctx.children.length === 0) ctx.childrenGone?.();
  ctx.drainCheck?.();
}

/** Children still starting (the pending list), of one generation or of all. */
export function startingCount(ctx: PoolContext, generation?: number): number {
  let count = 0;
  for (const child of ctx.children) if (child.state === 'starting' && (generation === undefined || child.generation === generation)) count++;
  return count;
}

/** While the pool starts: resolves `start()`'s wait once no child is pending (or a fatal error came). */
export function checkStarted(ctx: PoolContext): void {
  if (ctx.state !== 'starting' || !ctx.startWaiter) return;
  if (ctx.fatal || startingCount(ctx) === 0) {
    const resolve = ctx.startWaiter;
    ctx.startWaiter = undefined;
    resolve();
  }
}

function childEnv(ctx: PoolContext, id: number, generation: number, paged: boolean, parking: boolean, tls: boolean): Record<string, string | undefined> {
  const options = ctx.options;
  const bootstrap: ChildBootstrap = {
    id,
    generation,
    handler: options.handler,
    protocol: options.protocol,
    protocolOptions: options.protocolOptions,
    listeners: ctx.listeners.length,
    slots: options.children.slots,
    connections: parking ? options.children.connections : options.children.slots,
    chainBatchMs: options.acceptChainBatchMs,
    restoreScheduling: childrenRestoreScheduling(),
    page: paged,
    parks: parking,
    tls,
    logLevel: options.logLevel,
    metrics: ctx.metrics !== undefined,
    parentPid: process.pid,
    // An orphan has the heartbeat's time to finish, as a hung child would have had.
    orphanGraceMs: options.timeouts.heartbeat || options.timeouts.stop,
  };
  if (options.uid !== undefined || options.gid !== undefined) {
    bootstrap.runAs = { uid: options.uid ?? process.getuid!(), gid: options.gid ?? process.getgid!() };
  }
  const env: Record<string, string | undefined> = { ...process.env, ...options.env, PREFORK_CHILD: JSON.stringify(bootstrap) };
  // Sockets systemd handed to the parent are the parent's; a child must not adopt them again.
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  return env;
}

/** The child runtime's entry: `child.js` next to the bundle, or the build output above the sources (tests). */
export function findChildEntry(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'child.js')];
  let dir = here;
  for (let depth = 0; depth < 4; depth++) {
    candidates.push(join(dir, 'dist', 'child.js'));
    dir = dirname(dir);
  }
  const found = candidates.find((file) => existsSync(file));
  if (!found) {
    throw new PreforkError('PREFORK_ERR_POOL_STATE', `the child runtime was not found (looked for ${candidates[0]} and dist/child.js above it); run "npm run build"`);
  }
  return found;
}
