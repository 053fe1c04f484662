import { chmodSync, chownSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkCodeFile } from '../../../src/config/ownership.js';
import { skipWithout } from '../../environment.js';

const skip = skipWithout(process.getuid?.() === 0 ? undefined : 'not root, so the ownership checks of code the root parent imports are skipped');

/** A code file in a fresh directory of `mode`, the file of `fileMode`, both root's unless said. */
function codeFile(dirMode: number, fileMode: number, owners: { dir?: number; file?: number } = {}): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'prefork-own-')), 'd');
  mkdirSync(dir);
  const file = join(dir, 'prefork.config.mjs');
  writeFileSync(file, 'export default {};\n');
  chmodSync(file, fileMode);
  chmodSync(dir, dirMode);
  if (owners.file !== undefined) chownSync(file, owners.file, owners.file);
  if (owners.dir !== undefined) chownSync(dir, owners.dir, owners.dir);
  return file;
}

const check = (file: string) => () => checkCodeFile(file, 'the config file', 'label');

describe.skipIf(skip)('checkCodeFile (as root)', () => {
  it('accepts root’s file, not writable by others, in root’s directory or a sticky one', () => {
    expect(check(codeFile(0o755, 0o644))).not.toThrow();
    expect(check(codeFile(0o1777, 0o600))).not.toThrow();
    expect(check(codeFile(0o1777, 0o644, { dir: 1 }))).not.toThrow();
  });

  it.each([
    ['a file writable by everyone', () => codeFile(0o755, 0o666), /^label: the config file \/.*\/prefork\.config\.mjs is writable by everyone; prefork runs as root and would import it/],
    ['a file writable by its group', () => codeFile(0o755, 0o664), /is writable by its group;/],
    ['a file owned by another uid', () => codeFile(0o755, 0o644, { file: 1 }), /is owned by uid 1;/],
    ['a directory writable by everyone', () => codeFile(0o777, 0o644), /is in \/.*, writable by everyone;/],
    ['a directory writable by its group', () => codeFile(0o775, 0o644), /is in \/.*, writable by its group;/],
    ['a directory owned by another uid', () => codeFile(0o755, 0o644, { dir: 1 }), /is in \/.*, owned by uid 1;/],
  ])('refuses %s with PREFORK_ERR_CONFIG_INVALID', (_name, make, message) => {
    expect(check(make())).toThrow(expect.objectContaining({ code: 'PREFORK_ERR_CONFIG_INVALID', message: expect.stringMatching(message) }));
  });
});
