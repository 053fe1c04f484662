#!/usr/bin/env node
/**
 * The soak: the `prefork` command under steady HTTP load while children are killed (SIGKILL),
 * one is frozen (SIGSTOP: the heartbeat must kill it), the config is reloaded (SIGHUP) and the
 * pool grows and shrinks (SIGTTIN / SIGTTOU). At the end it compares what the clients lost with
 * what the pool says its killed children held, and the parent's descriptors and memory with
 * those before the load.
 *
 *   npm run soak [-- --duration 60] [--json]
 *
 * Passes (exit 0) when: every failed request was on a connection a killed child held (failures
 * <= the `lost` the pool logged), the parent holds as many descriptors as before once it is back
 * to its starting children, and its resident memory grew by at most 5 MiB. Prints the figures.
 * The load is Node's own HTTP client (keep-alive, 16 concurrent loops), so that every failure is
 * counted exactly; it needs no load tool.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { duration: { type: 'string', default: '60' }, json: { type: 'boolean', default: false } } });
const durationMs = Number(values.duration) * 1000;
if (!Number.isInteger(durationMs) || durationMs < 5000) {
  process.stderr.write(`soak: --duration: expected whole seconds, at least 5, got ${JSON.stringify(values.duration)}\n`);
  process.exit(64);
}
const START = 4;
const RSS_GROWTH_LIMIT = 5 * 1024 * 1024;

const dir = mkdtempSync(join(tmpdir(), 'prefork-soak-'));
writeFileSync(join(dir, 'app.mjs'), "export function request(req, res) { req.resume(); res.end('ok\\n'); }\n");
const config = { handler: './app.mjs', listen: '127.0.0.1:0', protocol: 'http', children: { start: START, min: START, max: 12, minSpare: 0, maxSpare: 12 }, timeouts: { heartbeat: 1500, stop: 3000 }, tickInterval: 100 };
writeFileSync(join(dir, 'prefork.config.json'), JSON.stringify(config));

const server = spawn(process.execPath, [join(root, 'dist', 'cli.js')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
const log = [];
let stdout = '';
server.stdout.on('data', (chunk) => (stdout += chunk));
let partial = '';
const otherStderr = [];
let serverExit = null;
server.once('exit', (code, signal) => (serverExit = { code, signal }));
server.stderr.on('data', (chunk) => {
  partial += chunk;
  const lines = partial.split('\n');
  partial = lines.pop();
  for (const line of lines) {
    try {
      log.push(JSON.parse(line));
    } catch {
      // A child's own stderr output: not a log line. The last few are kept for a failure's report.
      otherStderr.push(line);
      if (otherStderr.length > 8) otherStderr.shift();
    }
  }
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
async function until(predicate, what, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`soak: timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The parent's children (pids), from /proc: the command's own view is its log. */
function childPids() {
  const pids = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === server.pid && fields[0] !== 'Z') pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}
const fdCount = () => readdirSync(`/proc/${server.pid}/fd`).length;
const rss = () => Number(/^VmRSS:\s*(\d+)/m.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))[1]) * 1024;

