import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import type { StatusReport } from '../../../src/pool/status.js';
import { fetchStatus, statusTarget } from '../../../src/statusClient.js';
import { findExecutable, skipWithout } from '../../environment.js';
import { freePort } from '../protocols/nginx.js';
import { CLI, killServers, project, requireBuild, runCli, Server } from './cli-helpers.js';

// `prefork top` against a real server, in a real terminal: tmux runs it in a pane of 160x40,
// keys go in with send-keys and the screen comes out with capture-pane.

const run = promisify(execFile);

// .ci/run installs tmux; under CI=true a missing one fails instead of skipping.
const SKIP_TMUX = skipWithout(findExecutable('tmux') ? undefined : 'tmux is not installed, so the terminal tests of prefork top are skipped (Debian: tmux)');

/** A raw handler that holds each connection until the client writes `release`. */
const HOLD_HANDLER = `export function connection(socket) {
  socket.on('error', () => {});
  return new Promise((resolve) => {
    let received = '';
    socket.on('data', (chunk) => {
      received += chunk.toString('utf8');
      if (received.includes('release')) socket.end();
    });
    socket.on('close', resolve);
  });
}
`;

/** The screen's time between two redraws: long enough that a 50 ms capture loop on a loaded machine sees every one. */
const INTERVAL_MS = 400;

/** A tmux server of its own (its own socket, no user config), with one session running `command`. */
class Terminal {
  static readonly #open = new Set<Terminal>();
  readonly #socket: string;
  readonly session = `prefork-top-${process.pid}`;

  private constructor(dir: string) {
    this.#socket = join(dir, 'tmux.sock');
  }

  static async open(dir: string, command: string): Promise<Terminal> {
    const terminal = new Terminal(dir);
    Terminal.#open.add(terminal);
    await terminal.#tmux('-f', '/dev/null', 'new-session', '-d', '-s', terminal.session, '-x', '160', '-y', '40', command);
    return terminal;
  }

