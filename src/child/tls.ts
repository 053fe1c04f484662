import { closeSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import { secureContextOptions, type TlsBootstrap } from '../pool/tls.js';
import { rememberTcpSocket } from '../protocols/sockets.js';

/** One TLS listener of a child: its context (the same ticket key in every child) and its handshake limit. */
export interface ListenerTls {
  readonly context: SecureContext;
  readonly handshakeTimeout: number;
}

/**
 * Reads the TLS pipe the parent wrote (certificates, keys and the ticket key of every listener)
 * to its end, closes it, and builds one secure context per TLS listener: the index of a listener,
 * or undefined for a plain one. The data comes from the parent, which checked it already.
 */
export function readListenerTls(fd: number): (ListenerTls | undefined)[] {
  let text: string;
  try {
    text = readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
  const data = JSON.parse(text) as TlsBootstrap;
  const ticketKeys = Buffer.from(data.ticketKeys, 'base64');
  return data.listeners.map((material) =>
    material === null ? undefined : { context: createSecureContext(secureContextOptions(material, ticketKeys)), handshakeTimeout: material.handshakeTimeout },
  );
}

/**
 * The server side of TLS over an accepted connection: the handshake runs in this child's event
 * loop as the adapter reads. A client that has not finished it within the listener's
 * `handshakeTimeout` is cut (for HTTP, `headersTimeout` counts from the accept and usually cuts
 * it first). `http` offers ALPN `http/1.1`, so a client that asks for h2 falls back to it.
 */
export function secureServerSocket(socket: Socket, tls: ListenerTls, protocol: string): TLSSocket {
  const secure = new TLSSocket(socket, { isServer: true, secureContext: tls.context, ...(protocol === 'http' ? { ALPNProtocols: ['http/1.1'] } : {}) });
  rememberTcpSocket(secure, socket);
  const timer = setTimeout(() => secure.destroy(), tls.handshakeTimeout);
  timer.unref();
  const clear = () => clearTimeout(timer);
  secure.once('secure', clear);
  secure.once('close', clear);
  return secure;
}
