import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fixture } from '../../helpers.js';
import { killServers, project, requireBuild, Server } from './cli-helpers.js';

beforeAll(requireBuild);
afterEach(killServers);

const PINO_PRETTY = fileURLToPath(new URL('../../../node_modules/.bin/pino-pretty', import.meta.url));

/** Runs the real pino-pretty CLI on `input`; resolves with what it prints, rejects after `ms`. */
async function pinoPretty(input: string, ms = 10_000): Promise<string> {
  const proc = spawn(PINO_PRETTY, ['--no-colorize'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const timer = setTimeout(() => proc.kill('SIGKILL'), ms);
  proc.stdin.end(input);
  const [code, signal] = (await once(proc, 'close')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  if (code !== 0) throw new Error(`pino-pretty exited with ${code ?? signal}; stderr:\n${stderr}`);
  return stdout;
}

describe('the log of prefork start', () => {
  it('is read by the real pino-pretty: levels, times, the pid and the fields of each line', async () => {
    const server = new Server(['--handler', fixture('control.mjs'), '--listen', '127.0.0.1:0', '--children', '1'], project());
    await server.started();
    const started = await server.log((entry) => entry.event === 'pool.started');
    expect(started).toMatchObject({ level: 30, msg: 'pool started', pid: server.pid, hostname: expect.any(String), time: expect.any(Number) });
    const spawned = await server.log((entry) => entry.event === 'child.spawn');
    server.signal('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });

    const pretty = await pinoPretty(`${server.stderr.join('\n')}\n`);
    // pino-pretty's layout: `[HH:MM:ss.SSS] LEVEL (pid): message`, then the fields indented.
    expect(pretty).not.toMatch(/\u001b\[/);
    expect(pretty).toMatch(new RegExp(`^\\[\\d\\d:\\d\\d:\\d\\d\\.\\d{3}\\] INFO \\(${server.pid}\\): pool started\\n {4}event: "pool\\.started"\\n`, 'm'));
    expect(pretty).toMatch(new RegExp(`^\\[[\\d:.]+\\] INFO \\(${server.pid}\\): child spawned\\n {4}event: "child\\.spawn"\\n {4}child: 1\\n {4}field\\.pid: ${spawned['field.pid'] as number}\\n`, 'm'));
    expect(pretty).toMatch(new RegExp(`^\\[[\\d:.]+\\] INFO \\(${server.pid}\\): stopping gracefully\\n {4}signal: "SIGTERM"\\n`, 'm'));
    // Not one of our lines was left as raw JSON: pino-pretty passes through what it cannot read.
    expect(pretty).not.toMatch(/^\{"level"/m);
  });
});
