import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, chmodSync, chownSync, constants, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { findGroup, findUser } from '../../../src/config/accounts.js';
import { CLI, killServers, project, requireBuild, runCli, Server, who, WHO_HANDLER, writeFiles } from './cli-helpers.js';
import { findAddon } from '../../../src/native/load.js';
import { findExecutable, skipWithout } from '../../environment.js';

const ROOT = process.getuid?.() === 0;
/** Creating a user and giving children another uid both need root and useradd. */
const SKIP = skipWithout(
  !ROOT ? 'not root, so the privilege-drop tests (they create a system user) are skipped'
  : !findExecutable('useradd') || !findExecutable('userdel') ? 'useradd/userdel are missing (Debian: the passwd package), so the privilege-drop tests are skipped'
  : undefined,
);
/** The throwaway user's name carries this process's pid, so that a later run can tell it is stale. */
const USER = `prefork-test-${process.pid}-${randomBytes(2).toString('hex')}`;
let account: { uid: number; gid: number };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the users (and their extra groups) that an earlier run, killed before its clean-up, left behind. */
function removeStaleUsers(): void {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const match = /^(prefork-test-(\d+)-[0-9a-f]+):/.exec(line);
    if (match && !alive(Number(match[2]))) execFileSync('userdel', [match[1]!]);
  }
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const match = /^(prefork-test-(\d+)-[0-9a-f]+-x):/.exec(line);
    if (match && !alive(Number(match[2]))) execFileSync('groupdel', [match[1]!]);
  }
}

function removeUser(): void {
  if (findUser(USER)) execFileSync('userdel', [USER]);
}

beforeAll(requireBuild);
afterEach(killServers);

