import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The package tests pack and install the repository: `npm run test:package` runs them.
    exclude: [...configDefaults.exclude, 'test/package/**'],
    // Builds dist/ when it is older than the sources, so that no test runs stale children.
    globalSetup: ['test/global-setup.ts'],
    // Integration tests fork real children and bind real sockets; on a 2-core machine running
    // many such files at once only makes each of them slower, so keep the parallelism modest.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
