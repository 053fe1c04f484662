// Medians, ratios and the Markdown tables of the benchmark report.

/** The median of the finite numbers of `values` (NaN when there is none). */
export function median(values) {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Reads a dotted path (`latencyUs.p99`) of an object. */
export function pick(object, path) {
  return path.split('.').reduce((value, key) => (value == null ? undefined : value[key]), object);
}

/** For each path, the median across rounds. */
export function medians(rounds, paths) {
  const result = {};
  for (const path of paths) result[path] = median(rounds.map((round) => pick(round, path)));
  return result;
}

const groupDigits = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** 12345.6 -> "12,346"; NaN -> "—". */
export function integer(value) {
  return Number.isFinite(value) ? groupDigits.format(value) : '—';
}

/** A number with `digits` decimals; NaN -> "—". */
export function fixed(value, digits = 1) {
  return Number.isFinite(value) ? value.toFixed(digits) : '—';
}

/** Microseconds as milliseconds with 2 decimals. */
export function ms(us) {
  return Number.isFinite(us) ? (us / 1000).toFixed(2) : '—';
}

/** Bytes as MiB with one decimal. */
export function mib(bytes) {
  return Number.isFinite(bytes) ? (bytes / 1048576).toFixed(1) : '—';
}

/** A Markdown table from a header row and rows of cells. */
export function table(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map((cell, index) => (index === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n');
}
