import { defineConfig } from 'tsup';

// Three entry points: the library (ESM + CJS with types), the command, and the child runtime that
// the pool spawns. The pool finds `child.js` next to its own file, so every entry lands in dist/.
export default defineConfig([
  {
    entry: { index: 'index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    shims: true,
    clean: true,
    target: 'node20',
    sourcemap: true,
  },
  {
    entry: { cli: 'src/cli.ts', child: 'src/child/main.ts' },
    format: ['esm'],
    shims: true,
    target: 'node20',
    sourcemap: true,
  },
]);
