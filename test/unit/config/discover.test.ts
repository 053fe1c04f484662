import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { displayPath, findConfig, SEARCH_PLACES, typescriptLoader } from '../../../src/config/discover.js';
import { isPreforkError } from '../../../src/errors.js';
import { tempDir } from '../../helpers.js';

/** A project (package.json at its root, so the search stops there) with files, and a nested working directory. */
function tree(files: Record<string, string>): { root: string; nested: string } {
  const root = tempDir('prefork-discover-');
  const all = { 'package.json': '{ "name": "app" }\n', ...files };
  for (const [name, contents] of Object.entries(all)) {
    mkdirSync(dirname(join(root, name)), { recursive: true });
    writeFileSync(join(root, name), contents);
  }
  const nested = join(root, 'src', 'deep');
  mkdirSync(nested, { recursive: true });
  return { root, nested };
}

/** Every supported form, each holding `{ handler: "./<form>.js" }` so that the test sees which file was read. */
const FORMS: Record<string, (handler: string) => string> = {
  'package.json': (handler) => JSON.stringify({ name: 'app', prefork: { handler } }),
  '.preforkrc': (handler) => JSON.stringify({ handler }),
  '.preforkrc.json': (handler) => JSON.stringify({ handler }),
  '.preforkrc.yaml': (handler) => `handler: ${handler}\n`,
  '.preforkrc.yml': (handler) => `handler: ${handler}\n`,
  '.preforkrc.js': (handler) => `export default { handler: ${JSON.stringify(handler)} };\n`,
  '.preforkrc.cjs': (handler) => `module.exports = { handler: ${JSON.stringify(handler)} };\n`,
  '.preforkrc.mjs': (handler) => `export default { handler: ${JSON.stringify(handler)} };\n`,
  'prefork.config.json': (handler) => JSON.stringify({ handler }),
  'prefork.config.js': (handler) => `module.exports = { handler: ${JSON.stringify(handler)} };\n`,
  'prefork.config.cjs': (handler) => `module.exports = { handler: ${JSON.stringify(handler)} };\n`,
  'prefork.config.mjs': (handler) => `export default { handler: ${JSON.stringify(handler)} };\n`,
  // Type annotations and a type-only import: cosmiconfig's TypeScript loader must strip them.
  'prefork.config.ts': (handler) =>
    `import type { PreforkConfig } from 'prefork';\nconst config: PreforkConfig = { handler: ${JSON.stringify(handler)} as string };\nexport default config;\n`,
};

