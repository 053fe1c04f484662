import http from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import * as native from '../../../src/native/index.js';
import { nativeFeatures } from '../../../src/native/index.js';
import { fixture, nextHook, startPool, stopPools, tempDir } from '../../helpers.js';
import { fetchAnswer, seen } from './client.js';
import { NO_NGINX, freePort, startNginx, type Nginx } from './nginx.js';
import { skipWithout } from '../../environment.js';

const SKIP = skipWithout(NO_NGINX);

// nginx `proxy_pass` over HTTP/1.1 with upstream keep-alive to prefork HTTP listeners.

let nginx: Nginx | undefined;

afterEach(async () => {
  await nginx?.stop();
  nginx = undefined;
  await stopPools();
});

/** The proxy settings of both tests: HTTP/1.1 upstream connections that nginx keeps and reuses. */
const PROXY_KEEPALIVE = `
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;`;

/** Starts nginx in front of `pool`'s first listener, with `keepalive 8` upstream connections; resolves with nginx's port. */
async function keepAliveProxy(pool: { addresses(): { port: number }[] }): Promise<number> {
  const port = await freePort();
  nginx = await startNginx(
    tempDir('prefork-http-nginx-'),
    `
  upstream prefork {
    server 127.0.0.1:${pool.addresses()[0]!.port};
    keepalive 8;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://prefork;${PROXY_KEEPALIVE}
      proxy_read_timeout 10s;
    }
  }`,
  );
  return port;
}

describe.skipIf(SKIP)('nginx proxy_pass to a prefork HTTP listener', () => {
  it('reuses its keep-alive connections to the children: far fewer connections than requests', async () => {
    // nginx keeps few upstream connections and reuses them (with slots enough even where children
    // do not park; the one-slot case is the next test).
    const pool = await startPool({
      handler: fixture('proto-app.mjs'),
      protocol: 'http',
      children: { start: 2, min: 2, max: 2, slots: 16 },
    });
    const port = await keepAliveProxy(pool);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const requests = 200;
    const upstreamPorts = new Set<number>();
    try {
      const answers = await Promise.all(Array.from({ length: requests }, (_, id) => fetchAnswer(port, `/keepalive?id=${id}`, { agent })));
      answers.forEach((answer, id) => {
        const request = seen(answer);
        expect(request.url).toBe(`/keepalive?id=${id}`);
        expect(request.protocol).toBe('http');
        // Without `Connection: ""` nginx would send `Connection: close` and defeat keep-alive.
        expect(request.headers.connection).toBeUndefined();
        upstreamPorts.add(request.remotePort!);
      });
    } finally {
      agent.destroy();
    }
    const { connections } = pool.stats();
    // At most 4 requests are in flight (the client's sockets), so nginx needs few connections.
    expect(connections.accepted).toBeLessThanOrEqual(16);
    expect(connections.accepted).toBeLessThan(requests / 10);
    expect(upstreamPorts.size).toBeLessThanOrEqual(connections.accepted);
    expect(pool.stats().exits.crashes).toBe(0);
  });
});

describe.skipIf(SKIP || !nativeFeatures().pages)('nginx keep-alive to one-slot children', () => {
  it("needs no slots for nginx's idle upstream connections: they are parked, and no request waits for one to close", async () => {
    // Before parking, 2 children x 1 slot behind `keepalive 8` stalled a request until nginx or
    // keepAliveTimeout closed an idle connection (this test on d9bf4bc: 6.1 s).
    const pool = await startPool({ handler: fixture('proto-app.mjs'), protocol: 'http', children: { start: 2, min: 2, max: 2, slots: 1 } });
    const port = await keepAliveProxy(pool);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const slowest: number[] = [];
    try {
      await Promise.all(
        Array.from({ length: 4 }, async (_, client) => {
          for (let i = 0; i < 50; i++) {
            const startedAt = Date.now();
            expect(seen(await fetchAnswer(port, `/slots?client=${client}&i=${i}`, { agent })).url).toBe(`/slots?client=${client}&i=${i}`);
            slowest.push(Date.now() - startedAt);
          }
        }),
      );
    } finally {
      agent.destroy();
    }
    expect(slowest).toHaveLength(200);
    expect(Math.max(...slowest)).toBeLessThan(1000);
    expect(pool.stats().exits.crashes).toBe(0);
  });
});

