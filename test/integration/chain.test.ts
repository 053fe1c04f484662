import net from 'node:net';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChildExitInfo, ChildInfo } from '../../src/pool/Child.js';
import type { Pool } from '../../src/pool/Pool.js';
import { nativeFeatures } from '../../src/native/index.js';
import { fetchAnswer } from './protocols/client.js';
import { accepted, ask, command, fixture, nextHook, readLine, served, startPool, stopPools, target, until, waitFor } from '../helpers.js';

afterEach(stopPools);

const ONE_CHILD = { start: 1, min: 1, max: 1, minSpare: 0, maxSpare: 1 };

/**
 * Child 1 holds a connection while `count` clients complete their handshake (so they wait in the
 * kernel's accept queue) and send `who`; then the held connection is released. Resolves with the
 * answers, in client order.
 */
async function queueBehindHeld(pool: Pool, count: number, beforeRelease?: () => void): Promise<string[]> {
  const held = await command(pool, 'hold');
  expect(held.answer).toMatch(/^held 1 /);
  await accepted(pool, 1);
  const clients = await Promise.all(
    Array.from({ length: count }, async () => {
      const socket = net.connect(target(pool));
      await once(socket, 'connect');
      socket.write('who\n');
      return socket;
    }),
  );
  beforeRelease?.();
  held.socket.write('release\n');
  const answers = await Promise.all(clients.map((socket) => readLine(socket)));
  for (const socket of clients) socket.destroy();
  return answers;
}

