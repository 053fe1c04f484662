/**
 * `prefork top`'s screen, as pure functions of two successive status reports: what changed
 * between them is what a reader's eye should land on (a child whose state letter changed, a child
 * that was not there before), so those letters are drawn in reverse video for one redraw. The
 * polling, the terminal and the keys are in `topTerminal.ts`.
 */
import type { ChildStatus, StatusReport } from './pool/status.js';

/** How to draw one screen. */
export interface TopLayout {
  /** Terminal columns: every line is cut to this many characters. `Infinity`: no cut. */
  width: number;
  /** Terminal rows: child lines beyond them are summed up in one last line. @default Infinity */
  rows?: number;
  /** The clock of the title line (ms since the epoch). */
  now: number;
  /** The status listener's address, for the title line. */
  address: string;
  /** The polling interval, for the title line. */
  intervalMs: number;
  /**
   * Reverse video on a highlighted letter. Without it (a pipe, a file) no escape code is written
   * and a highlighted letter is followed by `*` instead of a space.
   * @default true
   */
  ansi?: boolean;
}

const REVERSE = '\x1b[7m';
const REVERSE_OFF = '\x1b[27m';

/** A piece of a line: plain text, or text to highlight. */
type Segment = string | { highlight: string };

/** The scoreboard's children by state, in the order of a child's life, with their letters as a legend. */
const STATES = [
  ['starting', 'S'],
  ['idle', '_'],
  ['accepting', 'A'],
  ['busy', 'B'],
  ['stopping', 'G'],
] as const;

/**
 * The pids whose letter to highlight: a child whose letter differs from the previous report's, and
 * a child (pid) the previous report did not have. None without a previous report (the first screen).
 */
export function changedChildren(report: StatusReport, previous: StatusReport | undefined): Set<number> {
  const changed = new Set<number>();
  if (!previous) return changed;
  const before = new Map(previous.children.map((child) => [child.pid, child.letter]));
  for (const child of report.children) if (before.get(child.pid) !== child.letter) changed.add(child.pid);
  return changed;
}

/**
 * Connections accepted per second between two reports of the same parent, from its own uptime
 * clock (so the polling's jitter does not count); null without a usable previous report (the
 * first one, another parent, no time elapsed).
 */
export function connectionsPerSecond(report: StatusReport, previous: StatusReport | undefined): number | null {
  if (!previous || previous.pool.pid !== report.pool.pid) return null;
  const seconds = (report.pool.uptimeMs - previous.pool.uptimeMs) / 1000;
  const accepted = report.pool.connections.accepted - previous.pool.connections.accepted;
  if (seconds <= 0 || accepted < 0) return null;
  return accepted / seconds;
}

/** `42s`, `3m07s`, `2h03m`, `4d05h`. */
export function durationText(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  const two = (n: number) => String(n).padStart(2, '0');
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${two(seconds % 60)}s`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h${two(Math.floor(seconds / 60) % 60)}m`;
  return `${Math.floor(seconds / 86_400)}d${two(Math.floor(seconds / 3600) % 24)}h`;
}

function rateText(rate: number | null): string {
  if (rate === null) return '-';
  return rate >= 100 ? String(Math.round(rate)) : String(Math.round(rate * 10) / 10);
}

