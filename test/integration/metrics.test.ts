import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/pool/Pool.js';
import net from 'node:net';
import { Status } from '../../src/channel/frames.js';
import { fixture, nextHook, startPool, stopPools, target, tempDir, waitFor } from '../helpers.js';
import { freePort } from './protocols/nginx.js';
import { skipWithout } from '../environment.js';

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
/** promtool and prometheus come with Debian's `prometheus` package, which .ci/run installs. */
const NO_PROMETHEUS = skipWithout(has('promtool') && has('prometheus') ? undefined : 'promtool and prometheus are not installed (Debian/Ubuntu: apt-get install prometheus; .ci/run installs it)');

// GET /metrics: the pool's metrics and the children's own prom-client metrics, summed.

const running: ChildProcess[] = [];
afterEach(async () => {
  for (const process of running.splice(0)) process.kill('SIGKILL');
  await stopPools();
});

/** GET `path` from `host:port`, a new connection each time: status and body. */
function get(address: string, path: string): Promise<{ status: number; body: string; type: string }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }));
    });
    req.on('error', reject);
    req.end();
  });
}

function address(pool: Pool): string {
  const { address: host, port } = pool.addresses()[0]!;
  return `${host}:${port}`;
}

/** One sample's value from an exposition text (`name{labels}` exactly as written), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function metricsPool(options: Record<string, unknown> = {}): Promise<Pool & { logged: { lines: { level: string; message: string }[] } }> {
  return startPool({ handler: fixture('metrics-app.mjs'), protocol: 'http', status: { listen: '127.0.0.1:0' }, children: { start: 2, min: 2, max: 2, minSpare: 0 }, ...options });
}

async function send(pool: Pool, count: number, path = '/a'): Promise<void> {
  for (let i = 0; i < count; i++) expect((await get(address(pool), path)).status).toBe(200);
}

describe('/metrics', () => {
  it.skipIf(NO_PROMETHEUS)("is Prometheus text that promtool accepts, with the pool's metrics and the children's own summed over them", async () => {
    const pool = await metricsPool();
    await send(pool, 12);
    const scraped = await get(pool.statusAddress()!, '/metrics');
    expect(scraped.status).toBe(200);
    expect(scraped.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: scraped.body, encoding: 'utf8' });
    expect(check.status, `${check.stdout}${check.stderr}`).toBe(0);
    const text = scraped.body;
    expect(sample(text, 'prefork_children{state="idle"}')).toBe(2);
    expect(sample(text, 'prefork_connections_total{outcome="served"}')).toBe(12);
    expect(sample(text, 'prefork_dispatch_latency_seconds_count')).toBeGreaterThan(0);
    expect(sample(text, 'prefork_ready')).toBe(1);
    // The handlers' own: a counter and a histogram summed, a gauge summed over both children.
    expect(sample(text, 'app_requests_total{path="/a"}')).toBe(12);
    expect(sample(text, 'app_response_bytes_count')).toBe(12);
    expect(sample(text, 'app_children_started')).toBe(2);
    expect(sample(text, 'prefork_child_metrics_late')).toBe(0);
    // No label names a process: children come and go.
    expect(text).not.toMatch(/\{[^}]*pid=/);
  });

  it('keeps the counts of children that exit: a stopped child sends a last report, a killed one leaves its last answer', async () => {
    const pool = await metricsPool({ recycle: { maxConnectionsPerChild: 5 } });
    // Recycled children report at their exit what they counted after the last scrape.
    await send(pool, 13);
    await waitFor(pool.hooks.onParentTick as never, () => pool.stats().exits.total >= 2, 10_000);
    let text = (await get(pool.statusAddress()!, '/metrics')).body;
    expect(sample(text, 'app_requests_total{path="/a"}'), text).toBe(13);
    expect(sample(text, 'prefork_child_exits_total{reason="stopped"}'), text).toBeGreaterThanOrEqual(2);
    // A child killed after a scrape: what it answered then stays in the sum.
    // One more: 14 of the 15 that would recycle a third child (5 each), so a ready child holds it.
    await send(pool, 1, '/b');
    text = (await get(pool.statusAddress()!, '/metrics')).body;
    expect(sample(text, 'app_requests_total{path="/b"}')).toBe(1);
    // The ready children (a replacement still starting has counted nothing) are killed from outside.
    const ready = pool.children().filter((child) => child.state === 'idle' || child.state === 'busy');
    expect(ready.length).toBeGreaterThan(0);
    const exitsBefore = pool.stats().exits.total;
    for (const child of ready) process.kill(child.pid, 'SIGKILL');
    await waitFor(pool.hooks.onChildExit as never, () => pool.stats().exits.total >= exitsBefore + ready.length, 5000);
    text = (await get(pool.statusAddress()!, '/metrics')).body;
    expect(sample(text, 'app_requests_total{path="/a"}'), text).toBe(13);
    expect(sample(text, 'app_requests_total{path="/b"}'), text).toBe(1);
    // A crash each (or "killed", for one the pool had just begun to recycle).
    expect(sample(text, 'prefork_child_exits_total{reason="crashed"}')! + sample(text, 'prefork_child_exits_total{reason="killed"}')!, text).toBeGreaterThanOrEqual(ready.length);
  });

  it('answers within timeouts.metrics while a child is busy in CPU work, with that child counted late and its last answer used', async () => {
    const pool = await metricsPool({ timeouts: { metrics: 300 } });
    await send(pool, 4);
    expect(sample((await get(pool.statusAddress()!, '/metrics')).body, 'app_requests_total{path="/a"}')).toBe(4);
    // One child spins for 3 s: its event loop cannot answer the scrape.
    const spinning = get(address(pool), '/spin?ms=3000');
    await waitFor(pool.hooks.onParentTick as never, () => pool.stats().connections.active === 1, 5000);
    const started = Date.now();
    const text = (await get(pool.statusAddress()!, '/metrics')).body;
    const took = Date.now() - started;
    expect(took).toBeLessThan(2500);
    expect(sample(text, 'prefork_child_metrics_late')).toBe(1);
    expect(sample(text, 'app_requests_total{path="/a"}')).toBe(4);
    expect(sample(text, 'app_requests_total{path="/spin"}')).toBeUndefined();
    await spinning;
    // Once it is free, it answers again.
    const after = (await get(pool.statusAddress()!, '/metrics')).body;
    expect(sample(after, 'app_requests_total{path="/spin"}')).toBe(1);
    expect(sample(after, 'prefork_child_metrics_late')).toBe(0);
  });

  it('a child that sends a metrics report nobody asked for is killed; its replacement is scraped', async () => {
    const pool = await startPool({ status: { listen: '127.0.0.1:0' }, children: { start: 1, min: 1, max: 1, minSpare: 0 } });
    const header = (argument: number, body: string) => {
      const head = Buffer.alloc(8);
      head.writeUInt8(Status.METRICS, 0);
      head.writeUInt16LE(argument, 2);
      head.writeUInt32LE(Buffer.byteLength(body), 4);
      return Buffer.concat([head, Buffer.from(body)]).toString('hex');
    };
    const exit = nextHook(pool.hooks.onChildExit);
    const forged = net.connect(target(pool));
    forged.on('error', () => {});
    forged.write(`forge ${header(7, '{"metrics":[]}')}\n`);
    const [child, info] = await exit;
    forged.destroy();
    expect([child.id, info.signal]).toEqual([1, 'SIGKILL']);
    expect(pool.logged.lines.find((line) => line.message === 'child sent an invalid metrics report; killing it')?.fields).toMatchObject({ child: 1, problem: 'a metrics report nobody asked for' });
    await waitFor(pool.hooks.onChildIdle as never, () => pool.stats().children.idle === 1, 5000);
    const scraped = await get(pool.statusAddress()!, '/metrics');
    expect(scraped.status).toBe(200);
    expect(sample(scraped.body, 'prefork_invalid_frames_total')).toBe(1);
    expect(sample(scraped.body, 'prefork_child_exits_total{reason="killed"}')).toBe(1);
    expect(sample(scraped.body, 'prefork_child_metrics_late')).toBe(0);
  });

  it.skipIf(NO_PROMETHEUS)("a real Prometheus scrapes it, and its query API returns the children's counter summed: the requests sent", async () => {
    const pool = await metricsPool();
    await send(pool, 17);
    const dir = tempDir();
    const port = await freePort();
    writeFileSync(
      join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: prefork\n    static_configs:\n      - targets: ['${pool.statusAddress()}']\n`,
    );
    const prometheus = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    running.push(prometheus);
    let log = '';
    prometheus.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    const query = encodeURIComponent('sum(app_requests_total)');
    let value: string | undefined;
    // Bounded: Prometheus starts, scrapes every second; the answer comes within a few seconds.
    for (let attempt = 0; attempt < 150 && value !== '17'; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      try {
        const answer = await get(`127.0.0.1:${port}`, `/api/v1/query?query=${query}`);
        const result = (JSON.parse(answer.body) as { data?: { result?: { value: [number, string] }[] } }).data?.result?.[0];
        value = result?.value[1];
      } catch {
        // Not listening yet.
      }
    }
    expect(value, log.slice(-2000)).toBe('17');
    const targets = JSON.parse((await get(`127.0.0.1:${port}`, '/api/v1/targets')).body) as { data: { activeTargets: { health: string; lastError: string }[] } };
    expect(targets.data.activeTargets[0]).toMatchObject({ health: 'up', lastError: '' });
  }, 30_000);
});
