import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { findExecutable, skipWithout } from '../environment.js';
import { alive, allGone, ask, command, fixture, nextHook, readLine, served, startPool, stopPools, target, tempDir, waitFor } from '../helpers.js';

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
  it('its address is free at once for a new server, idle children exit within a second, and every child is gone within the heartbeat, a stuck one too', async () => {
    const parent = spawn(process.execPath, [fixture('pool-script.mjs')], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CHILDREN: '2', HEARTBEAT: '1500' } });
    const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
    const { port, pids } = JSON.parse(line.toString()) as { port: number; pids: number[] };
    const stuck = net.connect({ host: '127.0.0.1', port });
    stuck.on('error', () => {});
    stuck.write('spin\n');
    const stuckPid = Number((await readLine(stuck)).split(' ')[2]);
    const idle = pids.filter((pid) => pid !== stuckPid);
    expect(idle).toHaveLength(1);
    parent.kill('SIGKILL');
    await once(parent, 'exit');
    // The idle child sees its control channel close and exits at once.
    expect(await allGone(idle, 1000)).toEqual([]);
    // A restarted server binds the same address while the stuck child still holds the socket.
    const successor = net.createServer();
    await bindWithin(successor, port, 2000);
    expect(alive(stuckPid)).toBe(true);
    successor.close();
    // The stuck one is killed by its lifeline once the heartbeat time (1.5 s) has passed.
    expect(await allGone(pids, 5000)).toEqual([]);
    stuck.destroy();
  });

  it("an orphan finishing its connection survives writing to its stderr, whose reader is gone", async () => {
    const parent = spawn(process.execPath, [fixture('pool-script.mjs')], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CHILDREN: '1' } });
    const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
    const { port } = JSON.parse(line.toString()) as { port: number };
    const held = net.connect({ host: '127.0.0.1', port });
    held.write('hold-then-stderr\n');
    expect(await readLine(held)).toMatch(/^held 1 /);
    parent.kill('SIGKILL');
    await once(parent, 'exit');
    held.write('go\n');
    expect(await readLine(held)).toMatch(/^survived 1 /);
    held.destroy();
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

describe('out of file descriptors', () => {
  const PRLIMIT = findExecutable('prlimit');
  const skip = skipWithout(PRLIMIT ? undefined : 'prlimit is missing (Debian: util-linux), so the descriptor-exhaustion test is skipped');

  it.skipIf(skip)('a child that cannot accept (EMFILE) retires at once instead of being ordered in a loop; another child serves', async () => {
    const pool = await startPool({ children: { start: 2, min: 2, max: 4, minSpare: 0 }, acceptChain: 0 });
    const exhausted = pool.children()[0]!;
    // A low limit, so that filling it is quick whatever the machine's default.
    execFileSync(PRLIMIT!, ['--pid', String(exhausted.pid), '--nofile=128:128']);
    const orders: number[] = [];
    pool.hooks.onDispatch.tap('test', (child) => void orders.push(child.id));
    expect(await ask(pool, 'exhaust-fds')).toMatch(new RegExp(`^exhausted \\d+ ${exhausted.id} `));
    await served(pool, 1);
    const exit = nextHook(pool.hooks.onChildExit, (child) => child.id === exhausted.id);
    // Child 1 is the oldest idle one, so it gets the next order, fails to accept, and retires.
    const answer = await ask(pool, 'who');
    expect(answer).toMatch(/^2 /);
    const [child] = await exit;
    expect(child.stopReason).toMatch(/cannot accept: EMFILE/);
    expect(orders.filter((id) => id === exhausted.id)).toHaveLength(2);
    expect(pool.logged.lines.filter((line) => line.message === 'a child could not accept and retires; ordering another')).toHaveLength(1);
    expect(pool.logged.lines.find((line) => line.message === 'children accept again')?.fields).toMatchObject({ retired: 1 });
  });
});

describe('the parent out of file descriptors', () => {
  const PRLIMIT = findExecutable('prlimit');
  const skip = skipWithout(PRLIMIT ? undefined : 'prlimit is missing (Debian: util-linux), so the descriptor-exhaustion test is skipped');

  it.skipIf(skip)('an abrupt overload that cannot accept waits for a child instead of spinning, and says so once', async () => {
    const parent = spawn(process.execPath, [fixture('pool-script.mjs')], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CHILDREN: '1', OVERLOAD: 'abrupt' } });
    let stderr = '';
    parent.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
      const { port } = JSON.parse(line.toString()) as { port: number };
      const held = net.connect({ host: '127.0.0.1', port });
      held.write('hold\n');
      await readLine(held);
      // The parent's lowest free descriptor becomes its limit: its next accept gets EMFILE.
      const open = new Set(readdirSync(`/proc/${parent.pid}/fd`).map(Number));
      let lowestFree = 0;
      while (open.has(lowestFree)) lowestFree++;
      execFileSync(PRLIMIT!, ['--pid', String(parent.pid), `--nofile=${lowestFree}:`]);
      const waiting = [1, 2, 3].map(() => {
        const socket = net.connect({ host: '127.0.0.1', port });
        socket.write('who\n');
        return socket;
      });
      await Promise.all(waiting.map((socket) => once(socket, 'connect')));
      await waitUntil(() => stderr.includes('the parent cannot accept'), 5000).catch((error: Error) => {
        throw new Error(`${error.message}; the pool's stderr:\n${stderr}`);
      });
      // Descriptors back, the child freed: the waiting clients are served, not turned away.
      execFileSync(PRLIMIT!, ['--pid', String(parent.pid), '--nofile=1024:']);
      held.write('release\n');
      const answers = await Promise.all(waiting.map((socket) => readLine(socket)));
      for (const answer of answers) expect(answer).toMatch(/^\d+ \d+$/);
      expect(stderr.split('\n').filter((entry) => entry.includes('the parent cannot accept'))).toHaveLength(1);
      for (const socket of [held, ...waiting]) socket.destroy();
    } finally {
      parent.kill('SIGKILL');
    }
  });
});

/** Polls (bounded) for a condition about another process's output, which no event of ours tells. */
async function waitUntil(predicate: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`not reached within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
