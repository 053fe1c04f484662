#!/usr/bin/env node
// The prefork benchmark (`npm run bench`, `node bench/run.mjs --quick`): prefork against
// node:cluster, a single Node process and gunicorn, all answering the same bytes with the same
// number of children, under wrk on loopback. Servers take turns round by round (A B C D A B C D
// ...), so slow drifts of the machine hit every server alike; the report gives medians across
// rounds and the prefork/other ratio of each round. Markdown goes to stdout, progress to stderr,
// everything to bench/results/<timestamp>.json. `--help` lists the options.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { findExecutable, pickLoadGenerator, runLoad, runningLoad } from './lib/load.mjs';
import { cpuBusyPercent, listenBacklog, machineInfo } from './lib/procfs.mjs';
import { fixed, integer, median, medians, mib, ms, table } from './lib/report.mjs';
import { runningServers, startGunicorn, startNodeServer } from './lib/servers.mjs';

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
/** Dispatch latency samples pool.stats() keeps (its ring); a round with fewer mixes in older ones. */
const LATENCY_WINDOW = 8192;

const WORKLOADS = {
  close: { letter: 'a', title: '(a) new connection per request (`Connection: close`)', path: '/', close: true },
  keepalive: { letter: 'b', title: '(b) keep-alive', path: '/', close: false },
  cpu: { letter: 'c', title: '(c) CPU-bound handler (2 ms of CPU time per request), keep-alive', path: '/cpu', close: false },
  scaling: { letter: 'd', title: '(d) prefork dispatch cost vs number of children (new connection per request)', path: '/', close: true },
  https: { letter: 'e', title: '(e) HTTPS, new connection per request (a TLS handshake each; prefork and node:cluster)', path: '/', close: true },
  raw: { letter: 'f', title: "(f) prefork's raw protocol, new connection per request (its handler answers the HTTP bytes itself)", path: '/', close: true },
  io: { letter: 'g', title: '(g) I/O-bound: the handler awaits 1 ms, keep-alive (prefork: 64 slots a child)', path: '/io', close: false, clients: 256 },
};
const SERVER_NAMES = ['prefork', 'cluster', 'single', 'gunicorn', 'prefork-abrupt'];
const USAGE = `Usage: node bench/run.mjs [options]     (npm run bench -- [options] builds first)

  --quick                 3 rounds of 1 s, at most 4 s of warm-up, no prefork-abrupt, scaling up to
                          64 children (noisier)
  --rounds N              rounds per server and workload (default 5)
  --duration S            seconds of load per round, whole seconds (default 5)
  --warmup S              most unrecorded seconds of load per server before each workload: 2-s
                          windows until two in a row are each within 3 % of the one before
                          (default 30, --quick 4; 0 = none). Each child warms its JIT with its share
                          of the load only, so 8 children take longer than one process to reach
                          their pace. Then one unrecorded lead-in round of every server, so that
                          none comes to its first round after idling through the others' warm-ups
  --children N            children of every server (default 8)
  --connections N         concurrent clients of the new-connection workloads (default 16)
  --keepalive-connections N  concurrent clients of the keep-alive workloads (default: --children;
                          a single-slot prefork child holds a keep-alive client for good, so
                          clients beyond the children wait in the backlog)
  --threads N             load generator threads (default 2)
  --workloads LIST        close,keepalive,cpu,scaling,https,raw,io or a,b,c,d,e,f,g (default: all)
  --servers LIST          ${SERVER_NAMES.join(',')} (default: all; prefork-abrupt runs in "close" only)
  --scaling-children LIST children counts of the scaling workload (default 2,16,64,128; --quick: 2,16,64)
  --protocol P            protocol of the prefork servers: auto (http, else raw), http or raw (default auto)
  --baseline DIR          also run "prefork-baseline": prefork loaded from DIR (the dist/ of another
                          built checkout), in the same alternating rounds, to measure a change
  --load TOOL             auto, wrk or autocannon (default auto: wrk, else an installed autocannon)
  --out FILE              the JSON report (default bench/results/<timestamp>.json)
  --help                  this text`;

// ---- options -----------------------------------------------------------------------------------

function fail(message) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

function positiveInteger(name, text, min = 1) {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) fail(`--${name}: expected an integer >= ${min}, got ${JSON.stringify(text)}`);
  return value;
}

