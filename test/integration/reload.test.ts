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
