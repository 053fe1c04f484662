/**
 * `prefork status` and `prefork top`: ask a running server's status listener for its scoreboard.
 * The address comes from `--url` or from the config's `status.listen`, the way `prefork check`
 * finds the config.
 */
import { request } from 'node:http';
import { PreforkError, toError } from './errors.js';
import { parseListen, type ListenTarget } from './pool/options.js';

/** Reads `--url`: `127.0.0.1:9740`, `http://127.0.0.1:9740`, `[::1]:9740` or `unix:/path`. */
export function statusTarget(url: string): ListenTarget {
  const text = url.startsWith('http://') ? url.slice('http://'.length).replace(/\/.*$/, '') : url;
  const target = parseListen(text, '--url');
  if (target.kind !== 'tcp' && target.kind !== 'unix') throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `--url: expected host:port or unix:/path, got ${JSON.stringify(url)}`);
  return target;
}

/** The address as `--url` takes it: `127.0.0.1:9740`, `[::1]:9740`, `unix:/path`. */
export function targetText(target: ListenTarget): string {
  if (target.kind === 'unix') return `unix:${target.path}`;
  if (target.kind === 'tcp') return target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
  return target.kind;
}

/** GETs `path` from the status listener at `target`; resolves with the body, rejects naming the address. */
export function fetchStatus(target: ListenTarget, path: string, timeoutMs = 5000): Promise<string> {
  const where = target.kind === 'unix' ? { socketPath: target.path } : target.kind === 'tcp' ? { host: target.host, port: target.port } : undefined;
  if (!where) return Promise.reject(new PreforkError('PREFORK_ERR_OPTION_INVALID', `status: cannot ask ${targetText(target)}`));
  return new Promise((resolve, reject) => {
    const fail = (error: unknown) => reject(new PreforkError('PREFORK_ERR_LISTEN', `could not read the status at ${targetText(target)}: ${toError(error).message} (is the server running, with status.listen set?)`, { cause: error }));
    const req = request({ ...where, path, method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : fail(new Error(`HTTP ${res.statusCode}`))));
      res.on('error', fail);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', fail);
    req.end();
  });
}
