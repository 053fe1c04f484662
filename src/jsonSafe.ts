/**
 * Turns any value into one `JSON.stringify` can write and that means the same after a round
 * trip: a cycle becomes `"[Circular]"`, a BigInt its decimal digits with an `n`, an `Error` its
 * name and message, anything deeper than {@link MAX_DEPTH} `"[Object]"` or `"[Array]"`. Values
 * JSON leaves out (functions, symbols, `undefined` in objects) stay out. A getter or `toJSON`
 * that throws gives `"[Unreadable]"`. Logging must never throw because of what it was given.
 */
export function jsonSafe(value: unknown): unknown {
  return convert(value, 0, []);
}

/** Nesting kept; below it objects are named, not written. */
const MAX_DEPTH = 8;

function convert(value: unknown, depth: number, ancestors: object[]): unknown {
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object') return value;
  if (ancestors.includes(value)) return '[Circular]';
  if (value instanceof Error) return { name: value.name, message: value.message };
  let plain: unknown = value;
  try {
    if (typeof (value as { toJSON?: unknown }).toJSON === 'function') plain = (value as { toJSON(): unknown }).toJSON();
  } catch {
    return '[Unreadable]';
  }
  if (plain !== value) return convert(plain, depth, ancestors);
  if (depth >= MAX_DEPTH) return Array.isArray(value) ? '[Array]' : '[Object]';
  ancestors.push(value);
  try {
    if (Array.isArray(value)) return value.map((item) => written(convert(item, depth + 1, ancestors)) ?? null);
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) {
      let item: unknown;
      try {
        item = (value as Record<string, unknown>)[key];
      } catch {
        item = '[Unreadable]';
      }
      const converted = written(convert(item, depth + 1, ancestors));
      if (converted !== undefined) out[key] = converted;
    }
    return out;
  } finally {
    ancestors.pop();
  }
}

/** What JSON writes of a converted value: undefined for what it leaves out (functions, symbols). */
function written(value: unknown): unknown {
  return typeof value === 'function' || typeof value === 'symbol' ? undefined : value;
}
