// Server 2: node:cluster in its default scheduling (round-robin on Linux: the primary accepts every
// connection and passes it to a child over IPC), each child running http.createServer with the
// same listener as the others. Node calls the children "workers"; this benchmark says "child".
//   node bench/servers/cluster.mjs --children 8
import cluster from 'node:cluster';
import { createServer } from 'node:http';
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
      reportReady({ port, schedulingPolicy: cluster.schedulingPolicy === cluster.SCHED_RR ? 'rr' : 'none', children: Object.values(cluster.workers).map((c) => c.process.pid) });
    }
  });
  for (let i = 0; i < count; i++) cluster.fork();
} else {
  // listen(0) in cluster children: the primary binds one port and every child shares it.
  createServer(respond).listen(0, '127.0.0.1');
}
