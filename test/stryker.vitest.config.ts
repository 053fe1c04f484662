import { defineConfig } from 'vitest/config';

// The tests StrykerJS runs for each mutant (stryker.config.mjs): the unit tests of the modules it
// mutates, all in-process, none of them forking children or needing dist/.
export default defineConfig({
  test: {
    include: [
      'test/unit/channel/*.test.ts',
      'test/unit/config/*.test.ts',
      'test/unit/pool/options.test.ts',
      'test/unit/pool/policyOptions.test.ts',
      'test/unit/logger.test.ts',
      'test/unit/protocols/scgi.test.ts',
      'test/unit/protocols/scgi-fuzz.test.ts',
      'test/unit/plugins/options.test.ts',
    ],
    testTimeout: 10_000,
  },
});
