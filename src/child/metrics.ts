import { createRequire } from 'node:module';
import { MAX_PAYLOAD_SIZE } from '../channel/frames.js';
import { shapeMetrics, type MetricsReport } from '../channel/metrics.js';

/** What a child needs of prom-client: its default registry. */
interface PromClient {
  register: { getMetricsAsJSON(): Promise<unknown> | unknown };
}

/**
 * The handler's own metrics, for the parent's `/metrics`. prom-client is resolved from the
 * handler's location, so the copy (and the default registry) the handler itself uses is the one
 * read, whichever version the user installed; a handler without prom-client has no metrics.
 */
export class HandlerMetrics {
  readonly #handlerPath: string;
  #client: PromClient | null | undefined;
  /** Metrics skipped as outside the schema, said once each on the child's log. */
  readonly #warned = new Set<string>();
  readonly #warn: (message: string, fields: Record<string, unknown>) => void;

  constructor(handlerPath: string, warn: (message: string, fields: Record<string, unknown>) => void) {
    this.#handlerPath = handlerPath;
    this.#warn = warn;
  }

  #load(): PromClient | null {
    if (this.#client !== undefined) return this.#client;
    const require = createRequire(this.#handlerPath);
    let path: string;
    try {
      path = require.resolve('prom-client');
    } catch {
      this.#client = null;
      return null;
    }
    const client = require(path) as Partial<PromClient>;
    this.#client = client.register && typeof client.register.getMetricsAsJSON === 'function' ? (client as PromClient) : null;
    return this.#client;
  }

  /** The report for a METRICS order: the registry's metrics within the schema, or why there are none. */
  async report(): Promise<MetricsReport> {
    let client: PromClient | null;
    try {
      client = this.#load();
    } catch (error) {
      return { error: `could not load prom-client next to the handler: ${String((error as Error).message).slice(0, 200)}` };
    }
    if (!client) return { metrics: [] };
    let json: unknown;
    try {
      json = await client.register.getMetricsAsJSON();
    } catch (error) {
      return { error: `prom-client's registry failed: ${String((error as Error).message).slice(0, 200)}` };
    }
    const { metrics, skipped } = shapeMetrics(json);
    const fresh = skipped.filter((name) => !this.#warned.has(name));
    if (fresh.length > 0) {
      for (const name of fresh) this.#warned.add(name);
      this.#warn('metrics left out of /metrics: not within what prefork sums (names, labels, finite values)', { metrics: fresh.slice(0, 20) });
    }
    const report = { metrics };
    const size = Buffer.byteLength(JSON.stringify(report));
    if (size > MAX_PAYLOAD_SIZE) return { error: `the handler's metrics take ${size} bytes, more than the ${MAX_PAYLOAD_SIZE} a report may hold` };
    return report;
  }
}
