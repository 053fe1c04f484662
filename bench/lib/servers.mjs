// Starting, querying and stopping the servers under test. Every server runs in its own process
// group, so that stopping it (or an interrupted benchmark) also ends every child it forked.
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { childPids, sampleServer } from './procfs.mjs';

const SERVERS_DIR = fileURLToPath(new URL('../servers/', import.meta.url));

/** Servers now running, so that an interrupted benchmark can kill them. */
export const runningServers = new Set();

/** One server under test: its process, port and side channel. */
export class ServerProcess {
  /** @param {{ name: string, kind: 'node' | 'gunicorn', process: import('node:child_process').ChildProcess, port: number, info: object }} fields */
  constructor({ name, kind, process, port, info }) {
    this.name = name;
    this.kind = kind;
    this.process = process;
    this.pid = process.pid;
    this.port = port;
    this.info = info;
    this.exited = process.exitCode !== null || process.signalCode !== null;
    this.exit = new Promise((resolve) => process.once('exit', (code, signal) => {
      this.exited = true;
      resolve({ code, signal });
    }));
    this.#pending = new Map();
    if (kind === 'node') {
      process.on('message', (message) => {
        if (message?.type !== 'stats') return;
        this.#pending.get(message.id)?.(message.stats);
        this.#pending.delete(message.id);
      });
    }
    runningServers.add(this);
  }

  #pending;
  #nextId = 0;

  /** The URL of a path on this server. */
  url(path = '/') {
    return `${this.info?.tls ? 'https' : 'http'}://127.0.0.1:${this.port}${path}`;
  }

  /** The server's own statistics over the side channel (prefork: pool.stats()); null for gunicorn. */
  stats(timeoutMs = 5000) {
    if (this.kind !== 'node' || this.exited || !this.process.connected) return Promise.resolve(null);
    const id = ++this.#nextId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${this.name} did not answer a stats request within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, (stats) => {
        clearTimeout(timer);
        resolve(stats);
      });
      this.process.send({ type: 'stats', id });
    });
  }

  /**
   * Sends a command over the side channel and resolves with the first message of type `answer`.
   * (Used by bench/profile.mjs for profile-start / profile-stop.)
   */
  command(message, answer, timeoutMs = 30_000) {
    if (this.kind !== 'node' || !this.process.connected) return Promise.reject(new Error(`${this.name} has no side channel`));
    return new Promise((resolve, reject) => {
      const onMessage = (reply) => {
        if (reply?.type !== answer) return;
        clearTimeout(timer);
        this.process.off('message', onMessage);
        resolve(reply);
      };
      const timer = setTimeout(() => {
        this.process.off('message', onMessage);
        reject(new Error(`${this.name} did not answer ${message.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.process.on('message', onMessage);
      this.process.send(message);
    });
  }

  /** CPU time, memory and children of the server from /proc. */
  sample() {
    return sampleServer(this.pid);
  }

  /** Stops the server (gracefully first) and makes sure its whole process group is gone. */
  async stop(graceMs = 15_000) {
    if (!this.exited) {
      if (this.kind === 'node' && this.process.connected) this.process.send({ type: 'stop' });
      // gunicorn: INT is its quick shutdown (TERM waits up to 30 s for workers).
      else signalGroup(this.pid, this.kind === 'gunicorn' ? 'SIGINT' : 'SIGTERM');
      const timer = new Promise((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([this.exit, timer]);
    }
    this.killNow();
    runningServers.delete(this);
  }

  /** Kills the server's process group at once (synchronous: usable in an 'exit' handler). */
  killNow() {
    signalGroup(this.pid, 'SIGKILL');
  }
}

function signalGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

/**
 * Starts a Node server script of bench/servers/ and resolves once it reported {type:'ready'}.
 * The script's stdout and stderr go to our stderr (stdout carries the report). `execArgv`: Node
 * options of the server process (e.g. --cpu-prof).
 */
export function startNodeServer(name, script, args, { startTimeoutMs = 180_000, execArgv = [] } = {}) {
  const child = spawn(process.execPath, [...execArgv, SERVERS_DIR + script, ...args], { stdio: ['ignore', 2, 2, 'ipc'], detached: true });
  const pending = new ServerProcess({ name, kind: 'node', process: child, port: 0, info: {} });
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      pending.killNow();
      runningServers.delete(pending);
      reject(error);
    };
    const onExit = (code, signal) => fail(new Error(`${name} exited during start-up (code ${code}, signal ${signal})`));
    const timer = setTimeout(() => fail(new Error(`${name} did not report ready within ${startTimeoutMs} ms`)), startTimeoutMs);
    child.on('error', (error) => fail(new Error(`${name} could not be started: ${error.message}`)));
    child.once('exit', onExit);
    child.on('message', (message) => {
      if (message?.type === 'error') {
        if (settled) process.stderr.write(`bench: ${name} reported an error: ${message.message}\n`);
        fail(new Error(`${name} failed to start: ${message.message}`));
      }
      if (message?.type !== 'ready' || settled) return;
      settled = true;
      clearTimeout(timer);
      child.removeListener('exit', onExit);
      pending.port = message.port;
      pending.info = message;
      resolve(pending);
    });
  });
}

/** A free TCP port on 127.0.0.1 (for gunicorn, which cannot report the port of a ":0" bind). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function httpGetOk(port) {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Starts gunicorn with `children` sync workers and resolves once every worker is up and it answers. */
export async function startGunicorn(name, gunicornPath, children, { startTimeoutMs = 60_000 } = {}) {
  const port = await freePort();
  const args = ['-w', String(children), '-k', 'sync', '-b', `127.0.0.1:${port}`, '-c', `${SERVERS_DIR}gunicorn_conf.py`, '--chdir', SERVERS_DIR, 'wsgi_app:app'];
  const child = spawn(gunicornPath, args, { stdio: ['ignore', 2, 2], detached: true });
  const server = new ServerProcess({ name, kind: 'gunicorn', process: child, port, info: { command: `gunicorn ${args.join(' ')}` } });
  const deadline = Date.now() + startTimeoutMs;
  let spawnError;
  child.on('error', (error) => (spawnError = error));
  while (Date.now() < deadline) {
    if (spawnError || server.exited) {
      server.killNow();
      runningServers.delete(server);
      throw new Error(`${name} could not be started${spawnError ? `: ${spawnError.message}` : ' (it exited; see its output above)'}`);
    }
    if (childPids(server.pid).length >= children && (await httpGetOk(port))) return server;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await server.stop(1000);
  throw new Error(`${name} did not start ${children} workers and answer within ${startTimeoutMs} ms`);
}
