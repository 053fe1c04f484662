#!/usr/bin/env node
// Where a server's parent spends its time per connection: a V8 CPU profile of the parent's main
// thread under load, then the system calls of the parent and of one child per connection
// (strace -c). For the dispatch path of prefork, and the same for node:cluster to compare with.
//   node bench/profile.mjs [--server prefork] [--tool cpu-prof,strace] [--duration 5] ...
// Run `npm run build` first (bench/run.mjs does it through `npm run bench`, this script does not).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { summariseCpuProfile } from './lib/cpuprofile.mjs';
import { childPids } from './lib/procfs.mjs';
import { findExecutable, pickLoadGenerator, runLoad, runningLoad } from './lib/load.mjs';
import { fixed, table } from './lib/report.mjs';
import { runningServers, startGunicorn, startNodeServer } from './lib/servers.mjs';

const USAGE = `Usage: node bench/profile.mjs [options]

  --server NAME      prefork (default), prefork-abrupt, cluster, single or gunicorn
  --tool LIST        cpu-prof,strace (default: both; gunicorn: strace only)
  --children N       children (default 8)
  --connections N    concurrent clients (default 16)
  --threads N        wrk threads (default 2)
  --duration S       seconds of load per measurement (default 5)
  --warmup S         seconds of load before measuring (default 2)
  --keepalive        keep-alive requests (default: a new connection per request)
  --path P           request path: / or /cpu (default /)
  --protocol P       prefork protocol: auto, http or raw (default auto)
  --top N            functions listed from the CPU profile (default 25)`;

function fail(message) {
  process.stderr.write(`bench profile: ${message}\n`);
  process.exit(2);
}

