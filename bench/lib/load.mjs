// The load generator: wrk when installed (its Lua `done` hook prints exact figures as JSON),
// otherwise autocannon if it is already installed (never installed by the benchmark).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const WRK_SCRIPT = fileURLToPath(new URL('./wrk-report.lua', import.meta.url));
const PACKAGE_BIN = fileURLToPath(new URL('../../node_modules/.bin/', import.meta.url));

/** The absolute path of an executable on PATH (or in extra directories), or undefined. */
export function findExecutable(name, extraDirs = []) {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), ...extraDirs]) {
    if (!dir) continue;
    const file = join(dir, name);
    if (existsSync(file)) return file;
  }
  return undefined;
}

/**
 * Picks the load generator: `wrk`, else `autocannon` (only if already installed, on PATH or in
 * node_modules/.bin). `wanted` forces one. Returns { name, path, version } or { error }.
 */
export function pickLoadGenerator(wanted = 'auto') {
  const wrk = wanted === 'autocannon' ? undefined : findExecutable('wrk');
  if (wrk) {
    const out = spawnSync(wrk, ['-v'], { encoding: 'utf8' });
    const version = /wrk\s+(\S+)/.exec(`${out.stdout}${out.stderr}`)?.[1] ?? 'unknown';
    return { name: 'wrk', path: wrk, version };
  }
  if (wanted === 'wrk') return { error: 'wrk was asked for (--load wrk) but is not installed (Debian: apt-get install wrk)' };
  const autocannon = findExecutable('autocannon', [PACKAGE_BIN]);
  if (autocannon) {
    const out = spawnSync(autocannon, ['--version'], { encoding: 'utf8' });
    return { name: 'autocannon', path: autocannon, version: `${out.stdout}`.trim().split('\n')[0] || 'unknown' };
  }
  return {
    error:
      'no load generator: wrk is not installed (Debian: apt-get install wrk) and autocannon is not installed either ' +
      '(the benchmark does not install it; npm install -g autocannon would do)',
  };
}

/** Processes of the load generator now running, so an interrupted benchmark can stop them. */
export const runningLoad = new Set();

/**
 * Runs one load round against `url` and resolves with
 * { requests, durationS, rps, latencyUs: { p50, p90, p99, mean, max }, errors: { connect, read, write, timeout, status, total } }.
 * `close` sends `Connection: close` on every request (a new connection per request). A request
 * unanswered after `timeoutS` counts as a timeout error (wrk checks every 2 s, once per check, so
 * this counts stuck clients rather than requests), so that clients left waiting in a backlog for
 * the whole round show up instead of vanishing.
 */
export function runLoad(generator, { url, connections, threads, durationS, close, timeoutS = 1 }) {
  const args =
    generator.name === 'wrk'
      ? ['-t', String(Math.min(threads, connections)), '-c', String(connections), '-d', `${durationS}s`, '--timeout', `${timeoutS}s`, '-s', WRK_SCRIPT, ...(close ? ['-H', 'Connection: close'] : []), url]
      : ['-j', '-n', '-c', String(connections), '-d', String(durationS), '-t', String(timeoutS), '-w', String(Math.max(1, Math.min(threads, connections))), ...(close ? ['-H', 'Connection=close'] : []), url];
  return new Promise((resolve, reject) => {
    const child = spawn(generator.path, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    runningLoad.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', (error) => {
      runningLoad.delete(child);
      reject(new Error(`${generator.name} could not be started: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      runningLoad.delete(child);
      try {
        if (code !== 0) throw new Error(`${generator.name} exited with ${signal ?? `code ${code}`}: ${(stderr || stdout).trim().slice(-400)}`);
        resolve(generator.name === 'wrk' ? parseWrk(stdout) : parseAutocannon(stdout));
      } catch (error) {
        reject(error);
      }
    });
  });
}

function parseWrk(stdout) {
  const line = stdout.split('\n').find((text) => text.startsWith('BENCH_RESULT '));
  if (!line) throw new Error(`wrk printed no result line (is ${WRK_SCRIPT} readable?): ${stdout.trim().slice(-400)}`);
  const raw = JSON.parse(line.slice('BENCH_RESULT '.length));
  const durationS = raw.durationUs / 1e6;
  const { connect, read, write, timeout, status } = raw.errors;
  return {
    requests: raw.requests,
    durationS,
    rps: raw.requests / durationS,
    latencyUs: raw.latencyUs,
    errors: { connect, read, write, timeout, status, total: connect + read + write + timeout + status },
  };
}

function parseAutocannon(stdout) {
  const raw = JSON.parse(stdout.slice(stdout.indexOf('{')));
  const ms = (value) => Math.round((value ?? Number.NaN) * 1000);
  const requests = raw.requests.total;
  const errors = { connect: 0, read: raw.errors - raw.timeouts, write: 0, timeout: raw.timeouts, status: raw.non2xx, total: raw.errors + raw.non2xx };
  return {
    requests,
    durationS: raw.duration,
    rps: requests / raw.duration,
    latencyUs: { p50: ms(raw.latency.p50), p90: ms(raw.latency.p90), p99: ms(raw.latency.p99), mean: ms(raw.latency.mean), max: ms(raw.latency.max) },
    errors,
  };
}
