/**
 * prefork as a user gets it: `npm pack` of this repository, installed into a fresh project with
 * install scripts disabled and no compiler, make or python on PATH, then run through the `prefork`
 * command, `import`, `require` and a strict TypeScript consumer, on Node 20, Node 24 and arm64
 * (under qemu). `npm run test:package`; .ci/run runs it after `npm test`.
 *
 * Needs: the npm registry (the project's dependencies, Node 24 and arm64 Node from the
 * `node-linux-*` packages), gcc-aarch64-linux-gnu for the arm64 prebuild, and for the arm64 run
 * qemu-user-static with its binfmt entry registered (.ci/run registers it; elsewhere the arm64
 * test is skipped unless PREFORK_REQUIRE_ARM64=1 makes that a failure).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeBinary } from '../../scripts/node-binary.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Where a user's files go, and what npm pack printed. */
let work: string;
let tarball: string;
let project: string;
let packed: { size: number; unpackedSize: number; files: { path: string }[] };
/** A PATH on which cc, gcc, make, python and node-gyp exist only as stubs that fail. */
let bareEnv: NodeJS.ProcessEnv;

const NODES = { 'Node 20': process.execPath, 'Node 24': '' };

const APP = `export function request(req, res) {
  res.end(\`\${process.arch} \${process.version} \${req.url}\`);
}
`;

/** Starts a pool from the installed package, asks it one question, stops it. `FORMAT`: esm or cjs. */
const CLIENT = (format: 'esm' | 'cjs') => `${format === 'esm' ? "import { Pool, silentLogger } from 'prefork';\nimport { get } from 'node:http';" : "const { Pool, silentLogger } = require('prefork');\nconst { get } = require('node:http');"}
async function main() {
  const pool = new Pool({ handler: ${JSON.stringify('app.mjs')}, cwd: __dirname_, listen: '127.0.0.1:0', protocol: 'http', children: { start: 1 }, logger: silentLogger });
  await pool.start();
  const { port } = pool.addresses()[0];
  const answer = await new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/${format}' }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve(res.statusCode + ' ' + body));
    }).on('error', reject);
  });
  await pool.stop('done');
  process.stdout.write(answer);
}
main().catch((error) => {
  process.stderr.write((error.code ?? 'ERROR') + ': ' + error.message + '\\n');
  process.exit(1);
});
`.replace('__dirname_', format === 'esm' ? 'new URL(".", import.meta.url).pathname' : '__dirname');

const CONSUMER = `import { Pool, defineConfig, type PoolPlugin } from 'prefork';

class CountReady implements PoolPlugin {
  ready = 0;
  apply(pool: Pool): void {
    pool.hooks.onChildReady.tap('CountReady', () => {
      this.ready++;
    });
  }
}

export const config = defineConfig({ handler: './app.mjs', listen: ['127.0.0.1:0'], protocol: 'http' });
export const pool: Pool = new Pool({ handler: 'app.mjs', listen: '127.0.0.1:0', protocol: 'http', plugins: [new CountReady()] });
`;

/** Runs a command; returns its status and output. */
function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeout?: number }) {
  const result = spawnSync(command, args, { cwd: options.cwd, env: options.env ?? process.env, encoding: 'utf8', timeout: options.timeout ?? 120_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, error: result.error };
}

/** GET / on 127.0.0.1:port; resolves with "status body". */
function ask(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      res.on('end', () => resolve(`${res.statusCode} ${body}`));
    }).on('error', reject);
  });
}

/**
 * Runs `prefork --handler app.mjs --listen 127.0.0.1:0 --protocol http` (the command given),
 * waits for its start line, asks one question, sends SIGTERM to the prefork process its start
 * line names (under npx, a child of npx) and waits for the command to exit. `stopped`: prefork
 * logged its graceful stop.
 */
