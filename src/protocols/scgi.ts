import { IncomingMessage, ServerResponse, STATUS_CODES } from 'node:http';
import { isIP, type Socket } from 'node:net';
import { PreforkError } from '../errors.js';
import type { ChildContext, ErrorReporter, Logger, RequestHandler, ProtocolFactory } from '../child/types.js';
import { readIntegerOptions } from './http.js';
import { LINGER_MS, whenEnded } from './sockets.js';
import { DEFAULT_MAX_HEADER_SIZE, ScgiParser, ScgiProtocolError, quote, type ScgiHead, type ScgiParsed } from './scgiParser.js';

export { ScgiParser, ScgiProtocolError, parseScgiHeaders, type ScgiHead, type ScgiParsed } from './scgiParser.js';

/**
 * Options of the `scgi` protocol (the `scgi` section of the configuration). Timeouts are in
 * milliseconds and `0` turns them off.
 */
export interface ScgiOptions {
  /**
   * The largest netstring header block, in bytes, that a request may announce; a larger one is
   * answered `431 Request Header Fields Too Large` as soon as its length has been read.
   * @default 65536
   */
  maxHeaderSize?: number;
  /**
   * How long the web server may take, from the accept, to send the complete header block. It comes
   * from a local web server in one piece, so a slow one means a stuck or hostile peer: it is
   * answered `408 Request Timeout`.
   * @default 10000
   */
  headerTimeout?: number;
  /**
   * The longest pause allowed between two pieces of a request body while the handler is reading
   * it (time spent waiting for a handler that does not read is not counted). A body that stalls is
   * answered `408 Request Timeout` if the response has not started, and the connection is closed.
   * @default 30000
   */
  bodyTimeout?: number;
}

const PROTOCOL_NAME = 'scgi';

const SCGI_OPTION_RULES = {
  maxHeaderSize: { default: DEFAULT_MAX_HEADER_SIZE, min: 1, unit: 'bytes' },
  headerTimeout: { default: 10_000, min: 0, unit: 'ms' },
  bodyTimeout: { default: 30_000, min: 0, unit: 'ms' },
} as const;

/** The request a handler receives from the SCGI protocol: an IncomingMessage plus the raw variables. */
export interface ScgiRequest extends IncomingMessage {
  /** The request's SCGI variables as the web server sent them (`REMOTE_ADDR`, `HTTP_HOST`, ...). */
  readonly scgi: Readonly<Record<string, string>>;
}

