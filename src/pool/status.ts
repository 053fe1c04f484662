import { chmodSync, readFileSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PreforkError } from '../errors.js';
import type { Child, ChildState } from './Child.js';
import type { PoolContext } from './context.js';
import type { ListenTarget } from './options.js';
import { createPoolMetrics } from './metrics.js';
import { snapshot, type PoolStats } from './stats.js';

/**
 * The status listener, served by the parent itself (so it answers while every child is busy), on
 * a loopback address or a Unix socket: `GET /status` (a text scoreboard, one line per child, as
 * Apache's mod_status), `GET /status?json` (the same as JSON), `GET /metrics` (Prometheus: the
 * pool's metrics and the children's own, summed; see metrics.ts) and `GET /ready` (200 while the
 * pool takes connections, 503 from the start of a stop, for a load balancer's health check).
 */
export interface StatusServer {
  /** Where it listens: `127.0.0.1:PORT`, `[::1]:PORT` or `unix:/path`. */
  readonly address: string;
  close(): Promise<void>;
}

/** One child on the scoreboard. */
export interface ChildStatus {
  id: number;
  pid: number;
  generation: number;
  state: Exclude<ChildState, 'exited'>;
  /** The scoreboard letter of `state`. */
  letter: string;
  active: number;
  slots: number;
  accepted: number;
  served: number;
  ageS: number;
  /** Seconds since it last became idle, while it is idle; null otherwise. */
  idleForS: number | null;
  /** Resident memory in MiB and CPU time in seconds, from /proc; null where unknown. */
  rssMiB: number | null;
  cpuS: number | null;
}

/** What `GET /status?json` answers. */
export interface StatusReport {
  pool: PoolStats & { ready: boolean; connectionsPerSecond: number };
  children: ChildStatus[];
}

/** Apache's scoreboard keys, as far as they apply: `S` starting, `_` idle, `A` accepting, `B` busy, `G` finishing (stopping). */
const LETTERS: Readonly<Record<Exclude<ChildState, 'exited'>, string>> = { starting: 'S', idle: '_', accepting: 'A', busy: 'B', stopping: 'G' };

/** Whether the pool takes connections: running, not stopping or draining. */
export function isReady(ctx: PoolContext): boolean {
  return ctx.state === 'running' && !ctx.draining;
}

const TICKS_PER_SECOND = 100;
const PAGE_BYTES = 4096;

/** Resident memory (bytes) and CPU time (s) of a process, from /proc/PID/stat; undefined where that is not there. */
export function processUsage(pid: number): { rssBytes: number; cpuS: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { rssBytes: Number(fields[21]) * PAGE_BYTES, cpuS: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND };
  } catch {
    return undefined;
  }
}

/** {@link processUsage} as the scoreboard shows it: MiB to a tenth, seconds to a hundredth, nulls where unknown. */
function scoreboardUsage(pid: number): { rssMiB: number | null; cpuS: number | null } {
  const usage = processUsage(pid);
  if (!usage) return { rssMiB: null, cpuS: null };
  return { rssMiB: Math.round((usage.rssBytes / (1024 * 1024)) * 10) / 10, cpuS: Math.round(usage.cpuS * 100) / 100 };
}

function childStatus(child: Child, now: number): ChildStatus {
  const state = child.state === 'exited' ? 'stopping' : child.state;
  return {
    id: child.id,
    pid: child.pid,
    generation: child.generation,
    state,
    letter: LETTERS[state],
    active: child.active,
    slots: child.slots,
    accepted: child.accepted,
    served: child.served,
    ageS: Math.round((now - child.startedAt) / 100) / 10,
    idleForS: state === 'idle' && child.idleSince > 0 ? Math.round((now - child.idleSince) / 100) / 10 : null,
    ...scoreboardUsage(child.pid),
  };
}

/** The scoreboard as data. */
export function statusReport(ctx: PoolContext): StatusReport {
  const now = Date.now();
  const stats = snapshot(ctx);
  const seconds = stats.uptimeMs / 1000;
  return {
    pool: { ...stats, ready: isReady(ctx), connectionsPerSecond: seconds > 0 ? Math.round((stats.connections.accepted / seconds) * 10) / 10 : 0 },
    children: ctx.children.map((child) => childStatus(child, now)),
  };
}

function column(value: number | string | null, width: number): string {
  return String(value ?? '-').padStart(width);
}

