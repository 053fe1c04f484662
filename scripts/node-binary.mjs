#!/usr/bin/env node
/**
 * Official Node binaries (with their headers) from the registry's `node-linux-<arch>` packages,
 * unpacked once into a cache outside the repository: for building the prebuilds against a known
 * Node, running the suite on Node 24, and running the arm64 prebuild under qemu.
 *
 *   node scripts/node-binary.mjs x64|arm64   prints the folder holding bin/node and include/node
 *
 * The cache is $PREFORK_CACHE, or ~/.cache/prefork.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The Node release the prebuilds are built against and the second suite runs on. */
export const NODE_VERSION = '24.22.3';

/** Returns the unpacked `package/` folder of node-linux-<arch>@<version>, fetching it when absent. */
export function nodeBinary(arch, version = NODE_VERSION) {
  const cache = process.env.PREFORK_CACHE ?? join(homedir(), '.cache', 'prefork');
  const folder = join(cache, `node-linux-${arch}-${version}`);
  if (existsSync(join(folder, 'bin', 'node'))) return folder;
  mkdirSync(cache, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'prefork-node-'));
  try {
    execFileSync('npm', ['pack', `node-linux-${arch}@${version}`, '--pack-destination', work, '--silent'], { stdio: ['ignore', 'ignore', 'inherit'] });
    const tarball = readdirSync(work).find((name) => name.endsWith('.tgz'));
    if (!tarball) throw new Error(`npm pack node-linux-${arch}@${version} produced no tarball`);
    execFileSync('tar', ['xzf', join(work, tarball), '-C', work]);
    rmSync(folder, { recursive: true, force: true });
    renameSync(join(work, 'package'), folder);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return folder;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arch = process.argv[2];
  if (arch !== 'x64' && arch !== 'arm64') {
    process.stderr.write('usage: node scripts/node-binary.mjs x64|arm64\n');
    process.exit(64);
  }
  process.stdout.write(`${nodeBinary(arch)}\n`);
}
