import net from 'node:net';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isPreforkError } from '../../src/errors.js';
import type { ChildExitInfo, ChildInfo } from '../../src/pool/Child.js';
import { Pool } from '../../index.js';
import { accepted, alive, allGone, ask, command, fixture, memoryLogger, nextHook, readLine, served, startPool, stopPools, target, tempDir, waitFor } from '../helpers.js';

afterEach(stopPools);

describe('children that die, hang or fail', () => {
  it('a child killed with SIGKILL while idle is reaped and replaced; nothing is lost', async () => {
    const pool = await startPool({ children: { start: 2, min: 2, max: 4, minSpare: 0 } });
    const victim = pool.children()[0]!;
    const exited = nextHook(pool.hooks.onChildExit);
    process.kill(victim.pid, 'SIGKILL');
    const [child, exit] = await exited;
    expect(child.id).toBe(victim.id);
    expect(exit).toMatchObject({ signal: 'SIGKILL', state: 'idle', lost: 0, expected: false });
    await nextHook(pool.hooks.onChildReady);
    expect(pool.children().filter((c) => c.state === 'idle')).toHaveLength(2);
    const answers = await Promise.all(Array.from({ length: 10 }, () => ask(pool, 'who')));
    for (const answer of answers) expect(answer).toMatch(/^\d+ \d+\n$/);
    expect(pool.stats().connections.lost).toBe(0);
  });

  it('a child killed with SIGKILL while busy loses only its own connection', async () => {
    const pool = await startPool({ children: { start: 2, min: 2, max: 4, minSpare: 0 } });
    const held = await command(pool, 'hold');
    const pid = Number(held.answer.split(' ')[2]);
    const other = await command(pool, 'hold');
    const exited = nextHook(pool.hooks.onChildExit);
    const heldClosed = once(held.socket, 'close');
    process.kill(pid, 'SIGKILL');
    const [, exit] = await exited;
    expect(exit).toMatchObject({ state: 'busy', lost: 1 });
    await heldClosed;
    // The other child's connection is untouched.
    other.socket.write('release\n');
    await once(other.socket, 'close');
    expect(pool.stats().connections.lost).toBe(1);
    expect(await ask(pool, 'who')).toMatch(/^\d+ /);
  });

  it('a child killed while accepting: its order is settled and the waiting connection goes to another child', async () => {
    // Two slots: child 1 blocks its event loop inside one connection yet still has a free slot,
    // so it gets the next order and cannot answer it.
    const pool = await startPool({ children: { start: 2, min: 2, max: 2, minSpare: 0, slots: 2 } });
    const blocked = await command(pool, 'block 4000');
    expect(blocked.answer).toMatch(/^blocking 1 /);
    await accepted(pool, 1);
    const ordered = nextHook(pool.hooks.beforeDispatch);
    const client = net.connect(target(pool));
    client.on('error', () => {});
    await ordered;
    await new Promise((resolve) => setImmediate(resolve));
    expect(pool.children()[0]!.state).toBe('accepting');
    const exited = nextHook(pool.hooks.onChildExit);
    process.kill(pool.children()[0]!.pid, 'SIGKILL');
    const [child, exit] = await exited;
    expect(child.id).toBe(1);
    expect(exit.state).toBe('accepting');
    client.write('who\n');
    expect(await readLine(client)).toMatch(/^2 /);
    client.destroy();
  });

  it('a child that ignores the accept order is killed after the accept timeout; the connection is not lost', async () => {
    const pool = await startPool({ children: { start: 2, min: 2, max: 2, minSpare: 0, slots: 2 }, timeouts: { accept: 300 } });
    await command(pool, 'block 5000');
    const timedOut = nextHook(pool.hooks.onChildTimeout);
    const answer = ask(pool, 'who');
    const [child, kind] = await timedOut;
    expect(child.id).toBe(1);
    expect(kind).toBe('accept');
    expect(await answer).toMatch(/^2 /);
    expect(pool.stats().acceptTimeouts).toBe(1);
  });

  it('a handler that throws or rejects: the connection is closed, the error reported, the child carries on', async () => {
    const errors: { where: string; message: string }[] = [];
    const throwing = await startPool({ handler: fixture('throw-first.mjs'), children: { start: 1, min: 1, max: 1, minSpare: 0 } });
    throwing.hooks.onChildError.tap('test', (_child, error) => void errors.push(error));
    expect(await ask(throwing, 'anything')).toBe('');
    const after = await ask(throwing, 'anything');
    expect(after).toMatch(/^1 /);
    const pool = await startPool({ children: { start: 1, min: 1, max: 1, minSpare: 0 } });
    pool.hooks.onChildError.tap('test', (_child, error) => void errors.push(error));
    const before = await ask(pool, 'who');
    expect(await ask(pool, 'reject')).toBe('');
    await served(pool, 2);
    expect(await ask(pool, 'who')).toBe(before);
    expect(errors.map((e) => e.message)).toEqual(['handler threw on purpose', 'handler rejected on purpose']);
    expect(errors.map((e) => e.where)).toEqual(['connection', 'connection']);
    expect(throwing.stats().exits.total + pool.stats().exits.total).toBe(0);
  });

  it('an uncaught exception in a handler callback ends that child only; it is replaced', async () => {
    const pool = await startPool({ children: { start: 2, min: 2, max: 2, minSpare: 0 } });
    const exited = nextHook(pool.hooks.onChildExit);
    const errors = nextHook(pool.hooks.onChildError);
    await ask(pool, 'crash');
    const [, error] = await errors;
    expect(error).toMatchObject({ where: 'uncaught', message: 'uncaught on purpose' });
    const [, exit] = await exited;
    expect(exit.code).toBe(70);
    await nextHook(pool.hooks.onChildReady);
    expect(await ask(pool, 'who')).toMatch(/^\d+ /);
  });

  it('a handler that throws in init or does not parse makes start() fail with PREFORK_ERR_HANDLER_INIT', async () => {
    for (const [file, message] of [
      ['init-throws.mjs', /init failed on purpose/],
      ['syntax-error.mjs', /Unexpected token/],
    ] as const) {
      const error = await startPool({ handler: fixture(file) }).catch((e: unknown) => e);
      expect(isPreforkError(error, 'PREFORK_ERR_HANDLER_INIT')).toBe(true);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).toContain(file);
    }
  });

  it('a handler module without `connection` is refused for the raw protocol', async () => {
    const error = await startPool({ handler: fixture('plain.mjs') }).catch((e: unknown) => e);
    expect(isPreforkError(error, 'PREFORK_ERR_HANDLER_INIT')).toBe(true);
    expect((error as Error).message).toMatch(/connection\(socket, ctx\)/);
  });

  it('loads a CommonJS handler', async () => {
    const pool = await startPool({ handler: fixture('echo.cjs'), children: { start: 1 } });
    const socket = net.connect(target(pool));
    socket.end('ping');
    let text = '';
    socket.on('data', (chunk) => (text += chunk));
    await once(socket, 'close');
    expect(text).toBe('ping');
  });

  it('ctx.logger lines reach the parent logger tagged with the child', async () => {
    const pool = await startPool({ children: { start: 1 } });
    await ask(pool, 'log');
    await served(pool, 1);
    const line = pool.logged.lines.find((l) => l.message === 'hello from the handler');
    expect(line?.fields).toMatchObject({ answer: 42, child: 1 });
  });

  it('a LOG frame whose level is not a level (e.g. "configure") calls nothing on the parent logger and gets the child killed', async () => {
    const calls: unknown[] = [];
    const logged = memoryLogger();
    // The CLI's logger has `configure` (it reopens the log on a named file): a child must never reach it.
    const logger = Object.assign(logged, { configure: (...args: unknown[]) => void calls.push(args) });
    const pool = await startPool({ children: { start: 1 }, logger });
    const exit = nextHook(pool.hooks.onChildExit);
    const forged = net.connect(target(pool));
    forged.on('error', () => {});
    forged.write('forge-log configure /tmp/prefork-forged-log\n');
    const [child, info] = await exit;
    forged.destroy();
    expect(child.id).toBe(1);
    expect(info.signal).toBe('SIGKILL');
    expect(calls).toEqual([]);
    expect(logged.lines.find((line) => line.message.includes('invalid log frame'))?.fields).toMatchObject({ child: 1, problem: expect.stringContaining('configure') });
    // Its replacement serves.
    expect(await ask(pool, 'who')).toMatch(/^2 \d+\n$/);
  });

  it('children start with --no-memory-reducer ahead of the user\'s execArgv; childMemoryReducer: true leaves it out', async () => {
    const argv = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const off = await startPool({ execArgv: ['--stack-size=900'], children: { start: 2, min: 2, max: 2 } });
    expect(off.options.childMemoryReducer).toBe(false);
    for (const child of off.children()) expect(argv(child.pid).slice(1, 3)).toEqual(['--no-memory-reducer', '--stack-size=900']);
    expect(await ask(off, 'who')).toMatch(/^\d+ \d+\n$/);
    const on = await startPool({ childMemoryReducer: true, execArgv: ['--stack-size=900'], children: { start: 1, min: 1, max: 1 } });
    expect(argv(on.children()[0]!.pid).slice(1, 2)).toEqual(['--stack-size=900']);
    expect(argv(on.children()[0]!.pid)).not.toContain('--no-memory-reducer');
  });

  it('a child that asks to be retired finishes its connection, exits and is replaced', async () => {
    const pool = await startPool({ children: { start: 1, min: 1, max: 2, minSpare: 0 } });
    const exited = nextHook(pool.hooks.onChildExit);
    expect(await ask(pool, 'retire')).toMatch(/^retiring 1 /);
    const [child, exit] = await exited;
    expect(child.id).toBe(1);
    expect(exit).toMatchObject({ code: 0, expected: true, lost: 0 });
    expect(await ask(pool, 'who')).toMatch(/^2 /);
  });
});

