import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { PreforkError } from '../errors.js';
import { describe, MAX_TIMER_MS, TIMER_LIMIT } from '../pool/optionChecks.js';
import type { Reservation } from '../child/slots.js';
import { resetAndDestroy, whenClosed } from './sockets.js';
import { bodyBuffered, bodyExpected, enterPhase, enterSend, expiredPhase, newTransfer, type TransferLimits, type TransferState } from './httpLimits.js';
import type { ProtocolFactory, UpgradeHandler } from '../child/types.js';

/**
 * Options of the `http` protocol (the `http` section of the configuration). Every timeout is in
 * milliseconds and `0` turns it off.
 */
export interface HttpOptions {
  /**
   * How long a keep-alive connection may stay idle between two requests before the server closes it
   * (Apache's `KeepAliveTimeout`). Responses advertise it in a `Keep-Alive: timeout=<s>` header, and
   * Node closes the socket one second later than advertised, so that a client honouring the header
   * closes first instead of racing the server with a new request. An idle connection holds one of the
   * child's slots, which is why the default is short; `0` keeps idle connections open indefinitely.
   * A stopping child does not cut idle connections (a request may be on its way on one): each
   * ends with this timeout, its client's close, or its next request, answered `Connection: close`;
   * so it also bounds how long a stop waits for idle keep-alive clients (5 s with `0`).
   * @default 5000
   */
  keepAliveTimeout?: number;
  /**
   * How long a client may take to send the complete header block of a request, counted from the
   * first byte of that request (from the accept for a connection's first request), extended by
   * one second for every `minDataRate` bytes received, up to twice this (mod_reqtimeout's
   * `header=20-40,MinRate=500`). A connection that exceeds it is answered `408 Request Timeout`
   * and closed. It is checked every eighth of the smallest timeout (at most every second), so a
   * connection is cut within that much of the limit.
   * @default 20000, or `requestTimeout` if that is smaller
   */
  headersTimeout?: number;
  /**
   * How long a client may take to send a complete request, headers and body, counted like
   * `headersTimeout`. It must not be smaller than `headersTimeout`.
   * @default 300000
   */
  requestTimeout?: number;
  /**
   * How long a request's body may take to arrive, counted from its header block, extended by one
   * second for every `minDataRate` bytes received (mod_reqtimeout's `body=20,MinRate=500`). Where
   * children park connections, the body is received before the handler is called (up to the
   * request stream's buffer, 16 KiB on Node 20 and 64 KiB on 22 and 24; a larger one streams
   * into the handler), so a slow upload holds no slot. A client past it is answered `408` and closed. `0`: only `requestTimeout`.
   * @default 20000
   */
  bodyTimeout?: number;
  /**
   * How long a client may take to read an answer the handler has finished, plus one second for
   * every `minDataRate` bytes of it still unsent at that moment: a client that stops reading (a
   * slow-read attack) is closed instead of holding the connection and the answer's memory. `0`: no limit.
   * @default 20000
   */
  sendTimeout?: number;
  /**
   * The slowest transfer, in bytes per second, that extends `headersTimeout` (up to twice it),
   * `bodyTimeout` and `sendTimeout`: a client this fast or faster is never cut by them. `0`: the
   * limits are their base times.
   * @default 500
   */
  minDataRate?: number;
  /**
   * How many requests one connection may carry. The response to the last one says
   * `Connection: close` and the server closes the connection after it. `0` means no limit.
   * @default 0
   */
  maxRequestsPerConnection?: number;
  /**
   * The largest request line plus header block, in bytes, that the server accepts; a larger one is
   * answered `431 Request Header Fields Too Large`.
   * @default 16384
   */
  maxHeaderSize?: number;
}

const PROTOCOL_NAME = 'http';

/** How one integer option is checked and what it defaults to. */
export interface IntegerOptionRule {
  /** The value used when the option is absent. */
  readonly default: number;
  /** The smallest accepted value: 0 for timeouts (0 = off), 1 for sizes. */
  readonly min: 0 | 1;
  /** The unit named in error messages: `ms`, `bytes`, `requests`. */
  readonly unit: string;
}