function clockText(now: number): string {
  const date = new Date(now);
  return [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

/** Joins segments into a line of at most `width` visible characters; escape codes do not count. */
function fit(segments: readonly Segment[], width: number, ansi: boolean): string {
  let line = '';
  let left = width;
  for (const segment of segments) {
    if (left <= 0) break;
    const text = typeof segment === 'string' ? segment : segment.highlight;
    const cut = text.length > left ? text.slice(0, left) : text;
    left -= cut.length;
    line += typeof segment === 'string' || !ansi || cut === '' ? cut : `${REVERSE}${cut}${REVERSE_OFF}`;
  }
  return line;
}

function column(value: number | string | null, width: number): string {
  return String(value ?? '-').padStart(width);
}

const TABLE_HEADER = `${'id'.padStart(5)} ${'pid'.padStart(8)} gen S  active/slots ${'accepted'.padStart(9)} ${'served'.padStart(9)} ${'age'.padStart(7)} ${'idle'.padStart(7)} ${'rss MiB'.padStart(8)} ${'cpu s'.padStart(8)}`;

function childLine(child: ChildStatus, highlighted: boolean, ansi: boolean): Segment[] {
  const before = `${column(child.id, 5)} ${column(child.pid, 8)} ${column(child.generation, 3)} `;
  const marker = highlighted && !ansi ? '*' : ' ';
  const after =
    `${marker} ${`${child.active}/${child.slots}`.padStart(13)} ${column(child.accepted, 9)} ${column(child.served, 9)} ` +
    `${column(durationText(child.ageS * 1000), 7)} ${column(child.idleForS === null ? null : durationText(child.idleForS * 1000), 7)} ${column(child.rssMiB, 8)} ${column(child.cpuS, 8)}`;
  return [before, highlighted ? { highlight: child.letter } : child.letter, after];
}

function titleLine(layout: TopLayout): string {
  // Without ansi the reader is a file or a pipe, where no key reaches top.
  const title = `prefork top: ${layout.address}, every ${layout.intervalMs} ms${(layout.ansi ?? true) ? ' (q quits)' : ''}`;
  const clock = clockText(layout.now);
  const room = Number.isFinite(layout.width) ? layout.width - title.length - clock.length : 2;
  return `${title}${' '.repeat(Math.max(2, room))}${clock}`;
}

/**
 * One screen of `prefork top` from the latest report and the one before it: a title, the pool
 * (state, uptime, children by state, connections per second since the previous report, backlog,
 * overload, dispatch latency), then one line per child in the report's order, its letter
 * highlighted if it changed since `previous` or the child is new. Lines are separated by `\n`;
 * no trailing newline, so a screen of exactly `rows` lines does not scroll.
 */
export function renderTop(report: StatusReport, previous: StatusReport | undefined, layout: TopLayout): string {
  const ansi = layout.ansi ?? true;
  const pool = report.pool;
  const changed = changedChildren(report, previous);
  const byState = STATES.map(([state, letter]) => `${letter} ${state} ${pool.children[state]}`).join(', ');
  const queue = pool.acceptQueue ? `${pool.acceptQueue.length} (max ${pool.acceptQueue.max}) of ${pool.acceptQueue.limit}` : 'unknown';
  const lines: Segment[][] = [
    [titleLine(layout)],
    [`pool: pid ${pool.pid}, ${pool.state}${pool.ready ? ', ready' : ', not ready'}, generation ${pool.generation}, up ${durationText(pool.uptimeMs)}`],
    [`children: ${pool.children.total} (${byState})`],
    [`connections: ${rateText(connectionsPerSecond(report, previous))}/s, ${pool.connections.active} active, ${pool.connections.accepted} accepted, ${pool.connections.served} served, ${pool.connections.lost} lost, ${pool.connections.rejected} rejected`],
    [`backlog: ${queue}; overload: ${pool.overload.active ? 'now' : 'no'} (${pool.overload.events} so far); dispatch: p50 ${pool.dispatchLatencyUs.p50} µs, p99 ${pool.dispatchLatencyUs.p99} µs`],
    [''],
    [TABLE_HEADER],
  ];
  const rows = layout.rows ?? Infinity;
  const room = rows - lines.length;
  const shown = report.children.length > room ? Math.max(0, room - 1) : report.children.length;
  for (const child of report.children.slice(0, shown)) lines.push(childLine(child, changed.has(child.pid), ansi));
  if (shown < report.children.length && room > 0) lines.push([`... ${report.children.length - shown} more children (a taller terminal shows them)`]);
  return lines
    .slice(0, Math.max(1, rows))
    .map((segments) => fit(segments, layout.width, ansi))
    .join('\n');
}

/**
 * The screen while the status listener does not answer: the title and the error (which names the
 * address), and that it is tried again every interval.
 */
export function renderTopError(message: string, layout: TopLayout): string {
  const ansi = layout.ansi ?? true;
  return [[titleLine(layout)], [`${message}`], [`trying again every ${layout.intervalMs} ms`]]
    .slice(0, Math.max(1, layout.rows ?? Infinity))
    .map((segments) => fit(segments, layout.width, ansi))
    .join('\n');
}
