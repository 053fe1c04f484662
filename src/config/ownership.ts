import { realpathSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { PreforkError } from '../errors.js';

/**
 * Code the parent imports (a JS or TS config, a plugin module) runs with the parent's privileges.
 * When the parent runs as root, such a file must be root's and writable by nobody else, and so
 * must the directory holding it (unless that directory is sticky, as /tmp, where others cannot
 * replace a file they do not own): otherwise the run-as user of the children, or anyone, could put
 * code there for root to run at the next start or reload. sshd's StrictModes check, for code.
 * As another user, prefork has no privileges to lose and checks nothing.
 */
export function checkCodeFile(path: string, what: string, label: string): void {
  if (process.getuid?.() !== 0) return;
  const problem = codeFileProblem(path);
  if (problem) {
    throw new PreforkError(
      'PREFORK_ERR_CONFIG_INVALID',
      `${label}: ${what} ${problem}; prefork runs as root and would import it, so it must be root's and not writable by group or others (chown root, chmod go-w)`,
    );
  }
}

function codeFileProblem(path: string): string | undefined {
  const real = realpathSync(path);
  const file = statSync(real);
  if (file.uid !== 0) return `${real} is owned by uid ${file.uid}`;
  if (file.mode & 0o022) return `${real} is writable by ${file.mode & 0o002 ? 'everyone' : 'its group'}`;
  const directory = statSync(dirname(real));
  const sticky = (directory.mode & 0o1000) !== 0;
  if (directory.uid !== 0 && !sticky) return `is in ${dirname(real)}, owned by uid ${directory.uid}`;
  if (directory.mode & 0o022 && !sticky) return `is in ${dirname(real)}, writable by ${directory.mode & 0o002 ? 'everyone' : 'its group'}`;
  return undefined;
}
