import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestSlots, Reservation } from './slots.js';

/** The log levels prefork knows, most severe first. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/**
 * Anything with these four methods can be a prefork logger: `console`, or the JSON-lines logger of
 * {@link createLogger}. The second argument carries structured fields. A pino logger, whose methods
 * take `(fields, message)`, is recognised where prefork takes a logger and adapted (`fromPino`).
 */
export interface Logger {
  error(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  debug(message: string, fields?: Record<string, unknown>): void;
}

/** What a handler sees of the child it runs in. One context per child, created before `init`. */
export interface ChildContext {
  /** The child's number within its pool, unique for the pool's lifetime (1, 2, 3, ...). */
  readonly id: number;
  /** The child's process id. */
  readonly pid: number;
  /** The pool generation the child belongs to; it grows by one on every reload. */
  readonly generation: number;
  /** Logs one line to the parent's log, tagged with the child's id. */
  readonly logger: Logger;
  /** Connections this child has accepted so far. */
  readonly connections: number;
  /**
   * Asks the parent to stop the whole server (the parent's `onShutdownRequest` hook may veto).
   * Only children run handlers, so this is where an application asks for a shutdown.
   */
  requestShutdown(reason?: string, token?: string): void;
  /** Asks the parent to retire this child once its current connections are done (it is replaced). */
  retire(reason?: string): void;
}

/** A raw-protocol handler: called once per accepted connection with the connected socket. */
export type ConnectionHandler = (socket: Socket, ctx: ChildContext) => void | Promise<void>;

/** An HTTP or SCGI handler: Node's request/response interface, so `http.createServer` listeners work. */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse, ctx: ChildContext) => void | Promise<void>;

/**
 * An HTTP handler's entry point for a connection that leaves HTTP: Node's server `'upgrade'` (a
 * request with `Upgrade`, such as a WebSocket handshake) and `'connect'` (a `CONNECT` request)
 * listeners take the same arguments. `socket` is the connection (a `net.Socket`), `head` the bytes that
 * came after the request's headers. The connection is finished, and its slot free again, once
 * the socket has closed and the returned promise (if any) has settled.
 */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer, ctx: ChildContext) => void | Promise<void>;

/**
 * The module named by the `handler` option. It is loaded once per child.
 * `connection` serves the raw protocol, `request` the HTTP and SCGI protocols.
 */
export interface HandlerModule {
  /** Called once after the child started, before it reports idle. A throw stops the server from starting. */
  init?(ctx: ChildContext): void | Promise<void>;
  /** Called once before the child exits (after its last connection). */
  close?(ctx: ChildContext): void | Promise<void>;
  /** Raw protocol: one call per connection. */
  connection?: ConnectionHandler;
  /** HTTP / SCGI protocols: one call per request. */
  request?: RequestHandler;
  /** HTTP protocol: one call per request asking for an upgrade (`Upgrade`); without it such requests are refused with 501. */
  upgrade?: UpgradeHandler;
  /** HTTP protocol: one call per `CONNECT` request; without it they are refused with 501. */
  connect?: UpgradeHandler;
}

/** Reports an error from a handler to the parent (it reaches the `onChildError` hook). */
export type ErrorReporter = (error: unknown, where: string) => void;

/**
 * A protocol adapter turns an accepted socket into calls of the handler. The child runtime creates
 * one adapter per child and gives it every socket it accepts.
 */
export interface ProtocolAdapter {
  /**
   * Serves one accepted connection. Resolves when the connection is finished: every handler call
   * it caused has settled and the socket is closed, or its side has ended (written out) and the
   * adapter leaves it to the peer's close for a bounded while (LINGER_MS), after which it destroys
   * it. The child takes its next connection then, and exits only once such a socket has closed.
   * Never rejects: errors go to the reporter. With
   * {@link ProtocolContext.slots}, `reservation` is the slot the child took for the connection's
   * first request as it accepted it.
   */
  handle(socket: Socket, reservation?: Reservation): Promise<void>;
  /**
   * Keep the socket writable after the client half-closed its side (`allowHalfOpen`): for protocols
   * where a client may send its request, shut its side down and still read the answer (SCGI:
   * `nc -N` and several client libraries). The adapter then ends the socket itself. @default false
   */
  readonly allowHalfOpen?: boolean;
  /**
   * Called when the child is told to stop: finish requests in flight, close idle keep-alive
   * connections, refuse to start new requests on existing connections.
   */
  stop?(): void;
}

/** What a protocol factory receives. `options` is the protocol's own section of the config. */
export interface ProtocolContext<Options = Record<string, unknown>> {
  readonly handler: HandlerModule;
  readonly ctx: ChildContext;
  readonly options: Options;
  readonly reportError: ErrorReporter;
  /**
   * The child's request slots when it parks waiting connections (HTTP with a page): the adapter
   * runs each request in a slot and holds none while a connection only waits. Absent, every
   * connection holds one of the child's slots from its accept to its close.
   */
  readonly slots?: RequestSlots;
  /**
   * Connections come with TCP_NODELAY on already (every listener is TCP with it set, and the
   * system passes it to accepted sockets, as Linux does): the adapter need not set it on each.
   */
  readonly noDelayInherited?: boolean;
}

/** Creates a child's adapter for one protocol. Throws PREFORK_ERR_HANDLER_INVALID if the handler lacks what it needs. */
export type ProtocolFactory<Options = Record<string, unknown>> = (context: ProtocolContext<Options>) => ProtocolAdapter;