describe('chain grants (acceptChain)', () => {
  it('a child finishing a connection accepts the waiting ones itself and reports them before its DONE', async () => {
    const pool = await startPool({ children: ONE_CHILD });
    const done: number[] = [];
    pool.hooks.onConnectionDone.tap('test', (_child, info) => void done.push(info.served));
    const answers = await queueBehindHeld(pool, 5);
    for (const answer of answers) expect(answer).toMatch(/^1 \d+$/);
    await served(pool, 6);
    const stats = pool.stats();
    // One order (the held connection); the five queued ones came through its grant.
    expect(stats.connections).toMatchObject({ ordered: 1, accepted: 6, chained: 5, served: 6, lost: 0 });
    expect(stats.acceptNothing).toBe(0);
    // Reports are batched, but every connection still gets its onConnectionDone, in order.
    expect(done).toEqual([1, 2, 3, 4, 5, 6]);
    expect(pool.children()[0]!.state).toBe('idle');
  });

  it.skipIf(!nativeFeatures().pages)('a raw child has a page too (Linux): a chaining child sees the parent\'s orders through its ORDERS word, and a reload still ends its grant', async () => {
    const pool = await startPool({ children: ONE_CHILD });
    const pid = pool.children()[0]!.pid;
    expect(readFileSync(`/proc/${pid}/maps`, 'utf8')).toContain('memfd:prefork-child-page');
    const reload = () => void pool.reload({ handler: fixture('control.mjs'), listen: '127.0.0.1:0', children: ONE_CHILD, env: { INIT_DELAY_MS: '400' } });
    await queueBehindHeld(pool, 3, reload);
    await served(pool, 4);
    expect(pool.stats().connections).toMatchObject({ ordered: 4, chained: 0 });
  });

  it('acceptChain: 0 keeps one order per accept', async () => {
    const pool = await startPool({ children: ONE_CHILD, acceptChain: 0 });
    const answers = await queueBehindHeld(pool, 5);
    for (const answer of answers) expect(answer).toMatch(/^1 \d+$/);
    await served(pool, 6);
    expect(pool.stats().connections).toMatchObject({ ordered: 6, accepted: 6, chained: 0, served: 6 });
  });

  it('chainBudget lowers the grant per order; the child then waits for a new order', async () => {
    const pool = await startPool({ children: ONE_CHILD });
    // Collected, then asserted: what a tap throws is caught and logged by the pool.
    const asked: [number, number][] = [];
    pool.hooks.chainBudget.tap('test', (count, child) => {
      asked.push([count, child.id]);
      return 2;
    });
    const answers = await queueBehindHeld(pool, 5);
    expect(answers).toHaveLength(5);
    await served(pool, 6);
    // Order 1 (held) + 2 chained; DONE; order 2 + 2 chained; DONE when nothing is left.
    expect(pool.stats().connections).toMatchObject({ ordered: 2, chained: 4, accepted: 6 });
    expect(asked).toEqual([
      [32, 1],
      [32, 1],
    ]);
  });

  it('acceptChainChildren limits how many children hold a grant that they use', async () => {
    const TWO = { start: 2, min: 2, max: 2, minSpare: 0, maxSpare: 2 };
    for (const limit of [1, 2]) {
      const pool = await startPool({ children: TWO, acceptChainChildren: limit });
      // chainBudget is asked only when a grant is possible, so it lists the children that got one.
      const granted: number[] = [];
      pool.hooks.chainBudget.tap('test', (count, child) => {
        granted.push(child.id);
        return count;
      });
      const first = await command(pool, 'hold');
      const second = await command(pool, 'hold');
      expect(first.answer).toMatch(/^held 1 /);
      expect(second.answer).toMatch(/^held 2 /);
      expect(granted).toEqual(limit === 1 ? [1] : [1, 2]);
      first.socket.destroy();
      second.socket.destroy();
      await served(pool, 2);
      await pool.stop();
    }
  });

  it('a child that only holds a long connection stops counting against acceptChainChildren', async () => {
    const pool = await startPool({ children: { start: 2, min: 2, max: 2, minSpare: 0, maxSpare: 2 }, acceptChainChildren: 1 });
    const granted: number[] = [];
    pool.hooks.chainBudget.tap('test', (count, child) => {
      granted.push(child.id);
      return count;
    });
    const first = await command(pool, 'hold');
    expect(granted).toEqual([1]);
    // What is measured is time itself: a grant unused for 250 ms no longer counts.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const second = await command(pool, 'hold');
    expect(second.answer).toMatch(/^held 2 /);
    expect(granted).toEqual([1, 2]);
    first.socket.destroy();
    second.socket.destroy();
    await served(pool, 2);
  });

  it('a tap cannot raise a grant that an earlier tap lowered', async () => {
    const pool = await startPool({ children: ONE_CHILD });
    pool.hooks.chainBudget.tap('cap', () => 2);
    pool.hooks.chainBudget.tap('greedy', () => 200);
    await queueBehindHeld(pool, 5);
    await served(pool, 6);
    expect(pool.stats().connections).toMatchObject({ ordered: 2, chained: 4, accepted: 6 });
  });

  it('chained connections are reported within 100 ms even while the child is busy with a long one', async () => {
    const pool = await startPool({ children: ONE_CHILD });
    const held = await command(pool, 'hold');
    await accepted(pool, 1);
    // Behind it: a quick one, then one that holds on.
    const quick = net.connect(target(pool));
    await once(quick, 'connect');
    quick.write('who\n');
    const long = net.connect(target(pool));
    await once(long, 'connect');
    const longAnswer = readLine(long);
    long.write('hold\n');
    held.socket.write('release\n');
    expect(await readLine(quick)).toMatch(/^1 /);
    expect(await longAnswer).toMatch(/^held 1 /);
    // The held and the quick connection are done; the child still serves the long one.
    await served(pool, 2, 2000);
    expect(pool.stats().connections).toMatchObject({ ordered: 1, chained: 2, accepted: 3, served: 2, active: 1 });
    expect(pool.children()[0]!.state).toBe('busy');
    long.write('release\n');
    await served(pool, 3);
    quick.destroy();
    long.destroy();
  });

  it('with several listeners, a connection on another listener ends the grant and is served next', async () => {
    const pool = await startPool({ children: ONE_CHILD, listen: ['127.0.0.1:0', '127.0.0.1:0'] });
    const held = await command(pool, 'hold', 0);
    await accepted(pool, 1);
    const order: string[] = [];
    // Resolves once connected (and the request sent), with the answer still to come.
    const ask = async (index: number, name: string) => {
      const socket = net.connect(target(pool, index));
      await once(socket, 'connect');
      const answer = readLine(socket).then((line) => {
        order.push(name);
        socket.destroy();
        return line;
      });
      socket.write('who\n');
      return { answer };
    };
    const onA = await Promise.all([ask(0, 'a'), ask(0, 'a'), ask(0, 'a'), ask(0, 'a')]);
    const overloadedB = nextHook(pool.hooks.onOverload, (info) => info.listener === 1);
    const onB = await Promise.all([ask(1, 'b'), ask(1, 'b'), ask(1, 'b'), ask(1, 'b')]);
    await overloadedB;
    held.socket.write('release\n');
    await Promise.all([...onB, ...onA].map((client) => client.answer));
    await served(pool, 9);
    // Without END_CHAIN the child would chain through the whole queue of listener 0 first, and
    // without the rotation listener 0 would get the child every time it is idle.
    expect(order.slice(0, 4).filter((name) => name === 'b').length).toBeGreaterThanOrEqual(2);
  });

  it('no grant while a plugin chooses children per connection (beforeDispatch)', async () => {
    const pool = await startPool({ children: ONE_CHILD });
    pool.hooks.beforeDispatch.tap('chooser', () => undefined);
    await queueBehindHeld(pool, 3);
    await served(pool, 4);
    expect(pool.stats().connections).toMatchObject({ ordered: 4, chained: 0 });
  });

  it('an observer of orders (onDispatch) costs no grant and sees each order with its grant', async () => {
    const pool = await startPool({ children: ONE_CHILD });
    const orders: { child: number; listener: number; chain: number }[] = [];
    pool.hooks.onDispatch.tap('observer', (child, order) => void orders.push({ child: child.id, ...order }));
    await queueBehindHeld(pool, 3);
    await served(pool, 4);
    expect(pool.stats().connections).toMatchObject({ ordered: 1, chained: 3 });
    expect(orders).toEqual([{ child: 1, listener: 0, chain: 32 }]);
  });

  it('chainBudget is called through tapable, so an interceptor sees every call', async () => {
    const pool = await startPool({ children: ONE_CHILD });
    const calls: number[] = [];
    pool.hooks.chainBudget.intercept({ call: (count) => void calls.push(count) });
    pool.hooks.chainBudget.tap('half', (count) => count / 2);
    await queueBehindHeld(pool, 3);
    await served(pool, 4);
    expect(calls).toEqual([32]);
    expect(pool.stats().connections).toMatchObject({ ordered: 1, chained: 3 });
  });

  it('recycling caps the grant, so a child never accepts more than maxConnectionsPerChild', async () => {
    const pool = await startPool({ children: ONE_CHILD, recycle: { maxConnectionsPerChild: 3, jitter: 0 } });
    const exited: ChildInfo[] = [];
    pool.hooks.onChildExit.tap('test', (child) => void exited.push(child));
    const answers = await queueBehindHeld(pool, 7);
    expect(answers).toHaveLength(7);
    await served(pool, 8);
    const stats = pool.stats();
    expect(stats.connections.chained).toBeGreaterThan(0);
    expect(stats.connections.lost).toBe(0);
    for (const child of [...exited, ...pool.children()]) expect(child.accepted, `child ${child.id}`).toBeLessThanOrEqual(3);
    expect(exited.length).toBeGreaterThanOrEqual(2);
  });

  it('a reload ends the running grants: until the new generation is ready, every accept is ordered', async () => {
    const pool = await startPool({ children: ONE_CHILD });
    // The new generation takes 400 ms to start; the old child serves meanwhile, order by order.
    const reload = () => void pool.reload({ handler: fixture('control.mjs'), listen: '127.0.0.1:0', children: ONE_CHILD, env: { INIT_DELAY_MS: '400' } });
    const answers = await queueBehindHeld(pool, 4, reload);
    for (const answer of answers) expect(answer).toMatch(/^1 \d+$/);
    await served(pool, 5);
    expect(pool.stats().connections).toMatchObject({ ordered: 5, chained: 0 });
    expect(pool.generation).toBe(1);
  });

  it('counts a grant down exactly: reports up to the grant are taken, one more gets the child killed', async () => {
    // acceptChain: 2 grants two connections with the order. The child forges reports while it
    // serves the ordered connection: two are within the grant, the third is not.
    const within = await startPool({ children: ONE_CHILD, acceptChain: 2 });
    const kept = await command(within, 'forge-chained 2');
    expect(kept.answer).toMatch(/^forged 1 /);
    await waitFor(within.hooks.onConnectionDone as never, () => within.stats().connections.chained >= 2);
    expect(within.stats().connections).toMatchObject({ ordered: 1, chained: 2 });
    expect(within.children()[0]!.state).not.toBe('stopping');
    expect(within.logged.lines.some((line) => line.message.includes('without a chain grant'))).toBe(false);
    kept.socket.destroy();

    const beyond = await startPool({ children: ONE_CHILD, acceptChain: 2 });
    const exit = nextHook<[ChildInfo, ChildExitInfo]>(beyond.hooks.onChildExit, (child) => child.id === 1);
    const forged = net.connect(target(beyond));
    forged.on('error', () => {});
    forged.write('forge-chained 3\n');
    const [, info] = await exit;
    forged.destroy();
    expect(info.signal).toBe('SIGKILL');
    expect(beyond.logged.lines.find((line) => line.message.includes('without a chain grant'))?.fields).toMatchObject({ reported: 1, granted: 0 });
    expect(beyond.stats().connections.chained).toBe(2);
  });

  it('kills a child that reports a connection it accepted without a grant', async () => {
    const pool = await startPool({ children: ONE_CHILD, acceptChain: 0 });
    const exit = new Promise<ChildExitInfo>((resolve) => pool.hooks.onChildExit.tap('test', (child, info) => void (child.id === 1 && resolve(info))));
    // The parent may kill the child before its answer reaches us: wait for the exit, not the answer.
    const forged = net.connect(target(pool));
    forged.on('error', () => {});
    forged.write('forge-chained\n');
    const info = await exit;
    expect(info.signal).toBe('SIGKILL');
    expect(pool.logged.lines.some((line) => line.message.includes('without a chain grant'))).toBe(true);
    forged.destroy();
  });
});