  /** Kills the tmux server of every terminal a test opened (call from afterEach). */
  static async closeAll(): Promise<void> {
    await Promise.all([...Terminal.#open].map((terminal) => terminal.#tmux('kill-server').catch(() => undefined)));
    Terminal.#open.clear();
  }

  #tmux(...args: string[]): Promise<{ stdout: string }> {
    const env = { ...process.env };
    delete env.TMUX;
    return run('tmux', ['-S', this.#socket, ...args], { env });
  }

  /** The pane's text; with `escapes`, its attributes as escape codes too (`-e`). */
  async capture(escapes = false): Promise<string> {
    return (await this.#tmux('capture-pane', '-p', ...(escapes ? ['-e'] : []), '-t', this.session)).stdout;
  }

  async sendKeys(...keys: string[]): Promise<void> {
    await this.#tmux('send-keys', '-t', this.session, ...keys);
  }

  async resize(columns: number, rows: number): Promise<void> {
    await this.#tmux('resize-window', '-t', this.session, '-x', String(columns), '-y', String(rows));
  }

  async alive(): Promise<boolean> {
    return this.#tmux('has-session', '-t', this.session).then(
      () => true,
      () => false,
    );
  }

  /**
   * Captures the screen (with escapes) every 50 ms until `predicate` holds, for at most `ms`;
   * resolves with that screen, or rejects quoting the last one.
   */
  async until(predicate: (screen: string) => boolean, what: string, ms = 10_000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const screen = await this.capture(true);
      if (predicate(screen)) return screen;
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}; the screen:\n${screen.replaceAll('\x1b', '\\e')}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Resolves once the session has ended, within `ms`. */
  async ended(ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (await this.alive()) {
      if (Date.now() > deadline) throw new Error(`the tmux session still runs ${ms} ms after the quit key; the screen:\n${await this.capture()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** The children on a captured screen (`capture-pane -e`): pid -> its letter and whether it is in reverse video. */
function childrenOn(screen: string): Map<number, { letter: string; highlighted: boolean }> {
  const children = new Map<number, { letter: string; highlighted: boolean }>();
  for (const line of screen.split('\n')) {
    const match = /^\s*\d+\s+(\d+)\s+\d+ (\x1b\[7m)?([S_ABG])/.exec(line);
    if (match) children.set(Number(match[1]), { letter: match[3]!, highlighted: match[2] !== undefined });
  }
  return children;
}

function lettersOf(screen: string, pids: readonly number[]): string {
  const children = childrenOn(screen);
  return pids.map((pid) => children.get(pid)?.letter ?? '?').join('');
}

async function childPidsOf(statusPort: number): Promise<number[]> {
  const report = JSON.parse(await fetchStatus(statusTarget(`127.0.0.1:${statusPort}`), '/status?json')) as StatusReport;
  return report.children.map((child) => child.pid);
}

/** A project whose server runs 2 children of HOLD_HANDLER, with its status listener on. */
async function holdingProject(): Promise<{ dir: string; port: number; statusPort: number }> {
  const [port, statusPort] = [await freePort(), await freePort()];
  const dir = project({
    'app.mjs': HOLD_HANDLER,
    'prefork.config.json': { listen: `127.0.0.1:${port}`, handler: './app.mjs', children: { start: 2, min: 2, max: 2 }, status: { listen: `127.0.0.1:${statusPort}` } },
  });
  return { dir, port, statusPort };
}

/** Connects, and resolves once connected; the handler holds the connection until `release`. */
async function hold(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return socket;
}

afterEach(async () => {
  await Terminal.closeAll();
  await killServers();
});

describe('prefork top', () => {
  it.skipIf(SKIP_TMUX)('redraws in a terminal: a child that turns busy and idle again has its letter in reverse video for one redraw; it rides out a stopped server and quits on q', async () => {
    requireBuild();
    const { dir, port, statusPort } = await holdingProject();
    const server = new Server([], dir);
    await server.started();
    const pids = await childPidsOf(statusPort);
    expect(pids).toHaveLength(2);

    const exitFile = join(dir, 'top.exit');
    const terminal = await Terminal.open(dir, `'${process.execPath}' '${CLI}' top --url 127.0.0.1:${statusPort} --interval ${INTERVAL_MS}; echo "exit $?" > '${exitFile}'`);
    const first = await terminal.until((screen) => lettersOf(screen, pids) === '__', 'both children idle');
    expect(first).toContain(`prefork top: 127.0.0.1:${statusPort}, every ${INTERVAL_MS} ms (q quits)`);
    expect(first).toMatch(/children: 2 \(S starting 0, _ idle 2, A accepting 0, B busy 0, G stopping 0\)/);

    // One connection held: its child turns B, highlighted on the first screen that shows it.
    const client = await hold(port);
    const busy = await terminal.until((screen) => lettersOf(screen, pids).includes('B'), 'one child busy');
    const busyPid = pids.find((pid) => childrenOn(busy).get(pid)!.letter === 'B')!;
    const idlePid = pids.find((pid) => pid !== busyPid)!;
    expect(childrenOn(busy).get(busyPid)).toEqual({ letter: 'B', highlighted: true });
    expect(childrenOn(busy).get(idlePid)).toEqual({ letter: '_', highlighted: false });
    expect(busy).toMatch(/connections: [\d.]+\/s, 1 active, 1 accepted/);
    // The next redraw: still busy, no longer highlighted.
    await terminal.until((screen) => childrenOn(screen).get(busyPid)?.highlighted === false, 'the highlight gone after one redraw');
    expect(childrenOn(await terminal.capture(true)).get(busyPid)?.letter).toBe('B');

    client.write('release');
    await terminal.until((screen) => lettersOf(screen, pids) === '__', 'the busy child idle again');
    client.destroy();

    // The server stops: top says it cannot read the status, names the address, and goes on.
    server.signal('SIGTERM');
    expect((await server.exited).code).toBe(0);
    await terminal.until((screen) => screen.includes(`could not read the status at 127.0.0.1:${statusPort}`), 'the error line');
    expect(await terminal.alive()).toBe(true);
    // It keeps asking: a server started again on the same address shows up, its children new.
    // Watched from before the start: the one redraw that shows them highlighted can come and go
    // while the test still asks the new server for its pids.
    const fresh = (screen: string) => [...childrenOn(screen)].filter(([pid]) => !pids.includes(pid));
    const shown = terminal.until((screen) => fresh(screen).length === 2 && fresh(screen).every(([, row]) => row.highlighted), 'the new children, highlighted');
    const again = new Server([], dir);
    await again.started();
    const back = await shown;
    const newPids = await childPidsOf(statusPort);
    expect(back).not.toContain('could not read the status');
    for (const pid of pids) expect(childrenOn(back).has(pid)).toBe(false);
    expect(fresh(back).map(([pid]) => pid).sort()).toEqual([...newPids].sort());

    await terminal.sendKeys('q');
    await terminal.ended();
    expect(readFileSync(exitFile, 'utf8')).toBe('exit 0\n');
  });

  it.skipIf(SKIP_TMUX)('redraws on a terminal resize, and quits on Ctrl-C with status 0, giving the terminal its screen back', async () => {
    requireBuild();
    const dir = project();
    const exitFile = join(dir, 'top.exit');
    // Nothing listens there: top shows the error. An interval of a minute: the one redraw to come is the resize's.
    const statusPort = await freePort();
    const terminal = await Terminal.open(dir, `'${process.execPath}' '${CLI}' top --url 127.0.0.1:${statusPort} --interval 60000; echo "exit $?" > '${exitFile}'; sleep 30`);
    const title = (screen: string) => screen.split('\n')[0]!.trimEnd();
    const before = await terminal.until((screen) => screen.includes(`could not read the status at 127.0.0.1:${statusPort}`), 'the error line');
    // The clock stands at the right edge.
    expect(title(before)).toHaveLength(160);
    await terminal.resize(100, 30);
    await terminal.until((screen) => /\d\d:\d\d:\d\d$/.test(title(screen)) && title(screen).length === 100, 'the title redrawn 100 columns wide');
    await terminal.sendKeys('C-c');
    await terminal.until(() => {
      try {
        return readFileSync(exitFile, 'utf8') === 'exit 0\n';
      } catch {
        return false;
      }
    }, 'top to exit 0');
    // Back on the shell's screen: top's alternate screen is gone with it.
    expect(await terminal.capture()).not.toContain('prefork top:');
  });

  it('status --watch, on a stdout that is no terminal, writes one plain scoreboard per interval, and errors to stderr while the server is gone', async () => {
    requireBuild();
    const { dir, statusPort } = await holdingProject();
    const server = new Server([], dir);
    await server.started();
    const top = new Server(['status', '--watch', '--url', `127.0.0.1:${statusPort}`, '--interval', '100'], dir);
    await top.line(/^prefork top: /, 'stdout');
    const second = top.stdout.findIndex((line) => line.startsWith('prefork top: ')) + 1;
    await top.line(/^prefork top: /, 'stdout', second);
    expect(top.stdout.join('\n')).not.toContain('\x1b');
    expect(top.stdout).toContain('');
    expect(top.stdout.some((line) => /^\s+\d+\s+\d+\s+1 _\s+0\/1\s/.test(line))).toBe(true);

    server.signal('SIGTERM');
    await server.exited;
    const error = await top.line(/could not read the status/, 'stderr');
    expect(error).toMatch(new RegExp(`^prefork: could not read the status at 127\\.0\\.0\\.1:${statusPort}: .*; trying again in 100 ms$`));
    await top.line(/could not read the status/, 'stderr', top.stderr.indexOf(error) + 1);
    top.signal('SIGINT');
    expect(await top.exited).toEqual({ code: 0, signal: null });
  });

  it('refuses a bad --interval and --watch with --json as usage errors (status 64)', async () => {
    requireBuild();
    const dir = project();
    for (const interval of ['99', '1.5', 'soon', '3600001']) {
      const result = await runCli(['top', '--url', '127.0.0.1:9', '--interval', interval], dir);
      expect(result.stderr).toMatch(new RegExp(`^prefork: --interval: expected milliseconds from 100 to 3600000, got "${interval.replace('.', '\\.')}"\n`));
      expect(result.code).toBe(64);
    }
    const json = await runCli(['status', '--watch', '--json'], dir);
    expect(json.stderr).toMatch(/^prefork: --json does not go with --watch/);
    expect(json.code).toBe(64);
    const stray = await runCli(['status', '--interval', '500'], dir);
    expect(stray.stderr).toMatch(/^prefork: --interval goes with top and status --watch\n/);
    expect(stray.code).toBe(64);
    expect((await runCli(['--help'], dir)).stdout).toContain('prefork top [--config FILE | --url ADDR] [--interval MS]');
  });
});