try {
  await until(() => /listening on 127\.0\.0\.1:(\d+)/.test(stdout), 'the start line');
  const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(stdout)[1]);
  // Warm up, then take the figures to compare with at the end.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const get = () =>
    new Promise((resolve) => {
      const request = http.get({ host: '127.0.0.1', port, path: '/', agent }, (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode === 200));
        response.on('error', () => resolve(false));
      });
      request.on('error', () => resolve(false));
    });
  for (let i = 0; i < 200; i++) await get();
  await until(() => childPids().length === START, `${START} children`);
  const before = { fds: fdCount(), rss: rss() };

  let loading = true;
  let ok = 0;
  let failed = 0;
  const loops = Array.from({ length: 16 }, async () => {
    while (loading) (await get()) ? ok++ : failed++;
  });
  const actions = { kill: 0, stop: 0, reload: 0, grow: 0, shrink: 0 };
  // The last signal the chaos sent the server, and how many log lines there were before it.
  let lastSignal;
  const signal = (name) => {
    lastSignal = { name, mark: log.length };
    server.kill(name);
  };
  const chaosEnds = Date.now() + durationMs;
  let froze = false;
  let frozenPid = 0;
  for (let step = 0; Date.now() < chaosEnds; step++) {
    await sleep(400 + Math.random() * 400);
    // The frozen child is left to the heartbeat: not killed, nor replaced by a reload (a stopping
    // child answers to timeouts.stop instead), until it is gone.
    const frozenAlive = frozenPid > 0 && childPids().includes(frozenPid);
    const pids = childPids().filter((pid) => pid !== frozenPid);
    const roll = Math.random();
    // One child is frozen first in every run, before any chaos: a child that a resize, a reload or
    // a kill has just made stopping or starting is out of the heartbeat's reach (its stop or start
    // deadline applies), and freezing one of those made this check fail now and then.
    if (!froze && step === 0 && pids.length > 1) {
      frozenPid = pids[0];
      process.kill(frozenPid, 'SIGSTOP');
      froze = true;
      actions.stop++;
    } else if (roll < 0.45 && pids.length > 0) {
      process.kill(pids[Math.floor(Math.random() * pids.length)], 'SIGKILL');
      actions.kill++;
    } else if (frozenAlive) {
      // No reload or resize either while it lives.
      continue;
    } else if (roll < 0.6) {
      signal('SIGHUP');
      actions.reload++;
    } else if (roll < 0.8) {
      signal('SIGTTIN');
      actions.grow++;
    } else {
      signal('SIGTTOU');
      actions.shrink++;
    }
  }
  loading = false;
  await Promise.all(loops);
  agent.destroy();
  // The chaos's last signal is acted on before the final SIGHUP is sent: pending together, the
  // kernel delivers the lower-numbered SIGHUP first, and a SIGTTIN acted on after the final reload
  // would leave one child more than the start. (The server logs every signal it acts on; one it
  // dropped from a full queue never is, so this wait is bounded and does not fail the run.)
  if (lastSignal !== undefined) {
    const acted = { SIGHUP: /^reloading the configuration$|^reload ignored/, SIGTTIN: /\(SIGTTIN\)/, SIGTTOU: /\(SIGTTOU\)/ }[lastSignal.name];
    await until(() => log.slice(lastSignal.mark).some((entry) => acted.test(entry.msg ?? '')), `the server to act on ${lastSignal.name}`, 5000).catch(() => {});
  }
  // Back to the starting size (a reload resets TTIN/TTOU), idle, then the figures again. The HUP
  // may be dropped (the signal queue holds 5, and the chaos may have filled it) or its reload
  // abandoned (a child it started was killed): send it again until one completes.
  for (let attempt = 1; ; attempt++) {
    const mark = log.length;
    server.kill('SIGHUP');
    try {
      await until(() => log.slice(mark).some((entry) => entry.msg === 'reload complete'), 'the last reload', 5000);
      break;
    } catch (error) {
      if (attempt === 4) throw new Error(`${error.message}; the last log lines: ${JSON.stringify(log.slice(-8))}`);
    }
  }
  await until(() => childPids().length === START, `${START} children again`);
  await sleep(1000);
  const after = { fds: fdCount(), rss: rss() };
  const exits = log.filter((entry) => entry.event === 'child.exit');
  const lost = exits.reduce((sum, entry) => sum + (entry.lost ?? 0), 0);
  const heartbeats = log.filter((entry) => entry.event === 'child.timeout' && entry.kind === 'heartbeat').length;
  const report = {
    durationS: durationMs / 1000,
    requests: { ok, failed },
    lostByKilledChildren: lost,
    actions,
    heartbeatKills: heartbeats,
    parent: { fdsBefore: before.fds, fdsAfter: after.fds, rssBeforeMiB: +(before.rss / 2 ** 20).toFixed(1), rssAfterMiB: +(after.rss / 2 ** 20).toFixed(1) },
  };
  const problems = [];
  if (failed > lost) problems.push(`${failed} requests failed but killed children held only ${lost}`);
  if (after.fds !== before.fds) problems.push(`the parent holds ${after.fds} descriptors, ${before.fds} before`);
  if (after.rss - before.rss > RSS_GROWTH_LIMIT) problems.push(`the parent's memory grew by ${((after.rss - before.rss) / 2 ** 20).toFixed(1)} MiB`);
  if (froze && heartbeats === 0) {
    const end = exits.find((entry) => entry['field.pid'] === frozenPid);
    problems.push(`the frozen child was never killed by the heartbeat${end ? ` (it exited in state ${end.state}: ${end.reason ?? 'no reason'}, signal ${end.signal})` : ''}`);
  }
  if (ok === 0) problems.push('no request succeeded');
  report.problems = problems;
  process.stdout.write(values.json ? `${JSON.stringify(report)}\n` : `${JSON.stringify(report, null, 2)}\n`);
  process.exitCode = problems.length === 0 ? 0 : 1;
} catch (error) {
  // Whatever stopped the run, with what the server had said and whether it was still running.
  const state = serverExit ? `the server had exited (code ${serverExit.code}, signal ${serverExit.signal})` : 'the server was running';
  const kept = join(tmpdir(), `prefork-soak-${process.pid}.log`);
  writeFileSync(kept, log.map((entry) => JSON.stringify(entry)).join('\n') + '\n');
  process.stderr.write(`soak: ${error.stack ?? error}\n${state}; its children now: ${JSON.stringify(childPids())}; its last log lines: ${JSON.stringify(log.slice(-12))}; other stderr lines: ${JSON.stringify(otherStderr)}; its whole log: ${kept}\n`);
  process.exitCode = 1;
} finally {
  for (const pid of childPids()) {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // Gone.
    }
  }
  if (serverExit === null) {
    server.kill('SIGTERM');
    await new Promise((resolve) => server.once('exit', resolve));
  }
  rmSync(dir, { recursive: true, force: true });
}