async function serveOnce(command: string, args: string[], env: NodeJS.ProcessEnv, cwd: string, startMs = 60_000): Promise<{ answer: string; code: number | null; stopped: boolean }> {
  const server = spawn(command, [...args, '--handler', 'app.mjs', '--listen', '127.0.0.1:0', '--protocol', 'http', '--children', '1'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  server.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => server.on('exit', (code) => resolve(code)));
  let pid: number;
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no start line within ${startMs} ms; stderr:\n${stderr}`)), startMs);
      server.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString('utf8');
        const match = /listening on 127\.0\.0\.1:(\d+) .*, pid (\d+)\n/.exec(stdout);
        if (match) {
          clearTimeout(timer);
          pid = Number(match[2]);
          resolve(Number(match[1]));
        }
      });
      void exited.then((code) => reject(new Error(`exited with ${code} before listening; stderr:\n${stderr}`)));
    });
    const answer = await ask(port, '/cli');
    process.kill(pid!, 'SIGTERM');
    const code = await exited;
    return { answer, code, stopped: stderr.includes('"event":"pool.stopped"') };
  } finally {
    // On any failure leave nothing running: the command runs in a process group of its own
    // (detached), which npx, prefork and its children share.
    try {
      process.kill(-server.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function arm64Ready(): boolean {
  const entry = '/proc/sys/fs/binfmt_misc/qemu-aarch64';
  return existsSync(entry) && readFileSync(entry, 'utf8').startsWith('enabled') && existsSync('/usr/aarch64-linux-gnu/lib');
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'prefork-package-'));
  NODES['Node 24'] = join(nodeBinary('x64'), 'bin', 'node');

  // Pack as `npm publish` does: prepack makes both prebuilds, prepare builds dist/. The scripts'
  // output shares npm's stdout, so the tarball itself is read, not what npm printed.
  const started = Date.now();
  execFileSync('npm', ['pack', '--pack-destination', work], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const name = readdirSync(work).find((file) => file.endsWith('.tgz'));
  if (!name) throw new Error(`npm pack left no tarball in ${work}`);
  tarball = join(work, name);
  // `tar tvzf` lines: mode owner size date time path.
  const entries = execFileSync('tar', ['tvzf', tarball], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => !fields[0]!.startsWith('d'))
    .map((fields) => ({ size: Number(fields[2]), path: fields.slice(5).join(' ').replace(/^package\//, '') }));
  packed = { size: statSync(tarball).size, unpackedSize: entries.reduce((sum, entry) => sum + entry.size, 0), files: entries };
  console.log(`npm pack: ${packed.size} bytes packed, ${packed.unpackedSize} unpacked, ${packed.files.length} files, in ${Date.now() - started} ms`);

  // Compilers, make, python and node-gyp exist only as stubs that fail loudly.
  const shadow = join(work, 'no-toolchain');
  mkdirSync(shadow);
  for (const tool of ['cc', 'gcc', 'g++', 'c++', 'clang', 'clang++', 'make', 'gmake', 'python', 'python3', 'node-gyp']) {
    writeFileSync(join(shadow, tool), `#!/bin/sh\necho "${tool} is not available in this test" >&2\nexit 127\n`);
    chmodSync(join(shadow, tool), 0o755);
  }
  bareEnv = { ...process.env, PATH: `${shadow}:${process.env.PATH}` };
  for (const name of Object.keys(bareEnv)) if (name.startsWith('npm_')) delete bareEnv[name];

  project = join(work, 'app');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  const installStarted = Date.now();
  const install = run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', tarball], { cwd: project, env: bareEnv });
  expect(install.status, install.stderr).toBe(0);
  console.log(`npm install --ignore-scripts of the tarball (no toolchain): ${Date.now() - installStarted} ms`);
  writeFileSync(join(project, 'app.mjs'), APP);
  writeFileSync(join(project, 'esm.mjs'), CLIENT('esm'));
  writeFileSync(join(project, 'cjs.cjs'), CLIENT('cjs'));
}, 600_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('holds only what users need: dist, the addon sources, both prebuilds, README, LICENSE', () => {
    const paths = packed.files.map((file) => file.path).sort();
    const allowed = /^(package\.json|README\.md|LICENSE|dist\/[\w.-]+\.(js|cjs|d\.ts|d\.cts)|src\/native\/[\w-]+\.(c|h)|src\/native\/binding\.gyp|src\/native\/prebuilds\/linux-(x64|arm64)\/node\.napi\.glibc\.node)$/;
    expect(paths.filter((path) => !allowed.test(path))).toEqual([]);
    for (const needed of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'dist/cli.js', 'dist/child.js', 'src/native/prefork.h', 'src/native/binding.gyp']) {
      expect(paths).toContain(needed);
    }
    expect(paths).toContain('src/native/prebuilds/linux-x64/node.napi.glibc.node');
    expect(paths).toContain('src/native/prebuilds/linux-arm64/node.napi.glibc.node');
  });

  it('has no install script and no root binding.gyp, so no package manager runs anything at install', () => {
    const manifest = JSON.parse(readFileSync(join(project, 'node_modules', 'prefork', 'package.json'), 'utf8')) as { scripts?: Record<string, string>; gypfile?: boolean };
    for (const script of ['preinstall', 'install', 'postinstall']) expect(manifest.scripts?.[script], script).toBeUndefined();
    expect(existsSync(join(project, 'node_modules', 'prefork', 'binding.gyp'))).toBe(false);
  });

  it('installs with install scripts enabled too, with no toolchain on PATH', () => {
    const other = join(work, 'scripts-on');
    mkdirSync(other);
    writeFileSync(join(other, 'package.json'), JSON.stringify({ name: 'scripts-on', private: true }));
    const install = run('npm', ['install', '--no-audit', '--no-fund', tarball], { cwd: other, env: bareEnv });
    expect(install.status, install.stderr).toBe(0);
    expect(`${install.stdout}${install.stderr}`).not.toMatch(/node-gyp|gyp info|is not available in this test/);
  });

  it("installs with pnpm 10 (its own node_modules layout, dependencies' scripts skipped), and a pool answers", () => {
    const other = join(work, 'pnpm');
    mkdirSync(other);
    writeFileSync(join(other, 'package.json'), JSON.stringify({ name: 'pnpm-consumer', private: true, type: 'module' }));
    const install = run('npx', ['--yes', 'pnpm@10', 'add', tarball], { cwd: other, env: bareEnv });
    expect(install.status, `${install.stdout}${install.stderr}`).toBe(0);
    expect(existsSync(join(other, 'node_modules', '.pnpm'))).toBe(true);
    writeFileSync(join(other, 'app.mjs'), APP);
    writeFileSync(join(other, 'esm.mjs'), CLIENT('esm'));
    const result = run(process.execPath, ['esm.mjs'], { cwd: other, env: bareEnv });
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(`200 x64 ${process.version} /esm`);
  });

  it('passes publint and arethetypeswrong (ESM and CJS entry points, .d.ts and .d.cts)', () => {
    const publint = run(join(ROOT, 'node_modules', '.bin', 'publint'), ['run', tarball, '--strict'], { cwd: work });
    expect(publint.status, `${publint.stdout}${publint.stderr}`).toBe(0);
    expect(publint.stdout).not.toMatch(/warning|error|suggestion/i);
    const attw = run(join(ROOT, 'node_modules', '.bin', 'attw'), [tarball, '--format', 'ascii'], { cwd: work });
    expect(attw.status, `${attw.stdout}${attw.stderr}`).toBe(0);
  });

  it('a strict TypeScript consumer (module nodenext) type-checks, and a wrong option is a type error', () => {
    const types = run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--save-dev', 'typescript@~5.9.3', '@types/node@^20.19.0'], { cwd: project, env: bareEnv });
    expect(types.status, types.stderr).toBe(0);
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, types: ['node'] }, files: ['consumer.ts'] }));
    writeFileSync(join(project, 'consumer.ts'), CONSUMER);
    const tsc = join(project, 'node_modules', 'typescript', 'bin', 'tsc');
    const good = run(process.execPath, [tsc, '-p', '.'], { cwd: project });
    expect(good.status, good.stdout).toBe(0);
    writeFileSync(join(project, 'consumer.ts'), `${CONSUMER}export const wrong = new Pool({ handler: 42, listen: '127.0.0.1:0' });\n`);
    const bad = run(process.execPath, [tsc, '-p', '.'], { cwd: project });
    expect(bad.status).not.toBe(0);
    expect(bad.stdout).toMatch(/consumer\.ts\(\d+,\d+\): error TS2322: Type 'number' is not assignable to type 'string'/);
  });
});

