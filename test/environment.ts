/**
 * What the machine must offer for some tests: the IPv6 loopback, nginx, root with useradd. Where
 * one is missing the tests that need it are skipped, and the reason is printed once; under
 * `CI=true` (.ci/run, which installs what is missing) a missing one fails instead, so that CI never
 * passes by skipping.
 */
import { accessSync, constants } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { delimiter, join } from 'node:path';

/** The usual sbin directories, which a non-login PATH may leave out. */
export const SBIN_DIRECTORIES = ['/usr/sbin', '/usr/local/sbin', '/sbin'];

/** The first executable `name` on PATH or in the sbin directories (and `extra`), or undefined. */
export function findExecutable(name: string, extra: readonly string[] = []): string | undefined {
  const directories = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...SBIN_DIRECTORIES, ...extra];
  for (const directory of directories) {
    const candidate = join(directory, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** True when the loopback interface has ::1 (containers are sometimes started without IPv6). */
export function hasIpv6Loopback(): boolean {
  return Object.values(networkInterfaces()).some((addresses) => addresses?.some((address) => address.internal && address.address === '::1'));
}

const reported = new Set<string>();

/**
 * Whether to skip the tests that need something `missing` describes (undefined: it is there).
 * Skips with the reason printed once; throws under CI=true, where nothing may be missing.
 */
export function skipWithout(missing: string | undefined): boolean {
  if (missing === undefined) return false;
  if (process.env.CI === 'true') throw new Error(`CI=true, and ${missing}`);
  if (!reported.has(missing)) {
    reported.add(missing);
    process.stderr.write(`skipped: ${missing}\n`);
  }
  return true;
}

/** Why the IPv6 tests cannot run here, or undefined. */
export const NO_IPV6 = hasIpv6Loopback() ? undefined : 'the loopback interface has no ::1, so the IPv6 listener tests are skipped';
