import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { alive, allGone, ask, command, fixture, nextHook, readLine, startPool, stopPools, target, tempDir, waitFor } from '../helpers.js';

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

describe('hung children', () => {
  it('a child whose event loop is stuck is killed at the heartbeat, its connection counted lost, and replaced', async () => {
    const pool = await startPool({ children: { start: 1 }, timeouts: { heartbeat: 300 } });
    const timedOut = nextHook(pool.hooks.onChildTimeout);
    const exited = nextHook(pool.hooks.onChildExit);
    const spinning = net.connect(target(pool));
    spinning.on('error', () => {});
    spinning.write('spin\n');
    const [child, kind] = await timedOut;
    expect({ id: child.id, kind }).toEqual({ id: 1, kind: 'heartbeat' });
    const [, exit] = await exited;
    expect(exit).toMatchObject({ signal: 'SIGKILL', lost: 1 });
    expect(pool.stats().connections.lost).toBe(1);
    expect(await ask(pool, 'who')).toMatch(/^2 /);
    spinning.destroy();
  });

  it('timeouts.connection kills a child holding one connection longer, a wall-clock limit', async () => {
    const pool = await startPool({ children: { start: 1 }, timeouts: { connection: 300 } });
    const startedAt = Date.now();
    const timedOut = nextHook(pool.hooks.onChildTimeout);
    const held = await command(pool, 'hold');
    const closed = once(held.socket, 'close');
    const [, kind] = await timedOut;
    expect(kind).toBe('connection');
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(300);
    await closed;
    // A short connection is untouched.
    expect(await ask(pool, 'who')).toMatch(/^2 /);
  });
});

describe('the parent dies', () => {
  it('its address is free at once for a new server, and every child is gone within the heartbeat, a stuck one too', async () => {
    const parent = spawn(process.execPath, [fixture('pool-script.mjs')], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CHILDREN: '2', HEARTBEAT: '1500' } });
    const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
    const { port, pids } = JSON.parse(line.toString()) as { port: number; pids: number[] };
    const stuck = net.connect({ host: '127.0.0.1', port });
    stuck.on('error', () => {});
    stuck.write('spin\n');
    const stuckPid = Number((await readLine(stuck)).split(' ')[2]);
    parent.kill('SIGKILL');
    await once(parent, 'exit');
    // A restarted server binds the same address while the stuck child still holds the socket.
    const successor = net.createServer();
    await bindWithin(successor, port, 2000);
    expect(alive(stuckPid)).toBe(true);
    successor.close();
    expect(await allGone(pids, 5000)).toEqual([]);
    stuck.destroy();
  });
});

/** Binds `server` to 127.0.0.1:`port`, retrying EADDRINUSE for at most `ms`. */
async function bindWithin(server: net.Server, port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}
