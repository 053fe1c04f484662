import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { childPids, killServers, project, requireBuild, Server, until } from './cli-helpers.js';

beforeAll(requireBuild);
afterEach(killServers);

/**
 * A raw handler that reads one line: `hold` keeps the connection (answering `held`) until the
 * client closes it; anything else is answered with `generation VERSION pid` and closed.
 */
const HANDLER = `export function connection(socket, ctx) {
  socket.on('error', () => {});
  socket.on('end', () => socket.end());
  socket.once('data', (data) => {
    if (String(data).startsWith('hold')) socket.write('held\\n');
    else socket.end(\`\${ctx.generation} \${process.env.VERSION ?? '-'} \${process.pid}\\n\`);
  });
}
`;

/** The config of these tests: `extra` is laid over it. */
function config(extra: Record<string, unknown>): object {
  return { handler: './handler.mjs', listen: '127.0.0.1:0', timeouts: { stop: 5000 }, tickInterval: 50, ...extra };
}

/** Sends `line` and resolves with everything the server wrote until it closed the connection. */
function ask(port: number, line = 'who'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(`${line}\n`));
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString('utf8')));
    socket.on('error', reject);
    socket.on('close', () => resolve(text));
  });
}

/**
 * Opens a connection a child keeps busy until `release()`; resolves with the first answer, which
 * is `held` when a child took it (an abrupt overload answers with its response instead).
 */
function hold(port: number): Promise<{ answer: string; release(): void }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write('hold\n'));
    socket.on('error', reject);
    socket.once('data', (chunk) => resolve({ answer: chunk.toString('utf8'), release: () => socket.end() }));
  });
}

const HTTP_503 = /^HTTP\/1\.1 503 Service Unavailable\r\nRetry-After: 7\r\n/;

function fields(answer: string): { generation: number; version: string; pid: number } {
  const [generation, version, pid] = answer.trim().split(' ');
  return { generation: Number(generation), version: version!, pid: Number(pid) };
}

async function reload(server: Server, dir: string, contents: object, generation: number): Promise<void> {
  writeFileSync(join(dir, 'prefork.config.json'), JSON.stringify(contents));
  const mark = server.stderr.length;
  server.signal('SIGHUP');
  await server.log((entry) => entry.msg === 'reload complete' && entry.generation === generation, mark);
}

describe('SIGHUP applies the whole config file', () => {
  it('switches the overload policy from graceful to abrupt with an HTTP 503', async () => {
    const one = { start: 1, min: 1, max: 1, minSpare: 0, maxSpare: 1 };
    const dir = project({ 'handler.mjs': HANDLER, 'prefork.config.json': config({ children: one }) });
    const server = new Server([], dir);
    const { port } = await server.started();

    // Graceful: with the only child busy, a client waits in the backlog.
    const first = await hold(port);
    const mark = server.stderr.length;
    const waiting = ask(port);
    await server.log((entry) => entry.event === 'overload.start' && entry.strategy === 'graceful', mark);

    await reload(server, dir, config({ children: one, overload: { strategy: 'abrupt', response: 'http-503', retryAfter: 7 } }), 2);
    // The waiting client is served by the new generation's child.
    expect(fields(await waiting).generation).toBe(2);

    // Abrupt now: with the new child busy too, a client gets the 503 at once. The client above
    // sees its answer before the parent reads that child's DONE: until then a connection finds
    // no idle child and is turned away, so the hold is retried until a child has it.
    let second = await hold(port);
    for (let attempt = 0; second.answer !== 'held\n' && attempt < 50; attempt++) {
      expect(second.answer).toMatch(HTTP_503);
      second = await hold(port);
    }
    expect(second.answer).toBe('held\n');
    const refused = await ask(port);
    expect(refused, server.stderr.join('\n')).toMatch(HTTP_503);
    await server.log((entry) => entry.event === 'overload.start' && entry.strategy === 'abrupt', mark);
    first.release();
    second.release();
    server.signal('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });

  it('starts recycling after recycle.maxConnectionsPerChild is added', async () => {
    const children = { start: 1, min: 1, max: 2, minSpare: 0, maxSpare: 2 };
    const dir = project({ 'handler.mjs': HANDLER, 'prefork.config.json': config({ children }) });
    const server = new Server([], dir);
    const { port } = await server.started();
    const before: number[] = [];
    for (let i = 0; i < 6; i++) before.push(fields(await ask(port)).pid);
    expect(new Set(before).size).toBe(1);

    await reload(server, dir, config({ children, recycle: { maxConnectionsPerChild: 3 } }), 2);
    const after: number[] = [];
    for (let i = 0; i < 7; i++) after.push(fields(await ask(port)).pid);
    // Three connections per child, then a fresh one.
    expect(after[0]).not.toBe(before[0]);
    expect(after.slice(0, 3).every((pid) => pid === after[0])).toBe(true);
    expect(after.slice(3, 6).every((pid) => pid === after[3])).toBe(true);
    expect(new Set([after[0], after[3], after[6]]).size).toBe(3);
    server.signal('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });

  it('applies new spawning bounds: maxSpare retires idle children, min replaces a killed one', async () => {
    const dir = project({ 'handler.mjs': HANDLER, 'prefork.config.json': config({ children: { start: 3, min: 1, max: 4, minSpare: 0, maxSpare: 4 } }) });
    const server = new Server([], dir);
    await server.started();
    expect(childPids(server.pid)).toHaveLength(3);

    await reload(server, dir, config({ children: { start: 3, min: 2, max: 4, minSpare: 0, maxSpare: 1 } }), 2);
    // Idle children above maxSpare 1 are retired, but never below min 2.
    await until(() => childPids(server.pid).length === 2, 'two children left');
    const [victim, survivor] = childPids(server.pid);
    process.kill(victim!, 'SIGKILL');
    await until(() => {
      const live = childPids(server.pid);
      return live.length === 2 && live.includes(survivor!) && !live.includes(victim!);
    }, 'the killed child replaced, as min is 2');
    server.signal('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });

  it('applies a plugin added to the file', async () => {
    const plugin = `export default class MarkPlugin {
  apply(pool) {
    pool.logger.info('mark plugin applied', { generation: pool.generation });
    pool.hooks.beforeSpawn.tap('MarkPlugin', (request) => { request.env.VERSION = 'marked'; });
  }
}
`;
    const dir = project({ 'handler.mjs': HANDLER, 'mark.mjs': plugin, 'prefork.config.json': config({ children: { start: 1 }, env: { VERSION: '1' } }) });
    const server = new Server([], dir);
    const { port } = await server.started();
    expect(fields(await ask(port)).version).toBe('1');

    const mark = server.stderr.length;
    await reload(server, dir, config({ children: { start: 1 }, env: { VERSION: '2' }, plugins: ['./mark.mjs'] }), 2);
    await server.log((entry) => entry.msg === 'mark plugin applied', mark);
    expect(fields(await ask(port))).toMatchObject({ generation: 2, version: 'marked' });
    server.signal('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });
});