/** What the batch-app fixture answers. */
interface BatchAnswer {
  pid: number;
  requests: number;
  connections: number;
}

/** One request to the batch-app fixture on a new connection (kept alive only by `agent`); resolves with its answer. */
async function askApp(pool: Pool, path: string, agent?: http.Agent): Promise<BatchAnswer> {
  const answer = await fetchAnswer(pool.addresses()[0]!.port, path, { agent });
  return JSON.parse(answer.body.toString()) as BatchAnswer;
}

describe('chain batches (parking HTTP)', () => {
  // A budget no request of this fixture nears, whatever else the machine runs: batches are certain.
  const HTTP_ONE_CHILD = { handler: fixture('batch-app.mjs'), protocol: 'http' as const, children: ONE_CHILD, acceptChainBatchMs: 1000 };
  const WARM_REQUESTS = 20;
  /** How many connections the child had accepted beyond those it had served, at the most, when it answered one of `answers`. */
  const ahead = (answers: BatchAnswer[]) => Math.max(...answers.map((answer) => answer.connections - answer.requests));

  /**
   * Freezes the pool's only child in the handler of a connection, queues `count` clients in the
   * kernel's accept queue (handshake done, request sent, `path` on each), continues the child, and
   * resolves with their answers in client order. The frozen connection then ends first, with the
   * others waiting: its grant decides how the child takes them. With `agent` (keep-alive) the
   * clients' connections stay open.
   */
  async function queueBehindFrozen(pool: Pool, count: number, path: string, agent?: http.Agent): Promise<BatchAnswer[]> {
    // The child learns how long its handler takes (the first requests of a new process run cold).
    for (let i = 0; i < WARM_REQUESTS; i++) await askApp(pool, path);
    const pid = pool.children()[0]!.pid;
    const frozen = askApp(pool, '/freeze');
    await until(() => /\nState:\s+T/.test(readFileSync(`/proc/${pid}/status`, 'utf8')), 5000, 'the child to stop');
    const clients = Array.from({ length: count }, () => askApp(pool, path, agent));
    // Their handshakes complete in the kernel while the child is stopped.
    await until(() => acceptQueue(pool) >= count, 5000, `${count} connections in the accept queue`);
    process.kill(pid, 'SIGCONT');
    await frozen;
    return Promise.all(clients);
  }

  /**
   * {@link queueBehindFrozen} until the child takes the waiting connections in a batch, at most
   * three times. On a loaded machine the frozen connection's grant can end before its request is
   * read (its first-request grace, 20 ms, runs out: the connection counts as parked), and then the
   * parent orders each waiting connection, one by one, as designed. Resolves with the answers of
   * the last attempt and how many connections all attempts made.
   */
  async function batchedBehindFrozen(pool: Pool, count: number, path: string, keepAlive = false) {
    let made = 0;
    for (let attempt = 1; ; attempt++) {
      const agent = keepAlive ? new http.Agent({ keepAlive: true }) : undefined;
      const answers = await queueBehindFrozen(pool, count, path, agent);
      made += WARM_REQUESTS + 1 + count;
      if (ahead(answers) > 0 || attempt === 3) return { answers, made, agent };
      agent?.destroy();
    }
  }

  it('a chaining child with a fast handler takes what waits at once, and reports every connection once', async () => {
    const pool = await startPool(HTTP_ONE_CHILD);
    const done: number[] = [];
    pool.hooks.onConnectionDone.tap('test', (_child, info) => void done.push(info.served));
    const { answers, made: total } = await batchedBehindFrozen(pool, 5, '/');
    // A request found connections accepted after its own and not served yet: a batch, not one
    // per turn (how many at once depends on the handler's time in this test's child).
    expect(ahead(answers)).toBeGreaterThan(0);
    await served(pool, total);
    expect(pool.stats().connections).toMatchObject({ accepted: total, served: total, lost: 0 });
    expect(pool.stats().invalidFrames).toBe(0);
    expect(done).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    await until(() => pool.children()[0]!.state === 'idle', 5000, 'the child to be idle');
  });

  it('at the default acceptChainBatchMs (1), a handler that takes its time (2 ms of CPU a request) gets one connection at a time', async () => {
    const { acceptChainBatchMs: _, ...defaults } = HTTP_ONE_CHILD;
    const pool = await startPool(defaults);
    const answers = await queueBehindFrozen(pool, 5, '/?spin=2');
    expect(ahead(answers)).toBe(0);
    const total = WARM_REQUESTS + 6;
    await served(pool, total);
    expect(pool.stats().connections).toMatchObject({ accepted: total, served: total, lost: 0 });
  });

  it('acceptChainBatchMs: 0 keeps one connection at a time, however quick the handler', async () => {
    const pool = await startPool({ ...HTTP_ONE_CHILD, acceptChainBatchMs: 0 });
    const answers = await queueBehindFrozen(pool, 5, '/');
    expect(ahead(answers)).toBe(0);
    await served(pool, WARM_REQUESTS + 6);
  });

  it('a batch of keep-alive connections parks: the grant ends with the first, the others end silently, the last one reports DONE', async () => {
    const pool = await startPool(HTTP_ONE_CHILD);
    const { answers, made, agent } = await batchedBehindFrozen(pool, 4, '/', true);
    expect(ahead(answers)).toBeGreaterThan(0);
    // All four are parked in the child now; the parent must see it able to take more.
    await until(() => pool.children()[0]!.state === 'idle', 5000, 'the child to be idle with its parked connections');
    const more = await askApp(pool, '/');
    expect(more.pid).toBe(answers[0]!.pid);
    agent!.destroy();
    const total = made + 1;
    await served(pool, total);
    expect(pool.stats().connections).toMatchObject({ accepted: total, served: total, lost: 0 });
    expect(pool.stats().invalidFrames).toBe(0);
    expect(pool.children()[0]!.state).not.toBe('stopping');
    expect(pool.children()[0]!.active).toBe(0);
  });
});

