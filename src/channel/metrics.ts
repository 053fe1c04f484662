/**
 * The METRICS payload: a child's own prom-client metrics, as `registry.getMetricsAsJSON()` gives
 * them, cut down to what the parent sums. The child runtime shapes its registry's output with
 * {@link shapeMetrics}; the parent checks every report with {@link parseMetricsReport} and builds
 * fresh objects from it, so nothing a child sends reaches prom-client in the parent unchecked (its
 * `aggregator` can only name one of the aggregators listed here, a label name can never be
 * `__proto__`, and so on).
 */

/** The METRICS argument of a stopping child's last report, sent unasked when the parent serves metrics. */
export const FINAL_METRICS_REPORT = 0xffff;

/** Most metrics one report may hold. */
export const MAX_METRICS = 2_000;
/** Most values (label sets, histogram buckets included) of one metric. */
export const MAX_METRIC_VALUES = 10_000;
/** Most labels of one value. */
export const MAX_METRIC_LABELS = 32;
/** Longest metric name, label name or label value. */
export const MAX_METRIC_TEXT = 256;
/** Longest help text. */
export const MAX_METRIC_HELP = 1_024;

/** A metric's type, as prom-client names it. */
export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary';
/** How the parent combines one metric over the children: prom-client's aggregators. */
export type MetricAggregator = 'sum' | 'first' | 'min' | 'max' | 'average' | 'omit';

/** One value of a metric: its labels, and for a histogram or summary the series it belongs to. */
export interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  /** `NAME_bucket`, `NAME_sum`, `NAME_count` (histogram, summary); absent for the metric itself. */
  metricName?: string;
}

/** One metric of a child, within the schema. */
export interface ChildMetric {
  name: string;
  help: string;
  type: MetricType;
  aggregator: MetricAggregator;
  values: MetricValue[];
}

/** What a child answers: its metrics, or why it has none to give. */
export type MetricsReport = { metrics: ChildMetric[] } | { error: string };

