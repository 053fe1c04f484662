#!/usr/bin/env node
// Measures what stopping one of two prefork instances behind nginx costs the clients: wrk sends
// POSTs through nginx to two instances of the `prefork` command, and every few seconds one of them
// is stopped by SIGTERM and started again. nginx does not pass a sent POST to the other server,
// so any upstream connection the stopping instance resets is a 502 for the client.
//
//   node scripts/stop-behind-nginx.mjs [--keepalive] [--stops N] [--duration S] [--cli dist/cli.js]
//
// Prints wrk's summary, then `requests R, non-200 F` from nginx's access log and nginx's error
// lines by kind. Needs nginx and wrk on PATH (Debian: apt-get install nginx-light wrk). Not part
// of `npm test`; the test of the same situation is test/integration/protocols/stop-behind-nginx.test.ts.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    keepalive: { type: 'boolean', default: false },
    stops: { type: 'string', default: '3' },
    duration: { type: 'string', default: '12' },
    cli: { type: 'string', default: new URL('../dist/cli.js', import.meta.url).pathname },
  },
});
const stops = Number(values.stops);
const duration = Number(values.duration);
const cli = resolve(values.cli);

async function freePort() {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

const dir = mkdtempSync(join(tmpdir(), 'prefork-stop-nginx-'));
const delay = (ms) => new Promise((done) => setTimeout(done, ms));
writeFileSync(
  join(dir, 'app.mjs'),
  `export function request(req, res) {
  let length = 0;
  req.on('data', (chunk) => (length += chunk.length));
  req.on('end', () => res.end(\`ok \${length}\\n\`));
}
`,
);
const ports = [await freePort(), await freePort()];
const front = await freePort();

/** Starts instance `index` and resolves once it prints its start line. */
async function start(index) {
  const config = join(dir, `instance-${index}.json`);
  writeFileSync(config, JSON.stringify({ listen: [`127.0.0.1:${ports[index]}`], protocol: 'http', handler: join(dir, 'app.mjs'), children: { start: 4, min: 4, max: 4, slots: 8 }, log: { level: process.env.LOG_LEVEL ?? 'warn' } }));
  const proc = spawn(process.execPath, [cli, '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  await new Promise((done, fail) => {
    proc.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('listening on')) done();
    });
    proc.once('exit', (code) => fail(new Error(`instance ${index} exited with ${code} before listening`)));
  });
  return proc;
}

const instances = [await start(0), await start(1)];
const keep = values.keepalive ? '\n    keepalive 16;' : '';
const keepLocation = values.keepalive ? '\n      proxy_http_version 1.1;\n      proxy_set_header Connection "";' : '';
const root = process.getuid?.() === 0 ? 'user root;\n' : '';
writeFileSync(
  join(dir, 'nginx.conf'),
  `${root}worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 4096; }
http {
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  log_format upstreams '$status $upstream_addr $upstream_status $request_time';
  access_log ${dir}/access.log upstreams;
  upstream pair {
    server 127.0.0.1:${ports[0]} max_fails=1 fail_timeout=1s;
    server 127.0.0.1:${ports[1]} max_fails=1 fail_timeout=1s;${keep}
  }
  server {
    listen 127.0.0.1:${front};
    location / {
      proxy_pass http://pair;${keepLocation}
      proxy_next_upstream error timeout http_502;
      proxy_next_upstream_tries 2;
    }
  }
}
`,
);
const nginx = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: 'inherit' });
await delay(500);
writeFileSync(join(dir, 'post.lua'), 'wrk.method = "POST"\nwrk.body = string.rep("p", 256)\nwrk.headers["Content-Type"] = "application/octet-stream"\n');
const wrk = spawn('wrk', ['-t2', '-c32', `-d${duration}s`, '--latency', '-s', join(dir, 'post.lua'), `http://127.0.0.1:${front}/`], { stdio: ['ignore', 'pipe', 'inherit'] });
let summary = '';
wrk.stdout.on('data', (chunk) => (summary += chunk));
const wrkDone = once(wrk, 'exit');

const step = (duration * 1000) / (stops + 1);
for (let stop = 0; stop < stops; stop++) {
  await delay(step * 0.8);
  const index = stop % 2;
  const startedAt = Date.now();
  instances[index].kill('SIGTERM');
  const [code] = await once(instances[index], 'exit');
  console.log(`stop ${stop + 1}: instance ${index} exited with ${code} after ${Date.now() - startedAt} ms`);
  instances[index] = await start(index);
}
await wrkDone;
console.log(summary.trimEnd());
nginx.kill('SIGQUIT');
await once(nginx, 'exit');
for (const instance of instances) instance.kill('SIGTERM');
await Promise.all(instances.map((instance) => once(instance, 'exit')));

// 499: wrk closed its connections at the end of the run with requests in flight.
const log = readFileSync(join(dir, 'access.log'), 'utf8').trim().split('\n');
const failed = log.filter((line) => !line.startsWith('200 ') && !line.startsWith('499 '));
console.log(`requests ${log.length}, non-200 ${failed.length} (499 at the end of the run not counted)`);
const slow = log.filter((line) => Number(line.split(' ').pop()) >= 0.5);
console.log(`requests that took 0.5 s or more in nginx: ${slow.length}`);
const kinds = new Map();
for (const line of readFileSync(join(dir, 'error.log'), 'utf8').split('\n')) {
  const match = /\[error\] \S+ \*\d+ (.*?), client:/.exec(line);
  if (match) kinds.set(match[1], (kinds.get(match[1]) ?? 0) + 1);
}
for (const [kind, count] of kinds) console.log(`nginx: ${count} x ${kind}`);
rmSync(dir, { recursive: true, force: true });