/** What Node's IncomingMessage offers to fill in headers the way its own parser does. */
interface HeaderLines {
  _addHeaderLines(headers: string[], count: number): void;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const VERSION = /^HTTP\/(\d)(?:\.(\d))?$/;
const METHODS_WITHOUT_BODY = new Set(['GET', 'HEAD']);

/** The request target: REQUEST_URI, or the CGI parts it is made of. */
function requestUrl(env: Readonly<Record<string, string>>): string {
  if (env.REQUEST_URI) return env.REQUEST_URI;
  const query = env.QUERY_STRING ? `?${env.QUERY_STRING}` : '';
  const path = `${env.SCRIPT_NAME ?? ''}${env.PATH_INFO ?? ''}`;
  return `${path || '/'}${query}`;
}

/**
 * Builds the IncomingMessage of an SCGI request. Headers come from the `HTTP_*` variables
 * (`HTTP_X_FOO` becomes `x-foo`) plus `CONTENT_TYPE` and `CONTENT_LENGTH`, and are filled in by Node's
 * own code, so repeats and `set-cookie` behave as for HTTP.
 */
function createRequest(socket: Socket, head: ScgiHead): ScgiRequest {
  const { env, pairs } = head;
  const method = env.REQUEST_METHOD;
  if (method === undefined) throw new ScgiProtocolError(400, 'REQUEST_METHOD is missing');
  if (!TOKEN.test(method)) throw new ScgiProtocolError(400, `REQUEST_METHOD is not a method name: ${quote(method)}`);
  const request = new IncomingMessage(socket) as IncomingMessage & HeaderLines & { scgi: ScgiRequest['scgi'] };
  request.method = method;
  request.url = requestUrl(env);
  const version = VERSION.exec(env.SERVER_PROTOCOL ?? '');
  request.httpVersionMajor = version ? Number(version[1]) : 1;
  request.httpVersionMinor = version ? Number(version[2] ?? 0) : 0;
  request.httpVersion = `${request.httpVersionMajor}.${request.httpVersionMinor}`;
  const rawHeaders: string[] = [];
  for (let index = 0; index < pairs.length; index += 2) {
    const name = pairs[index] as string;
    const value = pairs[index + 1] as string;
    if (name === 'CONTENT_LENGTH') {
      if (head.contentLength > 0 || !METHODS_WITHOUT_BODY.has(method)) rawHeaders.push('content-length', value);
    } else if (name === 'CONTENT_TYPE') {
      if (value !== '') rawHeaders.push('content-type', value);
    } else if (name.startsWith('HTTP_') && name.length > 5 && name !== 'HTTP_CONTENT_LENGTH' && name !== 'HTTP_CONTENT_TYPE') {
      // The CGI variables above are the authority on the body; their HTTP_ twins are ignored.
      rawHeaders.push(name.slice(5).toLowerCase().replaceAll('_', '-'), value);
    }
  }
  request._addHeaderLines(rawHeaders, rawHeaders.length);
  request.scgi = env;
  return request;
}

/**
 * The connection's peer is the web server; handlers written for HTTP look at the socket for the
 * client (`req.socket.remoteAddress`, Express's `req.ip` and `req.protocol`). One SCGI connection
 * carries one request, so the socket can speak for that client: its address, port and whether it
 * came over TLS are shadowed with the web server's `REMOTE_ADDR`, `REMOTE_PORT` and `HTTPS`.
 */
function describeClient(socket: Socket, env: Readonly<Record<string, string>>): void {
  const shadow = (key: string, value: unknown): void => {
    Object.defineProperty(socket, key, { value, configurable: true, enumerable: true, writable: true });
  };
  const address = env.REMOTE_ADDR;
  if (address) {
    shadow('remoteAddress', address);
    const family = isIP(address);
    shadow('remoteFamily', family === 6 ? 'IPv6' : family === 4 ? 'IPv4' : undefined);
  }
  const port = Number(env.REMOTE_PORT);
  if (env.REMOTE_PORT && Number.isInteger(port)) shadow('remotePort', port);
  const https = env.HTTPS?.toLowerCase();
  if (https === 'on' || https === '1' || env.REQUEST_SCHEME === 'https') shadow('encrypted', true);
}

/** What Node's OutgoingMessage keeps about the header it is building. */
interface HeaderState {
  _header: string | null;
  _removedConnection: boolean;
  _removedTE: boolean;
  _storeHeader(firstLine: string, headers: unknown): void;
}

const storeHttpHeader = (ServerResponse.prototype as unknown as HeaderState)._storeHeader;

/**
 * A ServerResponse that writes CGI output: a `Status:` line instead of the HTTP status line, no
 * `Connection`, `Date` or chunked framing (the web server frames the response for its client), and
 * `Content-Length` when Node knows it. Everything else (setHeader, writeHead, write, end, pipe,
 * 'finish', 'close') is Node's own.
 */
class ScgiResponse extends ServerResponse {
  constructor(request: IncomingMessage) {
    super(request);
    const state = this as unknown as HeaderState;
    this.sendDate = false;
    this.shouldKeepAlive = false;
    // With the 'removed' marks Node adds neither a Connection nor a Transfer-Encoding header, and
    // chunked-by-default makes it add Content-Length when end() is called before any write().
    state._removedConnection = true;
    state._removedTE = true;
    this.useChunkedEncodingByDefault = true;
  }

  /** Node calls this with the HTTP status line and the headers once they are final. */
  _storeHeader(_statusLine: string, headers: unknown): void {
    const state = this as unknown as HeaderState;
    storeHttpHeader.call(this, `Status: ${this.statusCode} ${this.statusMessage}\r\n`, headers);
    if (this.chunkedEncoding) {
      // The handler asked for chunks itself; in CGI output the body goes unframed.
      this.chunkedEncoding = false;
      state._header = (state._header ?? '').replace(/^Transfer-Encoding:[^\r\n]*\r\n/gim, '');
    }
  }

  /** The web server answers `Expect: 100-continue` itself; there is no interim response in CGI. */
  override writeContinue(callback?: () => void): void {
    if (callback) process.nextTick(callback);
  }

  /** No interim responses in CGI output. */
  override writeProcessing(callback?: () => void): void {
    if (callback) process.nextTick(callback);
  }