/**
 * Checks a protocol's option section against its rules and merges it over the defaults. Shared by
 * the protocol adapters so that every protocol words its option errors the same way.
 * Throws PREFORK_ERR_OPTION_INVALID naming the key path (`http.keepAliveTimeout`), what was
 * expected and what was given; unknown keys are refused, as they are almost always typos.
 */
export function readIntegerOptions<Key extends string>(
  protocol: string,
  options: unknown,
  rules: Readonly<Record<Key, IntegerOptionRule>>,
): Record<Key, number> {
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${protocol}: expected an object of options, got ${describe(options)}`);
  }
  const given = options as Record<string, unknown>;
  const known = Object.keys(rules) as Key[];
  for (const key of Object.keys(given)) {
    if (!(known as string[]).includes(key)) {
      throw new PreforkError(
        'PREFORK_ERR_OPTION_INVALID',
        `${protocol}.${key}: unknown option (known: ${known.join(', ')})`,
      );
    }
  }
  const result = {} as Record<Key, number>;
  for (const key of known) {
    const rule = rules[key];
    const value = given[key];
    if (value === undefined) {
      result[key] = rule.default;
    } else if (typeof value === 'number' && Number.isSafeInteger(value) && value >= rule.min) {
      // A delay above 2^31 - 1 ms would make Node's timer fire at once.
      if (rule.unit === 'ms' && value > MAX_TIMER_MS) throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${protocol}.${key}: expected ${TIMER_LIMIT}, got ${value}`);
      result[key] = value;
    } else {
      const kind = rule.min === 0 ? 'a non-negative integer' : 'a positive integer';
      throw new PreforkError(
        'PREFORK_ERR_OPTION_INVALID',
        `${protocol}.${key}: expected ${kind} (${rule.unit}), got ${describe(value)}`,
      );
    }
  }
  return result;
}

const HEADERS_TIMEOUT_DEFAULT = 20_000;

/** What a connection cut by a header or body limit before any answer gets (Node's own words for its header limit). */
const REQUEST_TIMEOUT_ANSWER = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n';

/**
 * What a CONNECT gets when the handler exports no `connect` (Node would drop it without a word),
 * and, as a 501 from the request listener, a WebSocket upgrade when it exports no `upgrade`
 * (Node would hand it to the request handler, which would answer it as a plain request): a
 * refusal tells the client the protocol switch is not there.
 */
const NOT_IMPLEMENTED_ANSWER = 'HTTP/1.1 501 Not Implemented\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';

/**
 * What a request to leave HTTP gets on a stopping child: an upgraded connection would keep the
 * child until `timeouts.stop`, so the client is sent to try again (on another child).
 */
const STOPPING_ANSWER = 'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';

/** How long a refused upgrade's connection is left to its client to close before it is destroyed. */
const REFUSAL_LINGER_MS = 1000;

/**
 * With `keepAliveTimeout: 0` (idle connections never time out), how long a stopping child leaves
 * its idle keep-alive connections to their clients before it closes them.
 */
const UNBOUNDED_IDLE_STOP_MS = 5_000;

const HTTP_OPTION_RULES = {
  keepAliveTimeout: { default: 5_000, min: 0, unit: 'ms' },
  headersTimeout: { default: HEADERS_TIMEOUT_DEFAULT, min: 0, unit: 'ms' },
  requestTimeout: { default: 300_000, min: 0, unit: 'ms' },
  bodyTimeout: { default: 20_000, min: 0, unit: 'ms' },
  sendTimeout: { default: 20_000, min: 0, unit: 'ms' },
  minDataRate: { default: 500, min: 0, unit: 'bytes/s' },
  maxRequestsPerConnection: { default: 0, min: 0, unit: 'requests' },
  maxHeaderSize: { default: 16_384, min: 1, unit: 'bytes' },
} as const satisfies Record<keyof HttpOptions, IntegerOptionRule>;