/** Connections waiting in the pool's first listener's accept queue (Linux TCP). */
function acceptQueue(pool: Pool): number {
  return pool.stats().acceptQueue?.length ?? 0;
}

// These read the listener's accept queue (TCP_INFO, Linux) to tell what the child took.
describe.skipIf(!nativeFeatures().acceptQueue)('chain batches (protocols that do not park: raw)', () => {
  const WARM = 8;

  /**
   * The pool's only child answers `WARM` connections of `warm` (it learns how long its connections
   * take), then holds one; a second one that holds and three clients of `line` wait in the kernel's
   * accept queue. Once the first is released, resolves with the second, held, and the three.
   */
  async function queueBehindTwoHeld(pool: Pool, warm: string, line = 'who') {
    for (let i = 0; i < WARM; i++) expect(await ask(pool, warm)).toMatch(/\b1 \d+\n$/);
    // Idle again (its last grant over), so that the first is ordered with a grant of its own: one
    // taken in the last one's batch would end that grant at the next accept that found nothing.
    await until(() => pool.children()[0]!.state === 'idle' && pool.stats().connections.served === WARM, 5000, 'the child to be idle');
    const first = await command(pool, 'hold');
    expect(first.answer).toMatch(/^held 1 /);
    const connect = async (line: string) => {
      const socket = net.connect(target(pool));
      socket.on('error', () => {});
      await once(socket, 'connect');
      socket.write(`${line}\n`);
      return socket;
    };
    // One after another, so that the kernel queues them in this order.
    const second = await connect('hold');
    const others: net.Socket[] = [];
    for (let i = 0; i < 3; i++) others.push(await connect(line));
    await until(() => acceptQueue(pool) >= 4, 5000, 'four connections in the accept queue');
    const secondHeld = readLine(second);
    first.socket.write('release\n');
    expect(await secondHeld).toMatch(/^held 1 /);
    return { second, others };
  }

  it('a child whose connections end quickly takes what waits in one go, and still runs one connection at a time, in arrival order', async () => {
    const pool = await startPool({ children: ONE_CHILD, acceptChainBatchMs: 1000 });
    const done: number[] = [];
    pool.hooks.onConnectionDone.tap('test', (_child, info) => void done.push(info.served));
    const { second, others } = await queueBehindTwoHeld(pool, 'who', 'running');
    // All four were accepted when the first ended, while the second holds the child's slot...
    expect(acceptQueue(pool)).toBe(0);
    // ... and the three wait for that slot: each is alone in the handler when it runs.
    second.write('release\n');
    for (const line of await Promise.all(others.map((socket) => readLine(socket)))) expect(line).toMatch(/^running 1 1 \d+$/);
    const total = WARM + 5;
    await served(pool, total);
    expect(pool.stats().connections).toMatchObject({ accepted: total, served: total, lost: 0 });
    expect(pool.stats().invalidFrames).toBe(0);
    expect(done).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    for (const socket of others) socket.destroy();
  });

  it('at the default acceptChainBatchMs (1), a child whose connections take 5 ms takes one at a time', async () => {
    const pool = await startPool({ children: ONE_CHILD });
    const { second, others } = await queueBehindTwoHeld(pool, 'block 5');
    // Only the second was accepted; the three stay in the kernel's queue, for any child.
    expect(acceptQueue(pool)).toBe(3);
    second.write('release\n');
    for (const line of await Promise.all(others.map((socket) => readLine(socket)))) expect(line).toMatch(/^1 \d+$/);
    await served(pool, WARM + 5);
    for (const socket of others) socket.destroy();
  });

  it('a child stopped while connections of its batch wait serves them before it exits', async () => {
    const pool = await startPool({ children: ONE_CHILD, acceptChainBatchMs: 1000 });
    const { second, others } = await queueBehindTwoHeld(pool, 'who');
    expect(acceptQueue(pool)).toBe(0);
    const stopped = pool.stop('test', { drainMs: 0 });
    second.write('release\n');
    for (const line of await Promise.all(others.map((socket) => readLine(socket)))) expect(line).toMatch(/^1 \d+$/);
    await stopped;
    expect(pool.stats().connections).toMatchObject({ served: WARM + 5, lost: 0 });
    for (const socket of others) socket.destroy();
  });
});
