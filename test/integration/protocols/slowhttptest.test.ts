import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeFeatures } from '../../../src/native/index.js';
import { findExecutable, skipWithout } from '../../environment.js';
import { fixture } from '../../helpers.js';
import { childPids, killServers, project, requireBuild, Server } from '../cli/cli-helpers.js';
import { freePort } from './nginx.js';

// The real attack tool (Debian's slowhttptest) against the `prefork` command at its default
// settings, HTTP, no proxy in front: 200 and 1,000 connections of slowloris (-H), slow POST (-B) and
// slow read (-X) for 12 s each, while a normal client asks for a page every 50 ms on a new connection.
// Every normal request must be answered within 1 s (p99 over the attack), no child may crash, and
// parent and children stay within the stated memory, and so does the kernel's memory for TCP
// (for the whole machine: without `notsentLowat`, the slow read of 1,000 connections fills it).

const SLOWHTTPTEST = findExecutable('slowhttptest');
const SKIP = skipWithout(SLOWHTTPTEST ? (nativeFeatures().pages ? undefined : 'this system shares no pages with children, so HTTP children do not park connections') : 'slowhttptest is not installed (Debian/Ubuntu: apt-get install slowhttptest; .ci/run installs it)');

/** The bounds the README states for this attack at the default settings. */
const CHILD_RSS_BOUND_MIB = 160;
const PARENT_RSS_BOUND_MIB = 100;
const ATTACK_SECONDS = 12;
/** The kernel's TCP memory, all sockets of the machine (`net.ipv4.tcp_mem` allows 2.2 GiB on a 24-GiB one). */
const TCP_MEMORY_BOUND_MIB = 512;
const PAGE_BYTES = Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }));

afterEach(killServers);

/** Resident memory of a process in MiB (0 once it is gone). */
function rssMiB(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** The memory the kernel holds for TCP sockets, all of the machine's, in MiB (/proc/net/sockstat's pages). */
function tcpMemoryMiB(): number {
  const match = /^TCP:.* mem (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'));
  return match ? (Number(match[1]) * PAGE_BYTES) / 2 ** 20 : 0;
}

/** Open sockets of a process (its connections, with the listener and the channel). */
function sockets(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).filter((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:');
      } catch {
        return false;
      }
    }).length;
  } catch {
    return 0;
  }
}

/** One normal request on a new connection: its latency in ms, or the error. */
function normalRequest(port: number): Promise<number> {
  const startedAt = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 5000 }, (response) => {
      response.resume();
      response.on('end', () => (response.statusCode === 200 ? resolve(performance.now() - startedAt) : reject(new Error(`status ${response.statusCode}`))));
    });
    request.on('timeout', () => request.destroy(new Error('no answer within 5 s')));
    request.on('error', reject);
  });
}

const ATTACKS: [string, string[]][] = [
  ['slowloris (-H)', ['-H', '-i', '5', '-u', '/']],
  ['slow POST (-B)', ['-B', '-i', '5', '-s', '8192', '-u', '/upload']],
  ['slow read (-X)', ['-X', '-k', '2', '-n', '1', '-w', '512', '-y', '1024', '-z', '32', '-u', '/big']],
];
const MODES: [string, number, string[]][] = [200, 1000].flatMap((count) => ATTACKS.map(([name, args]): [string, number, string[]] => [name, count, args]));

describe.skipIf(SKIP)('slow clients at the default settings, no front proxy (slowhttptest)', () => {
  it.each(MODES)('%s with %i connections: normal requests are answered within 1 s (p99), no child crashes, memory stays bounded', async (name, count, args) => {
    requireBuild();
    const port = await freePort();
    const dir = project({ 'prefork.config.json': { listen: `127.0.0.1:${port}`, protocol: 'http', handler: fixture('slow-target.mjs') } });
    const server = new Server(['--config', 'prefork.config.json'], dir);
    await server.started();
    const url = (path: string) => `http://127.0.0.1:${port}${path}`;
    const attackArgs = args.map((arg) => (arg.startsWith('/') ? url(arg) : arg));
    const attack = spawn(SLOWHTTPTEST!, [...attackArgs, '-c', String(count), '-r', '250', '-l', String(ATTACK_SECONDS), '-p', '3'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let attackOutput = '';
    attack.stdout!.on('data', (chunk: Buffer) => (attackOutput += chunk.toString()));
    attack.stderr!.on('data', (chunk: Buffer) => (attackOutput += chunk.toString()));
    const attackDone = once(attack, 'close');

    const latencies: number[] = [];
    const failures: string[] = [];
    let mostChildRss = 0;
    let mostParentRss = 0;
    let mostHeld = 0;
    let mostTcpMemory = 0;
    let attacking = true;
    void attackDone.then(() => (attacking = false));
    const deadline = Date.now() + (ATTACK_SECONDS + 10) * 1000;
    // Give the attack 3 s to build up its connections, then measure until it ends.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    while (attacking && Date.now() < deadline) {
      const tick = new Promise((resolve) => setTimeout(resolve, 50));
      await normalRequest(port).then(
        (ms) => latencies.push(ms),
        (error: Error) => failures.push(error.message),
      );
      const children = childPids(server.pid);
      mostParentRss = Math.max(mostParentRss, rssMiB(server.pid));
      mostChildRss = Math.max(mostChildRss, ...children.map(rssMiB));
      mostHeld = Math.max(mostHeld, children.reduce((sum, pid) => sum + sockets(pid), 0));
      mostTcpMemory = Math.max(mostTcpMemory, tcpMemoryMiB());
      await tick;
    }
    await attackDone;
    server.signal('SIGTERM');
    const { code } = await server.exited;

    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? Infinity;
    const summary = { attack: name, connections: count, requests: latencies.length, failures: failures.slice(0, 5), p50: Math.round(latencies[Math.floor(latencies.length / 2)] ?? 0), p99: Math.round(p99), max: Math.round(latencies.at(-1) ?? 0), mostChildRssMiB: Math.round(mostChildRss), mostParentRssMiB: Math.round(mostParentRss), mostHeld, mostTcpMiB: Math.round(mostTcpMemory) };
    // The figures of the README's slow-client section come from these lines.
    console.log(`slowhttptest ${JSON.stringify(summary)}`);
    expect(summary.failures, JSON.stringify(summary)).toEqual([]);
    expect(latencies.length, JSON.stringify(summary)).toBeGreaterThan(50);
    expect(p99, JSON.stringify(summary)).toBeLessThan(1000);
    // The attack really held connections in the children (not turned away).
    expect(mostHeld, `${JSON.stringify(summary)}\n${attackOutput.slice(-2000)}`).toBeGreaterThan(count * 0.3);
    expect(mostChildRss, JSON.stringify(summary)).toBeLessThan(CHILD_RSS_BOUND_MIB);
    expect(mostParentRss, JSON.stringify(summary)).toBeLessThan(PARENT_RSS_BOUND_MIB);
    expect(mostTcpMemory, JSON.stringify(summary)).toBeLessThan(TCP_MEMORY_BOUND_MIB);
    const crashes = server.stderr.filter((line) => line.includes('"child.exit"') && line.includes('unexpectedly'));
    expect(crashes).toEqual([]);
    expect(code).toBe(0);
  }, 60_000);
});