describe.each(Object.keys(NODES) as (keyof typeof NODES)[])('installed with no toolchain, on %s', (name) => {
  const env = () => ({ ...bareEnv, PATH: `${join(NODES[name], '..')}:${bareEnv.PATH}` });
  const version = () => execFileSync(NODES[name], ['--version'], { encoding: 'utf8' }).trim();

  it('`npx prefork --handler app.mjs --listen 127.0.0.1:PORT --protocol http` answers a request', async () => {
    const { answer, code, stopped } = await serveOnce('npx', ['prefork'], env(), project);
    expect(answer).toBe(`200 x64 ${version()} /cli`);
    expect({ code, stopped }).toEqual({ code: 0, stopped: true });
  });

  it("`import { Pool } from 'prefork'` starts a pool that answers", () => {
    const result = run(NODES[name], ['esm.mjs'], { cwd: project, env: env() });
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(`200 x64 ${version()} /esm`);
  });

  it("`require('prefork')` starts a pool that answers", () => {
    const result = run(NODES[name], ['cjs.cjs'], { cwd: project, env: env() });
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(`200 x64 ${version()} /cjs`);
  });
});

describe('a platform with no prebuild', () => {
  let bare: string;

  beforeAll(() => {
    bare = join(work, 'no-prebuild');
    cpSync(project, bare, { recursive: true, verbatimSymlinks: true });
    rmSync(join(bare, 'node_modules', 'prefork', 'src', 'native', 'prebuilds', 'linux-x64'), { recursive: true });
  });

  it('fails with PREFORK_ERR_NATIVE_LOAD naming the platform, libc, Node, the prebuilds there are and the build command', () => {
    const result = run(process.execPath, ['esm.mjs'], { cwd: bare, env: bareEnv });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('PREFORK_ERR_NATIVE_LOAD: cannot load the native addon: prefork has no prebuilt addon for ');
    expect(result.stderr).toContain(`linux-x64 (glibc), Node ${process.versions.node}, N-API ${process.versions.napi}`);
    expect(result.stderr).toContain('linux-arm64/node.napi.glibc.node');
    expect(result.stderr).toContain('`npx prefork build-addon`');
  });

  it('`npx prefork build-addon` builds the addon from the package (toolchain present), and the pool then answers', () => {
    const build = run('npx', ['prefork', 'build-addon'], { cwd: bare, timeout: 300_000 });
    expect(build.status, build.stderr).toBe(0);
    expect(build.stdout).toMatch(/prefork: built and loaded .*no-prebuild\/node_modules\/prefork\/src\/native\/build\/Release\/prefork\.node/);
    const result = run(process.execPath, ['esm.mjs'], { cwd: bare, env: bareEnv });
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(`200 x64 ${process.version} /esm`);
  });
});

describe('linux-arm64', () => {
  const required = process.env.PREFORK_REQUIRE_ARM64 === '1';

  it.skipIf(!required && !arm64Ready())('the arm64 prebuild loads and serves under qemu-user-static (arm64 parent, children and addon)', async () => {
    expect(arm64Ready(), 'qemu-aarch64 is not registered in /proc/sys/fs/binfmt_misc (see .ci/run)').toBe(true);
    const node = join(nodeBinary('arm64'), 'bin', 'node');
    expect(statSync(node).isFile()).toBe(true);
    const env = { ...bareEnv, QEMU_LD_PREFIX: '/usr/aarch64-linux-gnu' };
    const arm64Version = execFileSync(node, ['--version'], { encoding: 'utf8', env }).trim();
    const { answer, code, stopped } = await serveOnce(node, [join(project, 'node_modules', 'prefork', 'dist', 'cli.js')], env, project, 120_000);
    expect(answer).toBe(`200 arm64 ${arm64Version} /cli`);
    expect({ code, stopped }).toEqual({ code: 0, stopped: true });
  });
});
