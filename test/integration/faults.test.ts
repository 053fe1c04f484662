import { once } from 'node:events';
import { existsSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ask, nextHook, startPool, stopPools, tempDir, waitFor } from '../helpers.js';

afterEach(stopPools);

describe('faults the parent survives', () => {
  it('a child whose grandchild keeps its stderr open is reaped at its exit, and stop() does not wait for the grandchild', async () => {
    const pool = await startPool({ children: { start: 1 } });
    const exit = nextHook(pool.hooks.onChildExit);
    const answer = await ask(pool, 'orphan-exit');
    const orphan = Number(/^orphan (\d+)/.exec(answer)?.[1]);
    try {
      const [child, info] = await exit;
      expect(child.id).toBe(1);
      expect(info.code).toBe(1);
      // The replacement serves, and the stop ends although the grandchild still holds the pipe.
      expect(await ask(pool, 'who')).toMatch(/^2 /);
      await pool.stop();
      expect(pool.state).toBe('stopped');
    } finally {
      process.kill(orphan, 'SIGKILL');
    }
  });

  it('a fork that throws is logged once, spawning backs off, and the pool goes on serving', async () => {
    let failing = 3;
    const pool = await startPool({ children: { start: 1, min: 2, max: 4, minSpare: 0 }, tickInterval: 20 });
    // A NUL byte in the environment makes child_process.spawn throw synchronously, as EMFILE would.
    pool.hooks.beforeSpawn.tap('fail', (request) => {
      if (failing > 0) {
        failing--;
        request.env.BROKEN = 'a\u0000b';
      }
      return undefined;
    });
    await waitFor(pool.hooks.onChildReady as never, () => pool.children().filter((child) => child.readyAt > 0).length >= 2);
    expect(failing).toBe(0);
    const errors = pool.logged.lines.filter((line) => line.message === 'could not fork a child; retrying with back-off');
    expect(errors).toHaveLength(1);
    expect(pool.logged.lines.find((line) => line.message === 'forking works again')?.fields).toMatchObject({ failures: 3 });
    expect(await ask(pool, 'who')).toMatch(/^\d+ /);
  });

  it('a stopping pool leaves alone the socket file that a newer server bound at its path', async () => {
    const path = join(tempDir(), 'app.sock');
    const pool = await startPool({ listen: `unix:${path}`, children: { start: 1 } });
    // A restart: the newer server removes the old file and binds its own socket there.
    unlinkSync(path);
    const newer = net.createServer((socket) => socket.end('newer\n'));
    newer.listen(path);
    await once(newer, 'listening');
    try {
      await pool.stop();
      expect(existsSync(path)).toBe(true);
      const client = net.connect(path);
      const [data] = (await once(client, 'data')) as [Buffer];
      expect(data.toString()).toBe('newer\n');
      client.destroy();
    } finally {
      newer.close();
    }
  });
});
