// @ts-check
/**
 * StrykerJS over prefork's fast, pure modules (`npm run test:mutation`, not part of `npm test`):
 * the control frames and the checks of what a child sends, configuration loading and checking,
 * the SCGI parser and option reader, the pool's option resolution, and the plugins' option checks.
 * The scores and the surviving mutants, with why each is equivalent, are in test/README.md.
 *
 * Ranges are found when this file loads, so that they follow the code: a plugin's constructor,
 * the SCGI parser (`scgiParser.ts`, from ScgiProtocolError to the end of ScgiParser) and readScgiOptions.
 */
import { readFileSync } from 'node:fs';

/** `file:first-last` for the lines from the one matching `start` to the next one equal to `end`. */
function range(file, start, end) {
  const lines = readFileSync(file, 'utf8').split('\n');
  const first = lines.findIndex((line) => start.test(line));
  if (first < 0) throw new Error(`stryker.config.mjs: ${start} is not in ${file}`);
  const last = lines.findIndex((line, index) => index > first && line === end);
  if (last < 0) throw new Error(`stryker.config.mjs: no ${JSON.stringify(end)} after ${start} in ${file}`);
  return `${file}:${first + 1}-${last + 1}`;
}

const PLUGINS = ['AbruptOverloadPlugin', 'GracefulOverloadPlugin', 'LoggerPlugin', 'RecyclePlugin', 'ShutdownCheckPlugin', 'SpareChildrenPlugin'];

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'test/stryker.vitest.config.ts' },
  coverageAnalysis: 'perTest',
  mutate: [
    'src/channel/frames.ts',
    'src/channel/payloads.ts',
    'src/config/*.ts',
    'src/pool/options.ts',
    'src/pool/optionChecks.ts',
    'src/pool/policyOptions.ts',
    range('src/protocols/scgiParser.ts', /^export class ScgiProtocolError /, '}'),
    range('src/protocols/scgiParser.ts', /^export function quote\(/, '}'),
    range('src/protocols/scgiParser.ts', /^export function parseScgiHeaders\(/, '}'),
    range('src/protocols/scgiParser.ts', /^export class ScgiParser /, '}'),
    range('src/protocols/scgi.ts', /^export function readScgiOptions\(/, '}'),
    ...PLUGINS.map((name) => range(`plugins/${name}.ts`, /^ {2}constructor\(/, '  }')),
  ],
  ignorePatterns: ['src/native/build', 'src/native/prebuilds', 'bench/results', 'reports'],
  concurrency: 2,
  timeoutMS: 10_000,
  reporters: ['clear-text', 'progress', 'json'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 90, low: 80, break: null },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
