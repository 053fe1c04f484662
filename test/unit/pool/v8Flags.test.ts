import { describe, expect, it } from 'vitest';
import { NO_MEMORY_REDUCER, childExecArgv, probeV8Flag, v8FlagKnown, wantedV8Flags } from '../../../src/pool/v8Flags.js';

function recordingLogger() {
  const warnings: { message: string; fields: unknown }[] = [];
  const ignore = () => {};
  return { warnings, logger: { error: ignore, info: ignore, debug: ignore, warn: (message: string, fields?: unknown) => warnings.push({ message, fields }) } };
}

describe('the V8 flags the pool gives its children', () => {
  it('this Node starts with --no-memory-reducer, and refuses a flag V8 does not have', async () => {
    await expect(probeV8Flag(NO_MEMORY_REDUCER)).resolves.toBe(true);
    await expect(probeV8Flag('--no-prefork-test-flag-that-v8-lacks')).resolves.toBe(false);
    // The synchronous form answers from what was tried, and tries a new flag itself.
    expect(v8FlagKnown(NO_MEMORY_REDUCER)).toBe(true);
    expect(v8FlagKnown('--prefork-other-test-flag-that-v8-lacks')).toBe(false);
  });

  it('--no-memory-reducer comes first unless childMemoryReducer is on, and the user\'s execArgv after it (so that it can undo it)', async () => {
    await probeV8Flag(NO_MEMORY_REDUCER);
    const { logger, warnings } = recordingLogger();
    expect(wantedV8Flags({ childMemoryReducer: false })).toEqual([NO_MEMORY_REDUCER]);
    expect(wantedV8Flags({ childMemoryReducer: true })).toEqual([]);
    expect(childExecArgv({ childMemoryReducer: false, execArgv: ['--memory-reducer', '--max-old-space-size=64'] }, logger)).toEqual([NO_MEMORY_REDUCER, '--memory-reducer', '--max-old-space-size=64']);
    expect(childExecArgv({ childMemoryReducer: true, execArgv: ['--max-old-space-size=64'] }, logger)).toEqual(['--max-old-space-size=64']);
    expect(warnings).toEqual([]);
  });

  it('a flag this Node refuses is left out, and said once', () => {
    const { logger, warnings } = recordingLogger();
    const options = { childMemoryReducer: false, execArgv: ['--max-old-space-size=64'] };
    const bogus = ['--no-prefork-test-flag-that-v8-lacks'];
    expect(childExecArgv(options, logger, bogus)).toEqual(['--max-old-space-size=64']);
    expect(childExecArgv(options, logger, bogus)).toEqual(['--max-old-space-size=64']);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toContain('--no-prefork-test-flag-that-v8-lacks');
    expect(warnings[0]!.message).toContain(process.version);
  });
});
