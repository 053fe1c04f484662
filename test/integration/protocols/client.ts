/** A small HTTP client for the protocol integration tests: one request, the whole answer. */
import http from 'node:http';

/** A complete response. */
export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The client's local port of the connection that carried the request. */
  localPort: number | undefined;
}

/** What {@link fetchAnswer} sends. */
export interface Ask {
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: Buffer;
  agent?: http.Agent | false;
}

/** Sends one request to 127.0.0.1:`port` and resolves with the whole response. Rejects on a network error. */
export function fetchAnswer(port: number, path: string, ask: Ask = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: ask.method ?? 'GET',
        headers: ask.body ? { 'content-length': ask.body.length, ...ask.headers } : ask.headers,
        agent: ask.agent ?? false,
      },
      (response) => {
        const chunks: Buffer[] = [];
        const localPort = response.socket.localPort;
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks), localPort }));
      },
    );
    request.on('error', reject);
    request.end(ask.body);
  });
}

/** What the proto-app fixture reports about a request it served. */
export interface Seen {
  protocol: 'http' | 'scgi';
  method: string;
  url: string;
  httpVersion: string;
  headers: Record<string, string | string[] | undefined>;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  child: number;
  pid: number;
  bodyLength: number;
  bodySha256: string;
}

/** Parses the fixture's JSON report, failing with the status and body when it is not one. */
export function seen(answer: Answer): Seen {
  if (answer.status !== 200) throw new Error(`expected 200, got ${answer.status}: ${answer.body.toString('utf8').slice(0, 300)}`);
  return JSON.parse(answer.body.toString('utf8')) as Seen;
}
