/**
 * Scheduling policies (Linux): see sched.c. Best effort: the callers go on as they were when the
 * system has no such policies or refuses a change, so these report instead of throwing.
 */
import { binding, nativeFeatures, systemErrorCode } from './binding.js';

/** A thread's scheduling policy, as the addon names it. */
export type SchedPolicy = 'other' | 'batch' | 'idle' | 'fifo' | 'rr' | 'unknown';

/** The calling thread's scheduling policy; undefined where the build has none (not Linux). */
export function schedPolicy(): SchedPolicy | undefined {
  if (!nativeFeatures().schedBatch) return undefined;
  return binding().schedPolicy();
}

/**
 * Sets `policy` on the calling thread, or on every thread of the process. Returns undefined when
 * done, else the system's error code (`EPERM`, `ENOSYS` where the build has no policies).
 */
export function setSchedPolicy(policy: 'other' | 'batch', everyThread: boolean): string | undefined {
  if (!nativeFeatures().schedBatch) return 'ENOSYS';
  try {
    binding().setSchedPolicy(policy, everyThread);
    return undefined;
  } catch (error) {
    return systemErrorCode(error) ?? 'EINVAL';
  }
}
