import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../../helpers.js';

/** The built command; the tests run the real `node dist/cli.js`, as users do. */
export const CLI = fileURLToPath(new URL('../../../dist/cli.js', import.meta.url));

/** Throws a clear error when the package was not built (`npm test` builds first). */
export function requireBuild(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`);
}

/**
 * A project directory for one test: a package.json (so the config search stops here, whatever
 * lies above /tmp) and the files given, relative paths to contents. Readable by everyone, for
 * the privilege-drop test's unprivileged children.
 */
export function project(files: Record<string, string | object> = {}): string {
  const dir = tempDir('prefork-cli-');
  chmodSync(dir, 0o755);
  writeFiles(dir, { 'package.json': { name: 'cli-test', private: true }, ...files });
  return dir;
}

/** Writes files (objects as JSON) under `dir`, creating directories. */
export function writeFiles(dir: string, files: Record<string, string | object>): void {
  for (const [name, contents] of Object.entries(files)) {
    const path = join(dir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, typeof contents === 'string' ? contents : `${JSON.stringify(contents, null, 2)}\n`);
  }
}

/** A raw handler that answers every connection with `generation VERSION pid uid gid` and closes. */
export const WHO_HANDLER = `export function connection(socket, ctx) {
  socket.on('error', () => {});
  socket.end(\`\${ctx.generation} \${process.env.VERSION ?? '-'} \${process.pid} \${process.getuid()} \${process.getgid()}\\n\`);
}
`;

/** Runs the command to completion. */
export function runCli(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    proc.on('error', reject);
    proc.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** What the start line says. */
export interface StartLine {
  host: string;
  port: number;
  children: number;
  pid: number;
}

const running = new Set<Server>();

/** A `prefork` process run by a test: its output as lines, awaitable. */
export class Server {
  readonly proc: ChildProcess;
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters: (() => void)[] = [];

  /** `ids`: run the command itself as another user (root only). */
  constructor(args: string[], cwd: string, ids: { uid?: number; gid?: number } = {}) {
    this.proc = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], ...ids });
    running.add(this);
    this.#collect(this.proc.stdout!, this.stdout);
    this.#collect(this.proc.stderr!, this.stderr);
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        running.delete(this);
        resolve({ code, signal });
        this.#notify();
      });
    });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  #collect(stream: NodeJS.ReadableStream, lines: string[]): void {
    let partial = '';
    stream.on('data', (chunk: Buffer) => {
      partial += chunk.toString('utf8');
      const parts = partial.split('\n');
      partial = parts.pop()!;
      lines.push(...parts);
      if (parts.length > 0) this.#notify();
    });
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Resolves with the first line of `stream` from index `from` on that matches; rejects when the
   * process exits first or after `ms`, quoting the output for the failure message.
   */
  async line(pattern: RegExp | ((line: string) => boolean), stream: 'stdout' | 'stderr' = 'stderr', from = 0, ms = 15_000): Promise<string> {
    const deadline = Date.now() + ms;
    const lines = stream === 'stdout' ? this.stdout : this.stderr;
    let exited = false;
    void this.exited.then(() => (exited = true));
    for (;;) {
      const found = lines.slice(from).find((line) => (typeof pattern === 'function' ? pattern(line) : pattern.test(line)));
      if (found !== undefined) return found;
      if (exited || Date.now() > deadline) {
        throw new Error(`no ${stream} line matching ${pattern} (${exited ? 'the process exited' : `within ${ms} ms`}); stderr:\n${this.stderr.join('\n')}\nstdout:\n${this.stdout.join('\n')}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Resolves with the first JSON log line (stderr) from `from` on whose fields satisfy `predicate`. */
  async log(predicate: (entry: Record<string, unknown>) => boolean, from = 0, ms?: number): Promise<Record<string, unknown>> {
    const matches = (line: string) => {
      try {
        return predicate(JSON.parse(line) as Record<string, unknown>);
      } catch {
        return false;
      }
    };
    const line = await this.line(matches, 'stderr', from, ms);
    return JSON.parse(line) as Record<string, unknown>;
  }

  /** Resolves with the parsed start line. */
  async started(): Promise<StartLine> {
    const line = await this.line(/^prefork .*: listening on /, 'stdout');
    const match = /listening on (?:\[([^\]]+)\]|([^:\s]+)):(\d+).* (\d+) children, pid (\d+)$/.exec(line);
    if (!match) throw new Error(`unexpected start line: ${line}`);
    return { host: match[1] ?? match[2]!, port: Number(match[3]), children: Number(match[4]), pid: Number(match[5]) };
  }

  signal(signal: NodeJS.Signals): void {
    this.proc.kill(signal);
  }
}

/** Kills every server a test left running (call from afterEach). */
export async function killServers(): Promise<void> {
  await Promise.all(
    [...running].map(async (server) => {
      const children = childPids(server.pid);
      server.proc.kill('SIGKILL');
      for (const pid of children) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      await server.exited;
    }),
  );
}

/** The pids of the live child processes of `pid`, from /proc. */
export function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name (which may contain spaces): state, ppid, ...
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) === pid && state !== 'Z') children.push(Number(entry));
    } catch {
      // Exited while we looked.
    }
  }
  return children;
}

export { alive } from '../../helpers.js';

/**
 * Resolves once `predicate()` holds: for facts about other processes (which exist in /proc),
 * where there is no event of this process to await. Rejects after `ms`.
 */
export async function until(predicate: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** One request to a WHO_HANDLER server: resolves with its answer line, split into fields. */
export function who(port: number, host = '127.0.0.1'): Promise<{ generation: number; version: string; pid: number; uid: number; gid: number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString('utf8')));
    socket.on('error', reject);
    socket.on('close', () => {
      const [generation, version, pid, uid, gid] = text.trim().split(' ');
      if (pid === undefined) reject(new Error(`incomplete answer ${JSON.stringify(text)}`));
      else resolve({ generation: Number(generation), version: version!, pid: Number(pid), uid: Number(uid), gid: Number(gid) });
    });
  });
}
