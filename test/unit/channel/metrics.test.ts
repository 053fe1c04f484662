import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parseMetricsReport, shapeMetrics, MAX_METRICS } from '../../../src/channel/metrics.js';

const counter = { name: 'app_requests_total', help: 'h', type: 'counter', aggregator: 'sum', values: [{ value: 3, labels: { path: '/a' } }] };
const withMetric = (changes: Record<string, unknown>) => ({ metrics: [{ ...counter, ...changes }] });
const withValue = (value: Record<string, unknown>) => withMetric({ values: [value] });

describe('METRICS payloads', () => {
  it("takes what prom-client's registry gives, shaped by the child, and rebuilds it", async () => {
    const registry = new client.Registry();
    new client.Counter({ name: 'c_total', help: 'a counter', labelNames: ['k'], registers: [registry] }).inc({ k: 'v' }, 2);
    new client.Histogram({ name: 'h_seconds', help: 'a histogram', buckets: [0.1, 1], registers: [registry] }).observe(0.5);
    new client.Gauge({ name: 'g', help: 'a gauge', registers: [registry], aggregator: 'max' }).set(7);
    const shaped = shapeMetrics(await registry.getMetricsAsJSON());
    expect(shaped.skipped).toEqual([]);
    const parsed = parseMetricsReport(JSON.parse(JSON.stringify({ metrics: shaped.metrics })));
    expect(parsed).toEqual({ metrics: shaped.metrics });
    expect(shaped.metrics.map((metric) => [metric.name, metric.type, metric.aggregator])).toEqual([
      ['c_total', 'counter', 'sum'],
      ['h_seconds', 'histogram', 'sum'],
      ['g', 'gauge', 'max'],
    ]);
    expect(shaped.metrics[1]!.values).toContainEqual({ value: 1, labels: { le: '+Inf' }, metricName: 'h_seconds_bucket' });
  });

  it('the child skips (and names) a metric outside the schema instead of sending it', () => {
    const shaped = shapeMetrics([counter, { ...counter, name: 'bad name' }, { ...counter, name: 'nan', values: [{ value: null, labels: {} }] }]);
    expect(shaped.metrics.map((metric) => metric.name)).toEqual(['app_requests_total']);
    expect(shaped.skipped).toEqual(['bad name', 'nan']);
  });

  it.each([
    ['not an object', 'x', /must be an object/],
    ['an unknown key', { metrics: [], path: '/etc' }, /unknown key "path"/],
    ['too many metrics', { metrics: Array.from({ length: MAX_METRICS + 1 }, (_, i) => ({ ...counter, name: `m${i}` })) }, /more than 2000 metrics/],
    ['a metric twice', { metrics: [counter, counter] }, /reported twice/],
    ['a name Prometheus refuses', withMetric({ name: 'a-b' }), /Prometheus metric name/],
    ['an unknown type', withMetric({ type: 'untyped' }), /type must be/],
    ['an aggregator that names an object property', withMetric({ aggregator: 'constructor' }), /aggregator must be/],
    ['an aggregator that names the prototype', withMetric({ aggregator: '__proto__' }), /aggregator must be/],
    ['a label named __proto__', JSON.parse('{"metrics":[{"name":"x","help":"h","type":"counter","aggregator":"sum","values":[{"value":1,"labels":{"__proto__":"x"}}]}]}'), /not a Prometheus label name/],
    ['a reserved label name', withValue({ value: 1, labels: { __name__: 'x' } }), /not a Prometheus label name/],
    ['a label value that is an object', withValue({ value: 1, labels: { k: { toString: 1 } } }), /short string or a finite number/],
    ['a value that is not a number', withValue({ value: '1', labels: {} }), /finite number/],
    ['a series of another metric', withValue({ value: 1, labels: {}, metricName: 'other_total' }), /is not one of app_requests_total$/],
    ['a value with an unknown key', withValue({ value: 1, labels: {}, exemplar: {} }), /unknown key/],
    ['an error report with more', { error: 'x', metrics: [] }, /short string alone/],
  ])('refuses %s, saying what is wrong', (_name, payload, problem) => {
    const result = parseMetricsReport(payload);
    expect(typeof result).toBe('string');
    expect(result).toMatch(problem);
  });

  it('takes an error report alone', () => {
    expect(parseMetricsReport({ error: 'registry failed' })).toEqual({ error: 'registry failed' });
  });
});
