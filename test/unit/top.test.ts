import { describe, expect, it } from 'vitest';
import type { ChildStatus, StatusReport } from '../../src/pool/status.js';
import { changedChildren, connectionsPerSecond, durationText, renderTop, renderTopError, type TopLayout } from '../../src/top.js';

const LETTERS = { starting: 'S', idle: '_', accepting: 'A', busy: 'B', stopping: 'G' } as const;

function child(pid: number, state: ChildStatus['state'], id = pid - 100): ChildStatus {
  return { id, pid, generation: 1, state, letter: LETTERS[state], active: state === 'busy' ? 1 : 0, slots: 1, accepted: 3, served: 2, ageS: 65, idleForS: state === 'idle' ? 4 : null, rssMiB: 45.5, cpuS: 0.25 };
}

/** A report of parent pid 100 at `uptimeMs` with `accepted` connections so far. */
function report(children: ChildStatus[], uptimeMs = 10_000, accepted = 0, pid = 100): StatusReport {
  const byState = { starting: 0, idle: 0, accepting: 0, busy: 0, stopping: 0 };
  for (const c of children) byState[c.state]++;
  return {
    pool: {
      state: 'running',
      pid,
      generation: 1,
      uptimeMs,
      children: { ...byState, total: children.length },
      connections: { ordered: accepted, accepted, chained: 0, served: accepted, lost: 0, rejected: 0, active: byState.busy },
      acceptNothing: 0,
      acceptTimeouts: 0,
      spuriousWakeups: 0,
      overload: { events: 2, active: false, totalMs: 0 },
      acceptQueue: { length: 3, max: 9, limit: 511 },
      dispatchLatencyUs: { p50: 41, p99: 230, max: 900, samples: 10 },
      exits: { total: 0, failedStarts: 0, crashes: 0 },
      invalidFrames: 0,
      ready: true,
      connectionsPerSecond: 0,
    },
    children,
  };
}

const LAYOUT: TopLayout = { width: 200, now: Date.UTC(2024, 0, 1, 12, 0, 0), address: '127.0.0.1:9740', intervalMs: 1000 };
const REVERSE = '\x1b[7m';

/** The line of the child with `pid`. */
function lineOf(screen: string, pid: number): string {
  const line = screen.split('\n').find((text) => new RegExp(`^\\s+\\d+\\s+${pid}\\s`).test(text));
  if (line === undefined) throw new Error(`no line for pid ${pid} in:\n${screen}`);
  return line;
}