/** The scoreboard as text: one line per child, then the pool. */
export function statusText(report: StatusReport): string {
  const lines = [`${'id'.padStart(5)} ${'pid'.padStart(8)} gen S active/slots ${'accepted'.padStart(9)} ${'served'.padStart(9)} ${'age s'.padStart(8)} ${'idle s'.padStart(7)} ${'rss MiB'.padStart(8)} ${'cpu s'.padStart(8)}`];
  for (const child of report.children) {
    lines.push(
      `${column(child.id, 5)} ${column(child.pid, 8)} ${column(child.generation, 3)} ${child.letter} ${`${child.active}/${child.slots}`.padStart(12)} ${column(child.accepted, 9)} ${column(child.served, 9)} ${column(child.ageS, 8)} ${column(child.idleForS, 7)} ${column(child.rssMiB, 8)} ${column(child.cpuS, 8)}`,
    );
  }
  const pool = report.pool;
  const byState = Object.entries(pool.children).map(([state, count]) => `${state} ${count}`).join(', ');
  const queue = pool.acceptQueue ? `${pool.acceptQueue.length} now, ${pool.acceptQueue.max} at most, limit ${pool.acceptQueue.limit}` : 'unknown';
  lines.push(
    '',
    `pool: pid ${pool.pid}, ${pool.state}${pool.ready ? ', ready' : ', not ready'}, generation ${pool.generation}, up ${Math.round(pool.uptimeMs / 1000)} s`,
    `children: ${byState}`,
    `connections: ${pool.connections.accepted} accepted (${pool.connectionsPerSecond}/s), ${pool.connections.served} served, ${pool.connections.active} active, ${pool.connections.lost} lost, ${pool.connections.rejected} rejected`,
    `backlog: ${queue}; overload: ${pool.overload.active ? 'now' : 'no'} (${pool.overload.events} so far)`,
    `dispatch: p50 ${pool.dispatchLatencyUs.p50} µs, p99 ${pool.dispatchLatencyUs.p99} µs`,
    `exits: ${pool.exits.total} (${pool.exits.crashes} crashes, ${pool.exits.failedStarts} failed starts); invalid frames ${pool.invalidFrames}`,
  );
  return `${lines.join('\n')}\n`;
}

function answer(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function route(ctx: PoolContext, req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    answer(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    return;
  }
  const url = new URL(req.url ?? '/', 'http://status.invalid');
  if (url.pathname === '/ready') {
    const ready = isReady(ctx);
    answer(res, ready ? 200 : 503, 'text/plain; charset=utf-8', ready ? 'ready\n' : `not ready: ${ctx.state}\n`);
  } else if (url.pathname === '/status') {
    const report = statusReport(ctx);
    if (url.searchParams.has('json')) answer(res, 200, 'application/json', `${JSON.stringify(report)}\n`);
    else answer(res, 200, 'text/plain; charset=utf-8', statusText(report));
  } else if (url.pathname === '/metrics' && ctx.metrics) {
    ctx.metrics.scrape().then(
      ({ text, contentType }) => answer(res, 200, contentType, text),
      (error: unknown) => {
        ctx.logger.error('could not produce /metrics', { error: error instanceof Error ? error.message : String(error) });
        answer(res, 500, 'text/plain; charset=utf-8', 'metrics failed; see the log\n');
      },
    );
  } else {
    answer(res, 404, 'text/plain; charset=utf-8', 'not found: try /status, /status?json, /metrics or /ready\n');
  }
}

/** Starts the status listener on `target` (checked by the options: loopback TCP or a Unix socket). */
export async function startStatusServer(ctx: PoolContext, target: ListenTarget): Promise<StatusServer> {
  ctx.metrics ??= await createPoolMetrics(ctx, ctx.options.timeouts.metrics);
  const server: Server = createServer((req, res) => route(ctx, req, res));
  server.on('clientError', (_error, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new PreforkError('PREFORK_ERR_LISTEN', `status.listen: could not listen: ${error.message}`, { cause: error })));
    if (target.kind === 'unix') server.listen(target.path, resolve);
    else if (target.kind === 'tcp') server.listen(target.port, target.host, resolve);
    else reject(new PreforkError('PREFORK_ERR_OPTION_INVALID', 'status.listen: expected a loopback address or a Unix socket'));
  });
  let address: string;
  if (target.kind === 'unix') {
    if (target.mode !== undefined) chmodSync(target.path, target.mode);
    address = `unix:${target.path}`;
  } else {
    const bound = server.address() as AddressInfo;
    address = bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  }
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        if (target.kind === 'unix') {
          try {
            unlinkSync(target.path);
          } catch {
            // Gone already.
          }
        }
      }),
  };
}
