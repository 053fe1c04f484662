/**
 * `prefork top` (and `prefork status --watch`): polls a status listener and redraws the screen
 * every interval, in the terminal's alternate screen so that quitting gives the shell its screen
 * back. What is drawn comes from `top.ts`; this part only polls, writes and reads keys.
 */
import { toError } from './errors.js';
import type { ListenTarget } from './pool/options.js';
import type { StatusReport } from './pool/status.js';
import { fetchStatus, targetText } from './statusClient.js';
import { renderTop, renderTopError, type TopLayout } from './top.js';

/** The interval's bounds, in ms: below 100 the polling would cost the parent more than it tells. */
export const TOP_INTERVAL = { default: 1000, min: 100, max: 3_600_000 } as const;

const ENTER_SCREEN = '\x1b[?1049h\x1b[?25l';
const LEAVE_SCREEN = '\x1b[?25h\x1b[?1049l';
const HOME_AND_CLEAR = '\x1b[H\x1b[2J';
/** `q`, `Q`, and Ctrl-C (which a terminal in raw mode delivers as a byte, not as SIGINT). */
const QUIT_KEYS = ['q', 'Q', '\x03'];

/** What `watchStatus` needs; the streams default to the process's own. */
export interface WatchOptions {
  target: ListenTarget;
  /** ms between two polls (from the start of one to the start of the next). */
  intervalMs: number;
  stdin?: NodeJS.ReadStream;
  stdout?: NodeJS.WriteStream;
  stderr?: NodeJS.WritableStream;
}

/** The JSON of `GET /status?json`, checked as far as the screen relies on it. */
function parseReport(body: string, address: string): StatusReport {
  let report: Partial<StatusReport> | null;
  try {
    report = JSON.parse(body) as Partial<StatusReport> | null;
  } catch {
    report = null;
  }
  if (typeof report !== 'object' || report === null || !Array.isArray(report.children) || typeof report.pool !== 'object' || report.pool === null) {
    throw new Error(`the answer at ${address} is not a status report (is it prefork's status listener?)`);
  }
  return report as StatusReport;
}

/**
 * Redraws the status every interval until `q`, Ctrl-C, SIGINT, SIGTERM or SIGHUP; resolves then
 * (the command exits 0). A listener that stops answering is shown as an error line and asked
 * again every interval. On a stdout that is no terminal, writes one plain scoreboard per interval
 * (no escape codes, a blank line between two), for a log or a pipe, as `top -b` and `vmstat 1` do.
 */
export async function watchStatus(options: WatchOptions): Promise<void> {
  const { target, intervalMs, stdin = process.stdin, stdout = process.stdout, stderr = process.stderr } = options;
  const address = targetText(target);
  const screen = stdout.isTTY === true;
  const timeoutMs = Math.min(5000, Math.max(1000, intervalMs));

  let quit!: () => void;
  const quitting = new Promise<void>((resolve) => (quit = resolve));
  let done = false;
  const stop = () => {
    done = true;
    quit();
  };
  const onKey = (chunk: Buffer | string) => {
    const text = chunk.toString();
    if (QUIT_KEYS.some((key) => text.includes(key))) stop();
  };

  let latest: StatusReport | undefined;
  let previous: StatusReport | undefined;
  let error: string | undefined;
  const layout = (): TopLayout => ({
    width: screen ? (stdout.columns ?? 80) : Infinity,
    rows: screen ? (stdout.rows ?? 24) : Infinity,
    now: Date.now(),
    address,
    intervalMs,
    ansi: screen,
  });
  const draw = () => {
    if (screen) {
      const body = error !== undefined || !latest ? renderTopError(error ?? `waiting for ${address}`, layout()) : renderTop(latest, previous, layout());
      stdout.write(`${HOME_AND_CLEAR}${body}`);
    } else if (error !== undefined) {
      stderr.write(`prefork: ${error}; trying again in ${intervalMs} ms\n`);
    } else if (latest) {
      stdout.write(`${renderTop(latest, previous, layout())}\n\n`);
    }
  };

  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const signal of signals) process.on(signal, stop);
  // A pipe closed by its reader (`prefork top | head`): nothing more to write to.
  stdout.on('error', stop);
  const raw = stdin.isTTY === true;
  if (raw) {
    stdin.setRawMode(true);
    stdin.on('data', onKey);
    stdin.resume();
  }
  if (screen) {
    stdout.write(ENTER_SCREEN);
    stdout.on('resize', draw);
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    while (!done) {
      const startedAt = Date.now();
      try {
        const body = await Promise.race([fetchStatus(target, '/status?json', timeoutMs), quitting]);
        if (done || body === undefined) break;
        const report = parseReport(body, address);
        // After an error, the last report seen stays the one to compare with: children of a
        // restarted server all show as new.
        previous = latest;
        latest = report;
        error = undefined;
      } catch (failure) {
        error = toError(failure).message;
      }
      draw();
      await Promise.race([quitting, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, startedAt + intervalMs - Date.now()))))]);
      clearTimeout(timer);
    }
  } finally {
    clearTimeout(timer);
    for (const signal of signals) process.off(signal, stop);
    stdout.off('error', stop);
    if (raw) {
      stdin.off('data', onKey);
      stdin.setRawMode(false);
      stdin.pause();
    }
    if (screen) {
      stdout.off('resize', draw);
      stdout.write(LEAVE_SCREEN);
    }
  }
}