describe('the top screen', () => {
  it('highlights the letter of a child whose state changed since the previous report, and only that one', () => {
    const before = report([child(201, 'idle'), child(202, 'idle')]);
    const after = report([child(201, 'busy'), child(202, 'idle')]);
    expect([...changedChildren(after, before)]).toEqual([201]);
    const screen = renderTop(after, before, LAYOUT);
    expect(lineOf(screen, 201)).toMatch(/^\s+101\s+201\s+1 \x1b\[7mB\x1b\[27m\s+1\/1\s/);
    expect(lineOf(screen, 202)).not.toContain(REVERSE);
    expect(lineOf(screen, 202)).toMatch(/\s202\s+1 _\s+0\/1\s/);
  });

  it('highlights a new child (a pid the previous report did not have), and drops one that exited', () => {
    const before = report([child(201, 'idle'), child(202, 'idle')]);
    const after = report([child(201, 'idle'), child(203, 'starting')]);
    expect([...changedChildren(after, before)]).toEqual([203]);
    const screen = renderTop(after, before, LAYOUT);
    expect(lineOf(screen, 203)).toContain(`${REVERSE}S\x1b[27m`);
    expect(lineOf(screen, 201)).not.toContain(REVERSE);
    expect(screen).not.toMatch(/\s202\s/);
  });

  it('highlights nothing when no letter changed, nor on the first screen (no previous report)', () => {
    const now = report([child(201, 'busy'), child(202, 'idle')], 11_000);
    expect(renderTop(now, report([child(201, 'busy'), child(202, 'idle')]), LAYOUT)).not.toContain('\x1b');
    expect(renderTop(now, undefined, LAYOUT)).not.toContain('\x1b');
    expect(changedChildren(now, undefined).size).toBe(0);
  });

  it('draws the children in the order of the report, with the pool above them', () => {
    const screen = renderTop(report([child(305, 'busy', 2), child(301, 'idle', 1), child(309, 'stopping', 3)]), undefined, LAYOUT);
    const lines = screen.split('\n');
    expect(lines[0]).toMatch(/^prefork top: 127\.0\.0\.1:9740, every 1000 ms \(q quits\)\s+\d\d:\d\d:\d\d$/);
    expect(lines[1]).toBe('pool: pid 100, running, ready, generation 1, up 10s');
    expect(lines[2]).toBe('children: 3 (S starting 0, _ idle 1, A accepting 0, B busy 1, G stopping 1)');
    expect(lines[4]).toBe('backlog: 3 (max 9) of 511; overload: no (2 so far); dispatch: p50 41 µs, p99 230 µs');
    expect(lines.slice(7).map((line) => Number(line.trim().split(/\s+/)[1]))).toEqual([305, 301, 309]);
    expect(lineOf(screen, 305)).toMatch(/\s305\s+1 B\s+1\/1\s+3\s+2\s+1m05s\s+-\s+45\.5\s+0\.25$/);
    expect(lineOf(screen, 301)).toMatch(/\s301\s+1 _\s+0\/1\s+3\s+2\s+1m05s\s+4s\s/);
  });

  it('computes connections per second from the difference of two reports, not the lifetime average', () => {
    const before = report([], 10_000, 1000);
    const after = report([], 12_000, 1050);
    expect(connectionsPerSecond(after, before)).toBe(25);
    expect(renderTop(after, before, LAYOUT).split('\n')[3]).toMatch(/^connections: 25\/s, /);
    // No previous report, another parent (restarted), or no time between them: no rate.
    expect(connectionsPerSecond(after, undefined)).toBeNull();
    expect(connectionsPerSecond(after, report([], 10_000, 1000, 999))).toBeNull();
    expect(connectionsPerSecond(after, after)).toBeNull();
    expect(renderTop(after, undefined, LAYOUT).split('\n')[3]).toMatch(/^connections: -\/s, /);
  });

  it('cuts every line to the width, without counting or cutting into the highlight escape', () => {
    const before = report([child(201, 'idle')]);
    const after = report([child(201, 'busy')]);
    const full = lineOf(renderTop(after, before, LAYOUT), 201).replaceAll(/\x1b\[\d+m/g, '');
    const letterAt = full.indexOf('B');
    for (const width of [10, letterAt, letterAt + 1, letterAt + 5, 40]) {
      const screen = renderTop(after, before, { ...LAYOUT, width });
      for (const line of screen.split('\n')) expect(line.replaceAll(/\x1b\[\d+m/g, '').length).toBeLessThanOrEqual(width);
      const line = screen.split('\n')[7]!;
      expect(line.replaceAll(/\x1b\[\d+m/g, '')).toBe(full.slice(0, width));
      // The reverse video is there exactly when the letter is, and always switched off.
      expect(line.includes(REVERSE)).toBe(width > letterAt);
      if (width > letterAt) expect(line).toContain(`${REVERSE}B\x1b[27m`);
    }
  });

  it('sums up the children a short terminal has no room for in one line', () => {
    const children = Array.from({ length: 10 }, (_, i) => child(201 + i, 'idle'));
    const lines = renderTop(report(children), undefined, { ...LAYOUT, rows: 12 }).split('\n');
    expect(lines).toHaveLength(12);
    expect(lines[11]).toBe('... 6 more children (a taller terminal shows them)');
  });

  it('marks a highlighted letter with * and writes no escape code without ansi', () => {
    const screen = renderTop(report([child(201, 'busy')]), report([child(201, 'idle')]), { ...LAYOUT, ansi: false });
    expect(screen).not.toContain('\x1b');
    expect(lineOf(screen, 201)).toMatch(/\s201\s+1 B\*\s+1\/1/);
  });

  it('shows the error and that it keeps trying while the listener does not answer', () => {
    const screen = renderTopError('could not read the status at 127.0.0.1:9740: connect ECONNREFUSED 127.0.0.1:9740', LAYOUT);
    expect(screen.split('\n').slice(1)).toEqual(['could not read the status at 127.0.0.1:9740: connect ECONNREFUSED 127.0.0.1:9740', 'trying again every 1000 ms']);
  });

  it('writes durations in their two largest units', () => {
    expect([0, 42_900, 187_000, 7_380_000, 363_600_000].map(durationText)).toEqual(['0s', '42s', '3m07s', '2h03m', '4d05h']);
  });
});
