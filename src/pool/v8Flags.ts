import { execFile, spawnSync } from 'node:child_process';
import type { ResolvedPoolOptions } from './options.js';
import type { Logger } from '../logger.js';

/**
 * The V8 flags the pool itself gives its children, ahead of the user's `execArgv` (so that the
 * user's own flags win: V8 takes the last of two contrary flags). Today one:
 * `--no-memory-reducer` unless `childMemoryReducer` is on.
 *
 * A Node whose V8 does not know a flag refuses to start with it ("bad option"), so every flag is
 * tried once per Node binary (`node FLAG -e 0`) before a child gets it; one the binary refuses is
 * left out, and said once.
 */

export const NO_MEMORY_REDUCER = '--no-memory-reducer';

/** Per Node binary and flag: whether `node FLAG -e 0` ran. */
const known = new Map<string, boolean>();
const pending = new Map<string, Promise<boolean>>();
const PROBE_TIMEOUT_MS = 10_000;

function key(flag: string): string {
  return `${process.execPath}\0${flag}`;
}

/** What a probe runs: this Node with `flag` and nothing to do, in an empty environment. */
const probe = (flag: string) => [process.execPath, [flag, '-e', '0'], { timeout: PROBE_TIMEOUT_MS, env: {} }] as const;

/** Whether this Node binary starts with `flag`: tried once, in the background, then remembered. */
export function probeV8Flag(flag: string): Promise<boolean> {
  const at = key(flag);
  const answer = known.get(at);
  if (answer !== undefined) return Promise.resolve(answer);
  let running = pending.get(at);
  if (!running) {
    running = new Promise<boolean>((resolve) => {
      const [file, args, options] = probe(flag);
      execFile(file, args, options, (error) => {
        known.set(at, error === null);
        pending.delete(at);
        resolve(error === null);
      });
    });
    pending.set(at, running);
  }
  return running;
}

/** The same, at once: a flag not tried yet is tried now, synchronously (a reload that asks for a flag the start did not). */
export function v8FlagKnown(flag: string): boolean {
  const at = key(flag);
  let answer = known.get(at);
  if (answer === undefined) {
    const [file, args, options] = probe(flag);
    answer = spawnSync(file, args, { ...options, stdio: 'ignore' }).status === 0;
    known.set(at, answer);
  }
  return answer;
}

/** The flags `options` asks for, to be tried before the first child is forked. */
export function wantedV8Flags(options: Pick<ResolvedPoolOptions, 'childMemoryReducer'>): string[] {
  return options.childMemoryReducer ? [] : [NO_MEMORY_REDUCER];
}

const refused = new Set<string>();

/** A child's execArgv: the pool's flags this binary knows, then the user's `execArgv`. */
export function childExecArgv(options: Pick<ResolvedPoolOptions, 'childMemoryReducer' | 'execArgv'>, logger: Logger, wanted = wantedV8Flags(options)): string[] {
  const flags: string[] = [];
  for (const flag of wanted) {
    if (v8FlagKnown(flag)) flags.push(flag);
    else if (!refused.has(key(flag))) {
      refused.add(key(flag));
      logger.warn(`this Node (${process.version}) does not start with ${flag}; children run without it`, { flag, node: process.execPath });
    }
  }
  return [...flags, ...options.execArgv];
}
