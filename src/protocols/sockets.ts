import type { Socket } from 'node:net';

/** The TCP socket under each TLS socket the child runtime made: what only TCP can do (a reset) is done on it. */
const tcpSockets = new WeakMap<Socket, Socket>();

/** Records that `secure` (a TLS socket) runs over `tcp`. */
export function rememberTcpSocket(secure: Socket, tcp: Socket): void {
  tcpSockets.set(secure, tcp);
}

/**
 * Closes a connection with a reset, so that what the kernel still holds for the client is dropped
 * too. A TLS socket's handle is the TLS layer, which `resetAndDestroy()` refuses with
 * ERR_INVALID_HANDLE_TYPE (thrown from a timer, it would end the child): the TCP socket under
 * it is reset, and the TLS socket destroyed.
 */
export function resetAndDestroy(socket: Socket): void {
  const tcp = tcpSockets.get(socket);
  if (tcp === undefined) {
    socket.resetAndDestroy();
    return;
  }
  tcp.resetAndDestroy();
  socket.destroy();
}

/** Resolves once the socket has emitted 'close' (at once if it already has). */
export function whenClosed(socket: Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/**
 * How long a connection whose side the server has ended stays open for its peer to close it,
 * once it no longer holds the child: what the peer still sends is read instead of answered with a
 * reset, which could destroy the end of the answer before the peer read it.
 */
export const LINGER_MS = 2_000;

/**
 * Resolves once the server is done with the connection's socket: it closed, or its side has ended
 * and everything written is with the kernel ('finish'). A socket nobody reads is resumed then, so
 * that the peer's close is seen.
 */
export function whenEnded(socket: Socket): Promise<void> {
  if (socket.closed || socket.writableFinished) return Promise.resolve();
  return new Promise((resolve) => {
    socket.once('close', () => resolve());
    socket.once('finish', () => {
      if (socket.readableFlowing !== true) socket.resume();
      resolve();
    });
  });
}

/**
 * Leaves an ended socket to its peer's close, for LINGER_MS at most, then destroys it. Its end
 * has been written, so the destroy loses nothing the server said.
 */
export function linger(socket: Socket): void {
  if (socket.closed) return;
  const timer = setTimeout(() => socket.destroy(), LINGER_MS).unref();
  socket.once('close', () => clearTimeout(timer));
}
