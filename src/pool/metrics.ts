import { FINAL_METRICS_REPORT, parseMetricsReport, type ChildMetric, type MetricValue } from '../channel/metrics.js';
import type { Child, ChildState } from './Child.js';
import { kill } from './children.js';
import type { PoolContext } from './context.js';
import { LATENCY_BUCKETS_US, snapshot, type PoolStats } from './stats.js';
import { isReady, processUsage } from './status.js';

/**
 * `GET /metrics`: the pool's own metrics and the children's, in Prometheus' text format as
 * prom-client writes it. The children's are what their handlers registered with their own
 * prom-client, collected over the control channel at each scrape and summed over the live
 * children the way prom-client's `AggregatorRegistry.aggregate` does (by each metric's
 * aggregator, `sum` unless the handler chose another).
 *
 * - A child that does not answer within `timeouts.metrics` (busy in CPU work: its event loop
 *   cannot run) is counted in `prefork_child_metrics_late`, and its values are those of its last
 *   answer, at most one scrape old as long as it answers at all.
 * - A child that exits takes its counters and histograms (aggregator `sum`) with it into a
 *   retired sum, so that a sum over the children never goes down. A child stopped by the pool
 *   sends a last report once its connections are done; a child that crashed or was killed loses
 *   what it counted since its last answer.
 * - Metrics of a child named `prefork_...` are left out: those names are the pool's.
 */
export interface PoolMetrics {
  /** The exposition text of one scrape, and its content type. */
  scrape(): Promise<{ text: string; contentType: string }>;
  /** A METRICS frame from `child`: checked, then kept as its last report. */
  onReport(child: Child, request: number, payload: unknown): void;
  /** `child` is gone: its counters go into the retired sum. */
  onExit(child: Child): void;
}

/** What prom-client is used for here: a registry, metrics registered by their `get`, aggregation, merging. */
type PromClient = typeof import('prom-client');

/** A metric as prom-client registers one: its JSON shape, and `get` giving it. */
interface CollectedMetric extends ChildMetric {
  get(): Promise<ChildMetric>;
}

const STATES: readonly Exclude<ChildState, 'exited'>[] = ['starting', 'idle', 'accepting', 'busy', 'stopping'];
/** Resident memory of a process in bytes, 0 where unknown. */
const residentBytes = (pid: number): number => processUsage(pid)?.rssBytes ?? 0;

/** The key of one series of a metric: its name and labels, label order aside. */
function seriesKey(value: MetricValue): string {
  const labels = Object.keys(value.labels)
    .sort()
    .map((label) => `${label}=${String(value.labels[label])}`);
  return `${value.metricName ?? ''}|${labels.join(',')}`;
}

/** Adds the summable metrics of `report` (counters and histograms summed over children) into `retired`. */
function retire(retired: Map<string, ChildMetric>, report: readonly ChildMetric[]): void {
  for (const metric of report) {
    if (metric.aggregator !== 'sum' || (metric.type !== 'counter' && metric.type !== 'histogram')) continue;
    let kept = retired.get(metric.name);
    if (!kept) {
      kept = { ...metric, values: [] };
      retired.set(metric.name, kept);
    }
    if (kept.type !== metric.type) continue;
    const byKey = new Map(kept.values.map((value) => [seriesKey(value), value]));
    for (const value of metric.values) {
      const key = seriesKey(value);
      const old = byKey.get(key);
      if (old) old.value += value.value;
      else {
        const copy = { ...value, labels: { ...value.labels } };
        kept.values.push(copy);
        byKey.set(key, copy);
      }
    }
  }
}