describe.skipIf(SKIP)('two prefork instances behind one nginx upstream', () => {
  it('stopping one gracefully under load loses no request: nginx moves to the other', async () => {
    const options = {
      handler: fixture('proto-app.mjs'),
      protocol: 'http',
      children: { start: 2, min: 2, max: 2, slots: 16 },
    } as const;
    const first = await startPool(options);
    const second = await startPool(options);
    const firstPids = new Set(first.children().map((child) => child.pid));
    const secondPids = new Set(second.children().map((child) => child.pid));
    const dir = tempDir('prefork-two-instances-');
    const port = await freePort();
    const accessLog = join(dir, 'access.log');
    // `proxy_next_upstream error timeout`: a request whose upstream connection fails (refused,
    // reset, closed before the response header) is passed to the other server. nginx does that
    // only for idempotent requests once the request was sent (not for POST), and never once the
    // client got a byte. http_502: a server that answers 502 itself. max_fails=1: one failure
    // takes the server out of rotation for fail_timeout.
    nginx = await startNginx(
      dir,
      `
  log_format upstreams '$status $upstream_addr $upstream_status';
  upstream pair {
    server 127.0.0.1:${first.addresses()[0]!.port} max_fails=1 fail_timeout=10s;
    server 127.0.0.1:${second.addresses()[0]!.port} max_fails=1 fail_timeout=10s;
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${port};
    access_log ${accessLog} upstreams;
    location / {
      proxy_pass http://pair;${PROXY_KEEPALIVE}
      proxy_next_upstream error timeout http_502;
      proxy_next_upstream_tries 2;
      proxy_connect_timeout 2s;
      proxy_read_timeout 10s;
    }
  }`,
    );

    // Load: 20 clients each looping GETs that take ~5 ms in the handler, until the first instance
    // has stopped and 300 more requests have been answered, bounded by a deadline.
    const clients = 20;
    const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
    const failures: string[] = [];
    const answeredBy = { first: 0, second: 0 };
    let answered = 0;
    let answeredAfterStop = 0;
    let stopped = false;
    let bothBusy!: () => void;
    const busy = new Promise<void>((resolve) => (bothBusy = resolve));
    const deadline = Date.now() + 15_000;
    const client = async () => {
      while (!(stopped && answeredAfterStop >= 300) && Date.now() < deadline) {
        try {
          const answer = await fetchAnswer(port, '/load?delay=5', { agent });
          const { pid } = seen(answer);
          if (firstPids.has(pid)) answeredBy.first++;
          else if (secondPids.has(pid)) answeredBy.second++;
          else failures.push(`answered by an unknown pid ${pid}`);
          if (answeredBy.first >= 100 && answeredBy.second >= 100) bothBusy();
        } catch (error) {
          failures.push(String(error));
        }
        answered++;
        if (stopped) answeredAfterStop++;
      }
    };
    const load = Array.from({ length: clients }, client);
    try {
      await Promise.race([busy, Promise.all(load)]);
      // A request still running on the first instance: its graceful stop waits for it.
      const arrived = nextHook(first.hooks.onChildLog, (_child, line) => line.message === 'request arrived');
      const inFlight = fetchAnswer(first.addresses()[0]!.port, '/in-flight?delay=300&announce=1');
      await arrived;
      const answeredAtStop = answered;
      await first.stop('taken out of the upstream', { drainMs: 1000 });
      stopped = true;
      expect(seen(await inFlight).url).toBe('/in-flight?delay=300&announce=1');
      await Promise.all(load);
      expect(answered - answeredAtStop).toBeGreaterThanOrEqual(300);
    } finally {
      agent.destroy();
    }

    expect(failures).toEqual([]);
    expect(Date.now()).toBeLessThan(deadline);
    expect(first.state).toBe('stopped');
    expect(first.stats().connections.lost).toBe(0);
    expect(second.stats().exits.crashes).toBe(0);
    // nginx's view: every request ended 200. Those that the stopping instance failed (a kept-alive
    // connection it closed, or a connection still in its backlog when its listener closed; see the
    // README) were passed to the second instance: "$upstream_addr" lists both servers.
    await nginx.stop();
    const log = readFileSync(accessLog, 'utf8').trim().split('\n');
    expect(log.length).toBe(answered);
    expect(log.filter((line) => !line.startsWith('200 '))).toEqual([]);
    const secondAddress = `127.0.0.1:${second.addresses()[0]!.port}`;
    for (const line of log.filter((entry) => entry.includes(', '))) expect(line).toMatch(new RegExp(`, ${secondAddress} \\S+, 200$`));
  });

  it('a stop serves the connections already queued and keeps new ones out: a connect during the stop is refused, never queued and reset', async () => {
    // At the start of a stop the listener stops taking new connections (Linux: new SYNs are
    // dropped, so the client retries), the backlog is drained, and then the listening socket is
    // shut down (SHUT_RD acts on the socket the children share): the retried connect is refused,
    // so a front proxy moves on without having sent its request. Resetting the backlog instead
    // would lose requests already sent.
    const pool = await startPool({ handler: fixture('proto-app.mjs'), protocol: 'http', children: { start: 1, min: 1, max: 1, slots: 1 } });
    const { port, fd } = pool.addresses()[0]!;
    const arrived = nextHook(pool.hooks.onChildLog, (_child, line) => line.message === 'request arrived');
    const inFlight = fetchAnswer(port, '/in-flight?delay=600&announce=1');
    await arrived;
    // The only slot is busy: this one waits in the backlog.
    const queued = fetchAnswer(port, '/queued', { method: 'POST', body: Buffer.from('sent before the stop') });
    const deadline = Date.now() + 5_000;
    while (native.acceptQueueLength(fd) < 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(native.acceptQueueLength(fd)).toBe(1);
    const stopping = pool.stop('test');
    const lateAt = Date.now();
    const late = await fetchAnswer(port, '/late').then(
      (answer) => `answered ${answer.status}`,
      (error: NodeJS.ErrnoException) => error.code ?? String(error),
    );
    expect(late).toBe('ECONNREFUSED');
    // One SYN retry (1 s on Linux) and the refusal, not a stall until the last child exits.
    expect(Date.now() - lateAt).toBeLessThan(3_500);
    expect(seen(await inFlight).url).toBe('/in-flight?delay=600&announce=1');
    const served = seen(await queued);
    expect(served.url).toBe('/queued');
    expect(served.bodyLength).toBe('sent before the stop'.length);
    await stopping;
    expect(pool.stats().connections.accepted).toBe(2);
  });
});
