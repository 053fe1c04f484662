/**
 * Vitest global setup: the children run the built `dist/child.js`, so a test run on a stale
 * `dist/` tests old code. `npm test` builds first; a bare `npx vitest run FILE` gets the same
 * here: when any source file is newer than the oldest build output (or one is missing), build.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUTPUTS = ['dist/index.js', 'dist/index.cjs', 'dist/cli.js', 'dist/child.js'];
const SOURCES = ['index.ts', 'src', 'plugins', 'tsup.config.ts', 'package.json'];

/** The newest modification time of a file or of the files below a directory (build output excluded). */
function newest(path: string): number {
  const stats = statSync(path);
  if (!stats.isDirectory()) return stats.mtimeMs;
  let latest = 0;
  for (const entry of readdirSync(path)) {
    if (entry === 'build' || entry === 'prebuilds') continue;
    latest = Math.max(latest, newest(join(path, entry)));
  }
  return latest;
}

function oldestOutput(): number {
  try {
    return Math.min(...OUTPUTS.map((output) => statSync(join(ROOT, output)).mtimeMs));
  } catch {
    return 0;
  }
}

export default function setup(): void {
  const sources = Math.max(...SOURCES.map((source) => newest(join(ROOT, source))));
  if (sources <= oldestOutput()) return;
  process.stderr.write('test setup: dist/ is older than the sources; building it (tsup)\n');
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'tsup', 'dist', 'cli-default.js')], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
}
