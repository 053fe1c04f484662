#!/usr/bin/env node
// What V8's memory reducer costs a prefork pool that pauses between bursts (`childMemoryReducer`):
// two pools in this process, one with the reducer off in its children (prefork's default) and one
// with it on, take turns: a burst of load, a pause, the other pool's burst, a pause. Then both sit
// idle and their children's memory is read, as it is after the warm-ups.
//   node bench/pause.mjs [--children 8] [--rounds 5] [--duration 4] [--pause 15] [--idle 40] [--protocol http|raw]
// Run `npm run build` first. Prints Markdown on stdout.
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { pickLoadGenerator, runLoad } from './lib/load.mjs';
import { rssBytes } from './lib/procfs.mjs';
import { fixed, integer, median, mib, table } from './lib/report.mjs';

const USAGE = 'Usage: node bench/pause.mjs [--children 8] [--rounds 5] [--duration 4] [--pause 15] [--idle 40] [--protocol http|raw]\n';
const { values } = parseArgs({
  options: {
    children: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '4' },
    pause: { type: 'string', default: '15' },
    idle: { type: 'string', default: '40' },
    warmup: { type: 'string', default: '12' },
    protocol: { type: 'string', default: 'http' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const settings = {};
for (const name of ['children', 'rounds', 'duration', 'pause', 'idle', 'warmup']) {
  const value = Number(values[name]);
  if (!Number.isInteger(value) || value < (name === 'pause' || name === 'idle' || name === 'warmup' ? 0 : 1)) {
    process.stderr.write(`pause: --${name}: expected a whole number, got ${JSON.stringify(values[name])}\n${USAGE}`);
    process.exit(2);
  }
  settings[name] = value;
}
if (values.protocol !== 'http' && values.protocol !== 'raw') {
  process.stderr.write(`pause: --protocol: expected http or raw, got ${JSON.stringify(values.protocol)}\n${USAGE}`);
  process.exit(2);
}

const { Pool } = await import(new URL('../dist/index.js', import.meta.url).href);
const handler = fileURLToPath(new URL('./servers/handler.mjs', import.meta.url));
const generator = pickLoadGenerator('auto');
if (generator.error) {
  process.stderr.write(`pause: ${generator.error}\n`);
  process.exit(1);
}

const count = settings.children;
const pools = [];
for (const childMemoryReducer of [false, true]) {
  const pool = new Pool({
    handler,
    listen: '127.0.0.1:0',
    protocol: values.protocol,
    childMemoryReducer,
    children: { start: count, min: count, max: count, minSpare: 0, maxSpare: count },
    logLevel: 'error',
    timeouts: { start: 120_000 },
  });
  await pool.start();
  pools.push({ name: childMemoryReducer ? 'reducer on' : 'reducer off (default)', pool, url: `http://127.0.0.1:${pool.addresses()[0].port}/`, rps: [] });
}
const load = (entry, durationS) => runLoad(generator, { url: entry.url, connections: 16, threads: 2, durationS, close: true });
const childrenRss = (pool) => pool.children().reduce((sum, child) => sum + rssBytes(child.pid), 0);

try {
  for (const entry of pools) if (settings.warmup > 0) await load(entry, settings.warmup);
  // What each pool's children hold after a long load, and once they have been idle a while.
  const afterWarmup = pools.map((entry) => childrenRss(entry.pool));
  await sleep(settings.idle * 1000);
  const idleAfterWarmup = pools.map((entry) => childrenRss(entry.pool));
  const ratios = [];
  for (let round = 0; round < settings.rounds; round++) {
    for (const entry of pools) {
      entry.rps.push((await load(entry, settings.duration)).rps);
      await sleep(settings.pause * 1000);
    }
    ratios.push(pools[0].rps[round] / pools[1].rps[round]);
  }
  await sleep(settings.idle * 1000);
  const idleAfterRounds = pools.map((entry) => childrenRss(entry.pool));
  const perChild = (bytes) => mib(bytes / count);
  const rows = pools.map((entry, index) => [
    entry.name,
    entry.rps.map((rps) => integer(rps)).join(', '),
    integer(median(entry.rps)),
    perChild(afterWarmup[index]),
    perChild(idleAfterWarmup[index]),
    perChild(idleAfterRounds[index]),
  ]);
  process.stdout.write(
    `${count} children, protocol ${values.protocol}, one pool's warm-up (${settings.warmup} s of load) after the other's, ${settings.idle} s idle, then ${settings.rounds} rounds of ${settings.duration} s ` +
      `(16 clients, a new connection per request), each burst followed by ${settings.pause} s of pause, then ${settings.idle} s idle. Memory: the mean VmRSS of a child.\n\n` +
      table(['children', 'req/s per round', 'median', 'RSS MiB after the warm-ups', `after ${settings.idle} s idle`, `after the rounds and ${settings.pause + settings.idle} s idle`], rows) +
      `\n\nReducer off / on, per round: ${ratios.map((ratio) => fixed(ratio, 2)).join(', ')} (median **${fixed(median(ratios), 2)}**).\n`,
  );
} finally {
  for (const entry of pools) await entry.pool.stop('benchmark finished');
}