describe('config discovery', () => {
  it('covers exactly the documented file forms', () => {
    expect([...SEARCH_PLACES].sort()).toEqual(Object.keys(FORMS).sort());
  });

  for (const [form, write] of Object.entries(FORMS)) {
    it(`finds ${form} searching upward from a nested working directory`, async () => {
      const { root, nested } = tree({ [form]: write(`./${form}.js`) });
      const found = await findConfig({ cwd: nested });
      expect(found).toEqual({ filepath: join(root, form), config: { handler: `./${form}.js` } });
    });
  }

  it('reads .preforkrc as YAML too', async () => {
    const { root, nested } = tree({ '.preforkrc': 'handler: ./app.js\nlisten:\n  - "127.0.0.1:8080"\n' });
    expect(await findConfig({ cwd: nested })).toEqual({ filepath: join(root, '.preforkrc'), config: { handler: './app.js', listen: ['127.0.0.1:8080'] } });
  });

  it('prefers the nearest directory, and in one directory the first form of the list', async () => {
    const { root, nested } = tree({ 'prefork.config.mjs': 'export default { handler: "./root.js" };', 'src/prefork.config.cjs': 'module.exports = { handler: "./src.js" };', 'src/.preforkrc.json': '{ "handler": "./rc.js" }' });
    const found = await findConfig({ cwd: nested });
    expect(found?.filepath).toBe(join(root, 'src', '.preforkrc.json'));
    expect(await findConfig({ cwd: root })).toMatchObject({ filepath: join(root, 'prefork.config.mjs') });
  });

  it('stops at the project root (the first directory with a package.json)', async () => {
    const outer = tempDir('prefork-discover-');
    writeFileSync(join(outer, '.preforkrc.json'), '{ "handler": "./outside.js" }');
    const inner = join(outer, 'project');
    mkdirSync(join(inner, 'sub'), { recursive: true });
    writeFileSync(join(inner, 'package.json'), '{ "name": "project" }');
    expect(await findConfig({ cwd: join(inner, 'sub') })).toBeUndefined();
  });

  it('skips a package.json without a "prefork" key', async () => {
    const { root, nested } = tree({ '.preforkrc.yml': 'handler: ./a.js\n' });
    expect((await findConfig({ cwd: nested }))?.filepath).toBe(join(root, '.preforkrc.yml'));
  });

  it('loads an explicit --config file of any name without searching', async () => {
    const { root } = tree({ 'deploy/prod.yaml': 'handler: ./prod.js\n', '.preforkrc.json': '{ "handler": "./ignored.js" }' });
    expect(await findConfig({ cwd: root, file: 'deploy/prod.yaml' })).toEqual({ filepath: join(root, 'deploy/prod.yaml'), config: { handler: './prod.js' } });
  });

  it('reads a JS config afresh each time, so that a reload sees the edited file', async () => {
    for (const form of ['prefork.config.mjs', 'prefork.config.cjs']) {
      const { root } = tree({});
      const file = join(root, form);
      const exportOf = (value: string) => (form.endsWith('.mjs') ? `export default { handler: "${value}" };` : `module.exports = { handler: "${value}" };`);
      writeFileSync(file, exportOf('./one.js'));
      expect((await findConfig({ cwd: root }))?.config).toEqual({ handler: './one.js' });
      writeFileSync(file, exportOf('./two.js'));
      expect((await findConfig({ cwd: root }))?.config).toEqual({ handler: './two.js' });
    }
  });

  it('names the file and the reason when a file cannot be parsed', async () => {
    const { nested } = tree({ '.preforkrc.yaml': 'handler: [\n' });
    const error = await findConfig({ cwd: nested }).catch((e: unknown) => e);
    expect(isPreforkError(error, 'PREFORK_ERR_CONFIG_LOAD')).toBe(true);
    expect((error as Error).message).toMatch(/\/\.preforkrc\.yaml: cannot load the configuration: YAML syntax error: unexpected end of the stream within a flow collection \(2:1\)$/);
  });

  it('says to install typescript when a .ts config cannot be loaded without it', async () => {
    const { root } = tree({ 'prefork.config.ts': 'export default { handler: "./a.js" };' });
    // What cosmiconfig's loader throws when the typescript package is not installed (measured on Node 20).
    const missing = Object.assign(new Error("Cannot find package 'typescript' imported from /app/node_modules/cosmiconfig/dist/loaders.js"), { code: 'ERR_MODULE_NOT_FOUND' });
    const error = await findConfig({
      cwd: root,
      loadTs: async () => {
        throw missing;
      },
    }).catch((e: unknown) => e);
    expect(isPreforkError(error, 'PREFORK_ERR_CONFIG_LOAD')).toBe(true);
    expect((error as Error).message).toMatch(
      /\/prefork\.config\.ts: a TypeScript config needs the "typescript" package, which is not installed: run "npm install --save-dev typescript", or write the config as prefork\.config\.mjs$/,
    );
    expect((error as Error).cause).toBe(missing);
  });

  it('passes other errors of the TypeScript loader through', async () => {
    const other = new Error('boom');
    await expect(typescriptLoader(async () => Promise.reject(other))('/x/prefork.config.ts', '')).rejects.toBe(other);
    // Another missing module is not a missing typescript; CommonJS's code is recognised too.
    const otherModule = Object.assign(new Error("Cannot find module 'left-pad'"), { code: 'MODULE_NOT_FOUND' });
    await expect(typescriptLoader(async () => Promise.reject(otherModule))('/x/prefork.config.ts', '')).rejects.toBe(otherModule);
    const notFound = Object.assign(new Error("Cannot find module 'typescript'"), { code: 'EACCES' });
    await expect(typescriptLoader(async () => Promise.reject(notFound))('/x/prefork.config.ts', '')).rejects.toBe(notFound);
    const cjs = Object.assign(new Error("Cannot find module 'typescript'"), { code: 'MODULE_NOT_FOUND' });
    const wrapped = await typescriptLoader(async () => Promise.reject(cjs))('/x/prefork.config.ts', '').catch((e: unknown) => e as Error & { code?: string; cause?: unknown });
    expect(wrapped.code).toBe('PREFORK_ERR_CONFIG_LOAD');
    expect(wrapped.cause).toBe(cjs);
  });
});

