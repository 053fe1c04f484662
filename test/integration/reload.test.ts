import { afterEach, describe, expect, it } from 'vitest';
import { AbruptOverloadPlugin } from '../../plugins/AbruptOverloadPlugin.js';
import { GracefulOverloadPlugin } from '../../plugins/GracefulOverloadPlugin.js';
import type { PoolPlugin } from '../../src/pool/hooks.js';
import { ask, fixture, startPool, stopPools, waitFor } from '../helpers.js';

afterEach(stopPools);

const base = { handler: fixture('control.mjs'), listen: '127.0.0.1:0', children: { start: 1 } };

describe('pool.reload(options)', () => {
  it('builds the plugins afresh from the new options, and new hooks for them', async () => {
    const pool = await startPool({ children: { start: 1 } });
    const hooks = pool.hooks;
    expect(pool.plugin('overload')).toBeInstanceOf(GracefulOverloadPlugin);
    const generation = pool.reload({ ...base, overload: 'abrupt', recycle: { maxChildAge: 60_000 } });
    expect(generation).toBe(2);
    expect(pool.plugin('overload')).toBeInstanceOf(AbruptOverloadPlugin);
    expect(pool.plugin('recycle')).toBeDefined();
    expect(pool.hooks).not.toBe(hooks);
    expect(pool.options.overload).toEqual({ strategy: 'abrupt', retryAfter: 1 });
    await waitFor(pool.hooks.onChildReady as never, () => pool.generation === 2);
    const id = Number((await ask(pool, 'who')).split(' ')[0]);
    expect(pool.children().find((child) => child.id === id)?.generation).toBe(2);
  });

  it('is all or nothing: a plugin that fails to apply changes nothing, and the children keep serving', async () => {
    const pool = await startPool({ children: { start: 1 } });
    const { hooks, plugins, options } = pool;
    const broken: PoolPlugin = {
      apply() {
        throw new Error('cannot tap');
      },
    };
    expect(() => pool.reload({ ...base, overload: 'abrupt', plugins: [broken] })).toThrow(expect.objectContaining({ code: 'PREFORK_ERR_PLUGIN', message: 'plugin a plugin failed to apply: cannot tap' }));
    expect(pool.hooks).toBe(hooks);
    expect(pool.plugins).toBe(plugins);
    expect(pool.options).toBe(options);
    expect(pool.generation).toBe(1);
    expect(pool.children().every((child) => child.generation === 1)).toBe(true);
    expect(await ask(pool, 'who')).toMatch(/^1 /);
  });

  it('restores the previous plugins when the new generation never gets ready', async () => {
    const pool = await startPool({ children: { start: 1 } });
    const { plugins, hooks } = pool;
    pool.reload({ ...base, handler: fixture('init-throws.mjs'), overload: 'abrupt' });
    expect(pool.plugin('overload')).toBeInstanceOf(AbruptOverloadPlugin);
    // The failed child's exit is reported to the restored hooks.
    await waitFor(hooks.onChildExit as never, () => pool.logged.lines.some((line) => line.message === 'reload failed; the previous generation keeps serving'));
    expect(pool.plugins).toBe(plugins);
    expect(pool.plugin('overload')).toBeInstanceOf(GracefulOverloadPlugin);
    expect(pool.options.handler).toBe(fixture('control.mjs'));
    expect(await ask(pool, 'who')).toMatch(/^1 /);
  });
});

describe('a reload is all or nothing', () => {
  it('commits only once the new generation has children.start children ready, so capacity never drops', async () => {
    const pool = await startPool({ children: { start: 3, min: 1, max: 6, minSpare: 0, maxSpare: 6 } });
    const generationAtIdle: number[] = [];
    pool.reload({ ...base, children: { start: 3, min: 1, max: 6, minSpare: 0, maxSpare: 6 }, env: { INIT_DELAY_MS: '50' } });
    // Each new child, once ready, is idle before the commit (generation 1) but the third.
    // Stage -200: recorded before waitFor's own tap (stage -100) looks at the count.
    pool.hooks.onChildIdle.tap({ name: 'test', stage: -200 }, (child) => {
      if (child.generation === 2 && generationAtIdle.length < 3) generationAtIdle.push(pool.generation);
    });
    await waitFor(pool.hooks.onChildIdle as never, () => generationAtIdle.length === 3);
    expect(generationAtIdle).toEqual([1, 1, 2]);
  });

  it('a new generation that cannot be forked in full is abandoned: the old one keeps serving at full size', async () => {
    const pool = await startPool({ children: { start: 3, min: 1, max: 6, minSpare: 0, maxSpare: 6 } });
    await waitFor(pool.hooks.onChildReady as never, () => pool.children().filter((child) => child.readyAt > 0).length === 3);
    const old = pool.children().map((child) => child.id);
    let generationTwo = 0;
    const vetoThird: PoolPlugin = {
      apply(target) {
        target.hooks.beforeSpawn.tap('veto-third', (request) => (request.generation === 2 && ++generationTwo === 3 ? false : undefined));
      },
    };
    pool.reload({ ...base, children: { start: 3, min: 1, max: 6, minSpare: 0, maxSpare: 6 }, plugins: [vetoThird] });
    expect(pool.logged.lines.find((line) => line.message === 'reload failed; the previous generation keeps serving')?.fields?.reason).toMatch(/only 2 of the 3 children/);
    expect(pool.options.plugins).toEqual([]);
    await waitFor(pool.hooks.onChildExit as never, () => pool.children().every((child) => child.generation === 1));
    expect(pool.children().map((child) => child.id)).toEqual(old);
    expect(pool.children().every((child) => child.state === 'idle')).toBe(true);
    expect(await ask(pool, 'who')).toMatch(/^[123] /);
  });
});
