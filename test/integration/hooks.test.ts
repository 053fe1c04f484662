import { afterEach, describe, expect, it } from 'vitest';
import { ask, served, startPool, stopPools } from '../helpers.js';

afterEach(stopPools);

describe('plugin errors', () => {
  it('a tap that throws is reported with the hook and plugin names, and the parent carries on', async () => {
    const boom = {
      apply(pool: import('../../src/pool/Pool.js').Pool) {
        pool.hooks.beforeDispatch.tap('BoomPlugin', () => {
          throw new Error('kaboom');
        });
        pool.hooks.beforeShutdown.tapPromise('BoomPlugin', async () => {
          throw new Error('async kaboom');
        });
      },
    };
    const pool = await startPool({ plugins: [boom], children: { start: 1 } });
    // The Bail hook falls through to the default choice: the connection is still served.
    expect(await ask(pool, 'who')).toMatch(/^1 /);
    await served(pool, 1);
    const line = pool.logged.lines.find((l) => l.level === 'error' && /BoomPlugin/.test(l.message));
    expect(line?.message).toBe('plugin "BoomPlugin" failed in hook beforeDispatch: kaboom');
    expect(line?.fields).toMatchObject({ code: 'PREFORK_ERR_PLUGIN', hook: 'beforeDispatch', plugin: 'BoomPlugin' });
    // An async tap that rejects does not keep the pool from stopping.
    await pool.stop('test');
    expect(pool.state).toBe('stopped');
    expect(pool.logged.lines.some((l) => l.message === 'plugin "BoomPlugin" failed in hook beforeShutdown: async kaboom')).toBe(true);
  });
});
