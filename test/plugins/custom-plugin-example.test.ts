import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { PoolPlugin } from '../../src/pool/hooks.js';
import type { Pool } from '../../src/pool/Pool.js';
import { ask, served, startPool, stopPools, waitFor } from '../helpers.js';

afterEach(stopPools);

const exampleDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../examples/custom-plugin');
type PluginClass = new (options?: unknown) => PoolPlugin;

/** Imports a module of the example the way the config loader does: by path, default export. */
async function load(file: string): Promise<PluginClass> {
  const module = (await import(pathToFileURL(resolve(exampleDir, file)).href)) as { default: PluginClass };
  return module.default;
}

/** Who served each of `count` connections, each made once the previous one was reported done. */
async function sequence(pool: Pool, count: number): Promise<number[]> {
  const ids: number[] = [];
  const base = pool.stats().connections.served;
  for (let i = 0; i < count; i++) {
    ids.push(Number((await ask(pool, 'who')).split(' ')[0]));
    await served(pool, base + i + 1);
  }
  return ids;
}

describe('examples/custom-plugin', () => {
  it('LeastRecentlyUsedPlugin sends each connection to the idle child used least recently', async () => {
    const LeastRecentlyUsedPlugin = await load('lru-plugin.mjs');
    const pool = await startPool({ children: { start: 3, max: 3, minSpare: 0 }, plugins: [new LeastRecentlyUsedPlugin()] });
    expect(await sequence(pool, 9)).toEqual([1, 2, 3, 1, 2, 3, 1, 2, 3]);
    expect(pool.children().map((child) => child.served)).toEqual([3, 3, 3]);

    // Without it, the default keeps the oldest idle child hot.
    const plain = await startPool({ children: { start: 3, max: 3, minSpare: 0 } });
    expect(await sequence(plain, 4)).toEqual([1, 1, 1, 1]);
  });

  it('LeastRecentlyUsedPlugin forgets children that exit, so their replacement comes first', async () => {
    const LeastRecentlyUsedPlugin = await load('lru-plugin.mjs');
    const pool = await startPool({ children: { start: 2, max: 2, min: 2, minSpare: 0 }, plugins: [new LeastRecentlyUsedPlugin()] });
    expect(await sequence(pool, 2)).toEqual([1, 2]);
    const exited = new Promise<void>((done) => pool.hooks.onChildExit.tap('test', () => done()));
    await ask(pool, 'retire');
    await exited;
    // Child 1 retired after its second connection; its replacement (3) was never used, so it comes first.
    await waitFor(pool.hooks.onChildIdle as never, () => pool.stats().children.idle === 2);
    const ids = await sequence(pool, 3);
    expect(ids).toEqual([3, 2, 3]);
  });

  it('StatsPlugin logs one stats line every `every` ticks', async () => {
    const StatsPlugin = await load('stats-plugin.mjs');
    const pool = await startPool({ tickInterval: 20, children: { start: 2, max: 2, minSpare: 0 }, plugins: [new StatsPlugin({ every: 3 })] });
    let ticks = 0;
    pool.hooks.onParentTick.tap({ name: 'test-count', stage: -200 }, () => void ticks++);
    await sequence(pool, 2);
    const statsLines = () => pool.logged.lines.filter((line) => line.fields?.event === 'stats');
    // Any 9 consecutive ticks hold exactly 3 multiples of 3. (The counter runs before the
    // plugin's tap, and waitFor resolves once the whole tick is done.)
    const before = statsLines().length;
    const from = ticks;
    await waitFor(pool.hooks.onParentTick as never, () => ticks >= from + 9);
    expect(statsLines().length - before).toBe(3);
    const last = statsLines().at(-1)!;
    expect(last).toMatchObject({ level: 'info', message: 'stats', fields: { connections: { served: 2 }, children: { total: 2 } } });
    expect(last.fields!.servedByChild).toEqual({ 1: expect.any(Number), 2: expect.any(Number) });
    expect(Object.values(last.fields!.servedByChild as Record<string, number>).reduce((sum, n) => sum + n, 0)).toBe(2);
    expect(() => new StatsPlugin({ every: 0 })).toThrow(/StatsPlugin every: expected a positive integer/);
    expect(() => new StatsPlugin({ evry: 2 })).toThrow(/StatsPlugin: unknown option evry/);
  });

  it('prefork.config.json names both modules relative to itself, with options, as the config loader expects', async () => {
    const config = JSON.parse(readFileSync(resolve(exampleDir, 'prefork.config.json'), 'utf8')) as { handler: string; plugins: (string | [string, unknown])[] };
    expect(config.plugins).toEqual(['./lru-plugin.mjs', ['./stats-plugin.mjs', { every: 5 }]]);
    const plugins: PoolPlugin[] = [];
    for (const entry of config.plugins) {
      const [file, options] = Array.isArray(entry) ? entry : [entry, undefined];
      const Plugin = await load(file);
      expect(typeof Plugin.prototype.apply).toBe('function');
      plugins.push(new Plugin(options));
    }
    expect((plugins[1] as unknown as { every: number }).every).toBe(5);
    const handler = (await import(pathToFileURL(resolve(exampleDir, config.handler)).href)) as { request?: unknown };
    expect(typeof handler.request).toBe('function');
  });
});
