// Server 2: node:cluster in its default scheduling (round-robin on Linux: the primary accepts every
// connection and passes it to a child over IPC), each child running http.createServer with the
// same listener as the others. Node calls the children "workers"; this benchmark says "child".
//   node bench/servers/cluster.mjs --children 8
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { join } from 'node:path';
import { respond } from './respond.mjs';
import { parseServerArgs, reportFailure, reportReady, serveControl } from './ipc.mjs';

if (cluster.isPrimary) {
  const args = parseServerArgs();
  const count = Number(args.children ?? 8);
  let stopping = false;
  serveControl({
    getStats: () => ({ schedulingPolicy: cluster.schedulingPolicy === cluster.SCHED_RR ? 'rr' : 'none', childPids: Object.values(cluster.workers).map((child) => child.process.pid) }),
    stop: () =>
      new Promise((resolve) => {
        stopping = true;
        if (Object.keys(cluster.workers).length === 0) resolve();
        cluster.disconnect(resolve);
      }),
  });
  let port;
  let listening = 0;
  cluster.on('exit', (child, code, signal) => {
    if (!stopping) reportFailure(new Error(`cluster child ${child.process.pid} exited (code ${code}, signal ${signal})`));
  });
  cluster.on('listening', (child, address) => {
    port = address.port;
    if (++listening === count) {
      reportReady({ port, tls: args.tls !== undefined, schedulingPolicy: cluster.schedulingPolicy === cluster.SCHED_RR ? 'rr' : 'none', children: Object.values(cluster.workers).map((c) => c.process.pid) });
    }
  });
  for (let i = 0; i < count; i++) cluster.fork();
} else {
  // listen(0) in cluster children: the primary binds one port and every child shares it. With
  // --tls DIR, https.createServer with DIR/cert.pem and DIR/key.pem (the HTTPS workload).
  const args = parseServerArgs();
  const server = args.tls ? createTlsServer({ cert: readFileSync(join(args.tls, 'cert.pem')), key: readFileSync(join(args.tls, 'key.pem')) }, respond) : createServer(respond);
  server.listen(0, '127.0.0.1');
}
