import { defineConfig } from 'vitest/config';

// The package tests (`npm run test:package`, run by .ci/run): they pack the repository, install
// the tarball as a user would and run it on Node 20, Node 24 and arm64 under qemu. One file, one
// process: the tests share one packed tarball and one installed project.
export default defineConfig({
  test: {
    include: ['test/package/**/*.test.ts'],
    pool: 'forks',
    poolOptions: { forks: { singleFork: true } },
    testTimeout: 120_000,
    hookTimeout: 600_000,
  },
});
