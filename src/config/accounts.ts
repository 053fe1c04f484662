import { readFileSync } from 'node:fs';

/** One line of /etc/passwd. */
export interface UserAccount {
  name: string;
  uid: number;
  /** The user's primary group. */
  gid: number;
}

/** One line of /etc/group. */
export interface GroupAccount {
  name: string;
  gid: number;
}

/** Where the account databases are read from; tests point these at their own files. */
export interface AccountFiles {
  /** @default "/etc/passwd" */
  passwd?: string;
  /** @default "/etc/group" */
  group?: string;
}

function readLines(file: string): string[][] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // No database (a minimal container): every name is unknown, numeric ids still work.
    return [];
  }
  return text
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => line.split(':'));
}

/**
 * Looks a user up by name in /etc/passwd (`name:x:uid:gid:...`). Only the local file is read: a
 * server's run-as account is local, and NSS lookups (LDAP, ...) would need a native call.
 */
export function findUser(name: string, files: AccountFiles = {}): UserAccount | undefined {
  for (const fields of readLines(files.passwd ?? '/etc/passwd')) {
    if (fields[0] === name && fields.length >= 4) return { name, uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  return undefined;
}

/** Looks a user up by uid in /etc/passwd. */
export function findUserById(uid: number, files: AccountFiles = {}): UserAccount | undefined {
  for (const fields of readLines(files.passwd ?? '/etc/passwd')) {
    if (fields.length >= 4 && Number(fields[2]) === uid) return { name: fields[0]!, uid, gid: Number(fields[3]) };
  }
  return undefined;
}

/** Looks a group up by name in /etc/group (`name:x:gid:members`). */
export function findGroup(name: string, files: AccountFiles = {}): GroupAccount | undefined {
  for (const fields of readLines(files.group ?? '/etc/group')) {
    if (fields[0] === name && fields.length >= 3) return { name, gid: Number(fields[2]) };
  }
  return undefined;
}