function readOptions() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        server: { type: 'string', default: 'prefork' },
        tool: { type: 'string' },
        children: { type: 'string', default: '8' },
        connections: { type: 'string', default: '16' },
        threads: { type: 'string', default: '2' },
        duration: { type: 'string', default: '5' },
        warmup: { type: 'string', default: '2' },
        keepalive: { type: 'boolean', default: false },
        path: { type: 'string', default: '/' },
        protocol: { type: 'string', default: 'auto' },
        top: { type: 'string', default: '25' },
        help: { type: 'boolean' },
      },
    }));
  } catch (error) {
    fail(`${error.message}\n\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const number = (name, min = 1) => {
    const value = Number(values[name]);
    if (!Number.isInteger(value) || value < min) fail(`--${name}: expected an integer >= ${min}, got ${JSON.stringify(values[name])}`);
    return value;
  };
  const servers = ['prefork', 'prefork-abrupt', 'cluster', 'single', 'gunicorn'];
  if (!servers.includes(values.server)) fail(`--server: expected one of ${servers.join(', ')}, got ${JSON.stringify(values.server)}`);
  const tools = (values.tool ?? (values.server === 'gunicorn' ? 'strace' : 'cpu-prof,strace')).split(',');
  for (const tool of tools) if (!['cpu-prof', 'strace'].includes(tool)) fail(`--tool: expected cpu-prof and/or strace, got ${JSON.stringify(tool)}`);
  if (values.server === 'gunicorn' && tools.includes('cpu-prof')) fail('--tool cpu-prof: gunicorn is not a Node process');
  return {
    server: values.server,
    tools,
    children: number('children'),
    connections: number('connections'),
    threads: number('threads'),
    durationS: number('duration'),
    warmupS: number('warmup', 0),
    close: !values.keepalive,
    path: values.path,
    protocol: values.protocol,
    top: number('top'),
  };
}

function killEverything() {
  for (const server of runningServers) server.killNow();
  for (const child of runningLoad) child.kill('SIGKILL');
}

/** Parses the table of `strace -c` into { syscall: { calls, errors } }. */
function parseStraceSummary(text) {
  const counts = {};
  for (const line of text.split('\n')) {
    const match = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?([a-z_0-9]+)\s*$/.exec(line);
    if (match && match[3] !== 'total') counts[match[3]] = { calls: Number(match[1]), errors: Number(match[2] ?? 0) };
  }
  return counts;
}

/** Attaches `strace -c -f` to a process; stop() detaches it and resolves with the parsed summary. */
function attachStrace(strace, pid, file) {
  const child = spawn(strace, ['-c', '-f', '-q', '-o', file, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  runningLoad.add(child);
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise((resolve) => child.on('close', resolve));
  return {
    stop: async () => {
      child.kill('SIGINT');
      await exited;
      runningLoad.delete(child);
      try {
        return parseStraceSummary(readFileSync(file, 'utf8'));
      } catch {
        throw new Error(`strace -p ${pid} left no summary: ${stderr.trim()}`);
      }
    },
  };
}

function syscallTable(counts, connections) {
  const rows = Object.entries(counts)
    .sort((a, b) => b[1].calls - a[1].calls)
    .map(([name, { calls, errors }]) => [name, fixed(calls / connections, 2), errors ? fixed(errors / connections, 2) : '', name === 'futex' ? 'threads (GC, platform) waking each other' : '']);
  const total = Object.entries(counts).reduce((sum, [name, { calls }]) => sum + (name === 'futex' ? 0 : calls), 0);
  rows.push(['**total without futex**', `**${fixed(total / connections, 2)}**`, '', '']);
  return table(['syscall', 'calls / connection', 'errors / connection', ''], rows);
}

async function main() {
  const options = readOptions();
  process.on('exit', killEverything);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      killEverything();
      process.exit(130);
    });
  }
  const generator = pickLoadGenerator('auto');
  if (generator.error) fail(generator.error);
  const strace = findExecutable('strace');
  if (options.tools.includes('strace') && !strace) fail('strace is not installed (Debian: apt-get install strace); use --tool cpu-prof');
  const scratch = mkdtempSync(join(tmpdir(), 'prefork-profile-'));
  let server;
  try {
    const childrenArgs = ['--children', String(options.children)];
    if (options.server.startsWith('prefork')) {
      server = await startNodeServer(options.server, 'prefork.mjs', [...childrenArgs, '--protocol', options.protocol, '--overload', options.server === 'prefork' ? 'graceful' : 'abrupt']);
    } else if (options.server === 'cluster') server = await startNodeServer('cluster', 'cluster.mjs', childrenArgs);
    else if (options.server === 'single') server = await startNodeServer('single', 'single.mjs', []);
    else {
      const gunicorn = findExecutable('gunicorn');
      if (!gunicorn) fail('gunicorn is not installed (Debian: apt-get install gunicorn)');
      server = await startGunicorn('gunicorn', gunicorn, options.children);
    }
    const load = (durationS) => runLoad(generator, { url: server.url(options.path), connections: options.connections, threads: options.threads, durationS, close: options.close });
    const out = [`### ${options.server}: ${options.close ? 'a new connection per request' : 'keep-alive'}, ${options.children} children, ${options.connections} connections, path ${options.path}${server.info.protocol ? `, protocol ${server.info.protocol}` : ''}`];
    if (options.warmupS > 0) await load(options.warmupS);

    if (options.tools.includes('cpu-prof')) {
      const file = join(scratch, 'parent.cpuprofile');
      const before = server.sample();
      await server.command({ type: 'profile-start', intervalUs: 100 }, 'profile-started');
      const result = await load(options.durationS);
      await server.command({ type: 'profile-stop', file }, 'profile');
      const after = server.sample();
      const summary = summariseCpuProfile(file, options.top);
      const connections = options.close ? result.requests : options.connections;
      out.push(
        '',
        `CPU profile of the parent's main thread: ${Math.round(result.rps)} req/s under the profiler; parent CPU (all threads, /proc) ` +
          `${fixed((after.parentCpuNs - before.parentCpuNs) / 1e6 / (result.requests / 1000), 1)} ms per 1,000 requests; ` +
          `JavaScript-visible busy time ${fixed(summary.busyMs, 0)} ms = ${fixed((summary.busyMs * 1000) / connections, 1)} µs per ${options.close ? 'connection' : 'keep-alive connection'}.`,
        '',
        table(['self time (share of busy samples)', 'function'], summary.self.map(([name, share]) => [`${fixed(share * 100, 1)} %`, `\`${name}\``])),
        '',
        table(['inclusive time', 'function'], summary.inclusive.map(([name, share]) => [`${fixed(share * 100, 1)} %`, `\`${name}\``])),
      );
    }

    if (options.tools.includes('strace')) {
      const statsBefore = await server.stats();
      const childPid = pickTracedChild(server, statsBefore, options);
      const parentTrace = attachStrace(strace, server.pid, join(scratch, 'parent.strace'));
      const childTrace = childPid ? attachStrace(strace, childPid, join(scratch, 'child.strace')) : undefined;
      await new Promise((resolve) => setTimeout(resolve, 500));
      const result = await load(options.durationS);
      const parentCounts = await parentTrace.stop();
      const childCounts = childTrace ? await childTrace.stop() : undefined;
      const statsAfter = await server.stats();
      const parentConnections = statsAfter?.connections ? statsAfter.connections.accepted - statsBefore.connections.accepted : result.requests;
      out.push('', `System calls of the parent (pid ${server.pid}, all threads) per connection, over ${parentConnections} connections (${Math.round(result.rps)} req/s under strace):`, '', syscallTable(parentCounts, parentConnections));
      if (childCounts) {
        const { connections, how } = childConnections(server, childPid, statsBefore, statsAfter, childCounts, result, options);
        out.push('', `System calls of one child (pid ${childPid}) per connection, over ${fixed(connections, 0)} connections (${how}):`, '', syscallTable(childCounts, connections));
      }
    }
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    await server?.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** The child to trace: prefork's busiest (it gives orders to the oldest idle child first), else the first. */
function pickTracedChild(server, stats, options) {
  if (options.server === 'single') return undefined;
  if (stats?.perChild?.length) return [...stats.perChild].sort((a, b) => b.accepted - a.accepted)[0].pid;
  return childPids(server.pid).sort((a, b) => a - b)[0];
}

function childConnections(server, pid, before, after, counts, result, options) {
  if (after?.perChild) {
    const delta = (after.perChild.find((child) => child.pid === pid)?.accepted ?? 0) - (before.perChild.find((child) => child.pid === pid)?.accepted ?? 0);
    return { connections: delta, how: "the pool's count of its accepts" };
  }
  if (counts.accept4) return { connections: counts.accept4.calls - counts.accept4.errors, how: 'its successful accept4 calls' };
  // A cluster child receives each connection's handle in one recvmsg from the primary.
  if (options.server === 'cluster' && counts.recvmsg) return { connections: counts.recvmsg.calls - counts.recvmsg.errors, how: 'its recvmsg calls: the primary sends one handle per connection' };
  return { connections: result.requests / options.children, how: 'requests / children (an estimate)' };
}

main().catch((error) => {
  process.stderr.write(`bench profile: ${error?.stack ?? error}\n`);
  killEverything();
  process.exit(1);
});
