import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, PreforkError } from '../../src/errors.js';

describe('error codes', () => {
  it('every code is stable-looking and explained in the README', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const code of Object.keys(ERROR_CODES)) {
      expect(code).toMatch(/^PREFORK_ERR_[A-Z_]+$/);
      expect(readme, `README does not document ${code}`).toContain(code);
    }
  });

  it('keeps the cause when wrapping', () => {
    const cause = new Error('inner');
    const error = new PreforkError('PREFORK_ERR_LISTEN', 'outer', { cause });
    expect(error.cause).toBe(cause);
    expect(error.code).toBe('PREFORK_ERR_LISTEN');
    expect(error).toBeInstanceOf(Error);
  });
});
