#!/usr/bin/env node
/**
 * Runs the addon's unit tests against the POSIX fallbacks that macOS and the BSDs compile
 * (`build-addon --portable`, PREFORK_PORTABLE), then puts the Linux build back, also when the
 * tests fail. We cannot run macOS here; this way the code a Mac user compiles is code we ran.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'cli.js');

function run(args, env = {}) {
  const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  return result.status ?? 1;
}

let status = run([cli, 'build-addon', '--portable']);
if (status === 0) status = run([join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/unit/native.test.ts'], { PREFORK_EXPECT_PORTABLE: '1' });
const restored = run([cli, 'build-addon']);
process.exit(status || restored);