/** Own keys of null-prototype tables: a child's string is looked up here, never on a real object. */
const TYPES: Readonly<Record<string, MetricType>> = table({ counter: 'counter', gauge: 'gauge', histogram: 'histogram', summary: 'summary' });
const AGGREGATORS: Readonly<Record<string, MetricAggregator>> = table({ sum: 'sum', first: 'first', min: 'min', max: 'max', average: 'average', omit: 'omit' });
/** The series names a histogram and a summary add to their own name. */
const SUFFIXES: Readonly<Record<MetricType, readonly string[]>> = { counter: [], gauge: [], histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count'] };

/** Prometheus' metric and label name rules; label names starting with `__` are reserved there. */
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function table<T extends string>(entries: Record<string, T>): Readonly<Record<string, T>> {
  return Object.freeze(Object.assign(Object.create(null) as Record<string, T>, entries));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function unknownKey(value: Record<string, unknown>, allowed: readonly string[]): string | undefined {
  return Object.keys(value).find((key) => !allowed.includes(key));
}

/**
 * Checks a METRICS payload. Returns the report rebuilt from checked parts, or what is wrong with
 * it (a payload the child runtime would never send: the sender is killed).
 */
export function parseMetricsReport(payload: unknown): MetricsReport | string {
  if (!isRecord(payload)) return 'metrics report must be an object';
  if ('error' in payload) {
    if (unknownKey(payload, ['error']) !== undefined || typeof payload.error !== 'string' || payload.error.length > MAX_METRIC_HELP) return 'metrics error must be a short string alone';
    return { error: payload.error };
  }
  const extra = unknownKey(payload, ['metrics']);
  if (extra !== undefined) return `metrics report has an unknown key ${JSON.stringify(extra.slice(0, MAX_METRIC_TEXT))}`;
  const metrics = payload.metrics;
  if (!Array.isArray(metrics)) return 'metrics must be an array';
  if (metrics.length > MAX_METRICS) return `more than ${MAX_METRICS} metrics`;
  const out: ChildMetric[] = [];
  const names = new Set<string>();
  for (const metric of metrics) {
    const checked = parseMetric(metric);
    if (typeof checked === 'string') return checked;
    if (names.has(checked.name)) return `metric ${checked.name} is reported twice`;
    names.add(checked.name);
    out.push(checked);
  }
  return { metrics: out };
}

function parseMetric(metric: unknown): ChildMetric | string {
  if (!isRecord(metric)) return 'a metric must be an object';
  const extra = unknownKey(metric, ['name', 'help', 'type', 'aggregator', 'values']);
  if (extra !== undefined) return `a metric has an unknown key ${JSON.stringify(extra.slice(0, MAX_METRIC_TEXT))}`;
  const { name, help, values } = metric;
  if (typeof name !== 'string' || name.length > MAX_METRIC_TEXT || !METRIC_NAME.test(name)) return 'a metric name must be a Prometheus metric name';
  if (typeof help !== 'string' || help.length > MAX_METRIC_HELP) return `metric ${name}: help must be a string of at most ${MAX_METRIC_HELP} characters`;
  const type = typeof metric.type === 'string' ? TYPES[metric.type] : undefined;
  if (type === undefined) return `metric ${name}: type must be counter, gauge, histogram or summary`;
  const aggregator = typeof metric.aggregator === 'string' ? AGGREGATORS[metric.aggregator] : undefined;
  if (aggregator === undefined) return `metric ${name}: aggregator must be sum, first, min, max, average or omit`;
  if (!Array.isArray(values) || values.length > MAX_METRIC_VALUES) return `metric ${name}: values must be an array of at most ${MAX_METRIC_VALUES}`;
  const series = [name, ...SUFFIXES[type].map((suffix) => name + suffix)];
  const out: MetricValue[] = [];
  for (const value of values) {
    if (!isRecord(value)) return `metric ${name}: a value must be an object`;
    if (unknownKey(value, ['value', 'labels', 'metricName']) !== undefined) return `metric ${name}: a value has an unknown key`;
    if (typeof value.value !== 'number' || !Number.isFinite(value.value)) return `metric ${name}: a value must be a finite number`;
    const checked: MetricValue = { value: value.value, labels: {} };
    if (value.metricName !== undefined) {
      if (typeof value.metricName !== 'string' || !series.includes(value.metricName)) return `metric ${name}: series ${JSON.stringify(String(value.metricName).slice(0, MAX_METRIC_TEXT))} is not one of ${series.join(', ')}`;
      checked.metricName = value.metricName;
    }
    if (value.labels !== undefined) {
      if (!isRecord(value.labels)) return `metric ${name}: labels must be an object`;
      const labels = Object.entries(value.labels);
      if (labels.length > MAX_METRIC_LABELS) return `metric ${name}: more than ${MAX_METRIC_LABELS} labels`;
      for (const [label, text] of labels) {
        if (label.length > MAX_METRIC_TEXT || !LABEL_NAME.test(label) || label.startsWith('__')) return `metric ${name}: label ${JSON.stringify(label.slice(0, MAX_METRIC_TEXT))} is not a Prometheus label name`;
        if (!((typeof text === 'string' && text.length <= MAX_METRIC_TEXT) || (typeof text === 'number' && Number.isFinite(text)))) return `metric ${name}: label ${label} must be a short string or a finite number`;
        checked.labels[label] = text;
      }
    }
    out.push(checked);
  }
  return { name, help, type, aggregator, values: out };
}

/**
 * The child's side: prom-client's `getMetricsAsJSON()` output cut down to the schema (values as
 * numbers; `+Inf` bucket bounds stay the string prom-client uses; exemplars and timestamps are
 * left out). Metrics outside the schema are skipped, named in `skipped`, so that one odd metric
 * does not cost the child its others, or its life.
 */
export function shapeMetrics(json: unknown): { metrics: ChildMetric[]; skipped: string[] } {
  const metrics: ChildMetric[] = [];
  const skipped: string[] = [];
  if (!Array.isArray(json)) return { metrics, skipped: ['(not an array)'] };
  for (const raw of json.slice(0, MAX_METRICS)) {
    if (!isRecord(raw)) continue;
    const candidate = {
      name: raw.name,
      help: typeof raw.help === 'string' ? raw.help.slice(0, MAX_METRIC_HELP) : '',
      type: raw.type,
      aggregator: raw.aggregator ?? 'sum',
      values: Array.isArray(raw.values)
        ? raw.values.slice(0, MAX_METRIC_VALUES).map((value: unknown) => {
            const entry = isRecord(value) ? value : {};
            return { value: entry.value, labels: entry.labels ?? {}, ...(entry.metricName === undefined ? {} : { metricName: entry.metricName }) };
          })
        : raw.values,
    };
    const checked = parseMetric(candidate);
    if (typeof checked === 'string') skipped.push(String(raw.name).slice(0, MAX_METRIC_TEXT));
    else metrics.push(checked);
  }
  return { metrics, skipped };
}