/** Runs the command as the throwaway user, to see what an unprivileged start does. */
function runAsUser(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CLI, ...args], { cwd, uid: account.uid, gid: account.gid, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    proc.on('error', reject);
    proc.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(SKIP)('privilege drop (root only: it creates a system user and changes uids)', () => {
  beforeAll(() => {
    removeStaleUsers();
    execFileSync('useradd', ['--system', '--no-create-home', '--user-group', '--shell', '/usr/sbin/nologin', USER]);
    // The user goes with this process however it ends: afterAll, an exit without it, or a signal.
    // Only SIGKILL escapes, and the next run's removeStaleUsers() removes what it left.
    process.once('exit', removeUser);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        removeUser();
        process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
      });
    }
    const user = findUser(USER)!;
    account = { uid: user.uid, gid: user.gid };
  });

  afterAll(removeUser);

  it('binds as root (a port below 1024) and runs the children as the configured user and group', async () => {
    // The children load the child runtime, the addon and the handler as that user: all must be readable.
    for (const path of [CLI, findAddon()]) accessSync(path, constants.R_OK);
    const dir = project({ 'who.mjs': WHO_HANDLER });
    // A privileged port proves the parent bound before any uid change; a few tries in case one is taken.
    let server: Server | undefined;
    let port = 0;
    for (let attempt = 0; attempt < 5 && !server; attempt++) {
      port = 900 + Math.floor(Math.random() * 100);
      writeConfig(dir, port);
      const candidate = new Server([], dir);
      const outcome = await Promise.race([candidate.started().then(() => 'started' as const), candidate.exited.then(() => 'exited' as const)]);
      if (outcome === 'started') server = candidate;
      else expect(candidate.stderr.join('\n')).toMatch(/EADDRINUSE|address already in use/i);
    }
    expect(server).toBeDefined();
    const answer = await who(port);
    expect(answer.uid).toBe(account.uid);
    expect(answer.gid).toBe(findGroup(USER)!.gid);
    expect(answer.gid).toBe(account.gid);
    server!.signal('SIGTERM');
    expect((await server!.exited).code).toBe(0);
  });

  it("gives the children the run-as user's supplementary groups (initgroups), not none", async () => {
    const extra = `${USER}-x`.slice(0, 31);
    execFileSync('groupadd', ['--system', extra]);
    try {
      execFileSync('usermod', ['--append', '--groups', extra, USER]);
      const handler = `export function connection(socket) { socket.end(JSON.stringify({ uid: process.getuid(), groups: process.getgroups() }) + '\\n'); }\n`;
      const dir = project({ 'groups.mjs': handler, 'prefork.config.json': { handler: './groups.mjs', listen: '127.0.0.1:0', user: USER, children: { start: 1 } } });
      const server = new Server([], dir);
      const { port } = await server.started();
      const answer = await new Promise<string>((resolve, reject) => {
        let text = '';
        const socket = net.connect({ host: '127.0.0.1', port });
        socket.on('data', (chunk) => (text += chunk));
        socket.on('error', reject);
        socket.on('close', () => resolve(text));
      });
      const seen = JSON.parse(answer) as { uid: number; groups: number[] };
      expect(seen.uid).toBe(account.uid);
      expect(seen.groups).toContain(findGroup(extra)!.gid);
      expect(seen.groups).toContain(account.gid);
      expect(seen.groups).not.toContain(0);
      server.signal('SIGTERM');
      expect((await server.exited).code).toBe(0);
    } finally {
      execFileSync('groupdel', [extra]);
    }
  });

  it('refuses to start children as another user when not root, with status 77', async () => {
    const dir = project({ 'who.mjs': WHO_HANDLER, 'prefork.config.json': { handler: './who.mjs', listen: '127.0.0.1:0', user: 'root' } });
    const result = await runAsUser([], dir);
    expect(result.stderr).toBe(`prefork: user: only root can run the children as root; prefork runs as uid ${account.uid}\n`);
    expect(result.code).toBe(77);
  });

  describe('code the root parent imports must be root\'s and writable by nobody else', () => {
    const config = (version: string) => `export default { handler: './who.mjs', listen: '127.0.0.1:0', user: '${USER}', children: { start: 1 }, env: { VERSION: '${version}' } };\n`;

    it.each([
      ['writable by everyone', (file: string) => chmodSync(file, 0o666), /prefork\.config\.mjs: the config file \/.*\/prefork\.config\.mjs is writable by everyone; prefork runs as root/],
      ['writable by its group', (file: string) => chmodSync(file, 0o664), /is writable by its group/],
      ["owned by the children's user", (file: string) => chownSync(file, account.uid, account.gid), /is owned by uid \d+/],
    ])('a JS config %s is refused with status 78 before anything binds', async (_name, loosen, message) => {
      const dir = project({ 'who.mjs': WHO_HANDLER, 'prefork.config.mjs': config('1') });
      loosen(join(dir, 'prefork.config.mjs'));
      const result = await runCli(['check'], dir);
      expect(result.stderr).toMatch(message);
      expect(result.code).toBe(78);
    });

    it('a plugin module the children\'s user could write is refused before it is imported', async () => {
      const dir = project({ 'who.mjs': WHO_HANDLER, 'plugin.mjs': 'globalThis.imported = true; export default { apply() {} };\n', 'prefork.config.json': { handler: './who.mjs', listen: '127.0.0.1:0', user: USER, plugins: ['./plugin.mjs'] } });
      chmodSync(join(dir, 'plugin.mjs'), 0o666);
      const result = await runCli(['check'], dir);
      expect(result.stderr).toMatch(/prefork\.config\.json: plugins\[0\]: the plugin module \/.*\/plugin\.mjs is writable by everyone/);
      expect(result.code).toBe(78);
    });

    it('a reload finding the config made writable keeps the old one', async () => {
      const dir = project({ 'who.mjs': WHO_HANDLER, 'prefork.config.mjs': config('1') });
      const server = new Server([], dir);
      const { port } = await server.started();
      writeFileSync(join(dir, 'prefork.config.mjs'), config('2'));
      chmodSync(join(dir, 'prefork.config.mjs'), 0o666);
      const mark = server.stderr.length;
      server.signal('SIGHUP');
      const logged = await server.log((entry) => String(entry.msg).startsWith('reload failed'), mark);
      expect(String(logged.error)).toMatch(/is writable by everyone/);
      expect(await who(port)).toMatchObject({ generation: 1, version: '1' });
      server.signal('SIGTERM');
      expect((await server.exited).code).toBe(0);
    });
  });

  it('runs unprivileged when user names the account prefork already runs as', async () => {
    const dir = project({ 'who.mjs': WHO_HANDLER, 'prefork.config.json': { handler: './who.mjs', listen: '127.0.0.1:0', user: USER, children: { start: 1 } } });
    const server = new Server([], dir, account);
    const { port } = await server.started();
    expect(await who(port)).toMatchObject({ uid: account.uid, gid: account.gid });
    server.signal('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });
});

function writeConfig(dir: string, port: number): void {
  writeFiles(dir, { 'prefork.config.json': { handler: './who.mjs', listen: `127.0.0.1:${port}`, user: USER, children: { start: 2 } } });
}
