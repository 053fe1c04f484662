#!/usr/bin/env node
/**
 * Makes the prebuilt addons that the package ships (`npm pack` and `npm publish` run this as
 * `prepack`): one N-API build per target under src/native/prebuilds/<platform>-<arch>/, which
 * serves every Node release from 20 on. prebuildify builds, node-gyp-build picks at run time.
 *
 * Targets: linux-x64 and linux-arm64, glibc. arm64 is cross-compiled with Debian's
 * gcc-aarch64-linux-gnu. Both build against the headers of the registry's node-linux-<arch>
 * package (scripts/node-binary.mjs), so nothing is downloaded from elsewhere.
 *
 * The build runs in a copy of the sources, so the checkout's own build (src/native/build) is left
 * as it was.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_VERSION, nodeBinary } from './node-binary.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const native = join(root, 'src', 'native');

/** How each target is compiled on an x64 Linux machine. */
const TARGETS = {
  x64: { env: {}, strip: 'strip', tools: ['cc', 'make'], packages: 'gcc make' },
  arm64: {
    env: { CC: 'aarch64-linux-gnu-gcc', CXX: 'aarch64-linux-gnu-gcc', LINK: 'aarch64-linux-gnu-gcc', AR: 'aarch64-linux-gnu-ar' },
    strip: 'aarch64-linux-gnu-strip',
    tools: ['aarch64-linux-gnu-gcc', 'aarch64-linux-gnu-strip'],
    packages: 'gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross',
  },
};

function missingTool(name) {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
}

if (process.platform !== 'linux' || process.arch !== 'x64') {
  process.stderr.write(`prebuilds: made on linux-x64 only (this is ${process.platform}-${process.arch}); use \`npx prefork build-addon\` to build for this machine\n`);
  process.exit(1);
}
const prebuildify = join(root, 'node_modules', 'prebuildify', 'bin.js');
// npm names its own node-gyp to the scripts it runs.
const nodeGyp = process.env.npm_config_node_gyp;
if (!nodeGyp) {
  process.stderr.write('prebuilds: run this through npm (`npm run build:prebuilds`), which provides node-gyp\n');
  process.exit(1);
}
rmSync(join(native, 'prebuilds'), { recursive: true, force: true });
for (const [arch, target] of Object.entries(TARGETS)) {
  const missing = target.tools.filter(missingTool);
  if (missing.length > 0) {
    process.stderr.write(`prebuilds: linux-${arch} needs ${missing.join(', ')} (Debian: apt-get install ${target.packages})\n`);
    process.exit(1);
  }
  const headers = nodeBinary(arch);
  const work = mkdtempSync(join(tmpdir(), `prefork-prebuild-${arch}-`));
  try {
    for (const file of readdirSync(native)) if (/\.(c|h)$|^binding\.gyp$/.test(file)) copyFileSync(join(native, file), join(work, file));
    execFileSync(
      process.execPath,
      // prebuildify names a file by its tags; without a package.json in the work folder the first
      // tag is the runtime, so `node.napi` gives node-gyp-build's usual `node.napi.glibc.node`.
      [prebuildify, '--napi', '--name=node.napi', '--strip', '--tag-libc', `--node-gyp=${nodeGyp}`, `--arch=${arch}`, `--target=${NODE_VERSION}`, `--strip-bin=${target.strip}`, `--cwd=${work}`, `--out=${native}`],
      { stdio: 'inherit', env: { ...process.env, ...target.env, npm_config_nodedir: headers } },
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
for (const tuple of readdirSync(join(native, 'prebuilds'))) {
  for (const file of readdirSync(join(native, 'prebuilds', tuple))) process.stdout.write(`prebuilds: src/native/prebuilds/${tuple}/${file}\n`);
}
