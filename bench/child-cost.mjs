#!/usr/bin/env node
// CPU time per connection of each prefork child, for one pool under wrk: shows how the cost of a
// connection in one child depends on how many children the pool has and how many are busy.
//   node bench/child-cost.mjs [--children 2,16] [--connections 2] [--duration 4] [--accept-chain 32]
//                             [--accept-chain-children N]
// Each children count gets its own pool (in this process), 1 s of unrecorded load, then a
// measured run. Run `npm run build` first. Prints one Markdown table on stdout.
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { pickLoadGenerator, runLoad } from './lib/load.mjs';
import { contextSwitches, cpuTimeNs } from './lib/procfs.mjs';
import { fixed, integer, table } from './lib/report.mjs';

const { values } = parseArgs({
  options: {
    children: { type: 'string', default: '2,16' },
    connections: { type: 'string', default: '2' },
    duration: { type: 'string', default: '4' },
    'accept-chain': { type: 'string', default: '32' },
    'accept-chain-children': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write('Usage: node bench/child-cost.mjs [--children 2,16] [--connections 2] [--duration 4] [--accept-chain 32] [--accept-chain-children N]\n');
  process.exit(0);
}
const counts = values.children.split(',').map(Number);
const connections = Number(values.connections);
const durationS = Number(values.duration);
const acceptChain = Number(values['accept-chain']);
const chainChildren = values['accept-chain-children'] === undefined ? undefined : Number(values['accept-chain-children']);
if (chainChildren !== undefined && (!Number.isInteger(chainChildren) || chainChildren < 1)) {
  process.stderr.write(`child-cost: --accept-chain-children: expected a whole number >= 1, got ${JSON.stringify(values['accept-chain-children'])}\n`);
  process.exit(2);
}
for (const [name, value] of [['children', counts], ['connections', [connections]], ['duration', [durationS]], ['accept-chain', [acceptChain]]]) {
  if (value.some((n) => !Number.isInteger(n) || n < (name === 'accept-chain' ? 0 : 1))) {
    process.stderr.write(`child-cost: --${name}: expected whole numbers, got ${JSON.stringify(values[name])}\n`);
    process.exit(2);
  }
}

const { Pool } = await import(new URL('../dist/index.js', import.meta.url).href);
const handler = fileURLToPath(new URL('./servers/handler.mjs', import.meta.url));
const generator = pickLoadGenerator('auto');

function sample(pool) {
  return pool.children().map((child) => ({ id: child.id, cpuNs: cpuTimeNs(child.pid), switches: contextSwitches(child.pid), accepted: child.accepted }));
}

const rows = [];
for (const count of counts) {
  const pool = new Pool({
    handler,
    listen: '127.0.0.1:0',
    protocol: 'http',
    acceptChain,
    ...(chainChildren === undefined ? {} : { acceptChainChildren: chainChildren }),
    children: { start: count, min: count, max: count, minSpare: 0, maxSpare: count },
    logLevel: 'error',
    timeouts: { start: 120_000 },
  });
  await pool.start();
  const { port } = pool.addresses()[0];
  const url = `http://127.0.0.1:${port}/`;
  await runLoad(generator, { url, connections, threads: 2, durationS: 1, close: true });
  const before = sample(pool);
  const load = await runLoad(generator, { url, connections, threads: 2, durationS, close: true });
  // Children report chained connections in batches: wait until every child is idle again, so
  // that `accepted` is complete.
  const deadline = Date.now() + 5000;
  while (pool.children().some((child) => child.state !== 'idle') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  const after = sample(pool);
  let cpuNs = 0;
  let served = 0;
  let switches = 0;
  const perChild = [];
  for (const [index, end] of after.entries()) {
    const start = before[index];
    const conns = end.accepted - start.accepted;
    cpuNs += end.cpuNs - start.cpuNs;
    switches += end.switches - start.switches;
    served += conns;
    if (conns >= 50) perChild.push(`${end.id}: ${fixed((end.cpuNs - start.cpuNs) / 1e6 / conns, 3)} (${integer(conns)})`);
  }
  rows.push([String(count), integer(load.rps), fixed(cpuNs / 1e6 / served, 3), fixed(switches / served, 2), perChild.join(', ')]);
  await pool.stop();
}
process.stdout.write(
  `${connections} clients, ${durationS} s, new connection per request, acceptChain ${acceptChain}, acceptChainChildren ${chainChildren ?? 'default'}\n\n` +
    table(['children', 'req/s', 'children CPU ms / connection', 'context switches / connection', 'per child with ≥ 50 connections: ms / connection (connections)'], rows) +
    '\n',
);