describe('reloading', () => {
  it('a child busy when a reload commits finishes its connection and exits 0; the new generation serves', async () => {
    const pool = await startPool({ children: { start: 1, min: 1, max: 2, minSpare: 0, maxSpare: 2 }, acceptChain: 0 });
    const busy = await command(pool, 'block 2000');
    expect(busy.answer).toMatch(/^blocking 1 /);
    const order: string[] = [];
    let rest = '';
    busy.socket.on('data', (chunk: Buffer) => {
      rest += chunk.toString('utf8');
      if (rest.includes('unblocked')) order.push('answered');
    });
    const closed = once(busy.socket, 'close');
    const exit = nextHook<[ChildInfo, ChildExitInfo]>(pool.hooks.onChildExit, (child) => child.id === 1, 15_000);
    // The pool commits a reload right after its first new child's onChildReady; the promise
    // resolves after that synchronous step.
    const ready = nextHook(pool.hooks.onChildReady, (child) => child.generation === 2);
    pool.reload();
    await ready;
    expect(pool.generation).toBe(2);
    order.push('committed');
    // The reload committed while child 1 was still in its handler; it is not killed for it.
    await closed;
    expect(rest).toMatch(/unblocked 1 \d+\n$/);
    expect(order).toEqual(['committed', 'answered']);
    const [, info] = await exit;
    expect(info).toMatchObject({ code: 0, signal: null, expected: true, lost: 0 });
    expect(await ask(pool, 'who')).toMatch(/^2 \d+\n$/);
  });
});