/** Validates the `http` options and fills in the defaults. */
/** Checks the `http` option section and applies its defaults; throws PREFORK_ERR_OPTION_INVALID naming the key. */
export function readHttpOptions(options: unknown): Required<HttpOptions> {
  const settings = readIntegerOptions(PROTOCOL_NAME, options, HTTP_OPTION_RULES);
  const headersTimeoutGiven = (options as HttpOptions | undefined)?.headersTimeout !== undefined;
  if (!headersTimeoutGiven && settings.requestTimeout > 0) {
    settings.headersTimeout = Math.min(HEADERS_TIMEOUT_DEFAULT, settings.requestTimeout);
  }
  if (settings.requestTimeout > 0 && settings.headersTimeout > settings.requestTimeout) {
    throw new PreforkError(
      'PREFORK_ERR_OPTION_INVALID',
      `${PROTOCOL_NAME}.headersTimeout: expected at most http.requestTimeout (${settings.requestTimeout} ms), got ${settings.headersTimeout}`,
    );
  }
  return settings;
}

/**
 * How often Node sweeps the connections for expired header and request deadlines: an eighth of the
 * smallest timeout, between 50 ms and 1 s, so that the enforcement is never late by more than that.
 * A sweep only walks the connections of this child, a handful, so sweeping often costs nothing.
 */
function checkingInterval(settings: Required<HttpOptions>): number {
  const timeouts = [settings.headersTimeout, settings.requestTimeout, settings.bodyTimeout, settings.sendTimeout].filter((timeout) => timeout > 0);
  if (timeouts.length === 0) return 1_000;
  return Math.min(1_000, Math.max(50, Math.floor(Math.min(...timeouts) / 8)));
}

/**
 * Node enforces `headersTimeout` and `requestTimeout` only for the connections it tracks, and an
 * `http.Server` starts tracking (the list the request parsers register with, and the timer that
 * sweeps it) from its own 'listening' event. This server never listens: the child accepts the
 * sockets and hands them over with emit('connection'). Without this step a client that dribbles
 * header bytes would hold a slot forever, and closeIdleConnections() would do nothing.
 * Emitting 'listening' on this private server runs exactly Node's own set-up and nothing else.
 * Returns false when Node no longer starts tracking that way (nothing listens for the event).
 */
function startConnectionTracking(server: Server): boolean {
  if (server.listenerCount('listening') === 0) return false;
  server.emit('listening');
  return true;
}

/** What the adapter knows about one accepted connection. */
interface HttpConnection {
  /** Handler calls of this connection that have not settled yet. */
  readonly calls: Set<Promise<void>>;
  /** Responses of this connection that have not finished yet, oldest first. */
  readonly responses: Set<ServerResponse>;
  /** Requests received on this connection so far. */
  requests: number;
  /** The slot the child took for the first request as it accepted the connection, until used or lapsed. */
  reservation: Reservation | undefined;
  /** Which transfer limit applies to it now. */
  readonly transfer: TransferState;
  /** The handler has been called for its current request (a timed-out body is then not answered 408). */
  handling: boolean;
  /** A transfer limit closed it: no handler call starts on it any more. */
  cut: boolean;
  /**
   * It left HTTP (an upgrade or CONNECT): from then on it is the `upgrade` or `connect` export's
   * until it closes, holding a slot, out of reach of the transfer limits and never parked.
   */
  upgraded: boolean;
  /** A TLS connection whose handshake has not finished: nothing can be said on it, only closed. */
  handshaking: boolean;
}

/**
 * The HTTP/1.1 protocol: Node's own HTTP server parses the connections, so keep-alive, pipelining,
 * chunked bodies and `Expect: 100-continue` behave exactly as in Node; the handler's
 * `request(req, res, ctx)` is called once per request, like an `http.createServer` listener.
 */
