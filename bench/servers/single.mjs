// Server 3: one Node process with http.createServer: no dispatch at all, one core at most.
//   node bench/servers/single.mjs
import { createServer } from 'node:http';
import { respond } from './respond.mjs';
import { reportFailure, reportReady, serveControl } from './ipc.mjs';

const server = createServer(respond);
serveControl({
  stop: () =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
});
server.on('error', reportFailure);
server.listen(0, '127.0.0.1', () => reportReady({ port: server.address().port }));
