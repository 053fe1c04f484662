import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findGroup, findUser, findUserById } from '../../../src/config/accounts.js';
import { tempDir } from '../../helpers.js';

describe('account files', () => {
  const root = tempDir('prefork-accounts-');
  const passwd = join(root, 'passwd');
  const group = join(root, 'group');
  // A comment, a blank line, short lines (too few fields), then the real entries.
  writeFileSync(passwd, '# users\n\nshort:x:7\n#web:x:1:1::/:/bin/sh\nweb:x:1500:1600:web:/srv:/usr/sbin/nologin\nfour:x:1700:1800\n');
  writeFileSync(group, '# groups\n\nshort:x\nwww:x:1700:web\nbare:x:1900\n');
  const files = { passwd, group };

  it('finds users by name and by uid, groups by name, with at least the fields they need', () => {
    expect(findUser('web', files)).toEqual({ name: 'web', uid: 1500, gid: 1600 });
    expect(findUser('four', files)).toEqual({ name: 'four', uid: 1700, gid: 1800 });
    expect(findUserById(1500, files)).toEqual({ name: 'web', uid: 1500, gid: 1600 });
    expect(findUserById(1700, files)).toEqual({ name: 'four', uid: 1700, gid: 1800 });
    expect(findGroup('www', files)).toEqual({ name: 'www', gid: 1700 });
    expect(findGroup('bare', files)).toEqual({ name: 'bare', gid: 1900 });
  });

  it('skips comments, blank lines and lines with too few fields', () => {
    expect(findUser('short', files)).toBeUndefined();
    expect(findUserById(7, files)).toBeUndefined();
    expect(findUser('#web', files)).toBeUndefined();
    expect(findUserById(1, files)).toBeUndefined();
    expect(findGroup('short', files)).toBeUndefined();
    expect(findGroup('# groups', files)).toBeUndefined();
    expect(findUser('', files)).toBeUndefined();
  });

  it('treats a missing file as an empty database', () => {
    const missing = { passwd: join(root, 'none'), group: join(root, 'none') };
    expect(findUser('web', missing)).toBeUndefined();
    expect(findUserById(0, missing)).toBeUndefined();
    expect(findGroup('www', missing)).toBeUndefined();
    expect(findUser('S', missing)).toBeUndefined();
  });

  it('reads /etc/passwd and /etc/group by default', () => {
    expect(findUser('root')).toEqual({ name: 'root', uid: 0, gid: 0 });
    expect(findUserById(0)).toEqual({ name: 'root', uid: 0, gid: 0 });
    expect(findGroup('root')).toEqual({ name: 'root', gid: 0 });
  });
});
