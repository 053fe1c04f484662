import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SOAK = fileURLToPath(new URL('../../scripts/soak.mjs', import.meta.url));

describe('soak (10 s; `npm run soak` runs 60 s)', () => {
  it('under load, with children killed and frozen, reloads and resizes: nothing is lost but what killed children held, and the parent leaks nothing', async () => {
    const soak = spawn(process.execPath, [SOAK, '--duration', '10', '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    soak.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const [code] = (await once(soak, 'exit')) as [number | null];
    const report = JSON.parse(output) as { problems: string[]; requests: { ok: number; failed: number }; lostByKilledChildren: number; heartbeatKills: number; actions: Record<string, number> };
    expect(report.problems).toEqual([]);
    expect(code).toBe(0);
    expect(report.requests.ok).toBeGreaterThan(0);
    expect(report.requests.failed).toBeLessThanOrEqual(report.lostByKilledChildren);
    expect(report.actions.stop).toBe(1);
    expect(report.heartbeatKills).toBeGreaterThanOrEqual(1);
  }, 60_000);
});
