// The one HTTP answer every Node server of the benchmark gives, so that they differ only in how
// connections reach the code: the same status line, headers and body bytes as bench/servers/wsgi_app.py.
import { Buffer } from 'node:buffer';

/** The response body. */
export const BODY = Buffer.from('hello\n');

/** The response headers (Node adds Date, Connection and Keep-Alive itself, as it does everywhere). */
export const HEADERS = Object.freeze({ 'Content-Type': 'text/plain', 'Content-Length': String(BODY.length) });

/** The path of the CPU-bound workload. */
export const CPU_PATH = '/cpu';

/** Milliseconds of CPU time the CPU-bound path burns per request. */
export const CPU_MS = 2;

/**
 * Burns `ms` of this process's CPU time (not wall time: a request preempted by another process
 * still does its full share of work, so every server does the same work per request).
 */
export function burnCpu(ms) {
  const start = process.cpuUsage();
  const budget = ms * 1000;
  let spins = 0;
  for (;;) {
    for (let i = 0; i < 2000; i++) spins = (spins * 31 + i) | 0;
    const used = process.cpuUsage(start);
    if (used.user + used.system >= budget) return spins;
  }
}

/** The path of the I/O-bound workload, and how long it waits (a timer: a database call's stand-in). */
export const IO_PATH = '/io';
export const IO_MS = 1;

function answer(res) {
  res.writeHead(200, HEADERS);
  res.end(BODY);
}

/**
 * The request listener of every Node server: `/cpu` burns CPU first, `/io` waits 1 ms (and
 * returns the promise of its answer, which prefork's slots wait for), every path answers "hello\n".
 */
export function respond(req, res) {
  if (req.url === IO_PATH) return new Promise((resolve) => setTimeout(() => resolve(answer(res)), IO_MS));
  if (req.url === CPU_PATH) burnCpu(CPU_MS);
  answer(res);
  return undefined;
}
