#!/usr/bin/env node
/**
 * Reruns the hand-made mutations of test/README.md: for each, changes one line of the code, builds
 * (children run dist/), runs the test that must catch it, and puts the line back, also when
 * interrupted. Prints one row per mutation; exits 1 if any mutation survived.
 *
 *   npm run test:mutants [-- ID ...]      (all, or the named ones)
 *
 * A mutation whose line is no longer in its file is reported as "stale": update the table.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** id, the file, the exact text replaced and its replacement, and the test (file and name) that must fail. */
export const MUTATIONS = [
  {
    id: 'chain-count',
    what: 'a CHAINED report no longer counts the grant down',
    file: 'src/pool/dispatch.ts',
    from: '  child.chainLeft -= count;\n',
    to: '',
    test: ['test/integration/chain.test.ts', 'counts a grant down exactly'],
  },
  {
    id: 'reload-kill',
    what: 'a reload SIGKILLs the old generation instead of letting busy children finish',
    file: 'src/pool/generations.ts',
    from: "    if (child.generation < ctx.generation && (child.state === 'idle' || child.state === 'starting')) stopChild(ctx, child, 'replaced by a reload');\n",
    to: "    if (child.generation < ctx.generation) child.process.kill('SIGKILL');\n",
    test: ['test/integration/children.test.ts', 'busy when a reload commits'],
  },
  {
    id: 'http-request-timeout',
    what: "headersTimeout is passed as Node's requestTimeout",
    file: 'src/protocols/http.ts',
    from: '    requestTimeout: settings.requestTimeout,\n',
    to: '    requestTimeout: settings.headersTimeout,\n',
    test: ['test/unit/protocols/http.test.ts', 'after requestTimeout, not after headersTimeout'],
  },
  {
    id: 'dispatch-in-poll',
    what: 'dispatch runs inside the poll callback, before the status reports of the same turn',
    file: 'src/pool/dispatch.ts',
    from: '    setImmediate(runScheduled, ctx);\n',
    to: '    runScheduled(ctx);\n',
    test: ['test/integration/dispatch.test.ts', 'before dispatching it (rule 1)'],
  },
  {
    id: 'recycle-slots',
    what: 'with slots > 1, recycling waits for one connection more than the limit',
    file: 'plugins/RecyclePlugin.ts',
    from: 'if (limit !== undefined && child.accepted >= limit) this.#recycle',
    to: 'if (limit !== undefined && child.accepted > limit) this.#recycle',
    test: ['test/plugins/RecyclePlugin.test.ts', 'with slots > 1'],
  },
  {
    id: 'scgi-header-size-low',
    what: 'SCGI refuses a header block of exactly maxHeaderSize',
    file: 'src/protocols/scgiParser.ts',
    from: '        if (this.#length > this.#maxHeaderSize) {\n',
    to: '        if (this.#length >= this.#maxHeaderSize) {\n',
    test: ['test/unit/protocols/scgi-fuzz.test.ts', 'exactly maxHeaderSize'],
  },
  {
    id: 'scgi-header-size-high',
    what: 'SCGI accepts a header block one byte over maxHeaderSize',
    file: 'src/protocols/scgiParser.ts',
    from: '        if (this.#length > this.#maxHeaderSize) {\n',
    to: '        if (this.#length > this.#maxHeaderSize + 1) {\n',
    test: ['test/unit/protocols/scgi-fuzz.test.ts', 'exactly maxHeaderSize'],
  },
  {
    id: 'log-level-unchecked',
    what: "a child's LOG payload reaches the logger unchecked, so its level picks any logger method",
    file: 'src/pool/routing.ts',
    from: '      const line = parseLogLine(payload);\n',
    to: '      const line = payload as Exclude<ReturnType<typeof parseLogLine>, string>;\n',
    test: ['test/integration/children.test.ts', 'whose level is not a level'],
  },
];

function run(args) {
  return spawnSync(args[0], args.slice(1), { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

const wanted = new Set(process.argv.slice(2));
const chosen = MUTATIONS.filter((mutation) => wanted.size === 0 || wanted.has(mutation.id));
const unknown = [...wanted].filter((id) => !MUTATIONS.some((mutation) => mutation.id === id));
if (unknown.length > 0) {
  process.stderr.write(`mutants: unknown id ${unknown.join(', ')}; known: ${MUTATIONS.map((m) => m.id).join(', ')}\n`);
  process.exit(64);
}

let survived = 0;
let restore;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    restore?.();
    process.exit(130);
  });
}
for (const mutation of chosen) {
  const path = join(root, mutation.file);
  const original = readFileSync(path, 'utf8');
  const at = original.indexOf(mutation.from);
  if (at < 0 || original.indexOf(mutation.from, at + 1) >= 0) {
    process.stdout.write(`${mutation.id}: stale (the line to change is ${at < 0 ? 'not' : 'more than once'} in ${mutation.file})\n`);
    survived++;
    continue;
  }
  restore = () => writeFileSync(path, original);
  try {
    writeFileSync(path, original.slice(0, at) + mutation.to + original.slice(at + mutation.from.length));
    const build = run(['npx', 'tsup', '--silent']);
    if (build.status !== 0) {
      process.stdout.write(`${mutation.id}: caught by the build\n`);
      continue;
    }
    const [file, name] = mutation.test;
    // vitest's -t is a pattern: match the name literally.
    const test = run(['npx', 'vitest', 'run', file, '-t', name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')]);
    const ran = /Tests\s+.*\b[1-9]\d* (passed|failed)/.test(test.stdout);
    if (!ran) {
      process.stdout.write(`${mutation.id}: no test named "${name}" ran in ${file}\n`);
      survived++;
    } else if (test.status === 0) {
      process.stdout.write(`${mutation.id}: SURVIVED (${file} "${name}" still passes) — ${mutation.what}\n`);
      survived++;
    } else {
      process.stdout.write(`${mutation.id}: caught by ${file} "${name}"\n`);
    }
  } finally {
    restore();
    restore = undefined;
  }
}
run(['npx', 'tsup', '--silent']);
process.exit(survived > 0 ? 1 : 0);