  /** No interim responses in CGI output. */
  override writeEarlyHints(_hints: Record<string, string | string[]>, callback?: () => void): void {
    if (callback) process.nextTick(callback);
  }
}

/** The error a request stream is destroyed with when its connection ends early, as in Node's HTTP. */
function abortedError(): Error {
  return Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
}

/** Where an SCGI connection is: reading the head, reading the body, body read, or being refused. */
type ScgiPhase = 'head' | 'body' | 'complete' | 'refused';

/** Everything a connection needs from its adapter. */
interface ScgiService {
  readonly settings: Readonly<Record<keyof ScgiOptions, number>>;
  readonly request: RequestHandler;
  readonly ctx: ChildContext;
  readonly reportError: ErrorReporter;
  /** Accepted sockets come with TCP_NODELAY on (see ProtocolContext.noDelayInherited). */
  readonly noDelayInherited: boolean;
}

/** One SCGI connection: one request, from the first byte to the close. */
class ScgiConnection {
  /** Resolves once the socket is closed or ended (its answer written out) and the handler call has settled. */
  readonly finished: Promise<void>;
  readonly #socket: Socket;
  readonly #service: ScgiService;
  readonly #logger: Logger;
  readonly #parser: ScgiParser;
  #phase: ScgiPhase = 'head';
  #received = 0;
  #remaining = 0;
  #request: ScgiRequest | undefined;
  #response: ScgiResponse | undefined;
  #call: Promise<void> = Promise.resolve();
  #headerTimer: NodeJS.Timeout | undefined;
  #lingerTimer: NodeJS.Timeout | undefined;