function list(name, text, allowed, aliases = {}) {
  const items = text.split(',').map((item) => item.trim()).filter(Boolean).map((item) => aliases[item] ?? item);
  for (const item of items) if (!allowed.includes(item)) fail(`--${name}: unknown "${item}" (expected ${allowed.join(', ')})`);
  if (items.length === 0) fail(`--${name}: empty list`);
  return [...new Set(items)];
}

/** Concurrent clients of a workload: keep-alive workloads default to one per child. */
function connectionsOf(workload, settings) {
  if (workload.clients) return workload.clients;
  return workload.close ? settings.connections : settings.keepaliveConnections ?? settings.children;
}

function readOptions() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        quick: { type: 'boolean' },
        rounds: { type: 'string' },
        duration: { type: 'string' },
        warmup: { type: 'string' },
        children: { type: 'string' },
        connections: { type: 'string' },
        'keepalive-connections': { type: 'string' },
        threads: { type: 'string' },
        workloads: { type: 'string' },
        servers: { type: 'string' },
        'scaling-children': { type: 'string' },
        protocol: { type: 'string' },
        load: { type: 'string' },
        baseline: { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean' },
      },
    }).values;
  } catch (error) {
    fail(`${error.message}\n\n${USAGE}`);
  }
  if (parsed.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const quick = parsed.quick === true;
  const letters = Object.fromEntries(Object.entries(WORKLOADS).map(([name, workload]) => [workload.letter, name]));
  const protocol = parsed.protocol ?? 'auto';
  if (!['auto', 'http', 'raw'].includes(protocol)) fail(`--protocol: expected auto, http or raw, got ${JSON.stringify(protocol)}`);
  const baseline = parsed.baseline === undefined ? undefined : resolve(parsed.baseline);
  if (baseline !== undefined && !existsSync(join(baseline, 'index.js'))) fail(`--baseline: ${baseline}/index.js does not exist (build that checkout first: npm run build)`);
  const load = parsed.load ?? 'auto';
  if (!['auto', 'wrk', 'autocannon'].includes(load)) fail(`--load: expected auto, wrk or autocannon, got ${JSON.stringify(load)}`);
  return {
    quick,
    rounds: positiveInteger('rounds', parsed.rounds ?? (quick ? '3' : '5')),
    durationS: positiveInteger('duration', parsed.duration ?? (quick ? '1' : '5')),
    warmupS: positiveInteger('warmup', parsed.warmup ?? (quick ? '4' : '30'), 0),
    children: positiveInteger('children', parsed.children ?? '8'),
    connections: positiveInteger('connections', parsed.connections ?? '16'),
    keepaliveConnections: parsed['keepalive-connections'] === undefined ? undefined : positiveInteger('keepalive-connections', parsed['keepalive-connections']),
    threads: positiveInteger('threads', parsed.threads ?? '2'),
    workloads: list('workloads', parsed.workloads ?? Object.keys(WORKLOADS).join(','), Object.keys(WORKLOADS), letters),
    servers: list('servers', parsed.servers ?? SERVER_NAMES.filter((name) => !quick || name !== 'prefork-abrupt').join(','), SERVER_NAMES),
    scalingChildren: [...new Set((parsed['scaling-children'] ?? (quick ? '2,16,64' : '2,16,64,128')).split(',').map((text) => positiveInteger('scaling-children', text.trim())))],
    protocol,
    load,
    baseline,
    out: parsed.out,
  };
}

// ---- cleanup: every server and load process ends with the benchmark -----------------------------

