/**
 * A real nginx for the protocol integration tests: started by the test with a config generated in
 * a temporary directory (pid file, logs and temp paths inside it), in the foreground, and stopped
 * with SIGQUIT. Without nginx the suites are skipped, saying how to install it (under CI=true
 * they fail: the adapters are only proven against the web server they are meant to sit behind).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, mkdirSync, readFileSync, rmSync, watch, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { findExecutable } from '../../environment.js';

/**
 * The nginx binary: `PREFORK_TEST_NGINX` if set (another build), else the first on PATH or in the
 * usual sbin directories; undefined when there is none.
 */
function locateNginx(): string | undefined {
  const chosen = process.env.PREFORK_TEST_NGINX;
  if (!chosen) return findExecutable('nginx', ['/usr/local/nginx/sbin']);
  try {
    accessSync(chosen, constants.X_OK);
    return chosen;
  } catch {
    throw new Error(`PREFORK_TEST_NGINX=${chosen}: not an executable file; the protocol integration tests need nginx`);
  }
}

const NGINX = locateNginx();

/** Why the tests behind nginx cannot run here, or undefined. */
export const NO_NGINX = NGINX ? undefined : 'nginx is not installed (Debian/Ubuntu: apt-get install nginx-light; .ci/run installs it), so the tests behind a real nginx are skipped';

/** The nginx binary; throws when there is none (the suites that call it are skipped then). */
export function findNginx(): string {
  if (!NGINX) throw new Error(NO_NGINX);
  return NGINX;
}

/**
 * The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`), from which it picks the
 * local ports of outgoing connections and of bind(0); 32768 to 60999 where it cannot be read.
 */
function ephemeralPorts(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return [low!, high!];
  } catch {
    // Not Linux: the usual range.
  }
  return [32768, 60999];
}

/**
 * A loopback TCP port that was free a moment ago, for a server that must be given its port
 * before it starts (nginx, the `prefork` command). It is taken below the ephemeral range: a port
 * from bind(0) lies inside it, where any test's client connection (slowhttptest opens a thousand)
 * may take it as its local port before the server binds it. Chosen at random among 10,000 ports
 * and checked by binding it, so tests running side by side rarely pick the same one.
 */
export async function freePort(): Promise<number> {
  const [low] = ephemeralPorts();
  const first = Math.max(1024, low - 10_000);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = first + Math.floor(Math.random() * (low - first));
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!bound) continue;
    server.close();
    await once(server, 'close');
    return port;
  }
  throw new Error(`no free loopback port found in 50 tries from ${first} to ${low - 1}`);
}

/**
 * The part of nginx.conf around the `http` block: one worker (so that per-worker numbers such as
 * `keepalive` are exact), every path inside `dir`, and `user root;` only when the tests run as
 * root, because nginx's workers would otherwise switch to `nobody` and lose access to the
 * temporary directory and its Unix sockets.
 */
export function nginxConfig(dir: string, httpBlock: string): string {
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  return `${user}worker_processes 1;
events { worker_connections 2048; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'client_body')};
  proxy_temp_path ${join(dir, 'proxy')};
  scgi_temp_path ${join(dir, 'scgi')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
${httpBlock}
}
`;
}

/** The SCGI variables of Debian's /etc/nginx/scgi_params, inline so that the config stands alone. */
export const SCGI_PARAMS = `
    scgi_param REQUEST_METHOD  $request_method;
    scgi_param REQUEST_URI     $request_uri;
    scgi_param QUERY_STRING    $query_string;
    scgi_param CONTENT_TYPE    $content_type;
    scgi_param DOCUMENT_URI    $document_uri;
    scgi_param DOCUMENT_ROOT   $document_root;
    scgi_param SCGI            1;
    scgi_param SERVER_PROTOCOL $server_protocol;
    scgi_param REQUEST_SCHEME  $scheme;
    scgi_param HTTPS           $https if_not_empty;
    scgi_param REMOTE_ADDR     $remote_addr;
    scgi_param REMOTE_PORT     $remote_port;
    scgi_param SERVER_PORT     $server_port;
    scgi_param SERVER_NAME     $server_name;`;

function readPid(file: string): number | undefined {
  try {
    return Number(readFileSync(file, 'utf8').trim()) || undefined;
  } catch {
    return undefined;
  }
}

/** A running nginx. */
export interface Nginx {
  readonly process: ChildProcess;
  /** Everything nginx wrote to stderr (its error log) so far. */
  stderr(): string;
  /** SIGQUIT (graceful), then waits for the master to exit; SIGKILL if it is still there after 10 s. */
  stop(): Promise<void>;
}

/** How to start nginx: a config file, and the `-g` directives (none when the file sets them itself). */
export interface NginxStart {
  /** The prefix directory (`-p`); the pid file is looked for here. */
  dir: string;
  /** The config file (`-c`). */
  config: string;
  /** The pid file nginx writes once its listening sockets are open. */
  pidFile: string;
  /** Extra `-g` directives, e.g. `daemon off; pid ...; error_log stderr;`. */
  globals?: string;
}

/**
 * Writes `nginx.conf` for `httpBlock` into `dir` and starts nginx in the foreground on it.
 * Resolves once nginx has written its pid into the pid file, which it does after opening its
 * listening sockets (so connections are queued from then on); rejects with nginx's own message if
 * it exits first.
 */
export function startNginx(dir: string, httpBlock: string): Promise<Nginx> {
  const config = join(dir, 'nginx.conf');
  writeFileSync(config, nginxConfig(dir, httpBlock));
  const pidFile = join(dir, 'nginx.pid');
  return runNginx({ dir, config, pidFile, globals: `daemon off; pid ${pidFile}; error_log stderr;` });
}

/** Checks the config with `nginx -t` first (a clear message for a bad one), then runs nginx. */
export async function runNginx(start: NginxStart): Promise<Nginx> {
  const binary = findNginx();
  mkdirSync(start.dir, { recursive: true });
  const args = ['-p', start.dir, '-c', start.config, ...(start.globals ? ['-g', start.globals] : [])];
  const check = spawnSync(binary, ['-t', ...args], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`nginx -t refused the config ${start.config}:\n${check.stderr}`);
  // `nginx -t` leaves an empty pid file behind; readiness below is the master's pid in it.
  rmSync(start.pidFile, { force: true });

  let stderr = '';
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (text: string) => (stderr += text));
  // once() rejects on 'error' (nginx could not be spawned); that is reported through 'error' below.
  const exited = once(child, 'exit').catch(() => [null, null] as unknown[]);
  const watcher = watch(start.dir);
  try {
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (readPid(start.pidFile) === child.pid) resolve();
      };
      watcher.on('change', check);
      watcher.on('error', reject);
      void exited.then(([code, signal]) => reject(new Error(`nginx exited before it was ready (code ${code}, signal ${signal}):\n${stderr}`)));
      child.on('error', reject);
      check();
    });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  } finally {
    watcher.close();
  }

  return {
    process: child,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.kill('SIGQUIT');
      await exited;
      clearTimeout(killer);
    },
  };
}
