import type { ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Child, type ChildState } from '../../../src/pool/Child.js';
import { moveChild } from '../../../src/pool/children.js';
import type { PoolContext } from '../../../src/pool/context.js';
import { moveListener, type Listener, type ListenerState } from '../../../src/pool/listeners.js';
import { memoryLogger } from '../../helpers.js';

const STATES: ChildState[] = ['starting', 'idle', 'accepting', 'busy', 'stopping', 'exited'];

/** The child diagram of Child.ts, written out: every move not listed is illegal. */
const LEGAL = new Set([
  'starting>idle', 'starting>stopping', 'starting>exited',
  'idle>accepting', 'idle>idle', 'idle>stopping', 'idle>exited',
  'accepting>idle', 'accepting>busy', 'accepting>stopping', 'accepting>exited',
  'busy>idle', 'busy>busy', 'busy>stopping', 'busy>exited',
  'stopping>stopping', 'stopping>exited',
]);

function fakeChild(state: ChildState): Child & { signals: string[] } {
  const signals: string[] = [];
  const proc = { pid: 4242, kill: (signal: string) => void signals.push(signal) } as unknown as ChildProcess;
  const child = Object.assign(new Child(1, 1, 1, proc, Date.now()), { signals });
  child.state = state;
  return child;
}

function fakeContext(): PoolContext & { logger: ReturnType<typeof memoryLogger> } {
  return { logger: memoryLogger(), listeners: [], children: [] } as unknown as PoolContext & { logger: ReturnType<typeof memoryLogger> };
}

describe('child state machine', () => {
  it.each(STATES.flatMap((from) => STATES.map((to) => [from, to] as const)))('%s -> %s follows the diagram', (from, to) => {
    expect(fakeChild(from).canMoveTo(to)).toBe(LEGAL.has(`${from}>${to}`));
  });

  const bug = { level: 'error', message: 'bug: illegal child state change; killing the child', fields: { child: 1, pid: 4242, from: 'starting', to: 'busy' } };
  it.each([
    ['a legal move changes the state and nothing else', 'idle', 'accepting', true, 'accepting', [], []],
    ['an illegal move is logged as a bug and kills the child', 'starting', 'busy', false, 'stopping', ['SIGKILL'], [bug]],
  ] as const)('%s', (_name, from, to, moved, after, signals, lines) => {
    const ctx = fakeContext();
    const child = fakeChild(from);
    expect(moveChild(ctx, child, to)).toBe(moved);
    expect(child.state).toBe(after);
    expect(child.signals).toEqual(signals);
    expect(ctx.logger.lines).toEqual(lines);
  });
});

describe('listener state machine', () => {
  const listener = (state: ListenerState) => ({ index: 0, state }) as Listener;

  it('moves along the walk: watching -> scheduled -> ordering -> watching', () => {
    const ctx = fakeContext();
    const one = listener('watching');
    for (const next of ['scheduled', 'ordering', 'watching'] as const) expect(moveListener(ctx, one, next)).toBe(true);
    expect(one.state).toBe('watching');
    expect(ctx.logger.lines).toEqual([]);
  });

  it('refuses and logs an illegal move (an order round cannot be declared while one is out)', () => {
    const ctx = fakeContext();
    const one = listener('ordering');
    expect(moveListener(ctx, one, 'overloaded')).toBe(false);
    expect(one.state).toBe('ordering');
    expect(ctx.logger.lines).toEqual([{ level: 'error', message: 'bug: illegal listener state change refused', fields: { listener: 0, from: 'ordering', to: 'overloaded' } }]);
  });
});
