/**
 * The parent's scheduling policy while pools run (`parentScheduling`, Linux). The parent's main
 * thread runs as SCHED_BATCH: a woken batch thread gets its fair share of CPU time as before but
 * does not preempt the thread running on its CPU. So the parent's wake-ups (a connection to
 * order, a child's report) wait for a busy child to block instead of cutting into it; an idle
 * CPU still runs the parent at once. Measured on 2 CPUs (a new connection per request, 8
 * children): 4-10 % more requests a second, with lower latency percentiles (bench/README.md).
 *
 * A policy is a thread's, and several pools may run in one process: the first pool to start
 * switches the main thread (only from SCHED_OTHER: a policy someone chose, `chrt -b` or another,
 * is left alone), the last to stop switches it back. Children inherit the policy of the thread
 * that forks them; a child of a switched parent puts each of its threads back to SCHED_OTHER
 * before any user code runs (ChildRuntime).
 */
import * as native from '../native/index.js';
import type { Logger } from '../child/types.js';

/** Pools of this process running with the main thread switched, and whether it was switched. */
let users = 0;
let switched = false;

/**
 * A pool starts with `parentScheduling: 'batch'`: switches the main thread on the first. Logs
 * (at debug) what it could not do. Must be called from the main thread.
 */
export function enterBatchScheduling(logger: Logger): void {
  users++;
  if (users > 1) return;
  const policy = native.schedPolicy();
  if (policy !== 'other') {
    if (policy !== undefined) logger.debug('parentScheduling: the parent keeps the scheduling policy it was started with', { policy });
    return;
  }
  const error = native.setSchedPolicy('batch', false);
  if (error === undefined) switched = true;
  else logger.info('parentScheduling: the system refused SCHED_BATCH for the parent; it keeps SCHED_OTHER', { code: error });
}

/** A pool that entered has stopped: the last one switches the main thread back. */
export function leaveBatchScheduling(logger: Logger): void {
  if (users === 0) return;
  users--;
  if (users > 0 || !switched) return;
  switched = false;
  const error = native.setSchedPolicy('other', false);
  if (error !== undefined) logger.warn('parentScheduling: could not put the parent back to SCHED_OTHER', { code: error });
}

/** Whether children forked now inherit a policy the parent switched to, and must put theirs back. */
export function childrenRestoreScheduling(): boolean {
  return switched;
}
