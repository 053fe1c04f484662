import http from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { skipWithout } from '../../environment.js';
import { tempDir } from '../../helpers.js';
import { childPids, killServers, project, requireBuild, Server } from '../cli/cli-helpers.js';
import { NO_NGINX, freePort, startNginx, type Nginx } from './nginx.js';

const SKIP = skipWithout(NO_NGINX);

// Two instances of the real `prefork` command behind one nginx, each stopped in turn by a plain
// SIGTERM while POSTs flow, as an operator takes one out of an upstream. nginx does not pass a
// POST it has sent to the other server, so every connection the stopping instance resets (one
// queued in its backlog, an idle keep-alive connection it closes while nginx reuses it) would be
// a 502 for the client. The stop must make that none.

let nginx: Nginx | undefined;

afterEach(async () => {
  await nginx?.stop();
  nginx = undefined;
  await killServers();
});

/** Reads the whole body, then answers `ok <body length> <pid> <x-front header>`. */
const APP = `export function request(req, res) {
  let length = 0;
  req.on('data', (chunk) => (length += chunk.length));
  req.on('end', () => {
    res.setHeader('content-type', 'text/plain');
    res.end(\`ok \${length} \${process.pid} \${req.headers['x-front']}\\n\`);
  });
}
`;

const BODY = Buffer.alloc(256, 'p');

/** One POST to nginx; resolves with the status and body, rejects on a socket error. */
function post(port: number, path: string, agent: http.Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers: { 'content-type': 'application/octet-stream', 'content-length': BODY.length } }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(BODY);
  });
}

describe.skipIf(SKIP)('stopping one of two prefork instances behind nginx', () => {
  it('loses no POST when an instance is stopped by SIGTERM, with and without upstream keep-alive', async () => {
    requireBuild();
    const ports = [await freePort(), await freePort()];
    const config = (port: number) => ({
      listen: [`127.0.0.1:${port}`],
      protocol: 'http',
      handler: './app.mjs',
      children: { start: 4, min: 4, max: 4, slots: 8 },
      log: { level: 'warn' },
    });
    const dir = project({ 'app.mjs': APP, 'a.json': config(ports[0]!), 'b.json': config(ports[1]!) });
    const configs = ['a.json', 'b.json'];
    const start = async (index: number) => {
      const server = new Server(['--config', configs[index]!], dir);
      await server.started();
      return server;
    };
    const servers = [await start(0), await start(1)];

    // `kept`: HTTP/1.1 upstream connections that nginx keeps and reuses; `fresh`: one upstream
    // connection per request, so the stopping instance's backlog is full of sent requests.
    // max_fails=1 fail_timeout=1s: a refused connect takes the server out for a second.
    const front = [await freePort(), await freePort()];
    const accessLog = join(dir, 'access.log');
    const upstreamServers = ports.map((port) => `server 127.0.0.1:${port} max_fails=1 fail_timeout=1s;`).join('\n    ');
    const location = (upstream: string, keepAlive: boolean) => `
    location / {
      proxy_pass http://${upstream};
      proxy_set_header X-Front ${upstream};${keepAlive ? '\n      proxy_http_version 1.1;\n      proxy_set_header Connection "";' : ''}
      proxy_next_upstream error timeout http_502;
      proxy_next_upstream_tries 2;
      proxy_connect_timeout 5s;
      proxy_read_timeout 10s;
    }`;
    nginx = await startNginx(
      tempDir('prefork-stop-nginx-'),
      `
  log_format upstreams '$status $upstream_addr $upstream_status';
  upstream kept {
    ${upstreamServers}
    keepalive 16;
  }
  upstream fresh {
    ${upstreamServers}
  }
  server {
    listen 127.0.0.1:${front[0]};
    access_log ${accessLog} upstreams;${location('kept', true)}
  }
  server {
    listen 127.0.0.1:${front[1]};
    access_log ${accessLog} upstreams;${location('fresh', false)}
  }`,
    );

    // Load: 24 clients (12 per nginx server) each looping POSTs until the stops are over and 500
    // more requests have been answered, bounded by a deadline.
    const agents = front.map(() => new http.Agent({ keepAlive: true, maxSockets: 12 }));
    const failures: string[] = [];
    const answeredBy = new Map<string, number>();
    let answered = 0;
    let done = false;
    const deadline = Date.now() + 40_000;
    const client = async (index: number) => {
      const side = index % 2;
      while (!done && Date.now() < deadline) {
        try {
          const { status, body } = await post(front[side]!, `/post?client=${index}`, agents[side]!);
          const match = /^ok (\d+) (\d+) (kept|fresh)\n$/.exec(body);
          if (status !== 200 || !match || Number(match[1]) !== BODY.length) failures.push(`${side === 0 ? 'kept' : 'fresh'}: ${status} ${body.trim()}`);
          else answeredBy.set(`${match[2]} ${match[3]}`, (answeredBy.get(`${match[2]} ${match[3]}`) ?? 0) + 1);
        } catch (error) {
          failures.push(String(error));
        }
        answered++;
      }
    };
    const load = Array.from({ length: 24 }, (_, index) => client(index));
    /**
     * Resolves once the children of `server` have answered `count` requests through each nginx
     * server (each upstream block keeps its own account of failed servers), bounded by the deadline.
     */
    const servedBy = async (server: Server, count: number) => {
      const pids = childPids(server.pid);
      const served = () => Math.min(...['kept', 'fresh'].map((side) => pids.reduce((sum, pid) => sum + (answeredBy.get(`${pid} ${side}`) ?? 0), 0)));
      while (served() < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      return served();
    };
    const stops: { instance: number; code: number | null; answeredBefore: number }[] = [];
    try {
      // Three stops, each under load on the instance stopped: a, b, a again.
      for (const index of [0, 1, 0]) {
        const server = servers[index]!;
        const answeredBefore = await servedBy(server, 150);
        server.signal('SIGTERM');
        const { code } = await server.exited;
        stops.push({ instance: index, code, answeredBefore });
        // As an operator would, start it again and wait until nginx uses it (its fail_timeout
        // has passed) before taking the other one out.
        servers[index] = await start(index);
        await servedBy(servers[index]!, 150);
      }
      const answeredAtEnd = answered;
      while (answered < answeredAtEnd + 500 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    } finally {
      done = true;
      await Promise.all(load);
      for (const agent of agents) agent.destroy();
    }

    expect(Date.now()).toBeLessThan(deadline);
    for (const stop of stops) {
      expect(stop.code).toBe(0);
      expect(stop.answeredBefore).toBeGreaterThanOrEqual(150);
    }
    // nginx's own account (its error log): a refused connect is what a stopped instance should
    // give (nginx had sent nothing and moved on); a reset or an early close would be a loss.
    const errors = nginx.stderr().split('\n').filter((line) => line.includes('[error]') && !line.includes('connect() failed (111: Connection refused) while connecting to upstream'));
    expect({ failures: failures.map((failure) => failure.split('\n')[0]), errors }).toEqual({ failures: [], errors: [] });
    // nginx's view: every request it finished ended 200, none with a 502 from a reset upstream.
    await nginx.stop();
    nginx = undefined;
    const log = readFileSync(accessLog, 'utf8').trim().split('\n');
    expect(log.length).toBe(answered);
    expect(log.filter((line) => !line.startsWith('200 '))).toEqual([]);
    for (const server of servers) {
      server.signal('SIGTERM');
      expect((await server.exited).code).toBe(0);
    }
  });
});