describe('config discovery: explicit files and messages', () => {
  it('an explicit file that does not exist: "no such config file", with the path', async () => {
    const { root } = tree({});
    const error = (await findConfig({ cwd: root, file: 'missing.json' }).catch((e: unknown) => e)) as Error & { code?: string };
    expect(error.code).toBe('PREFORK_ERR_CONFIG_LOAD');
    expect(error.message).toBe(`${join(root, 'missing.json')}: no such config file`);
    expect((error.cause as { code?: string }).code).toBe('ENOENT');
  });

  it('an explicit package.json without a "prefork" key is refused; an empty config file is an empty config', async () => {
    const { root } = tree({ 'empty.json': '', 'empty.yaml': '' });
    const error = (await findConfig({ cwd: root, file: 'package.json' }).catch((e: unknown) => e)) as Error & { code?: string };
    expect(error.code).toBe('PREFORK_ERR_CONFIG_LOAD');
    expect(error.message).toBe(`${join(root, 'package.json')}: has no "prefork" key`);
    expect(await findConfig({ cwd: root, file: 'empty.yaml' })).toEqual({ config: {}, filepath: join(root, 'empty.yaml') });
    expect(await findConfig({ cwd: root, file: 'empty.json' })).toEqual({ config: {}, filepath: join(root, 'empty.json') });
  });

  it('a JSON syntax error keeps the reason only, without the code frame', async () => {
    const { root } = tree({ 'bad.json': '{\n  "handler": "./a.js",,\n}\n' });
    const error = (await findConfig({ cwd: root, file: 'bad.json' }).catch((e: unknown) => e)) as Error & { code?: string };
    expect(error.code).toBe('PREFORK_ERR_CONFIG_LOAD');
    expect(error.message.startsWith(`${join(root, 'bad.json')}: cannot load the configuration: JSON syntax error: `)).toBe(true);
    expect(error.message).not.toMatch(/\n|\s\|\s|\^|while parsing/);
  });

  it('a JS config that throws: its message, on one line', async () => {
    const { root } = tree({ 'prefork.config.mjs': 'throw new Error("first line\\n\\nsecond line");\n' });
    const error = (await findConfig({ cwd: root }).catch((e: unknown) => e)) as Error & { code?: string };
    expect(error.code).toBe('PREFORK_ERR_CONFIG_LOAD');
    expect(error.message).toBe(`${join(root, 'prefork.config.mjs')}: cannot load the configuration: first line second line`);
    expect((error.cause as Error).message).toBe('first line\n\nsecond line');
  });

  it('displayPath shows a path below the working directory relative to it, any other absolute', () => {
    expect(displayPath(join(process.cwd(), 'a', 'b.json'))).toBe(join('a', 'b.json'));
    expect(displayPath(process.cwd())).toBe(process.cwd());
    expect(displayPath('/elsewhere/b.json')).toBe('/elsewhere/b.json');
    expect(displayPath(join(process.cwd(), '..', 'sibling.json'))).toBe(join(process.cwd(), '..', 'sibling.json'));
  });
});
