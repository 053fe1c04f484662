import { Status } from '../channel/frames.js';
import { parseErrorReport, parseExitingReason, parseLogLine, parseShutdownRequest } from '../channel/payloads.js';
import { PreforkError } from '../errors.js';
import type { Child } from './Child.js';
import { checkStarted, kill, stopChild } from './children.js';
import type { PoolContext } from './context.js';
import { onAnswer, onChained, onDone, onFree, onUnchained, settle } from './dispatch.js';
import { abandonReload, childReadyInReload } from './generations.js';
import type { ChildErrorInfo } from './hooks.js';
import { shutdown } from './shutdown.js';

/**
 * Frame routing: every status report of a child comes through {@link routeFrame}, which checks
 * its payload before anything acts on it and hands it to the step it belongs to. A child is
 * untrusted: a frame it should not send, or a payload that does not fit, kills it; no value it
 * sends selects a method or a code path here.
 */
export function routeFrame(ctx: PoolContext, child: Child, type: number, argument: number, payload: unknown, count: number): void {
  // The hot-path reports carry no payload; one that does was not sent by the child runtime.
  if (payload !== undefined && BARE.has(type)) {
    refuse(ctx, child, `a frame of type ${type} carries a payload`);
    return;
  }
  switch (type) {
    case Status.ACCEPTED:
      onAnswer(ctx, child, true);
      return;
    case Status.NOTHING:
      onAnswer(ctx, child, false);
      return;
    case Status.DONE:
      onDone(ctx, child, argument);
      return;
    case Status.CHAINED:
      onChained(ctx, child, count);
      return;
    case Status.READY:
      onReady(ctx, child);
      return;
    case Status.PONG:
      child.heardAt = Date.now();
      return;
    case Status.FREE:
      onFree(ctx, child);
      return;
    case Status.UNCHAINED:
      onUnchained(ctx, child);
      return;
    case Status.METRICS:
      if (ctx.metrics) ctx.metrics.onReport(child, argument, payload);
      else refuse(ctx, child, 'a metrics report nobody asked for (no status listener)');
      return;
    case Status.SHUTDOWN_REQUEST: {
      const request = parseShutdownRequest(payload);
      if (typeof request === 'string') refuse(ctx, child, request);
      else onShutdownRequest(ctx, child, request.reason, request.token);
      return;
    }
    case Status.EXITING: {
      const exiting = parseExitingReason(payload);
      if (typeof exiting === 'string') {
        refuse(ctx, child, exiting);
        return;
      }
      // Retiring instead of answering an order: it could not accept (out of descriptors).
      if (child.state === 'accepting') noteExhausted(ctx, child, exiting.reason);
      stopChild(ctx, child, exiting.reason ?? 'asked to be retired');
      return;
    }
    case Status.ERROR:
    case Status.INIT_FAILED: {
      const report = parseErrorReport(payload);
      if (typeof report === 'string') refuse(ctx, child, report);
      else if (type === Status.ERROR) ctx.current.hooks.onChildError.call(child, report);
      else onInitFailed(ctx, child, report);
      return;
    }
    case Status.LOG: {
      // The level must not pick a method of the logger: `configure` or `setStream` would let a
      // child reopen the parent's log on any file, with the parent's privileges.
      const line = parseLogLine(payload);
      if (typeof line === 'string') {
        refuse(ctx, child, line, 'log frame');
        return;
      }
      ctx.current.hooks.onChildLog.call(child, line);
      ctx.logger[line.level](line.message, { ...line.fields, child: child.id, pid: child.pid });
      return;
    }
    default:
      refuse(ctx, child, `a frame of type ${type}, which only the parent sends`);
  }
}

/**
 * A child retired because it could not accept: logged once per episode (until a child accepts
 * again, see `dispatch.ts`), however many children it takes, instead of once per order.
 */
function noteExhausted(ctx: PoolContext, child: Child, reason: string | undefined): void {
  if (ctx.exhaustedChildren++ === 0) ctx.logger.warn('a child could not accept and retires; ordering another', { child: child.id, pid: child.pid, reason });
}

/** The reports that never carry a payload. */
const BARE: ReadonlySet<number> = new Set([Status.ACCEPTED, Status.NOTHING, Status.DONE, Status.CHAINED, Status.READY, Status.PONG, Status.FREE, Status.UNCHAINED]);

/** A frame the child runtime never sends: the child is broken or compromised. */
function refuse(ctx: PoolContext, child: Child, problem: string, what = 'frame'): void {
  ctx.counters.invalidFrames++;
  ctx.logger.error(`child sent an invalid ${what}; killing it`, { child: child.id, pid: child.pid, problem });
  kill(ctx, child);
}

/** READY: a pending child reports idle for the first time (rule 5); the first of a new generation commits its reload. */
function onReady(ctx: PoolContext, child: Child): void {
  if (child.state !== 'starting') return;
  child.readyAt = child.heardAt = Date.now();
  child.deadline = 0;
  ctx.readyGenerations.add(child.generation);
  ctx.current.hooks.onChildReady.call(child);
  childReadyInReload(ctx, child.generation);
  settle(ctx, child);
  checkStarted(ctx);
}

/** A child asks to stop the whole server (rule 7), unless a plugin vetoes. */
function onShutdownRequest(ctx: PoolContext, child: Child, reason: string | undefined, token: string | undefined): void {
  if (ctx.current.hooks.onShutdownRequest.call({ child, reason, token }) === false) return;
  if (ctx.stopping) return;
  ctx.stopping = shutdown(ctx, `shutdown requested by child ${child.id}${reason ? `: ${reason}` : ''}`, true);
}

/** The handler of a child could not be loaded or initialised. */
function onInitFailed(ctx: PoolContext, child: Child, error: ChildErrorInfo): void {
  ctx.current.hooks.onChildError.call(child, error);
  // Not an expected exit: it is a failed start, which the spawning policy backs off from.
  if (ctx.reload && child.generation === ctx.reload.generation) {
    abandonReload(ctx, `a child of the new generation failed to start: ${error.message}`);
    return;
  }
  // A handler that never started anywhere is broken: stop instead of respawning forever. One
  // that ran before and now fails (a database down at init) is a failed start, backed off by the
  // spawning policy.
  if (ctx.readyGenerations.has(child.generation)) return;
  ctx.fatal ??= new PreforkError('PREFORK_ERR_HANDLER_INIT', `the handler ${ctx.options.handler} failed to start: ${error.message}`, { cause: Object.assign(new Error(error.message), { stack: error.stack }) });
  if (ctx.state === 'starting') checkStarted(ctx);
  else if (!ctx.stopping) ctx.stopping = shutdown(ctx, 'the handler failed to start', false);
}
