import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { schedPolicy, setSchedPolicy } from '../../src/native/index.js';
import { startPool, stopPools } from '../helpers.js';

afterEach(async () => {
  await stopPools();
  // A test that switched this process by hand puts it back.
  if (schedPolicy() !== 'other') setSchedPolicy('other', false);
});

/** Linux's policy numbers in /proc/<pid>/stat (field 41). */
const POLICIES: Record<string, string> = { 0: 'other', 1: 'fifo', 2: 'rr', 3: 'batch', 5: 'idle' };

/** The scheduling policy of every thread of process `pid`, from /proc (field 41 of each thread's stat). */
function threadPolicies(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    // Fields from the third on follow the command name's closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return POLICIES[fields[41 - 3]!] ?? `policy ${fields[41 - 3]}`;
  });
}

describe.skipIf(schedPolicy() === undefined)('parentScheduling (Linux)', () => {
  it('batch (the default): the parent runs as SCHED_BATCH while the pool runs, every thread of every child as SCHED_OTHER, and the parent is put back at stop', async () => {
    expect(schedPolicy()).toBe('other');
    const pool = await startPool({ children: { start: 2, min: 2, max: 2 } });
    expect(pool.options.parentScheduling).toBe('batch');
    expect(threadPolicies(process.pid)[0]).toBe('batch');
    expect(schedPolicy()).toBe('batch');
    const pids = pool.children().map((child) => child.pid);
    expect(pids).toHaveLength(2);
    for (const pid of pids) {
      const policies = threadPolicies(pid);
      expect(policies.length).toBeGreaterThan(1);
      expect(new Set(policies)).toEqual(new Set(['other']));
    }
    await pool.stop('test');
    expect(schedPolicy()).toBe('other');
  });

  it('two pools in one process: the parent stays SCHED_BATCH until the last one stops, and both pools\' children run as SCHED_OTHER', async () => {
    const first = await startPool({ children: { start: 1, min: 1, max: 1 } });
    const second = await startPool({ children: { start: 1, min: 1, max: 1 } });
    for (const pool of [first, second]) {
      for (const child of pool.children()) expect(new Set(threadPolicies(child.pid))).toEqual(new Set(['other']));
    }
    await first.stop('test');
    expect(schedPolicy()).toBe('batch');
    await second.stop('test');
    expect(schedPolicy()).toBe('other');
  });

  it('normal: the parent keeps SCHED_OTHER', async () => {
    const pool = await startPool({ parentScheduling: 'normal', children: { start: 1, min: 1, max: 1 } });
    expect(schedPolicy()).toBe('other');
    expect(new Set(threadPolicies(pool.children()[0]!.pid))).toEqual(new Set(['other']));
  });

  it('a parent started as SCHED_BATCH by its user is left so, and its children keep the policy they inherit', async () => {
    expect(setSchedPolicy('batch', false)).toBeUndefined();
    const pool = await startPool({ children: { start: 1, min: 1, max: 1 } });
    expect(threadPolicies(pool.children()[0]!.pid)[0]).toBe('batch');
    await pool.stop('test');
    expect(schedPolicy()).toBe('batch');
  });
});
