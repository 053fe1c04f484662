import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SOAK = fileURLToPath(new URL('../../scripts/soak.mjs', import.meta.url));

describe('soak (10 s; `npm run soak` runs 60 s)', () => {
  it('under load, with children killed and frozen, reloads and resizes: nothing is lost but what killed children held, and the parent leaks nothing', async () => {
    const soak = spawn(process.execPath, [SOAK, '--duration', '10', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let errors = '';
    soak.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    soak.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    // 'close', not 'exit': 'exit' may come before the last of stdout has been read, and the report
    // is the script's last line.
    const [code] = (await once(soak, 'close')) as [number | null];
    let report: { problems: string[]; requests: { ok: number; failed: number }; lostByKilledChildren: number; heartbeatKills: number; actions: Record<string, number> };
    try {
      report = JSON.parse(output) as typeof report;
    } catch {
      // The script threw (a wait timed out, or the server did not start): its own words say why.
      throw new Error(`the soak script exited ${code} without a report; its stdout: ${JSON.stringify(output.slice(-500))}; the end of its stderr:\n${errors.slice(-4000)}`);
    }
    expect(report.problems).toEqual([]);
    expect(code).toBe(0);
    expect(report.requests.ok).toBeGreaterThan(0);
    expect(report.requests.failed).toBeLessThanOrEqual(report.lostByKilledChildren);
    expect(report.actions.stop).toBe(1);
    expect(report.heartbeatKills).toBeGreaterThanOrEqual(1);
  }, 60_000);
});