function killEverything() {
  for (const server of runningServers) server.killNow();
  for (const child of runningLoad) {
    try {
      child.kill('SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

function installCleanup() {
  process.on('exit', killEverything);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}: stopping every server and load process\n`);
      killEverything();
      process.exit(130);
    });
  }
}

// ---- measuring ---------------------------------------------------------------------------------

function log(message) {
  process.stderr.write(`bench: ${message}\n`);
}

function preforkCounters(stats) {
  if (!stats?.connections) return undefined;
  return {
    ordered: stats.connections.ordered,
    accepted: stats.connections.accepted,
    // Builds before chain grants have no such counter.
    chained: stats.connections.chained ?? 0,
    rejected: stats.connections.rejected,
    acceptNothing: stats.acceptNothing,
    spuriousWakeups: stats.spuriousWakeups,
    overloadEvents: stats.overload.events,
    latencySamples: stats.dispatchLatencyUs.samples,
  };
}

/** The load generator's options for `durationS` seconds of a workload's load against one server. */
function loadOptions(server, workload, settings, durationS) {
  return { url: server.url(workload.path), connections: connectionsOf(workload, settings), threads: settings.threads, durationS, close: workload.close };
}

/** One round of load against one server, with its CPU, memory and (prefork) dispatch figures. */
async function measureRound(server, workload, settings, generator) {
  const statsBefore = await server.stats();
  const before = server.sample();
  const startedAt = process.hrtime.bigint();
  // Mid-round, how many clients wait in the listener's backlog (not yet accepted by anyone).
  let backlog = Number.NaN;
  const backlogTimer = setTimeout(() => (backlog = listenBacklog(server.port)), settings.durationS * 500);
  const load = await runLoad(generator, loadOptions(server, workload, settings, settings.durationS));
  const wallMs = Number(process.hrtime.bigint() - startedAt) / 1e6;
  clearTimeout(backlogTimer);
  const after = server.sample();
  const statsAfter = await server.stats();
  const parentCpuMs = (after.parentCpuNs - before.parentCpuNs) / 1e6;
  const serverCpuMs = parentCpuMs + (after.childrenCpuNs - before.childrenCpuNs) / 1e6;
  const round = {
    rps: load.rps,
    requests: load.requests,
    durationS: load.durationS,
    latencyUs: load.latencyUs,
    errors: load.errors,
    backlogMidRound: backlog,
    parentCpuMs,
    parentCpuMsPer1k: load.requests > 0 ? parentCpuMs / (load.requests / 1000) : Number.NaN,
    parentCpuPercent: (parentCpuMs / wallMs) * 100,
    serverCpuMsPer1k: load.requests > 0 ? serverCpuMs / (load.requests / 1000) : Number.NaN,
    serverCpuPercent: (serverCpuMs / wallMs) * 100,
    contextSwitchesPerRequest: load.requests > 0 ? (after.contextSwitches - before.contextSwitches) / load.requests : Number.NaN,
    parentRssBytes: after.parentRss,
    childRssBytes: after.childRss.length ? after.childRss.reduce((sum, rss) => sum + rss, 0) / after.childRss.length : Number.NaN,
    children: after.children,
  };
  const countersBefore = preforkCounters(statsBefore);
  const countersAfter = preforkCounters(statsAfter);
  if (countersBefore && countersAfter) {
    const delta = {};
    for (const key of Object.keys(countersAfter)) delta[key] = countersAfter[key] - countersBefore[key];
    round.prefork = {
      ...delta,
      dispatchLatencyUs: statsAfter.dispatchLatencyUs,
      // The pool keeps the last LATENCY_WINDOW samples: fewer dispatches in this round means the
      // percentiles include dispatches of earlier rounds.
      latencyWindowFromThisRound: delta.latencySamples >= LATENCY_WINDOW,
    };
    round.dispatchP50Us = statsAfter.dispatchLatencyUs.p50;
    round.dispatchP99Us = statsAfter.dispatchLatencyUs.p99;
    round.acceptNothingPer1k = delta.ordered > 0 ? (delta.acceptNothing / delta.ordered) * 1000 : Number.NaN;
    round.chainedPercent = delta.accepted > 0 ? (delta.chained / delta.accepted) * 100 : Number.NaN;
  }
  return round;
}

/** Seconds of one warm-up window, and how close two windows' rates must be to end the warm-up. */
const WARMUP_WINDOW_S = 2;
const WARMUP_STEADY = 0.03;

/**
 * Load before a workload's rounds, unrecorded, until the server's rate is steady: 2-s windows until
 * two in a row are each within 3 % of the one before, for at most `settings.warmupS` seconds. V8 compiles a
 * process's hot code after enough calls, and every child counts its own: 8 children sharing the
 * load reach their pace several times later than a single process does, so a fixed second of
 * warm-up measured mostly the JIT. Returns the windows' rates (for the report).
 */
async function warmUp(server, workload, settings, generator) {
  const rates = [];
  let spent = 0;
  while (spent + WARMUP_WINDOW_S <= settings.warmupS) {
    const result = await runLoad(generator, loadOptions(server, workload, settings, WARMUP_WINDOW_S));
    spent += WARMUP_WINDOW_S;
    rates.push(result.rps);
    const steady = (index) => index >= 1 && Math.abs(rates[index] - rates[index - 1]) <= WARMUP_STEADY * rates[index - 1];
    if (steady(rates.length - 1) && steady(rates.length - 2)) break;
  }
  return rates;
}

const MEDIAN_PATHS = [
  'rps',
  'requests',
  'latencyUs.p50',
  'latencyUs.p99',
  'errors.total',
  'errors.status',
  'backlogMidRound',
  'parentCpuMs',
  'parentCpuMsPer1k',
  'parentCpuPercent',
  'serverCpuMsPer1k',
  'serverCpuPercent',
  'contextSwitchesPerRequest',
  'parentRssBytes',
  'childRssBytes',
  'dispatchP50Us',
  'dispatchP99Us',
  'acceptNothingPer1k',
  'chainedPercent',
];

/**
 * Runs `rounds` rounds of one workload, the servers taking turns within each round. Returns
 * { servers: { name: { rounds, median } }, ratios }.
 */
async function runWorkload(name, servers, settings, generator) {
  const workload = WORKLOADS[name];
  log(`${workload.title}: ${servers.map((s) => s.name).join(', ')}; ${connectionsOf(workload, settings)} connections; load average ${loadavg()[0].toFixed(2)}`);
  const results = Object.fromEntries(servers.map((server) => [server.name, { rounds: [], warmupRps: [] }]));
  for (const server of servers) {
    results[server.name].warmupRps = await warmUp(server, workload, settings, generator);
    const rates = results[server.name].warmupRps;
    if (rates.length > 0) log(`  ${name} warm-up ${server.name}: ${rates.map(integer).join(' → ')} req/s (${rates.length * WARMUP_WINDOW_S} s)`);
  }
  // A lead-in round, not recorded: every server warmed up in turn, so the first one warmed stood idle
  // through all the others' warm-ups (a minute and more) and would serve its first recorded round
  // after a far longer pause than any other round (an idle Node process's heap is shrunk, and its
  // first seconds after are slower). After this round every server's pause before each recorded
  // round is the same: the others' rounds.
  if (settings.warmupS > 0 && servers.length > 1) {
    for (const server of servers) {
      const result = await runLoad(generator, loadOptions(server, workload, settings, settings.durationS));
      results[server.name].leadInRps = result.rps;
    }
    log(`  ${name} lead-in round (not recorded): ${servers.map((server) => `${server.name} ${integer(results[server.name].leadInRps)}`).join(', ')} req/s`);
  }
  for (let round = 1; round <= settings.rounds; round++) {
    for (const server of servers) {
      const measured = await measureRound(server, workload, settings, generator);
      results[server.name].rounds.push(measured);
      const dispatch = measured.prefork ? `, dispatch p50/p99 ${fixed(measured.dispatchP50Us, 0)}/${fixed(measured.dispatchP99Us, 0)} µs` : '';
      log(`  ${name} round ${round}/${settings.rounds} ${server.name}: ${integer(measured.rps)} req/s, p99 ${ms(measured.latencyUs.p99)} ms, errors ${measured.errors.total}, parent CPU ${fixed(measured.parentCpuMsPer1k, 1)} ms/1k req${dispatch}`);
    }
  }
  for (const result of Object.values(results)) result.median = medians(result.rounds, MEDIAN_PATHS);
  return { title: workload.title, connections: connectionsOf(workload, settings), loadAverageAfter: loadavg()[0], servers: results, ratios: name === 'scaling' ? scalingRatios(results) : ratiosOf(results, 'prefork') };
}

/** Scaling: each child count against the smallest one, and against its baseline when there is one. */
function scalingRatios(results) {
  const ratios = {};
  const names = Object.keys(results).filter((name) => !name.endsWith('-baseline'));
  const perRound = (a, b) => results[a].rounds.map((round, index) => round.rps / results[b].rounds[index]?.rps);
  for (const name of names) {
    if (results[`${name}-baseline`]) {
      const values = perRound(name, `${name}-baseline`);
      ratios[`${name}/${name}-baseline`] = { perRound: values, median: median(values) };
    }
  }
  for (const name of names.slice(1)) {
    const values = perRound(name, names[0]);
    ratios[`${name}/${names[0]}`] = { perRound: values, median: median(values) };
  }
  return ratios;
}

/** Per-round requests/s ratio of `base` to every other server, and the median of those ratios. */
function ratiosOf(results, base) {
  const ratios = {};
  const own = results[base]?.rounds;
  if (!own) return ratios;
  for (const [name, result] of Object.entries(results)) {
    if (name === base) continue;
    const perRound = own.map((round, index) => round.rps / result.rounds[index]?.rps);
    ratios[`${base}/${name}`] = { perRound, median: median(perRound) };
  }
  return ratios;
}

// ---- servers -----------------------------------------------------------------------------------

async function startServer(name, settings, gunicornPath) {
  const started = Date.now();
  let server;
  if (name.startsWith('prefork')) {
    const baseline = name.endsWith('-baseline') ? ['--dist', settings.baseline] : [];
    const tls = settings.tlsDir ? ['--tls', settings.tlsDir] : [];
    const slots = settings.slots ? ['--slots', String(settings.slots)] : [];
    server = await startNodeServer(name, 'prefork.mjs', ['--children', String(settings.children), '--protocol', settings.tlsDir ? 'http' : settings.protocol, '--overload', name === 'prefork-abrupt' ? 'abrupt' : 'graceful', ...baseline, ...tls, ...slots]);
  } else if (name === 'cluster') {
    server = await startNodeServer(name, 'cluster.mjs', ['--children', String(settings.children), ...(settings.tlsDir ? ['--tls', settings.tlsDir] : [])]);
  } else if (name === 'single') {
    server = await startNodeServer(name, 'single.mjs', []);
  } else {
    server = await startGunicorn(name, gunicornPath, settings.children);
  }
  const extra = server.info.protocol ? `, protocol ${server.info.protocol}` : server.info.schedulingPolicy ? `, scheduling ${server.info.schedulingPolicy}` : '';
  log(`started ${name} (pid ${server.pid}, port ${server.port}${extra}) in ${Date.now() - started} ms`);
  return server;
}

/** A throw-away self-signed certificate for 127.0.0.1 (openssl), in a directory of its own. */
function makeCertificate() {
  const dir = mkdtempSync(join(tmpdir(), 'prefork-bench-tls-'));
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`openssl could not make the benchmark's certificate: ${made.stderr}`);
  return dir;
}

async function stopAll(servers) {
  await Promise.all(servers.map((server) => server.stop()));
}

// ---- report ------------------------------------------------------------------------------------

/** Fewer dispatches than this in a round (keep-alive) and the dispatch columns say nothing about it. */
const MIN_DISPATCHES = 100;

function dispatchCell(result) {
  const rounds = result.rounds.filter((round) => round.prefork);
  if (rounds.length === 0) return '—';
  if (median(rounds.map((round) => round.prefork.latencySamples)) < MIN_DISPATCHES) return `— (${integer(median(rounds.map((round) => round.prefork.ordered)))} orders)`;
  const mixed = rounds.some((round) => !round.prefork.latencyWindowFromThisRound) ? '~' : '';
  return `${mixed}${fixed(result.median.dispatchP50Us, 0)} / ${mixed}${fixed(result.median.dispatchP99Us, 0)}`;
}

/** Share of the accepted connections that children took under a chain grant, without an order each. */
function chainedCell(result) {
  return result.rounds.some((round) => round.prefork) ? `${fixed(result.median.chainedPercent, 0)} %` : '—';
}

function serverTable(workload) {
  const rows = Object.entries(workload.servers).map(([name, result]) => {
    const m = result.median;
    return [
      name,
      integer(m.rps),
      ms(m['latencyUs.p50']),
      ms(m['latencyUs.p99']),
      `${integer(m['errors.total'])}${m['errors.status'] > 0 ? ` (${integer(m['errors.status'])} non-2xx)` : ''}`,
      integer(m.backlogMidRound),
      fixed(m.parentCpuMsPer1k, 1),
      fixed(m.parentCpuPercent, 0),
      fixed(m.serverCpuMsPer1k, 0),
      fixed(m.serverCpuPercent, 0),
      fixed(m.contextSwitchesPerRequest, 1),
      mib(m.parentRssBytes),
      mib(m.childRssBytes),
      dispatchCell(result),
      chainedCell(result),
    ];
  });
  return table(['server', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'backlog mid-round', 'parent CPU ms / 1k req', 'parent CPU %', 'all processes CPU ms / 1k req', 'all processes CPU %', 'context switches / req', 'parent RSS MiB', 'child RSS MiB (mean)', 'dispatch p50 / p99 µs', 'chained'], rows);
}

function scalingTable(workload) {
  const rows = Object.entries(workload.servers).map(([name, result]) => {
    const m = result.median;
    return [
      name.replace('prefork-', '').replace('-baseline', ' (baseline)'),
      integer(m.rps),
      ms(m['latencyUs.p50']),
      ms(m['latencyUs.p99']),
      integer(m['errors.total']),
      integer(m.backlogMidRound),
      dispatchCell(result),
      chainedCell(result),
      fixed(m.parentCpuMsPer1k, 1),
      fixed(m.serverCpuMsPer1k, 0),
      fixed(m.contextSwitchesPerRequest, 1),
      fixed(m.acceptNothingPer1k, 1),
      mib(m.parentRssBytes),
      mib(m.childRssBytes),
    ];
  });
  return table(['children', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'backlog mid-round', 'dispatch p50 / p99 µs', 'chained', 'parent CPU ms / 1k req', 'all processes CPU ms / 1k req', 'context switches / req', '"nothing" answers / 1k orders', 'parent RSS MiB', 'child RSS MiB (mean)'], rows);
}

function ratioLines(workload) {
  const lines = Object.entries(workload.ratios).map(([pair, ratio]) => `- ${pair} req/s per round: ${ratio.perRound.map((value) => fixed(value, 2)).join(', ')} (median **${fixed(ratio.median, 2)}**)`);
  const warmups = Object.entries(workload.servers).filter(([, result]) => result.warmupRps?.length > 0);
  if (warmups.length > 0) lines.push(`- warm-up, req/s per ${WARMUP_WINDOW_S}-s window: ${warmups.map(([name, result]) => `${name} ${result.warmupRps.map(integer).join(' → ')}`).join('; ')}`);
  const leadIns = Object.entries(workload.servers).filter(([, result]) => result.leadInRps !== undefined);
  if (leadIns.length > 0) lines.push(`- lead-in round (not recorded), req/s: ${leadIns.map(([name, result]) => `${name} ${integer(result.leadInRps)}`).join(', ')}`);
  return lines;
}

/** The issue's targets against what was measured; only targets whose inputs were measured. */
function evaluateTargets(workloads) {
  const targets = [];
  const verdict = (ok) => (ok ? 'met' : 'missed');
  const close = workloads.close;
  const cluster = close?.ratios['prefork/cluster'];
  if (cluster) targets.push({ target: '(a) prefork >= 1.3x node:cluster req/s', measured: `${fixed(cluster.median, 2)}x`, verdict: verdict(cluster.median >= 1.3) });
  const gunicorn = close?.ratios['prefork/gunicorn'];
  if (gunicorn) targets.push({ target: '(a) prefork >= 1.0x gunicorn req/s', measured: `${fixed(gunicorn.median, 2)}x`, verdict: verdict(gunicorn.median >= 1.0) });
  const keepalive = workloads.keepalive?.ratios['prefork/cluster'];
  if (keepalive) targets.push({ target: '(b) keep-alive: prefork >= 1.0x node:cluster req/s', measured: `${fixed(keepalive.median, 2)}x`, verdict: verdict(keepalive.median >= 1.0) });
  const scaling = workloads.scaling;
  if (scaling) {
    const entries = Object.entries(scaling.servers).filter(([name]) => !name.endsWith('-baseline'));
    const worst = Math.max(...entries.map(([, result]) => result.median.dispatchP99Us));
    targets.push({ target: '(d) dispatch latency p99 <= 200 µs (every child count)', measured: `${fixed(worst, 0)} µs (worst)`, verdict: verdict(worst <= 200) });
    const first = entries[0];
    const last = entries[entries.length - 1];
    if (entries.length > 1) {
      const growth = last[1].median.dispatchP99Us / first[1].median.dispatchP99Us;
      targets.push({
        target: `(d) dispatch p99 at ${last[0].replace('prefork-', '')} children <= 1.1x at ${first[0].replace('prefork-', '')}`,
        measured: `${fixed(growth, 2)}x (${fixed(last[1].median.dispatchP99Us, 0)} vs ${fixed(first[1].median.dispatchP99Us, 0)} µs)`,
        verdict: verdict(growth <= 1.1),
      });
    }
  }
  const preforkCpu = close?.servers.prefork?.median.parentCpuMsPer1k;
  const clusterCpu = close?.servers.cluster?.median.parentCpuMsPer1k;
  if (Number.isFinite(preforkCpu) && Number.isFinite(clusterCpu)) {
    targets.push({ target: '(a) parent CPU per 1,000 connections <= cluster primary', measured: `${fixed(preforkCpu, 1)} vs ${fixed(clusterCpu, 1)} ms (${fixed(preforkCpu / clusterCpu, 2)}x)`, verdict: verdict(preforkCpu <= clusterCpu) });
  }
  return targets;
}

function renderMarkdown(report) {
  const { machine, settings } = report;
  const out = [];
  out.push(`Machine: ${machine.nproc} CPUs (${machine.cpuModel}), ${fixed(machine.memoryBytes / 2 ** 30, 0)} GiB, Linux ${machine.kernel}, Node ${machine.node}, ${report.load.name} ${report.load.version}, gunicorn ${report.gunicorn ?? 'not run'}.`);
  const loadAfter = Object.entries(report.workloads).map(([name, workload]) => `${fixed(workload.loadAverageAfter, 1)} after ${name}`);
  out.push(
    `Command: \`${report.command}\` (${report.startedAt}; CPUs ${fixed(report.cpuBusyPercentBefore, 0)} % busy in the second before; ` +
      `1-minute load average ${fixed(report.loadAverageBefore, 1)} before${loadAfter.length ? `, ${loadAfter.join(', ')}` : ''}, the benchmark's own processes included).`,
  );
  out.push(
    `Settings: ${settings.children} children, ${report.load.name} with ${settings.threads} threads, ` +
      `${settings.rounds} rounds of ${settings.durationS} s per server (medians across rounds), warm-up before each workload: ${WARMUP_WINDOW_S}-s windows until two in a row are each within ${WARMUP_STEADY * 100} % of the one before, at most ${settings.warmupS} s per server${settings.warmupS > 0 ? ', then one unrecorded lead-in round of every server (where a workload has several)' : ''}; prefork protocol: ${report.preforkProtocol ?? 'n/a'}.`,
  );
  for (const [name, workload] of Object.entries(report.workloads)) {
    out.push('', `#### ${workload.title}, ${workload.connections} clients`, '', name === 'scaling' ? scalingTable(workload) : serverTable(workload));
    const ratios = ratioLines(workload);
    if (ratios.length) out.push('', ...ratios);
  }
  if (report.targets.length) {
    out.push('', '#### Targets of issue 6', '', table(['target', 'measured', ''], report.targets.map((t) => [t.target, t.measured, t.verdict])));
  }
  out.push(
    '',
    'Errors: socket errors plus non-2xx responses. Parent CPU: the process that owns the listening socket ' +
      '(prefork parent, cluster primary, the single process itself, gunicorn master), from /proc; in (a) and (d) one request is one connection. ' +
      'Backlog mid-round: connections waiting in the listening socket\'s accept queue halfway through a round (/proc/net/tcp); ' +
      'in keep-alive rounds with more clients than single-slot prefork children, those clients wait there for the whole round. ' +
      '"All processes": parent and children together (200 % = both cores busy); context switches: of all their threads, voluntary and not. Dispatch: prefork\'s own ' +
      'readable-to-accepted latency from `pool.stats()`, which keeps the last 8,192 samples: "~" marks rounds with fewer ' +
      'dispatches than that, whose percentiles include the end of the previous round of the same workload; keep-alive rounds open too few connections to say anything. ' +
      'It covers ordered accepts only. Chained: the share of connections a child accepted by itself under a chain grant (`acceptChain`), without an order each.',
  );
  return out.join('\n');
}

// ---- main --------------------------------------------------------------------------------------

async function main() {
  const settings = readOptions();
  installCleanup();
  const generator = pickLoadGenerator(settings.load);
  if (generator.error) {
    process.stderr.write(`bench: ${generator.error}\n`);
    process.exit(1);
  }
  if (generator.name !== 'wrk') log(`wrk is not installed; using ${generator.name} ${generator.version} instead (figures are not comparable with wrk runs)`);
  const gunicornPath = findExecutable('gunicorn');
  let serverNames = settings.servers;
  if (!gunicornPath && serverNames.includes('gunicorn')) {
    log('gunicorn is not installed (Debian: apt-get install gunicorn); skipping the gunicorn server');
    serverNames = serverNames.filter((name) => name !== 'gunicorn');
  }
  if (settings.baseline) {
    const at = serverNames.indexOf('prefork') + 1;
    serverNames = [...serverNames.slice(0, at), 'prefork-baseline', ...serverNames.slice(at)];
  }
  const startedAt = new Date();
  const nproc = availableParallelism();
  const loadAverageBefore = loadavg()[0];
  const busyBefore = await cpuBusyPercent(1000);
  if (busyBefore > 20) log(`the machine is busy (CPUs ${busyBefore.toFixed(0)} % busy before the start, load average ${loadAverageBefore.toFixed(2)} on ${nproc} CPUs): figures will be noisy`);
  const report = {
    version: 1,
    startedAt: startedAt.toISOString(),
    command: process.env.npm_lifecycle_event === 'bench' ? `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}` : `node bench/run.mjs${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`,
    machine: { nproc, ...machineInfo(), memoryBytes: totalmem(), node: process.version },
    load: { name: generator.name, version: generator.version },
    gunicorn: undefined,
    loadAverageBefore,
    cpuBusyPercentBefore: busyBefore,
    settings,
    preforkProtocol: undefined,
    workloads: {},
    targets: [],
  };
  if (gunicornPath && serverNames.includes('gunicorn')) {
    report.gunicorn = /\(version ([^)]+)\)/.exec(spawnSync(gunicornPath, ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? 'unknown';
  }

  // Workloads whose servers are started for them alone (other settings than the shared ones).
  const DEDICATED = ['scaling', 'https', 'raw', 'io'];
  const sharedWorkloads = settings.workloads.filter((name) => !DEDICATED.includes(name));
  if (sharedWorkloads.length > 0 && serverNames.length > 0) {
    const servers = [];
    try {
      for (const name of serverNames) {
        try {
          servers.push(await startServer(name, settings, gunicornPath));
        } catch (error) {
          log(`skipping ${name}: ${error.message}`);
        }
      }
      report.preforkProtocol = servers.find((server) => server.info.protocol)?.info.protocol;
      for (const name of sharedWorkloads) {
        // Abrupt overload turns away what the children cannot take: meaningful for new connections only.
        const taking = servers.filter((server) => server.name !== 'prefork-abrupt' || name === 'close');
        report.workloads[name] = await runWorkload(name, taking, settings, generator);
      }
    } finally {
      await stopAll(servers);
    }
  }

  if (settings.workloads.includes('https')) {
    // Servers of their own, listening with TLS (a certificate made here): prefork's children do
    // the handshake, cluster's children too (https.createServer). wrk does not verify it.
    const servers = [];
    const tlsDir = makeCertificate();
    try {
      for (const name of serverNames.filter((candidate) => candidate === 'prefork' || candidate === 'cluster')) {
        servers.push(await startServer(name, { ...settings, tlsDir }, gunicornPath));
      }
      report.preforkProtocol ??= servers.find((server) => server.info.protocol)?.info.protocol;
      report.workloads.https = await runWorkload('https', servers, settings, generator);
    } finally {
      await stopAll(servers);
      rmSync(tlsDir, { recursive: true, force: true });
    }
  }

  // (f) prefork on its raw protocol, against node:cluster, a single process and gunicorn as they
  // are in (a); (g) prefork with 64 slots a child against node:cluster and a single process.
  for (const [name, overrides] of [
    ['raw', { protocol: 'raw' }],
    ['io', { slots: 64 }],
  ]) {
    if (!settings.workloads.includes(name)) continue;
    const servers = [];
    try {
      const others = name === 'raw' ? ['cluster', 'single', 'gunicorn'] : ['cluster', 'single'];
      for (const server of serverNames.filter((candidate) => candidate === 'prefork' || candidate === 'prefork-baseline' || others.includes(candidate))) {
        servers.push(await startServer(server, { ...settings, ...overrides }, gunicornPath));
      }
      if (name === 'io') report.preforkProtocol ??= servers.find((server) => server.info.protocol)?.info.protocol;
      report.workloads[name] = await runWorkload(name, servers, settings, generator);
    } finally {
      await stopAll(servers);
    }
  }

  if (settings.workloads.includes('scaling')) {
    const servers = [];
    try {
      for (const children of settings.scalingChildren) {
        servers.push(await startServer(`prefork-${children}`, { ...settings, children }, gunicornPath));
        if (settings.baseline) servers.push(await startServer(`prefork-${children}-baseline`, { ...settings, children }, gunicornPath));
      }
      report.preforkProtocol ??= servers[0]?.info.protocol;
      report.workloads.scaling = await runWorkload('scaling', servers, settings, generator);
    } finally {
      await stopAll(servers);
    }
  }

  report.finishedAt = new Date().toISOString();
  report.targets = evaluateTargets(report.workloads);
  const markdown = renderMarkdown(report);
  report.markdown = markdown;
  const file = settings.out ?? `${RESULTS_DIR}${startedAt.toISOString().replace(/[:.]/g, '-')}.json`;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(report, (key, value) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2)}\n`);
  process.stdout.write(`${markdown}\n`);
  log(`JSON report: ${file} (${((Date.now() - startedAt.getTime()) / 1000).toFixed(0)} s)`);
}

main().catch((error) => {
  process.stderr.write(`bench: ${error?.stack ?? error}\n`);
  killEverything();
  process.exit(1);
});
