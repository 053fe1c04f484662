// Server 1: prefork through its public API, in its own process so that the runner can measure the
// parent's CPU time and memory from /proc. Usage (normally started by bench/run.mjs):
//   node bench/servers/prefork.mjs --children 8 [--overload graceful|abrupt] [--protocol auto|http|raw] [--dist DIR] [--slots N] [--tls DIR]
// "auto" uses the HTTP adapter and falls back to the raw protocol (with a minimal HTTP responder
// in handler.mjs) when this build of prefork has no HTTP adapter. `--dist` loads prefork from
// another build (the dist/ directory of another checkout, with its own build/ addon), so that two
// versions of the dispatch path can be measured in alternating rounds.
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseServerArgs, reportFailure, reportReady, serveControl } from './ipc.mjs';

const args = parseServerArgs();
const dist = args.dist ? pathToFileURL(`${resolve(args.dist)}/index.js`).href : new URL('../../dist/index.js', import.meta.url).href;
const { AbruptOverloadPlugin, Pool } = await import(dist);
const children = Number(args.children ?? 8);
const overload = args.overload ?? 'graceful';
const protocolWanted = args.protocol ?? 'auto';
const handler = fileURLToPath(new URL('./handler.mjs', import.meta.url));

// --tls DIR: the listener serves TLS with DIR/cert.pem and DIR/key.pem (the HTTPS workload).
const tls = args.tls ? { cert: resolve(args.tls, 'cert.pem'), key: resolve(args.tls, 'key.pem') } : undefined;

function createPool(protocol) {
  return new Pool({
    handler,
    listen: tls ? { host: '127.0.0.1', port: 0, tls } : '127.0.0.1:0',
    protocol,
    // A fixed number of children: no spawning or retiring during a round.
    children: { start: children, min: children, max: children, minSpare: 0, maxSpare: children, ...(args.slots ? { slots: Number(args.slots) } : {}) },
    plugins: overload === 'abrupt' ? [new AbruptOverloadPlugin({ response: 'http-503' })] : [],
    // Overload warnings would otherwise be written once per overload episode; the servers it is
    // compared with log nothing per connection either.
    logLevel: 'error',
    // Start-up of 128 children on 2 cores takes a while.
    timeouts: { start: 120_000 },
  });
}

let pool;
let protocol;
const control = serveControl({
  getStats: () =>
    pool
      ? { ...pool.stats(), protocol, childPids: pool.children().map((child) => child.pid), perChild: pool.children().map(({ pid, accepted, served }) => ({ pid, accepted, served })) }
      : null,
  stop: async () => {
    if (pool) await pool.stop('benchmark finished');
  },
});

try {
  const candidates = protocolWanted === 'auto' ? ['http', 'raw'] : [protocolWanted];
  let lastError;
  for (const candidate of candidates) {
    const attempt = createPool(candidate);
    try {
      pool = attempt;
      await attempt.start();
      protocol = candidate;
      break;
    } catch (error) {
      lastError = error;
      pool = undefined;
      process.stderr.write(`bench prefork: protocol "${candidate}" failed to start: ${error.message}\n`);
    }
  }
  if (!pool) throw lastError;
  const [address] = pool.addresses();
  reportReady({ port: address.port, protocol, tls: tls !== undefined, children: pool.children().map((child) => child.pid) });
  void pool.wait().then((outcome) => {
    if (outcome.reason !== 'benchmark finished') {
      process.stderr.write(`bench prefork: the pool stopped: ${outcome.reason}\n`);
      void control.shutdown(1);
    }
  });
} catch (error) {
  reportFailure(error);
}