export const createHttpProtocol: ProtocolFactory<HttpOptions> = ({ handler, ctx, options, reportError, slots, noDelayInherited }) => {
  const request = handler.request;
  if (typeof request !== 'function') {
    throw new PreforkError(
      'PREFORK_ERR_HANDLER_INVALID',
      `protocol "${PROTOCOL_NAME}" needs the handler module to export a function \`request(req, res, ctx)\``,
    );
  }
  const leaving = { upgrade: handler.upgrade, connect: handler.connect };
  const refusesWebSocket = leaving.upgrade === undefined;
  for (const [name, entry] of Object.entries(leaving)) {
    if (entry !== undefined && typeof entry !== 'function') {
      throw new PreforkError('PREFORK_ERR_HANDLER_INVALID', `protocol "${PROTOCOL_NAME}": the handler's \`${name}\` export must be a function \`${name}(req, socket, head, ctx)\`, got ${describe(entry)}`);
    }
  }
  const settings = readHttpOptions(options);
  const limits: TransferLimits = { headersTimeout: settings.headersTimeout, bodyTimeout: settings.bodyTimeout, sendTimeout: settings.sendTimeout, minDataRate: settings.minDataRate };
  // Node's own header limit is the cap of the extended one, which the sweep below enforces.
  const nodeHeadersTimeout = settings.headersTimeout === 0 ? 0 : settings.requestTimeout > 0 ? Math.min(2 * settings.headersTimeout, settings.requestTimeout) : 2 * settings.headersTimeout;
  const server = createServer({
    keepAliveTimeout: settings.keepAliveTimeout,
    headersTimeout: nodeHeadersTimeout,
    requestTimeout: settings.requestTimeout,
    maxHeaderSize: settings.maxHeaderSize,
    connectionsCheckingInterval: checkingInterval(settings),
  });
  server.maxRequestsPerSocket = settings.maxRequestsPerConnection;
  if (!startConnectionTracking(server)) {
    ctx.logger.warn('this Node version does not let prefork start HTTP connection tracking: headersTimeout and requestTimeout are not enforced');
  }

  const connections = new Map<Socket, HttpConnection>();
  let stopping = false;

  const failRequest = (error: unknown, res: ServerResponse): void => {
    reportError(error, 'request');
    if (!res.headersSent && !res.writableEnded) {
      // Headers the handler had set may describe a body that will never come (or leak internals).
      for (const name of res.getHeaderNames()) res.removeHeader(name);
      res.statusCode = 500;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end('Internal Server Error\n');
    } else if (!res.writableEnded) {
      // Part of the response is on the wire: the only honest way to say it failed is to cut it.
      res.destroy();
    }
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const connection = connections.get(req.socket);
    if (!connection) return; // Not one of ours: cannot happen, the server is private.
    connection.requests += 1;
    // Without an `upgrade` export Node hands an upgrade request to this listener as a plain one.
    // A WebSocket handshake must not get a plain answer (a 200 the client cannot use): it is
    // refused. Other upgrades (curl --http2's `Upgrade: h2c`) are optional for the server, and
    // are answered as the plain requests they also are.
    if (refusesWebSocket && isWebSocketUpgrade(req)) {
      connection.reservation?.cancel();
      connection.reservation = undefined;
      res.shouldKeepAlive = false;
      res.writeHead(501, { 'content-length': 0 });
      res.end();
      return;
    }
    const limit = settings.maxRequestsPerConnection;
    // Node announces `Connection: close` on the last allowed request but leaves the socket open for
    // the client to close; saying it through shouldKeepAlive makes the server close it as well.
    if (stopping || (limit > 0 && connection.requests >= limit)) res.shouldKeepAlive = false;
    connection.responses.add(res);
    const reservation = connection.reservation;
    connection.reservation = undefined;
    connection.handling = false;
    const socket = req.socket;
    // A request without a body (most) goes to the handler phase at once, with no listener for its end.
    const expectsBody = bodyExpected(req);
    enterPhase(connection.transfer, socket, expectsBody ? 'body' : 'handler', Date.now());
    if (expectsBody) req.once('end', () => connection.transfer.phase === 'body' && enterPhase(connection.transfer, socket, 'handler', Date.now()));
    // With slots: what the request's slot waits for besides the handler (the end of its answer).
    let answered: (() => void) | undefined;
    // One listener each for the answer's end and its close, whatever needs them.
    res.once('prefinish', () => {
      connection.handling = false;
      if (res.socket === socket) enterSend(connection.transfer, socket, limits, Date.now());
      answered?.();
    });
    res.once('close', () => {
      connection.responses.delete(res);
      answered?.();
    });
    if (!slots) {
      connection.handling = true;
      run(connection, req, res);
      return;
    }
    // The request holds a slot from here until the handler has settled and the response has
    // ended (res.end() was called); what is left of the answer to send then is the connection's,
    // parked like an idle one.
    const start = () => {
      if (socket.destroyed || connection.cut) {
        slots.release(false);
        return;
      }
      connection.handling = true;
      let ended = false;
      let settled = false;
      const began = performance.now();
      const free = () => {
        if (!ended || !settled) return;
        settled = false;
        slots.recordHold(performance.now() - began);
        // Kept alive, the connection is parked now; answered `Connection: close`, it is closing.
        slots.release(res.shouldKeepAlive && !socket.destroyed);
      };
      answered = () => {
        ended = true;
        free();
      };
      run(connection, req, res, () => {
        settled = true;
        // Ended already (the usual case): a pipelined answer waiting behind an earlier one that
        // is still being sent emits 'prefinish' only once its turn comes, and must not hold a slot.
        if (res.writableEnded) ended = true;
        free();
      });
    };
    const take = () => {
      if (reservation?.take()) start();
      else slots.acquire(start);
    };
    // The body arrives while the connection is parked: a slow upload holds no slot.
    if (expectsBody) void bodyBuffered(req).then(take);
    else take();
  });

  // The transfer limits: every connection of this child, each sweep.
  setInterval(() => {
    const now = Date.now();
    for (const [socket, connection] of connections) {
      if (connection.cut || connection.upgraded) continue;
      const expired = expiredPhase(connection.transfer, socket, limits, now);
      if (expired === undefined) continue;
      connection.cut = true;
      if (expired === 'send') {
        // A reset, not a close: what the kernel still holds for the client is dropped too.
        resetAndDestroy(socket);
      } else if (connection.handling || connection.handshaking) {
        socket.destroy();
      } else {
        // Nothing was sent on it yet: say why, as Node does for its own header limit.
        socket.end(REQUEST_TIMEOUT_ANSWER);
        setTimeout(() => socket.destroy(), 1000).unref();
      }
    }
  }, checkingInterval(settings)).unref();

  /**
   * Calls the handler for one request; `settled` runs once the call has settled. A handler that
   * returns no object (a plain function returning nothing) has settled when it returns: no
   * promise and no microtask for it. A promise's call is kept in the connection's `calls` until
   * it settles, so that the connection is finished only after it.
   */
  const run = (connection: HttpConnection, req: IncomingMessage, res: ServerResponse, settled?: () => void): void => {
    let result: unknown;
    try {
      result = request(req, res, ctx);
    } catch (error) {
      failRequest(error, res);
      settled?.();
      return;
    }
    if (result === null || (typeof result !== 'object' && typeof result !== 'function')) {
      settled?.();
      return;
    }
    const call = Promise.resolve(result).then(
      () => undefined,
      (error: unknown) => failRequest(error, res),
    );
    connection.calls.add(call);
    void call.then(() => {
      connection.calls.delete(call);
      settled?.();
    });
  };

  /** Calls `upgrade` or `connect`; a throw or rejection is reported and cuts the connection (nothing else can say it failed). */
  const runLeaving = (kind: keyof typeof leaving, entry: UpgradeHandler, connection: HttpConnection, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    const fail = (error: unknown) => {
      reportError(error, kind);
      socket.destroy();
    };
    let call: Promise<void>;
    try {
      call = Promise.resolve(entry(req, socket, head, ctx)).then(() => undefined, fail);
    } catch (error) {
      fail(error);
      call = Promise.resolve();
    }
    connection.calls.add(call);
    void call.then(() => connection.calls.delete(call));
    return call;
  };

  /**
   * A request that leaves HTTP: Node has detached its parser from the socket, so Node's own
   * timers and closeIdleConnections() no longer see it. It takes a slot as a request does and
   * keeps it until the socket closes (a WebSocket holds its slot while open).
   */
  const leave = (kind: keyof typeof leaving) => (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Node removed its own error listener with the parser: a reset on a socket nobody watches
    // would be an uncaught 'error' and take the child down with every other connection.
    socket.on('error', () => {});
    // `socket` is the connection's socket, or a stream over it while a request body is still
    // arriving (newer Node versions): the connection is known by the request's socket.
    const connection = connections.get(req.socket);
    if (!connection) {
      socket.destroy();
      return;
    }
    connection.requests += 1;
    connection.upgraded = true;
    enterPhase(connection.transfer, req.socket, 'handler', Date.now());
    const reservation = connection.reservation;
    connection.reservation = undefined;
    const entry = leaving[kind];
    if (entry === undefined || stopping) {
      reservation?.cancel();
      // Read (and drop) what comes, so that the client's close is seen and closes this side.
      socket.resume();
      socket.end(entry === undefined ? NOT_IMPLEMENTED_ANSWER : STOPPING_ANSWER);
      setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
      return;
    }
    if (!slots) {
      void runLeaving(kind, entry, connection, req, socket, head);
      return;
    }
    const start = () => {
      if (socket.destroyed) {
        slots.release(false);
        return;
      }
      const call = runLeaving(kind, entry, connection, req, socket, head);
      // Closing, not parked: the slot goes back without a FREE report, as a closing connection's
      // does, and before handle() resolves, so the parent never sees the connection done first.
      const held = Promise.all([whenClosed(req.socket), call]).then(() => slots.release(false));
      connection.calls.add(held);
      void held.then(() => connection.calls.delete(held));
    };
    if (reservation?.take()) start();
    else slots.acquire(start);
  };
  if (leaving.upgrade) server.on('upgrade', leave('upgrade'));
  server.on('connect', leave('connect'));

  return {
    handle(socket, reservation) {
      const handshaking = socket instanceof TLSSocket;
      const connection: HttpConnection = { calls: new Set(), responses: new Set(), requests: 0, reservation, transfer: newTransfer(socket, Date.now()), handling: false, cut: false, upgraded: false, handshaking };
      // The handshake is part of the header phase (counted from the accept): a client that never
      // finishes it is cut by headersTimeout like one that never sends its headers.
      if (handshaking) socket.once('secure', () => (connection.handshaking = false));
      connections.set(socket, connection);
      const closed = whenClosed(socket).then(() => {
        // Closed before its first request: the reserved slot goes back.
        connection.reservation?.cancel();
        connection.reservation = undefined;
      });
      // The server's own accept path would set this; emit('connection') skips it.
      if (!noDelayInherited) socket.setNoDelay(true);
      server.emit('connection', socket);
      return closed
        .then(() => settleAll(connection.calls))
        .then(() => {
          connections.delete(socket);
        });
    },
    stop() {
      stopping = true;
      // An idle keep-alive connection is not closed here: a client (nginx reusing its upstream
      // connection) may have sent a request on it that is still on the wire, and closing would
      // reset it, a loss the client cannot retry safely for a POST. It ends as it would outside a
      // stop, when the client closes it or keepAliveTimeout runs out, or with its next request,
      // answered with Connection: close. One that has not sent its first request yet is left to
      // do so the same way, or to hit headersTimeout. An upgraded connection (a WebSocket) is not
      // HTTP any more: it ends when its peer closes it, or with the child at timeouts.stop.
      for (const connection of connections.values()) {
        // Only the newest response may close the connection: one pipelined behind it would be lost.
        let newest: ServerResponse | undefined;
        for (const res of connection.responses) newest = res;
        if (newest && !newest.headersSent) newest.shouldKeepAlive = false;
      }
      // With keepAliveTimeout 0 nothing else would end an idle connection before timeouts.stop
      // kills the child.
      if (settings.keepAliveTimeout === 0) setTimeout(() => server.closeIdleConnections(), UNBOUNDED_IDLE_STOP_MS).unref();
    },
  };
};

/** Whether a request asks to switch to WebSocket (`Connection: upgrade`, `Upgrade: websocket`). */
function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  if (upgrade === undefined || !/(^|,)\s*upgrade\s*(,|$)/i.test(String(req.headers.connection ?? ''))) return false;
  return /(^|,)\s*websocket\s*(,|$)/i.test(upgrade);
}

/** Resolves once every promise of the set has settled, including ones added while waiting. */
async function settleAll(calls: Set<Promise<void>>): Promise<void> {
  while (calls.size > 0) await Promise.allSettled([...calls]);
}
