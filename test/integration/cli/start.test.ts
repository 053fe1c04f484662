import { once } from 'node:events';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fixture, readLine } from '../../helpers.js';
import { alive, childPids, killServers, project, requireBuild, Server, until, who, WHO_HANDLER } from './cli-helpers.js';

beforeAll(requireBuild);
afterEach(killServers);

const EXAMPLES = fileURLToPath(new URL('../../../examples/', import.meta.url));

describe('prefork start', () => {
  it('runs from flags alone and prints one start line: address, children, pid', async () => {
    const server = new Server(['--handler', fixture('control.mjs'), '--listen', '127.0.0.1:0', '--children', '2'], project());
    const started = await server.started();
    expect(started).toMatchObject({ host: '127.0.0.1', children: 2, pid: server.pid });
    expect(started.port).toBeGreaterThan(0);
    expect(server.stdout).toHaveLength(1);
    expect(childPids(server.pid)).toHaveLength(2);
    server.signal('SIGINT');
    expect(await server.exited).toEqual({ code: 0, signal: null });
  });

  it('lets flags override the file: --listen, --handler, --children, --protocol', async () => {
    const dir = project({
      'who.mjs': WHO_HANDLER,
      'other.mjs': 'export function request() {}',
      // The file's address cannot be bound and its handler is not raw: the flags must win.
      'prefork.config.json': { handler: './other.mjs', protocol: 'http', listen: 'unix:/nonexistent-dir/x.sock', children: { start: 1, max: 1 } },
    });
    const server = new Server(['--listen', '127.0.0.1:0', '--handler', 'who.mjs', '--children', '3', '--protocol', 'raw'], dir);
    const started = await server.started();
    expect(started.children).toBe(3);
    expect(server.stdout[0]).toMatch(/\(raw\), 3 children/);
    expect((await who(started.port)).generation).toBe(1);
    server.signal('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });

  it('stops gracefully on SIGTERM: a busy connection finishes, then it exits 0 with no child left', async () => {
    const server = new Server(['--handler', fixture('control.mjs'), '--listen', '127.0.0.1:0', '--children', '2'], project());
    const { port } = await server.started();
    const children = childPids(server.pid);
    const socket = net.connect({ host: '127.0.0.1', port });
    const answer = readLine(socket);
    socket.write('hold\n');
    const busyPid = Number(/^held \d+ (\d+)$/.exec(await answer)![1]);
    let closed = false;
    socket.on('close', () => (closed = true));

    server.signal('SIGTERM');
    await server.log((entry) => entry.msg === 'stopping gracefully' && entry.signal === 'SIGTERM');
    const idlePid = children.find((pid) => pid !== busyPid)!;
    await until(() => !alive(idlePid), 'the idle child to exit');
    // The idle child is gone; the busy one still serves its connection, and the parent waits for it.
    expect(alive(busyPid)).toBe(true);
    expect(alive(server.pid)).toBe(true);
    expect(closed).toBe(false);

    socket.write('release\n');
    await once(socket, 'close');
    expect(await server.exited).toEqual({ code: 0, signal: null });
    expect(children.filter(alive)).toEqual([]);
  });

  it('adds a child on SIGTTIN and removes one on SIGTTOU', async () => {
    const dir = project({
      'who.mjs': WHO_HANDLER,
      // No spare-children policy in the way: the count is what the signals make it.
      'prefork.config.json': { handler: './who.mjs', listen: '127.0.0.1:0', children: { start: 2, min: 2, max: 3, minSpare: 0, maxSpare: 8 } },
    });
    const server = new Server([], dir);
    const { port } = await server.started();
    expect(childPids(server.pid)).toHaveLength(2);

    server.signal('SIGTTIN');
    await server.log((entry) => entry.msg === 'one child more (SIGTTIN)');
    await until(() => childPids(server.pid).length === 3, '3 children');
    server.signal('SIGTTIN');
    await server.log((entry) => entry.msg === 'no child added (SIGTTIN): children.max reached' && entry.max === 3);
    // children.max is 3: no fourth child.
    expect(childPids(server.pid)).toHaveLength(3);

    server.signal('SIGTTOU');
    await until(() => childPids(server.pid).length === 2, '2 children');
    server.signal('SIGTTOU');
    await until(() => childPids(server.pid).length === 1, '1 child');
    expect((await who(port)).generation).toBe(1);
    server.signal('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });

  it('a SIGTTIN during a reload adds one child to the new generation, not the old generation on top of it', async () => {
    const dir = project({
      // Children load only while the file `go` exists (a bounded wait), so the reload can be held open.
      'slow.mjs':
        "import { existsSync } from 'node:fs';\n" +
        "for (let i = 0; i < 400 && !existsSync(new URL('./go', import.meta.url)); i++) await new Promise((r) => setTimeout(r, 25));\n" +
        'export function connection(socket) { socket.end(`${process.pid}\\n`); }\n',
      go: '',
      'prefork.config.json': { handler: './slow.mjs', protocol: 'raw', listen: '127.0.0.1:0', children: { start: 2, min: 2, max: 8, minSpare: 0, maxSpare: 8 } },
    });
    const server = new Server([], dir);
    await server.started();
    const old = childPids(server.pid);
    expect(old).toHaveLength(2);
    rmSync(join(dir, 'go'));
    server.signal('SIGHUP');
    await server.log((entry) => entry.msg === 'reload: new generation spawned; old children retire once idle');
    server.signal('SIGTTIN');
    // The old generation's 2 children are still there, until the new one is ready: they do not count.
    const grown = await server.log((entry) => entry.msg === 'one child more (SIGTTIN)');
    expect({ children: grown.children, min: grown.min }).toEqual({ children: 3, min: 3 });
    writeFileSync(join(dir, 'go'), '');
    await server.log((entry) => entry.msg === 'reload complete');
    await until(() => old.every((pid) => !alive(pid)), 'the old children to exit');
    await until(() => childPids(server.pid).length === 3, '3 children');
    server.signal('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });

  it('reopens its log file on SIGUSR1 (logrotate)', async () => {
    const dir = project({ 'who.mjs': WHO_HANDLER, 'prefork.config.json': { handler: './who.mjs', listen: '127.0.0.1:0', children: { start: 1 }, log: { file: 'logs/../parent.log', format: 'json' } } });
    const server = new Server([], dir);
    await server.started();
    const file = join(dir, 'parent.log');
    expect(readFileSync(file, 'utf8')).toMatch(/"msg":"pool started"/);
    renameSync(file, `${file}.1`);
    server.signal('SIGUSR1');
    await until(() => existsSync(file) && readFileSync(file, 'utf8').includes('"msg":"log file reopened"'), 'a line in the new log file');
    expect(readFileSync(`${file}.1`, 'utf8')).not.toMatch(/log file reopened/);
    server.signal('SIGTERM');
    expect((await server.exited).code).toBe(0);
    expect(readFileSync(file, 'utf8')).toMatch(/"msg":"pool stopped"/);
  });
});

describe('the examples', () => {
  it('hello-http serves HTTP from its config file', async () => {
    // The example listens on 8080; the flag moves it to a free port for the test.
    const server = new Server(['--config', join(EXAMPLES, 'hello-http/prefork.config.json'), '--listen', '127.0.0.1:0'], project());
    const { port } = await server.started();
    const body = await new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/hi' }, (res) => {
        let text = '';
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`status ${res.statusCode}`))));
      }).on('error', reject);
    });
    expect(body).toMatch(/^Hello from child \d+ \(pid \d+, generation 1\): GET \/hi\n$/);
    server.signal('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });

  it('echo echoes raw TCP', async () => {
    const server = new Server(['--config', join(EXAMPLES, 'echo/prefork.config.json'), '--listen', '127.0.0.1:0'], project());
    const { port } = await server.started();
    const socket = net.connect({ host: '127.0.0.1', port });
    const line = readLine(socket);
    socket.write('hello echo\n');
    expect(await line).toBe('hello echo');
    socket.end();
    await once(socket, 'close');
    server.signal('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });
});
