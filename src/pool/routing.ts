import { Status } from '../channel/frames.js';
import { parseLogLine } from '../channel/payloads.js';
import { PreforkError } from '../errors.js';
import type { Child } from './Child.js';
import { checkStarted, kill, stopChild } from './children.js';
import type { PoolContext } from './context.js';
import { onAnswer, onChained, onDone, settle } from './dispatch.js';
import { abandonReload, commitReload } from './generations.js';
import type { ChildErrorInfo } from './hooks.js';
import { shutdown } from './shutdown.js';

/**
 * Frame routing: every status report of a child comes through {@link routeFrame}, which checks
 * its payload before anything acts on it and hands it to the step it belongs to. A child is
 * untrusted: a frame it should not send, or a payload that does not fit, kills it; no value it
 * sends selects a method or a code path here.
 */
export function routeFrame(ctx: PoolContext, child: Child, type: number, _argument: number, payload: unknown, count: number): void {
  switch (type) {
    case Status.ACCEPTED:
      onAnswer(ctx, child, true);
      return;
    case Status.NOTHING:
      onAnswer(ctx, child, false);
      return;
    case Status.DONE:
      onDone(ctx, child);
      return;
    case Status.CHAINED:
      onChained(ctx, child, count);
      return;
    case Status.READY:
      onReady(ctx, child);
      return;
    case Status.SHUTDOWN_REQUEST: {
      const { reason, token } = (payload ?? {}) as { reason?: string; token?: string };
      onShutdownRequest(ctx, child, reason, token);
      return;
    }
    case Status.EXITING:
      stopChild(ctx, child, ((payload ?? {}) as { reason?: string }).reason ?? 'asked to be retired');
      return;
    case Status.ERROR:
      ctx.current.hooks.onChildError.call(child, errorInfo(payload));
      return;
    case Status.INIT_FAILED:
      onInitFailed(ctx, child, errorInfo(payload));
      return;
    case Status.LOG: {
      // The level must not pick a method of the logger: `configure` or `setStream` would let a
      // child reopen the parent's log on any file, with the parent's privileges.
      const line = parseLogLine(payload);
      if (typeof line === 'string') {
        ctx.logger.error('child sent an invalid log frame; killing it', { child: child.id, pid: child.pid, problem: line });
        kill(ctx, child);
        return;
      }
      ctx.current.hooks.onChildLog.call(child, line);
      ctx.logger[line.level](line.message, { ...line.fields, child: child.id, pid: child.pid });
      return;
    }
    default:
      ctx.logger.error('child sent an unexpected frame; killing it', { child: child.id, type });
      kill(ctx, child);
  }
}

/** READY: a pending child reports idle for the first time (rule 5); the first of a new generation commits its reload. */
function onReady(ctx: PoolContext, child: Child): void {
  if (child.state !== 'starting') return;
  child.readyAt = Date.now();
  child.deadline = 0;
  ctx.current.hooks.onChildReady.call(child);
  if (ctx.reload && child.generation === ctx.reload.generation) commitReload(ctx);
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
  child.expectedExit = true;
  if (ctx.reload && child.generation === ctx.reload.generation) {
    abandonReload(ctx, `a child of the new generation failed to start: ${error.message}`);
    return;
  }
  // A handler that never started anywhere is broken: stop instead of respawning forever. One
  // that ran before and now fails (a database down at init) is a failed start, backed off by the
  // spawning policy.
  const generationEverReady = ctx.children.some((c) => c.generation === child.generation && c.readyAt > 0) || ctx.counters.served > 0;
  if (generationEverReady) return;
  ctx.fatal ??= new PreforkError('PREFORK_ERR_HANDLER_INIT', `the handler ${ctx.options.handler} failed to start: ${error.message}`, { cause: Object.assign(new Error(error.message), { stack: error.stack }) });
  if (ctx.state === 'starting') checkStarted(ctx);
  else if (!ctx.stopping) ctx.stopping = shutdown(ctx, 'the handler failed to start', false);
}

function errorInfo(payload: unknown): ChildErrorInfo {
  const data = (payload ?? {}) as { message?: unknown; stack?: unknown; code?: unknown; where?: unknown };
  return {
    message: typeof data.message === 'string' ? data.message : 'unknown error',
    stack: typeof data.stack === 'string' ? data.stack : undefined,
    code: typeof data.code === 'string' ? data.code : undefined,
    where: typeof data.where === 'string' ? data.where : 'unknown',
  };
}