/** Loads prom-client and builds the pool's metrics over `ctx`. */
export async function createPoolMetrics(ctx: PoolContext, timeoutMs: number): Promise<PoolMetrics> {
  const client: PromClient = await import('prom-client');
  let stats: PoolStats = snapshot(ctx);
  let late = 0;
  const own = new client.Registry();

  /** Registers a metric whose values are computed at each scrape from `stats` (set just before). */
  const define = (name: string, help: string, type: ChildMetric['type'], values: () => MetricValue[]) => {
    const metric: CollectedMetric = { name, help, type, aggregator: 'sum', values: [], get: async () => ({ name, help, type, aggregator: 'sum', values: values() }) };
    own.registerMetric(metric as never);
  };
  const one = (value: number, labels: Record<string, string> = {}): MetricValue => ({ value, labels });

  define('prefork_children', 'Children by state (S starting, _ idle, A accepting, B busy, G stopping on the scoreboard).', 'gauge', () => STATES.map((state) => one(stats.children[state], { state })));
  define('prefork_connections_total', 'Connections by outcome: accepted by a child, served to their end, lost with a child that died holding them, rejected by an abrupt overload.', 'counter', () =>
    (['accepted', 'served', 'lost', 'rejected'] as const).map((outcome) => one(stats.connections[outcome], { outcome })),
  );
  define('prefork_connections_chained_total', 'Connections a child accepted by itself under a chain grant (part of accepted).', 'counter', () => [one(stats.connections.chained)]);
  define('prefork_connections_active', 'Accepted connections children hold now.', 'gauge', () => [one(stats.connections.active)]);
  define('prefork_accept_orders_total', 'Accept orders sent to children.', 'counter', () => [one(stats.connections.ordered)]);
  define('prefork_accept_nothing_total', 'Accept orders answered "nothing" (another child or the client was faster).', 'counter', () => [one(stats.acceptNothing)]);
  define('prefork_accept_timeouts_total', 'Accept orders a child did not answer in time (it was killed).', 'counter', () => [one(stats.acceptTimeouts)]);
  define('prefork_listen_queue_length', 'Connections waiting in the listening socket\'s accept queue (the first TCP listener; absent where unknown).', 'gauge', () => (stats.acceptQueue ? [one(stats.acceptQueue.length)] : []));
  define('prefork_listen_queue_max', 'The longest accept queue seen so far (sampled at every tick and every read of the stats).', 'gauge', () => (stats.acceptQueue ? [one(stats.acceptQueue.max)] : []));
  define('prefork_listen_queue_limit', 'The accept queue\'s limit (the backlog the kernel applies).', 'gauge', () => (stats.acceptQueue ? [one(stats.acceptQueue.limit)] : []));
  define('prefork_dispatch_latency_seconds', 'From a listener turning readable to the ordered child\'s answer (ordered accepts only).', 'histogram', () => {
    const { cumulative, sum, count } = ctx.latency.histogram();
    const values: MetricValue[] = LATENCY_BUCKETS_US.map((bound, i) => ({ value: cumulative[i]!, labels: { le: bound / 1e6 }, metricName: 'prefork_dispatch_latency_seconds_bucket' }));
    values.push({ value: count, labels: { le: '+Inf' }, metricName: 'prefork_dispatch_latency_seconds_bucket' });
    values.push({ value: sum / 1e6, labels: {}, metricName: 'prefork_dispatch_latency_seconds_sum' });
    values.push({ value: count, labels: {}, metricName: 'prefork_dispatch_latency_seconds_count' });
    return values;
  });
  define('prefork_child_exits_total', 'Children that exited, by reason: stopped (asked to, and did), killed (by the pool: a timeout or an invalid frame), crashed, failed_start (before it was ready).', 'counter', () =>
    (['stopped', 'killed', 'crashed', 'failed_start'] as const).map((reason) => one(ctx.exitReasons[reason], { reason })),
  );
  define('prefork_overload_seconds_total', 'Time listeners spent in overload (no child could take a connection).', 'counter', () => [one(stats.overload.totalMs / 1000)]);
  define('prefork_overload_events_total', 'Overloads begun.', 'counter', () => [one(stats.overload.events)]);
  define('prefork_overloaded', '1 while a listener is in overload.', 'gauge', () => [one(stats.overload.active ? 1 : 0)]);
  define('prefork_invalid_frames_total', 'Frames from children refused as invalid (each cost its child its life).', 'counter', () => [one(stats.invalidFrames)]);
  define('prefork_ready', '1 while the pool takes connections; 0 from the start of a stop (as /ready).', 'gauge', () => [one(isReady(ctx) ? 1 : 0)]);
  define('prefork_generation', 'The generation serving (it grows by one with each reload).', 'gauge', () => [one(stats.generation)]);
  define('prefork_start_time_seconds', 'When the pool started, seconds since the epoch.', 'gauge', () => [one(Math.round(ctx.startedAt / 1000))]);
  define('prefork_parent_resident_memory_bytes', 'Resident memory of the parent.', 'gauge', () => [one(residentBytes(process.pid))]);
  define('prefork_children_resident_memory_bytes', 'Resident memory of the live children, summed.', 'gauge', () => [one(ctx.children.reduce((total, child) => total + (child.state === 'exited' ? 0 : residentBytes(child.pid)), 0))]);
  define('prefork_child_metrics_late', 'Children that did not answer this scrape within timeouts.metrics (their last report is used).', 'gauge', () => [one(late)]);

  /** Counters and histograms of exited children, summed. */
  const retired = new Map<string, ChildMetric>();
  /** Children this scrape waits for, and how to end the wait. */
  const waiting = new Set<Child>();
  let wake: (() => void) | undefined;
  let nextRequest = 0;
  let scraping: Promise<{ text: string; contentType: string }> | undefined;
  /** Children whose metrics named `prefork_...` were said once. */
  const warned = new WeakSet<Child>();

  const answered = (child: Child) => {
    if (waiting.delete(child) && waiting.size === 0) wake?.();
  };

  async function collect(): Promise<{ text: string; contentType: string }> {
    nextRequest = nextRequest >= FINAL_METRICS_REPORT - 1 ? 1 : nextRequest + 1;
    for (const child of ctx.children) {
      if (child.readyAt === 0 || child.state === 'exited') continue;
      // One request at a time per child: a late child is still waited for under its old number.
      if (child.metricsRequest < 0) {
        child.metricsRequest = nextRequest;
        child.orderMetrics(nextRequest);
      }
      waiting.add(child);
    }
    if (waiting.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    wake = undefined;
    late = waiting.size;
    waiting.clear();
    stats = snapshot(ctx);
    const reports: ChildMetric[][] = [[...retired.values()]];
    for (const child of ctx.children) if (child.metrics && child.state !== 'exited') reports.push(child.metrics);
    const children = client.AggregatorRegistry.aggregate(reports as never) as unknown as typeof own;
    const merged = client.Registry.merge([own, children]);
    return { text: await merged.metrics(), contentType: merged.contentType };
  }

  return {
    scrape() {
      // Scrapes at once share one collection: a child has one request out at a time.
      scraping ??= collect().finally(() => {
        scraping = undefined;
      });
      return scraping;
    },

    onReport(child, request, payload) {
      const final = request === FINAL_METRICS_REPORT;
      const asked = final ? !child.metricsFinal && (child.state === 'stopping' || child.state === 'exited') : request === child.metricsRequest;
      const report = asked ? parseMetricsReport(payload) : 'a metrics report nobody asked for';
      if (typeof report === 'string') {
        ctx.counters.invalidFrames++;
        ctx.logger.error('child sent an invalid metrics report; killing it', { child: child.id, pid: child.pid, problem: report });
        kill(ctx, child);
        answered(child);
        return;
      }
      if (final) child.metricsFinal = true;
      else child.metricsRequest = -1;
      if ('error' in report) {
        ctx.logger.warn("child's metrics could not be read", { child: child.id, pid: child.pid, error: report.error });
      } else {
        // Every name of the pool's own starts so.
        const mine = report.metrics.filter((metric) => metric.name.startsWith('prefork_'));
        if (mine.length > 0 && !warned.has(child)) {
          warned.add(child);
          ctx.logger.warn("child's metrics named like the pool's are left out of /metrics", { child: child.id, pid: child.pid, metrics: mine.slice(0, 10).map((metric) => metric.name) });
        }
        child.metrics = mine.length > 0 ? report.metrics.filter((metric) => !mine.includes(metric)) : report.metrics;
      }
      answered(child);
    },

    onExit(child) {
      answered(child);
      if (child.metrics) retire(retired, child.metrics);
      child.metrics = undefined;
    },
  };
}