describe('stopping', () => {
  it('a stop while start() has not yet bound (its V8 flag check runs first): start() fails, nothing is bound or forked', async () => {
    const path = join(tempDir(), 'never.sock');
    const pool = new Pool({ handler: fixture('control.mjs'), listen: `unix:${path}`, logger: memoryLogger(), children: { start: 1 } });
    const started = pool.start();
    const stopped = pool.stop('test');
    await expect(started).rejects.toMatchObject({ code: 'PREFORK_ERR_POOL_STATE' });
    await stopped;
    expect(existsSync(path)).toBe(false);
    expect(pool.children()).toHaveLength(0);
    expect((await pool.wait()).reason).toBe('test');
  });

  it('a graceful stop lets a busy connection finish, then the pool is stopped with no child left', async () => {
    const pool = await startPool({ children: { start: 2, max: 2, minSpare: 0 } });
    const held = await command(pool, 'hold');
    const pids = pool.children().map((c) => c.pid);
    const stopped = pool.stop('test');
    const exits = nextHook(pool.hooks.onChildExit, (_c, exit) => exit.state === 'stopping' && exit.lost === 0);
    await exits; // the idle child goes at once
    expect(pool.state).toBe('stopping');
    held.socket.write('release\n');
    await stopped;
    expect(pool.state).toBe('stopped');
    expect(pool.stats().connections.lost).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
  });

  it('children still busy after timeouts.stop are killed', async () => {
    const pool = await startPool({ children: { start: 1, max: 1, minSpare: 0 }, timeouts: { stop: 300 } });
    const held = await command(pool, 'hold');
    const timedOut = nextHook(pool.hooks.onChildTimeout);
    const heldClosed = once(held.socket, 'close');
    const stopped = pool.stop('test');
    const [, kind] = await timedOut;
    expect(kind).toBe('stop');
    await stopped;
    await heldClosed;
    expect(pool.stats().connections.lost).toBe(1);
  });

  it('when the parent is killed with SIGKILL, no child is left running after 5 s; busy ones finish first', async () => {
    const parent = spawn(process.execPath, [fixture('pool-script.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
    const { port, pids } = JSON.parse(line.toString()) as { port: number; pids: number[] };
    expect(pids).toHaveLength(3);
    const held = net.connect({ host: '127.0.0.1', port });
    held.write('hold\n');
    const answer = await readLine(held);
    const busyPid = Number(answer.split(' ')[2]);
    parent.kill('SIGKILL');
    await once(parent, 'exit');
    // The idle children notice the closed control channel and exit at once.
    expect(await allGone(pids.filter((pid) => pid !== busyPid), 5000)).toEqual([]);
    // The busy one is still serving its client, then exits when the connection ends.
    expect(alive(busyPid)).toBe(true);
    held.write('release\n');
    await once(held, 'close');
    expect(await allGone([busyPid], 5000)).toEqual([]);
  });
});

describe('load', () => {
  it('2,000 connections from 50 concurrent clients against 8 children are each answered exactly once', async () => {
    const pool = await startPool({ children: { start: 8, min: 8, max: 8, minSpare: 0, maxSpare: 8 } });
    const perClient = 40;
    const answers = new Map<string, number>();
    const byChild = new Map<string, number>();
    await Promise.all(
      Array.from({ length: 50 }, async (_, clientIndex) => {
        for (let i = 0; i < perClient; i++) {
          const token = `${clientIndex}-${i}`;
          const socket = net.connect(target(pool));
          socket.write(`echo\n${token}\n`);
          let text = '';
          socket.on('data', (chunk) => {
            text += chunk.toString();
            if (text.endsWith('\n')) socket.end();
          });
          await once(socket, 'close');
          answers.set(text.trim(), (answers.get(text.trim()) ?? 0) + 1);
        }
      }),
    );
    await served(pool, 2000);
    // An order for the last connection may still be out (a chain grant took it first), its
    // NOTHING on its way: read the counters once every order is answered.
    await waitFor(pool.hooks.onChildIdle as never, () => !pool.children().some((child) => child.state === 'accepting'));
    expect(answers.size).toBe(2000);
    for (const [token, count] of answers) {
      expect(count, token).toBe(1);
      expect(token).toMatch(/^\d+-\d+$/);
    }
    const stats = pool.stats();
    expect(stats.connections.accepted).toBe(2000);
    expect(stats.connections.served).toBe(2000);
    expect(stats.connections.lost).toBe(0);
    // Every connection came from an order answered "accepted" or from a chain grant.
    expect(stats.connections.ordered - stats.acceptNothing + stats.connections.chained).toBe(2000);
    expect(stats.connections.chained).toBeGreaterThan(0);
    expect(stats.exits.crashes).toBe(0);
    void byChild;
  });
});

describe('stopping with a drain', () => {
  for (const drain of [true, false]) {
    it(`connections queued in a Unix socket's backlog are ${drain ? 'served by a draining stop' : 'reset by a plain stop'}`, async () => {
      const { join } = await import('node:path');
      const { tempDir } = await import('../helpers.js');
      const pool = await startPool({ listen: `unix:${join(tempDir(), 'drain.sock')}`, children: { start: 1, min: 1, max: 1, minSpare: 0 } });
      const held = await command(pool, 'hold');
      await accepted(pool, 1);
      // Five clients wait in the backlog behind the busy child (graceful overload).
      const overloaded = nextHook(pool.hooks.onOverload);
      const queued = Array.from({ length: 5 }, () => ask(pool, 'who'));
      await overloaded;
      const stopped = pool.stop('test', { drainMs: drain ? 5000 : 0 });
      held.socket.write('release\n');
      await stopped;
      const answers = await Promise.all(queued);
      if (drain) {
        for (const answer of answers) expect(answer).toMatch(/^1 \d+\n$/);
        expect(pool.stats().connections.served).toBe(6);
      } else {
        for (const answer of answers) expect(answer).toBe('');
      }
    });
  }
});