  constructor(socket: Socket, service: ScgiService) {
    this.#socket = socket;
    this.#service = service;
    this.#logger = service.ctx.logger;
    this.#parser = new ScgiParser(service.settings.maxHeaderSize);
    if (!service.noDelayInherited) socket.setNoDelay(true);
    socket.on('error', (error) => this.#logger.debug('scgi connection error', { error: error.message }));
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('end', () => this.#receiveEnd());
    socket.on('timeout', () => this.#stall());
    socket.on('resume', () => this.#watchBody());
    if (service.settings.headerTimeout > 0) {
      this.#headerTimer = setTimeout(
        () => this.#refuse(408, `the header block did not arrive within headerTimeout (${service.settings.headerTimeout} ms)`),
        service.settings.headerTimeout,
      );
    }
    socket.once('close', () => this.#cleanUp());
    // Once the answer is written and the socket ended, the peer's close is awaited off the
    // child's count (#close bounds it): the child takes its next connection meanwhile.
    this.finished = whenEnded(socket).then(() => this.#call);
  }

  #receive(chunk: Buffer): void {
    if (this.#phase === 'head') {
      this.#received += chunk.length;
      let parsed: ScgiParsed | undefined;
      try {
        parsed = this.#parser.push(chunk);
      } catch (error) {
        if (!(error instanceof ScgiProtocolError)) throw error;
        this.#refuse(error.status, error.message);
        return;
      }
      if (parsed) this.#dispatch(parsed);
    } else if (this.#phase === 'body') {
      this.#receiveBody(chunk);
    }
    // Otherwise the input is surplus (after the body, or after a refusal) and is dropped.
  }

  #dispatch({ head, rest }: ScgiParsed): void {
    clearTimeout(this.#headerTimer);
    let request: ScgiRequest;
    try {
      request = createRequest(this.#socket, head);
    } catch (error) {
      if (!(error instanceof ScgiProtocolError)) throw error;
      this.#refuse(error.status, error.message);
      return;
    }
    describeClient(this.#socket, head.env);
    const response = new ScgiResponse(request);
    response.assignSocket(this.#socket);
    response.once('finish', () => this.#finishResponse());
    this.#request = request;
    this.#response = response;
    this.#remaining = head.contentLength;
    this.#phase = 'body';
    this.#watchBody();
    if (this.#remaining === 0) this.#completeBody();
    else if (rest.length > 0) this.#receiveBody(rest);
    this.#call = this.#callHandler(request, response);
  }

  #receiveBody(chunk: Buffer): void {
    const request = this.#request as ScgiRequest;
    const piece = chunk.length > this.#remaining ? chunk.subarray(0, this.#remaining) : chunk;
    this.#remaining -= piece.length;
    const wantsMore = request.push(piece);
    if (this.#remaining === 0) {
      this.#completeBody();
    } else if (!wantsMore) {
      // The handler is not reading: stop the socket, and stop counting the pause as a stall.
      this.#socket.pause();
      this.#socket.setTimeout(0);
    }
  }

  /** Arms the stall timeout while the body is being read (the request resumes a paused socket). */
  #watchBody(): void {
    if (this.#phase === 'body' && this.#service.settings.bodyTimeout > 0) {
      this.#socket.setTimeout(this.#service.settings.bodyTimeout);
    }
  }

  #completeBody(): void {
    const request = this.#request as ScgiRequest;
    this.#phase = 'complete';
    this.#socket.setTimeout(0);
    request.complete = true;
    request.push(null);
  }

  #finishResponse(): void {
    const request = this.#request as ScgiRequest;
    // Like Node's HTTP server: a body nobody reads is drained, so that the socket can close cleanly.
    if (this.#phase === 'body' && request.readableFlowing !== true) request.resume();
    this.#close();
  }

  #receiveEnd(): void {
    if (this.#phase === 'head') {
      if (this.#received === 0) {
        this.#logger.debug('scgi connection closed before a request');
        this.#close();
      } else {
        this.#refuse(400, 'the connection ended before the header block was complete');
      }
    } else if (this.#phase === 'body') {
      this.#refuse(400, `the connection ended ${this.#remaining} bytes before the end of the body`);
    }
  }

  #stall(): void {
    if (this.#phase === 'body') {
      this.#refuse(408, `the body stalled for longer than bodyTimeout (${this.#service.settings.bodyTimeout} ms)`);
    } else {
      this.#socket.destroy();
    }
  }

  /**
   * Answers a request that cannot be served with a short plain-text error, if nothing of a response
   * has been sent and the socket can still be written, then closes. Not a handler error: the web
   * server (or whoever connected) sent something wrong, so it is only logged at debug level.
   */
  #refuse(status: number, reason: string): void {
    if (this.#phase === 'refused') return;
    this.#phase = 'refused';
    clearTimeout(this.#headerTimer);
    this.#socket.setTimeout(0);
    this.#logger.debug('scgi request refused', { status, error: reason });
    const response = this.#response;
    if (response?.writableFinished) return; // The answer is complete; #finishResponse closes.
    if (response?.headersSent) {
      // Part of an answer is on the wire; an error message now would corrupt it.
      this.#socket.destroy();
      return;
    }
    const socket = this.#socket;
    const canWrite = socket.writable && !socket.writableEnded && (!socket.readableEnded || socket.allowHalfOpen);
    if (canWrite) {
      const text = STATUS_CODES[status] ?? 'Error';
      const body = `${text}: ${reason}\n`;
      socket.write(
        `Status: ${status} ${text}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    }
    this.#close();
  }

  /** Ends the answer and gives the peer a little while to close its side. */
  #close(): void {
    if (!this.#socket.writableEnded) this.#socket.end();
    this.#lingerTimer ??= setTimeout(() => this.#socket.destroy(), LINGER_MS);
  }

  #cleanUp(): void {
    clearTimeout(this.#headerTimer);
    clearTimeout(this.#lingerTimer);
    const request = this.#request;
    if (request && !request.complete && !request.destroyed) request.destroy(abortedError());
  }

  #callHandler(request: ScgiRequest, response: ScgiResponse): Promise<void> {
    const { request: handle, ctx } = this.#service;
    try {
      return Promise.resolve(handle(request, response, ctx)).then(
        () => undefined,
        (error: unknown) => this.#failRequest(error, response),
      );
    } catch (error) {
      this.#failRequest(error, response);
      return Promise.resolve();
    }
  }

  #failRequest(error: unknown, response: ScgiResponse): void {
    this.#service.reportError(error, 'request');
    if (!response.headersSent && !response.writableEnded) {
      for (const name of response.getHeaderNames()) response.removeHeader(name);
      response.statusCode = 500;
      response.setHeader('Content-Type', 'text/plain; charset=utf-8');
      response.end('Internal Server Error\n');
    } else if (!response.writableEnded) {
      response.destroy();
    }
  }
}

/**
 * The SCGI protocol, for children behind a web server (nginx `scgi_pass`, Apache `mod_proxy_scgi`):
 * one request per connection, parsed into an IncomingMessage and answered through a ServerResponse
 * that writes CGI output, so the same `request(req, res, ctx)` handler serves HTTP and SCGI.
 */
export const createScgiProtocol: ProtocolFactory<ScgiOptions> = ({ handler, ctx, options, reportError, noDelayInherited }) => {
  const request = handler.request;
  if (typeof request !== 'function') {
    throw new PreforkError(
      'PREFORK_ERR_HANDLER_INVALID',
      `protocol "${PROTOCOL_NAME}" needs the handler module to export a function \`request(req, res, ctx)\``,
    );
  }
  const service: ScgiService = {
    settings: readIntegerOptions(PROTOCOL_NAME, options, SCGI_OPTION_RULES),
    request,
    ctx,
    reportError,
    noDelayInherited: noDelayInherited === true,
  };
  return {
    // A client may send its request and shut down its side before the answer (`nc -N`); the
    // answer is still written, and #close ends the connection.
    allowHalfOpen: true,
    handle(socket) {
      return new ScgiConnection(socket, service).finished;
    },
    stop() {
      // One request per connection: there is no idle connection to close and no next request to
      // refuse. Requests being read or answered are finished; the timeouts bound the wait.
    },
  };
};

/** Checks the `scgi` option section and applies its defaults; throws PREFORK_ERR_OPTION_INVALID naming the key. */
export function readScgiOptions(options: unknown): Record<keyof typeof SCGI_OPTION_RULES, number> {
  return readIntegerOptions(PROTOCOL_NAME, options, SCGI_OPTION_RULES);
}
